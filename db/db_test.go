package db

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/calib"
	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/sparse"
)

// hessians collects the dense model's calibration Hessians independently of Build.
func hessians(t *testing.T, tm *tiny, batch int) []*calib.Stats {
	t.Helper()
	st, err := calib.Collect(context.Background(), tm.m, tm.calib, batch)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func countZeros(w []float32) int64 {
	var z int64
	for _, v := range w {
		if math.Float32bits(v) == 0 {
			z++
		}
	}
	return z
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestSparseDatabase checks every level of sparse databases built with each method: the stored
// zero count is exactly round(s·numel) + ℓ·D and the manifest's, the levels are the ones the
// compressor produces directly from independently collected Hessians (bit for bit, so the
// packing round-trips), the level range is the reference's, and the recorded errors match
// compress.LayerError.
func TestSparseDatabase(t *testing.T) {
	tm := newTiny(t, 1, hf.BF16)
	st := hessians(t, tm, 5)
	for _, method := range []string{MethodSparseGPT, MethodWanda, MethodMagnitude} {
		t.Run(method, func(t *testing.T) {
			cfg := tm.config(filepath.Join(t.TempDir(), "db"), ModeSparse, method)
			res := build(t, cfg)
			d := open(t, cfg.Out)
			if err := d.Verify(); err != nil {
				t.Fatal(err)
			}
			man := d.Manifest()
			D := man.Sparse.WeightsDiff
			if wantD, _ := sparse.DefaultD(64, 0.5, 8); D != wantD {
				t.Errorf("weights diff %d, want the reference default %d", D, wantD)
			}
			if len(res.Computed) != 14 || len(res.Reused) != 0 {
				t.Errorf("computed %d, reused %d layers", len(res.Computed), len(res.Reused))
			}
			for _, l := range man.Layers {
				block, kind, _ := arch.ParseLinear(l.Name)
				lin := tm.m.Blocks[block].Layer(kind)
				H := st[block].Hessian(kind).H
				lo, hi, _ := sparse.LevelRange(l.Numel, D, 0.5, 8)
				if l.Levels[0].Level != lo || l.Levels[len(l.Levels)-1].Level != hi {
					t.Errorf("%s: levels %d..%d, want %d..%d", l.Name, l.Levels[0].Level, l.Levels[len(l.Levels)-1].Level, lo, hi)
				}
				var sps []float64
				for _, v := range l.Levels {
					sps = append(sps, float64(int64(math.Floor(0.5*float64(l.Numel)+0.5))+int64(v.Level)*D)/float64(l.Numel))
				}
				var direct [][]float32
				switch method {
				case MethodSparseGPT:
					var err error
					direct, err = compress.SparseGPT(lin.W, l.Rows, l.Cols, H, sps, compress.DefaultSparseGPTOptions())
					if err != nil {
						t.Fatal(err)
					}
				default:
					for _, s := range sps {
						var w []float32
						var err error
						if method == MethodWanda {
							w, err = compress.Wanda(lin.W, l.Rows, l.Cols, H, s)
						} else {
							w, err = compress.Magnitude(lin.W, l.Rows, l.Cols, s)
						}
						if err != nil {
							t.Fatal(err)
						}
						direct = append(direct, w)
					}
				}
				buf := make([]float32, l.Numel)
				for i, v := range l.Levels {
					if err := d.Decode(l.Name, v.Level, buf); err != nil {
						t.Fatal(err)
					}
					want := int64(math.Floor(0.5*float64(l.Numel)+0.5)) + int64(v.Level)*D
					if z := countZeros(buf); z != want || v.Zeros != want || v.Sparsity != float64(want)/float64(l.Numel) {
						t.Errorf("%s level %d: %d zeros decoded, manifest %d (sparsity %v), want %d", l.Name, v.Level, z, v.Zeros, v.Sparsity, want)
					}
					if !bitsEqual(buf, direct[i]) {
						t.Errorf("%s level %d: decoded level differs from the compressor's output", l.Name, v.Level)
					}
					abs, norm, err := compress.LayerError(lin.W, buf, l.Rows, l.Cols, H)
					if err != nil {
						t.Fatal(err)
					}
					if math.Abs(v.ErrorAbs-abs) > 1e-4*abs+1e-12 || math.Abs(v.Error-norm) > 1e-4*norm+1e-12 {
						t.Errorf("%s level %d: error %g (%g), LayerError %g (%g)", l.Name, v.Level, v.Error, v.ErrorAbs, norm, abs)
					}
					nnz := l.Numel - v.Zeros
					if wantBits := 1 + float64(nnz*int64(8*valueSize(v.Values)))/float64(l.Numel); math.Abs(v.Bits-wantBits) > 1e-12 {
						t.Errorf("%s level %d: %v bits per weight, want %v", l.Name, v.Level, v.Bits, wantBits)
					}
					hdr := int64(len(levelMagic) + 4)
					if payload := (l.Numel+7)/8 + nnz*int64(valueSize(v.Values)); v.Bytes <= payload+hdr || v.Bytes > payload+hdr+300 {
						t.Errorf("%s level %d: file of %d bytes for a payload of %d", l.Name, v.Level, v.Bytes, payload)
					}
					// Magnitude and Wanda keep original (bf16) weights: stored as bf16.
					if method != MethodSparseGPT && v.Values != "bf16" {
						t.Errorf("%s level %d: values stored as %s, want bf16", l.Name, v.Level, v.Values)
					}
				}
				// Errors grow with the sparsity.
				for i := 1; i < len(l.Levels); i++ {
					if l.Levels[i].ErrorAbs < l.Levels[i-1].ErrorAbs {
						t.Errorf("%s: error falls from level %d to %d", l.Name, l.Levels[i-1].Level, l.Levels[i].Level)
					}
				}
			}
		})
	}
}

// TestQuantDatabase checks quant databases (GPTQ with and without act-order, RTN): each level's
// dequantized values lie on their group's grid, the stored codes, scales, zeros and g_idx equal
// the compressor's output, GPTQ's error is below RTN's, and bits per weight follow the storage.
func TestQuantDatabase(t *testing.T) {
	tm := newTiny(t, 2, hf.F32)
	st := hessians(t, tm, 5)
	errs := map[string]map[string]float64{}
	for _, tc := range []struct {
		name, method string
		actOrder     bool
	}{{"gptq", MethodGPTQ, false}, {"gptq-act-order", MethodGPTQ, true}, {"rtn", MethodRTN, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tm.config(filepath.Join(t.TempDir(), "db"), ModeQuant, tc.method)
			cfg.Quant.Bits = []int{8, 2, 3, 4}
			cfg.Quant.ActOrder = tc.actOrder
			build(t, cfg)
			d := open(t, cfg.Out)
			if err := d.Verify(); err != nil {
				t.Fatal(err)
			}
			if got := d.Manifest().Quant.Bits; !slices.Equal(got, []int{2, 3, 4, 8}) {
				t.Errorf("bits %v, want sorted [2 3 4 8]", got)
			}
			errs[tc.name] = map[string]float64{}
			for _, l := range d.Manifest().Layers {
				block, kind, _ := arch.ParseLinear(l.Name)
				lin := tm.m.Blocks[block].Layer(kind)
				H := st[block].Hessian(kind).H
				buf := make([]float32, l.Numel)
				for _, v := range l.Levels {
					if err := d.Decode(l.Name, v.Level, buf); err != nil {
						t.Fatal(err)
					}
					q, err := d.Quantized(l.Name, v.Level)
					if err != nil {
						t.Fatal(err)
					}
					var want *compress.Quantized
					if tc.method == MethodGPTQ {
						want, err = compress.GPTQ(lin.W, l.Rows, l.Cols, H, compress.GPTQOptions{Bits: v.Level, GroupSize: 32, BlockSize: 128, PercDamp: 0.01, ActOrder: tc.actOrder})
					} else {
						want, err = compress.RTN(lin.W, l.Rows, l.Cols, v.Level, 32)
					}
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(q.Codes, want.Codes) || !slices.Equal(q.Scale, want.Scale) || !slices.Equal(q.Zero, want.Zero) ||
						!slices.Equal(q.GIdx, want.GIdx) || q.GroupSize != want.GroupSize {
						t.Errorf("%s %d bits: stored level differs from the compressor's output", l.Name, v.Level)
					}
					if tc.actOrder != (q.GIdx != nil) {
						t.Errorf("%s: g_idx present = %v with act-order %v", l.Name, q.GIdx != nil, tc.actOrder)
					}
					// On the grid: w = scale·(c − zero) for an integer code c in [0, 2^bits − 1].
					maxq := float64(int(1)<<v.Level - 1)
					for r := 0; r < l.Rows; r++ {
						for j := 0; j < l.Cols; j++ {
							g := j / 32
							if q.GIdx != nil {
								g = int(q.GIdx[j])
							}
							s, z := q.Scale[r*q.NumGroups()+g], q.Zero[r*q.NumGroups()+g]
							w := buf[r*l.Cols+j]
							c := math.Round(float64(w)/float64(s) + float64(z))
							if c < 0 || c > maxq || s*(float32(c)-z) != w {
								t.Fatalf("%s %d bits (%d,%d): %g is not on the grid scale %g zero %g", l.Name, v.Level, r, j, w, s, z)
							}
						}
					}
					if math.Abs(v.Bits-want.BitsPerWeight()) > 1e-12 {
						t.Errorf("%s %d bits: %v bits per weight, want %v", l.Name, v.Level, v.Bits, want.BitsPerWeight())
					}
					if v.Level == 4 && tc.actOrder == false && math.Abs(v.Bits-(4+2*(16+4)/64.0)) > 1e-12 && l.Cols == 64 {
						t.Errorf("%s: 4 bits with groups of 32 over 64 columns cost %v bits, want 4.625", l.Name, v.Bits)
					}
					_, norm, _ := compress.LayerError(lin.W, buf, l.Rows, l.Cols, H)
					if math.Abs(v.Error-norm) > 1e-4*norm+1e-12 {
						t.Errorf("%s %d bits: error %g, LayerError %g", l.Name, v.Level, v.Error, norm)
					}
					errs[tc.name][l.Name+string(rune('0'+v.Level))] = v.ErrorAbs
				}
			}
		})
	}
	for k, r := range errs["rtn"] {
		if g := errs["gptq"][k]; g > r*(1+1e-6) {
			t.Errorf("%s: GPTQ error %g above RTN's %g", k, g, r)
		}
	}
}

// TestReproducibleAndResume builds the same database twice (identical bytes), then simulates an
// interrupted build — some layers missing from the manifest, one level file deleted — and checks
// that the rebuild recomputes exactly those layers and ends with identical files. Sequential
// mode is included: its resumed blocks are fed by the stored levels of the earlier ones.
func TestReproducibleAndResume(t *testing.T) {
	tm := newTiny(t, 3, hf.F32)
	for _, tc := range []struct {
		name       string
		mode       string
		method     string
		sequential bool
		seqLevel   int
	}{
		{"sparsegpt", ModeSparse, MethodSparseGPT, false, 0},
		{"gptq-sequential", ModeQuant, MethodGPTQ, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			cfgA := tm.config(filepath.Join(tmp, "a"), tc.mode, tc.method)
			cfgA.Sequential, cfgA.SequentialLevel = tc.sequential, tc.seqLevel
			cfgB := cfgA
			cfgB.Out = filepath.Join(tmp, "b")
			resA := build(t, cfgA)
			resB := build(t, cfgB)
			if resA.Fingerprint != resB.Fingerprint {
				t.Error("two builds have different fingerprints")
			}
			ref := snapshot(t, cfgA.Out)
			sameSnapshots(t, ref, snapshot(t, cfgB.Out))

			// Interrupt: drop the last 4 layers (block 1: gate, up, down, and o) from the manifest,
			// and delete one level file of block 0's k_proj.
			man, err := ParseManifest(ref[ManifestFile], "manifest")
			if err != nil {
				t.Fatal(err)
			}
			dropped := []string{}
			for _, l := range man.Layers[len(man.Layers)-4:] {
				dropped = append(dropped, l.Name)
			}
			man.Layers = man.Layers[:len(man.Layers)-4]
			man.Complete = false
			data, _ := man.Marshal()
			if err := os.WriteFile(filepath.Join(cfgA.Out, ManifestFile), data, 0o644); err != nil {
				t.Fatal(err)
			}
			k := man.Layer("model.layers.0.self_attn.k_proj")
			if err := os.Remove(filepath.Join(cfgA.Out, k.Levels[1].File)); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(cfgA.Out); err == nil || !strings.Contains(err.Error(), "did not finish") {
				t.Errorf("opening an interrupted build: %v", err)
			}
			cfgA.ModelInfo.Path = "elsewhere/" + cfgA.ModelInfo.Path // paths are informative: still resumed
			res := build(t, cfgA)
			cfgA.ModelInfo.Path = cfgB.ModelInfo.Path
			want := append([]string{"model.layers.0.self_attn.k_proj"}, dropped...)
			slices.Sort(want)
			got := slices.Clone(res.Computed)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("recomputed %v, want %v", got, want)
			}
			if len(res.Reused) != 14-len(want) {
				t.Errorf("reused %d layers, want %d", len(res.Reused), 14-len(want))
			}
			build(t, cfgA) // back to the original path: the manifest is the original again
			sameSnapshots(t, ref, snapshot(t, cfgA.Out))
			// A complete database is not recomputed at all.
			if res := build(t, cfgA); len(res.Computed) != 0 {
				t.Errorf("a finished database recomputed %v", res.Computed)
			}
		})
	}
}

