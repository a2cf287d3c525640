package db

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/hf"
)

// TestCompactLevels checks, for every level kind and layout of small databases — sparse levels
// with float32 and bfloat16 values, quant levels with groups, one group per row and g_idx
// (activation order), gguf levels of K-quant and 32-weight types — that the compact level Weights
// returns expands, whole and over random stretches starting and ending anywhere (inside rows,
// groups and ggml blocks, across rows), to exactly the values Decode writes; that its size is
// the payload's; and that a model with the levels applied (held compactly) computes bit for
// bit what the same model with the decoded float32 weights computes.
func TestCompactLevels(t *testing.T) {
	type variant struct {
		name string
		cfg  func(tm *tiny, out string) BuildConfig
	}
	variants := []variant{
		{"sparse-f32", func(tm *tiny, out string) BuildConfig {
			c := tm.config(out, ModeSparse, MethodSparseGPT)
			c.Sparse.Levels = 2
			return c
		}},
		{"sparse-bf16", func(tm *tiny, out string) BuildConfig {
			c := tm.config(out, ModeSparse, MethodMagnitude)
			c.Sparse.Levels, c.Sparse.Values = 2, "bf16"
			return c
		}},
		{"quant-groups", func(tm *tiny, out string) BuildConfig {
			c := tm.config(out, ModeQuant, MethodGPTQ)
			c.Quant.Bits = []int{2, 3, 4, 8}
			return c
		}},
		{"quant-row", func(tm *tiny, out string) BuildConfig {
			c := tm.config(out, ModeQuant, MethodRTN)
			c.Quant.Bits, c.Quant.GroupSize = []int{3, 5}, 0
			return c
		}},
		{"quant-gidx", func(tm *tiny, out string) BuildConfig {
			c := tm.config(out, ModeQuant, MethodGPTQ)
			c.Quant.Bits, c.Quant.ActOrder = []int{4, 6}, true
			return c
		}},
		{"gguf", func(tm *tiny, out string) BuildConfig {
			return tm.ggufConfig(out, []string{"q4_K", "q6_K", "q8_0", "iq4_xs"}, ImatrixNone)
		}},
	}
	for vi, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			tm := newTiny(t, 40+uint64(vi), hf.F32)
			if v.name == "gguf" {
				tm = newModel(t, 40, hf.F32, 256, 352, 2, 4) // down_proj rows of 352: 32-weight fallbacks
			}
			cfg := v.cfg(tm, filepath.Join(t.TempDir(), "db"))
			build(t, cfg)
			d := open(t, cfg.Out)
			rng := rand.New(rand.NewPCG(uint64(vi), 3))
			var levels []map[string]int
			for _, l := range d.Manifest().Layers {
				for li, lv := range l.Levels {
					if li >= len(levels) {
						levels = append(levels, map[string]int{})
					}
					levels[li][l.Name] = lv.Level
					want := make([]float32, l.Numel)
					if err := d.Decode(l.Name, lv.Level, want); err != nil {
						t.Fatal(err)
					}
					w, err := d.Weights(l.Name, lv.Level)
					if err != nil {
						t.Fatal(err)
					}
					what := fmt.Sprintf("%s level %d", l.Name, lv.Level)
					if w.Len() != len(want) || !bitsEqual(w.Float32(), want) {
						t.Fatalf("%s: compact level expands differently from Decode", what)
					}
					c := w.Dec.(compactLevel)
					if d.Mode() == ModeGGUF && c.Bytes() != lv.TensorBytes {
						t.Fatalf("%s: holds %d bytes, the tensor has %d", what, c.Bytes(), lv.TensorBytes)
					}
					if held := HeldBytes(&l, &lv, d.Mode()); c.Bytes() > held || c.Bytes() < held-400 {
						t.Fatalf("%s: holds %d bytes, HeldBytes says %d (the file has %d)", what, c.Bytes(), held, lv.Bytes)
					}
					for range 40 {
						off := rng.IntN(len(want))
						n := rng.IntN(min(len(want)-off, 2*l.Cols) + 1)
						got := make([]float32, n)
						w.ToFloat32(got, off)
						if !bitsEqual(got, want[off:off+n]) {
							t.Fatalf("%s: weights [%d, %d) differ from Decode's", what, off, off+n)
						}
					}
				}
			}
			// Applied models: compact against decoded float32, every level of the ladder.
			seqs := tm.calib[:2]
			for _, lv := range levels {
				c, err := d.Apply(tm.m, lv)
				if err != nil {
					t.Fatal(err)
				}
				f := tm.m.Clone()
				for name, level := range lv {
					l := d.Layer(name)
					k, _ := arch.ParseLinearKind(l.Kind)
					w := make([]float32, l.Numel)
					if err := d.Decode(name, level, w); err != nil {
						t.Fatal(err)
					}
					f.Blocks[l.Block].Layer(k).W = w
					if c.Blocks[l.Block].Layer(k).W != nil {
						t.Fatalf("%s: applied as float32", name)
					}
				}
				nc, _, err := c.SequenceNLL(seqs)
				if err != nil {
					t.Fatal(err)
				}
				nf, _, err := f.SequenceNLL(seqs)
				if err != nil {
					t.Fatal(err)
				}
				if math.Float64bits(nc) != math.Float64bits(nf) {
					t.Fatalf("levels %v: loss %v with compact levels, %v with decoded ones", lv, nc, nf)
				}
				lc, _ := c.Logits(seqs[0])
				lf, _ := f.Logits(seqs[0])
				if !bitsEqual(lc, lf) {
					t.Fatalf("levels %v: logits differ between compact and decoded levels", lv)
				}
			}
		})
	}
}