// TestSequential checks that sequential mode changes the statistics of later blocks only.
func TestSequential(t *testing.T) {
	tm := newTiny(t, 4, hf.F32)
	tmp := t.TempDir()
	plain := tm.config(filepath.Join(tmp, "plain"), ModeQuant, MethodGPTQ)
	seq := plain
	seq.Out = filepath.Join(tmp, "seq")
	seq.Sequential, seq.SequentialLevel = true, 2
	build(t, plain)
	build(t, seq)
	a, b := open(t, plain.Out).Manifest(), open(t, seq.Out).Manifest()
	for i := range a.Layers {
		same := a.Layers[i].Levels[0].SHA256 == b.Layers[i].Levels[0].SHA256
		if want := a.Layers[i].Block == 0; same != want {
			t.Errorf("%s: sequential level equal to the plain one = %v, want %v", a.Layers[i].Name, same, want)
		}
	}
	bad := seq
	bad.SequentialLevel = 7
	bad.Out = filepath.Join(tmp, "bad")
	if _, err := Build(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "sequential_level") {
		t.Errorf("sequential level outside the bit-widths: %v", err)
	}
}

func TestBuildSettingsMismatch(t *testing.T) {
	tm := newTiny(t, 5, hf.F32)
	cfg := tm.config(filepath.Join(t.TempDir(), "db"), ModeSparse, MethodMagnitude)
	cfg.Sparse.Levels = 1
	build(t, cfg)
	other := cfg
	other.Sparse.Target = 0.6
	if _, err := Build(context.Background(), other); err == nil || !strings.Contains(err.Error(), "sparse") {
		t.Errorf("different target into the same directory: %v", err)
	}
	other.Force = true
	res := build(t, other)
	if len(res.Computed) != 14 {
		t.Errorf("forced rebuild computed %d layers", len(res.Computed))
	}
	if got := open(t, cfg.Out).Manifest().Sparse.Target; got != 0.6 {
		t.Errorf("target after forced rebuild %v", got)
	}
	// Forcing a quant database over it leaves no sparse level file behind.
	q0 := tm.config(cfg.Out, ModeQuant, MethodRTN)
	q0.Quant.Bits = []int{4}
	q0.Force = true
	build(t, q0)
	if files := snapshot(t, cfg.Out); len(files) != 1+14 {
		t.Errorf("%d files after replacing the database, want the manifest and 14 levels", len(files))
	}
	for _, bad := range []func(*BuildConfig){
		func(c *BuildConfig) { c.Method = MethodGPTQ },
		func(c *BuildConfig) { c.Sparse.Target = 1 },
		func(c *BuildConfig) { c.ModelInfo.Fingerprint = "" },
		func(c *BuildConfig) { c.Calib = nil },
		func(c *BuildConfig) { c.Calib = [][]int{{1, 2}, {1}} },
		func(c *BuildConfig) { c.Mode = "drop" },
		func(c *BuildConfig) { c.Model = nil },
		func(c *BuildConfig) { c.SequentialLevel = 1 },
	} {
		c := tm.config(filepath.Join(t.TempDir(), "x"), ModeSparse, MethodSparseGPT)
		bad(&c)
		if _, err := Build(context.Background(), c); err == nil {
			t.Errorf("bad configuration accepted: %+v", c.Mode)
		}
	}
	q := tm.config(filepath.Join(t.TempDir(), "q"), ModeQuant, MethodGPTQ)
	q.Quant.Bits = []int{3, 3}
	if _, err := Build(context.Background(), q); err == nil {
		t.Error("duplicate bit-width accepted")
	}
	q.Quant.Bits = []int{9}
	if _, err := Build(context.Background(), q); err == nil {
		t.Error("9 bits accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, tm.config(filepath.Join(t.TempDir(), "c"), ModeSparse, MethodSparseGPT)); err == nil {
		t.Error("cancelled build succeeded")
	}
}

// TestOpenErrors checks that mismatched models and damaged databases are clear errors.
func TestOpenErrors(t *testing.T) {
	tm := newTiny(t, 6, hf.F32)
	cfg := tm.config(filepath.Join(t.TempDir(), "db"), ModeQuant, MethodRTN)
	cfg.Quant.Bits = []int{3, 4}
	build(t, cfg)
	d := open(t, cfg.Out)
	if err := d.Check(tm.fp); err != nil {
		t.Error(err)
	}
	if err := d.Check("0123456789abcdef"); err == nil || !strings.Contains(err.Error(), "built for model") {
		t.Errorf("fingerprint mismatch: %v", err)
	}
	layer := "model.layers.1.mlp.up_proj"
	v := d.Levels(layer)[0]
	file := filepath.Join(cfg.Out, v.File)
	data, _ := os.ReadFile(file)

	// A flipped byte (same size): the checksum catches it on first read.
	bad := slices.Clone(data)
	bad[len(bad)-5] ^= 0x10
	os.WriteFile(file, bad, 0o644)
	d2 := open(t, cfg.Out)
	buf := make([]float32, 96*64)
	if err := d2.Decode(layer, v.Level, buf); err == nil || !strings.Contains(err.Error(), "checksum") || !strings.Contains(err.Error(), file) {
		t.Errorf("corrupt level: %v", err)
	}
	if err := d2.Verify(); err == nil {
		t.Error("Verify passed a corrupt level")
	}
	// A truncated file: Open notices the size.
	os.WriteFile(file, data[:len(data)-1], 0o644)
	if _, err := Open(cfg.Out); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("truncated level: %v", err)
	}
	os.Remove(file)
	if _, err := Open(cfg.Out); err == nil || !strings.Contains(err.Error(), v.File) {
		t.Errorf("missing level: %v", err)
	}
	os.WriteFile(file, data, 0o644)
	open(t, cfg.Out)
	// Wrong buffer, unknown layer or level.
	if err := d.Decode(layer, v.Level, buf[:10]); err == nil {
		t.Error("short buffer accepted")
	}
	if err := d.Decode("model.layers.9.mlp.up_proj", 3, buf); err == nil {
		t.Error("unknown layer accepted")
	}
	if err := d.Decode(layer, 5, buf); err == nil || !strings.Contains(err.Error(), "no level 5") {
		t.Errorf("unknown level: %v", err)
	}
	// A damaged manifest.
	mpath := filepath.Join(cfg.Out, ManifestFile)
	good, _ := os.ReadFile(mpath)
	os.WriteFile(mpath, []byte(strings.Replace(string(good), `"mode": "quant"`, `"mode": "drop"`, 1)), 0o644)
	if _, err := Open(cfg.Out); err == nil || !strings.Contains(err.Error(), "mode") || !strings.Contains(err.Error(), mpath) {
		t.Errorf("bad manifest: %v", err)
	}
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a level database") {
		t.Errorf("empty directory: %v", err)
	}
}

// TestApply checks that Apply swaps exactly the named layers' weights for the decoded levels,
// leaves the model itself alone, and that the applied model computes with the new weights.
func TestApply(t *testing.T) {
	tm := newTiny(t, 7, hf.F32)
	cfg := tm.config(filepath.Join(t.TempDir(), "db"), ModeSparse, MethodSparseGPT)
	build(t, cfg)
	d := open(t, cfg.Out)
	orig := make([][]float32, 0)
	for i := range tm.m.Blocks {
		for k := range arch.NumLinearKinds {
			orig = append(orig, tm.m.Blocks[i].Layer(k).W)
		}
	}
	levels := map[string]int{"model.layers.0.self_attn.q_proj": 3, "model.layers.1.mlp.down_proj": -2}
	c, err := d.Apply(tm.m, levels)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range c.Blocks {
		for k := range arch.NumLinearKinds {
			name := arch.LinearUnit(i, k).String()
			w := c.Blocks[i].Layer(k).Float32()
			if &tm.m.Blocks[i].Layer(k).W[0] != &orig[n][0] {
				t.Fatalf("%s: Apply changed the original model", name)
			}
			if lv, ok := levels[name]; ok {
				want := make([]float32, len(w))
				if err := d.Decode(name, lv, want); err != nil {
					t.Fatal(err)
				}
				if !bitsEqual(w, want) {
					t.Errorf("%s: applied weights are not level %d", name, lv)
				}
			} else if &w[0] != &orig[n][0] {
				t.Errorf("%s: a layer absent from the map was changed", name)
			}
			n++
		}
	}
	// The applied model computes differently; applying level 0 everywhere twice hits the cache.
	seq := [][]int{tm.calib[0]}
	nllDense, _, _ := tm.m.SequenceNLL(seq)
	nllC, _, _ := c.SequenceNLL(seq)
	if nllDense == nllC {
		t.Error("the applied model's loss equals the dense model's")
	}
	u, err := UniformProfile(d, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(tm.m, u.Levels); err != nil {
		t.Fatal(err)
	}
	c1, _ := d.Apply(tm.m, u.Levels)
	c2, _ := d.Apply(tm.m, u.Levels)
	if c1.Blocks[1].Down.W != nil || c1.Blocks[1].Down.Stored.Dec != c2.Blocks[1].Down.Stored.Dec {
		t.Error("cached level not shared between applications")
	}
	if s := d.CacheStats(); s.Hits == 0 || s.Entries != 14+2 {
		t.Errorf("cache stats %+v", s)
	}
	for _, bad := range []map[string]int{
		{"model.layers.0.self_attn.q_proj": 99},
		{"model.layers.7.self_attn.q_proj": 0},
		{"lm_head": 0},
	} {
		if _, err := d.Apply(tm.m, bad); err == nil {
			t.Errorf("Apply(%v) accepted", bad)
		}
	}
	other := newTiny(t, 8, hf.F32)
	other.m.Blocks[0].Q.Out = 3 // a model of another shape
	if _, err := d.Apply(other.m, map[string]int{"model.layers.0.self_attn.q_proj": 0}); err == nil {
		t.Error("shape mismatch accepted")
	}
}

func TestCacheBudget(t *testing.T) {
	tm := newTiny(t, 9, hf.F32)
	cfg := tm.config(filepath.Join(t.TempDir(), "db"), ModeQuant, MethodRTN)
	build(t, cfg)
	d := open(t, cfg.Out)
	// Held as stored: 4-bit codes, and per group of 32 a binary16 scale and a 4-bit zero point
	// (a byte of padding after each packed array).
	const groups = 96 * 64 / 32
	const layerBytes = 96*64/2 + 1 + 2*groups + groups/2 + 1
	d.SetCacheBudget(2 * layerBytes)
	names := []string{"model.layers.0.mlp.up_proj", "model.layers.0.mlp.gate_proj", "model.layers.1.mlp.up_proj"}
	var first kernels.Weights
	for i, n := range names {
		w, err := d.Weights(n, 4)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = w
		}
	}
	s := d.CacheStats()
	if s.Entries != 2 || s.Used != 2*layerBytes || s.Misses != 3 {
		t.Errorf("after 3 levels with room for 2: %+v", s)
	}
	w, _ := d.Weights(names[0], 4) // evicted: read anew
	if w.Dec == first.Dec || !bitsEqual(w.Float32(), first.Float32()) {
		t.Error("evicted level was reused or decodes differently")
	}
	w2, _ := d.Weights(names[2], 4)
	w3, _ := d.Weights(names[2], 4)
	if w2.Dec != w3.Dec {
		t.Error("a cached level was decoded again")
	}
	d.SetCacheBudget(0)
	if s := d.CacheStats(); s.Entries != 0 || s.Used != 0 {
		t.Errorf("budget 0 keeps %+v", s)
	}
}

// TestProfiles checks UniformProfile and ApplyProfile's guards.
func TestProfiles(t *testing.T) {
	tm := newTiny(t, 10, hf.F32)
	tmp := t.TempDir()
	sp := tm.config(filepath.Join(tmp, "s"), ModeSparse, MethodMagnitude)
	sp.Sparse.Levels = 2
	qu := tm.config(filepath.Join(tmp, "q"), ModeQuant, MethodRTN)
	build(t, sp)
	build(t, qu)
	ds, dq := open(t, sp.Out), open(t, qu.Out)

	scfg, err := ds.Manifest().SparseConfig(search.GroupDefault)
	layers := scfg.Layers
	if err != nil || len(layers) != 14 || scfg.Sparsity != 0.5 || scfg.D != ds.Manifest().Sparse.WeightsDiff {
		t.Fatalf("SparseConfig: %d layers, target %v, D %d, %v", len(layers), scfg.Sparsity, scfg.D, err)
	}
	if _, err := sparse.New(scfg); err != nil {
		t.Errorf("the sparse search mode rejects the database's layers: %v", err)
	}
	if layers[0].Lo != -2 || layers[0].Hi != 2 || layers[0].Numel != 4096 {
		t.Errorf("layer 0: %+v", layers[0])
	}
	if _, err := dq.Manifest().SparseConfig(search.GroupDefault); err == nil {
		t.Error("SparseConfig of a quant database")
	}
	qcfg, err := dq.Manifest().QuantConfig(3, search.GroupDefault)
	if err != nil || len(qcfg.Layers) != 14 || qcfg.Target != 3 {
		t.Fatalf("QuantConfig: %+v, %v", qcfg, err)
	}
	if _, err := quant.New(qcfg); err != nil {
		t.Errorf("the quant search mode rejects the database's layers: %v", err)
	}
	if _, err := ds.Manifest().QuantConfig(3, search.GroupDefault); err == nil {
		t.Error("QuantConfig of a sparse database")
	}
	if errs := ds.Manifest().LevelErrors(); len(errs) != 14 || len(errs[0]) != 5 || errs[0][2] != ds.Manifest().Layers[0].Levels[2].Error {
		t.Errorf("LevelErrors: %v", errs)
	}
	p, err := UniformProfile(ds, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != profile.ModeSparse || p.Target != 0.5 || len(p.Levels) != 14 || p.DB.Fingerprint != ds.Fingerprint() || p.Model.Fingerprint != tm.fp {
		t.Errorf("uniform sparse profile %+v", p)
	}
	for name, v := range p.Values {
		if math.Abs(v-0.5) > 1.0/4096 {
			t.Errorf("%s: uniform sparsity %v", name, v)
		}
	}
	// Written and read back, it still applies.
	path := filepath.Join(tmp, "p.json")
	if err := p.Write(path); err != nil {
		t.Fatal(err)
	}
	p2, err := profile.Read(path, "")
	if err != nil {
		t.Fatal(err)
	}
	c, warn, err := ApplyProfile(tm.m, tm.fp, p2, ds)
	if err != nil || len(warn) != 0 {
		t.Fatalf("ApplyProfile: %v %v", warn, err)
	}
	if z := countZeros(c.Blocks[0].Q.Float32()); z != 2048 {
		t.Errorf("q_proj has %d zeros at 50%%, want 2048", z)
	}
	if _, err := UniformProfile(ds, 1); err == nil {
		t.Error("uniform sparse profile at level 1 accepted")
	}
	pq, err := UniformProfile(dq, 3)
	if err != nil {
		t.Fatal(err)
	}
	if pq.Target != 3 || pq.Values["model.layers.0.mlp.down_proj"] != 3+(16+3)/32.0 {
		t.Errorf("uniform 3-bit profile: target %v, down_proj %v bits", pq.Target, pq.Values["model.layers.0.mlp.down_proj"])
	}
	if _, err := UniformProfile(dq, 7); err == nil {
		t.Error("uniform profile at a missing bit-width accepted")
	}

	partial := profile.New(profile.ModeQuant)
	partial.Levels["model.layers.0.mlp.up_proj"] = 2
	if _, warn, err := ApplyProfile(tm.m, tm.fp, partial, dq); err != nil || len(warn) != 2 {
		t.Errorf("partial hand-written profile: warnings %v, error %v", warn, err)
	}
	for _, tc := range []struct {
		name string
		p    func() *profile.Profile
		d    *DB
		fp   string
		want string
	}{
		{"mode", func() *profile.Profile { return pq }, ds, tm.fp, "mode"},
		{"model", func() *profile.Profile { return p }, ds, "ffff", "built for model"},
		{"profile model", func() *profile.Profile { q := *p; q.Model = &profile.Ref{Fingerprint: "abc"}; return &q }, ds, tm.fp, "model.fingerprint"},
		{"db", func() *profile.Profile { q := *p; q.DB = &profile.Ref{Fingerprint: "abc"}; return &q }, ds, tm.fp, "db.fingerprint"},
		{"target", func() *profile.Profile { q := *p; q.Target = 0.6; return &q }, ds, tm.fp, "target"},
		{"level", func() *profile.Profile {
			q := profile.New(profile.ModeQuant)
			q.Levels["model.layers.0.mlp.up_proj"] = 7
			return q
		}, dq, tm.fp, "no level 7"},
	} {
		if _, _, err := ApplyProfile(tm.m, tc.fp, tc.p(), tc.d); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestRoundedValues checks the f16/bf16 value option: the stored levels are the compressor's
// levels with the kept weights rounded (none to zero), the sparsity is unchanged, and the
// recorded errors are those of the rounded levels.
func TestRoundedValues(t *testing.T) {
	tm := newTiny(t, 12, hf.F32)
	st := hessians(t, tm, 5)
	for _, vt := range []string{"f16", "bf16"} {
		cfg := tm.config(filepath.Join(t.TempDir(), vt), ModeSparse, MethodSparseGPT)
		cfg.Sparse.Levels = 2
		cfg.Sparse.Values = vt
		build(t, cfg)
		d := open(t, cfg.Out)
		l := d.Layer("model.layers.1.mlp.gate_proj")
		H := st[1].Hessian(arch.GateProj).H
		var sps []float64
		for _, v := range l.Levels {
			sps = append(sps, float64(int64(math.Floor(0.5*float64(l.Numel)+0.5))+int64(v.Level)*d.Manifest().Sparse.WeightsDiff)/float64(l.Numel))
		}
		direct, err := compress.SparseGPT(tm.m.Blocks[1].Gate.W, l.Rows, l.Cols, H, sps, compress.DefaultSparseGPTOptions())
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]float32, l.Numel)
		for i, v := range l.Levels {
			if v.Values != vt {
				t.Errorf("%s: level %d stored as %s", vt, v.Level, v.Values)
			}
			if err := d.Decode(l.Name, v.Level, buf); err != nil {
				t.Fatal(err)
			}
			if countZeros(buf) != countZeros(direct[i]) || countZeros(buf) != v.Zeros {
				t.Errorf("%s level %d: %d zeros, unrounded %d, manifest %d", vt, v.Level, countZeros(buf), countZeros(direct[i]), v.Zeros)
			}
			for j, x := range direct[i] {
				var want float32
				if vt == "f16" {
					want = hf.Float16ToFloat32(hf.Float32ToFloat16(x))
				} else {
					want = hf.BFloat16ToFloat32(hf.Float32ToBFloat16(x))
				}
				if x != 0 && want != buf[j] {
					t.Fatalf("%s level %d: %g stored as %g, want %g", vt, v.Level, x, buf[j], want)
				}
			}
			_, norm, _ := compress.LayerError(tm.m.Blocks[1].Gate.W, buf, l.Rows, l.Cols, H)
			if math.Abs(norm-v.Error) > 1e-4*norm {
				t.Errorf("%s level %d: error %g, of the stored level %g", vt, v.Level, v.Error, norm)
			}
			if want := 1 + 16*float64(l.Numel-v.Zeros)/float64(l.Numel); math.Abs(v.Bits-want) > 1e-12 {
				t.Errorf("%s level %d: %v bits per weight, want %v", vt, v.Level, v.Bits, want)
			}
		}
	}
	w := []float32{1e-30, -1e-30, 0, 70000}
	if err := roundValues(w[:3], "f16"); err != nil || w[0] != hf.Float16ToFloat32(1) || w[1] != -hf.Float16ToFloat32(1) || w[2] != 0 {
		t.Errorf("tiny values rounded to %v (%v)", w[:3], err)
	}
	if err := roundValues(w[3:], "f16"); err == nil {
		t.Error("70000 accepted as float16")
	}
}

// TestConcurrentApply applies profiles from several goroutines through a small cache (run with
// -race): every result must hold exactly the decoded levels.
func TestConcurrentApply(t *testing.T) {
	tm := newTiny(t, 13, hf.F32)
	cfg := tm.config(filepath.Join(t.TempDir(), "db"), ModeQuant, MethodRTN)
	cfg.Quant.Bits = []int{2, 3, 4}
	build(t, cfg)
	d := open(t, cfg.Out)
	d.SetCacheBudget(5 * 96 * 64 * 4)
	want := map[[2]int][]float32{}
	for bits := 2; bits <= 4; bits++ {
		w := make([]float32, 96*64)
		if err := d.Decode("model.layers.1.mlp.gate_proj", bits, w); err != nil {
			t.Fatal(err)
		}
		want[[2]int{1, bits}] = w
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				bits := 2 + (g+i)%3
				levels := map[string]int{}
				for _, l := range d.Layers() {
					levels[l] = 2 + (g+i+len(l))%3
				}
				levels["model.layers.1.mlp.gate_proj"] = bits
				c, err := d.Apply(tm.m, levels)
				if err != nil {
					errs <- err
					return
				}
				if !bitsEqual(c.Blocks[1].Gate.Float32(), want[[2]int{1, bits}]) {
					errs <- fmt.Errorf("goroutine %d: wrong weights for %d bits", g, bits)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := d.CacheStats(); s.Used > s.Budget {
		t.Errorf("cache over budget: %+v", s)
	}
}

// TestBuildCancelBetweenLayers cancels a build as its first layer is done: it stops with the
// context's error before the next layer (the manifest lists exactly that layer), and resuming it
// gives the files of an uninterrupted build.
func TestBuildCancelBetweenLayers(t *testing.T) {
	tm := newTiny(t, 5, hf.F32)
	tmp := t.TempDir()
	for _, tc := range []struct{ mode, method string }{{ModeQuant, MethodGPTQ}, {ModeSparse, MethodSparseGPT}} {
		t.Run(tc.method, func(t *testing.T) {
			ref := tm.config(filepath.Join(tmp, tc.method+"-ref"), tc.mode, tc.method)
			build(t, ref)
			cfg := ref
			cfg.Out = filepath.Join(tmp, tc.method)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			layers := 0
			cfg.Progress = func(e Event) {
				if e.Phase == "layer" {
					layers++
					cancel()
				}
			}
			if _, err := Build(ctx, cfg); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled build: error %v, want context.Canceled", err)
			}
			if layers != 1 {
				t.Fatalf("%d layers compressed after the cancel, want 1", layers)
			}
			data, err := os.ReadFile(filepath.Join(cfg.Out, ManifestFile))
			if err != nil {
				t.Fatal(err)
			}
			man, err := ParseManifest(data, ManifestFile)
			if err != nil {
				t.Fatal(err)
			}
			if man.Complete || len(man.Layers) != 1 || man.Layers[0].Name != "model.layers.0.self_attn.q_proj" {
				t.Fatalf("manifest after the cancel: complete %v, layers %v", man.Complete, man.Layers)
			}
			cfg.Progress = nil
			if res := build(t, cfg); len(res.Reused) != 1 || len(res.Computed) != 13 {
				t.Errorf("resumed build reused %d and computed %d layers, want 1 and 13", len(res.Reused), len(res.Computed))
			}
			sameSnapshots(t, snapshot(t, ref.Out), snapshot(t, cfg.Out))
		})
	}
}
