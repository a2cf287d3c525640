package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/internal/kernels"
)

// writeDTypeCopy writes the embedded model (BF16) with every tensor stored as dt, its embeddings
// tied (lm_head left out) when tie is set; edit, when set, may change a tensor's values first.
func writeDTypeCopy(t *testing.T, dt hf.DType, tie bool, edit func(name string, v []float32)) string {
	t.Helper()
	dir := t.TempDir()
	ck, err := hf.OpenCheckpointFS(assets.FS(), assets.ModelDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var tensors []hf.TensorData
	for _, name := range ck.Names() {
		if tie && name == arch.LMHead().HF() {
			continue
		}
		info, _ := ck.Info(name)
		v, err := ck.ReadFloat32(name, info.Shape...)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(name, v)
		}
		tensors = append(tensors, hf.TensorData{Name: name, DType: dt, Shape: info.Shape, F32: v})
	}
	if err := hf.WriteSafetensors(filepath.Join(dir, hf.SafetensorsFileName), tensors, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := assets.ReadFile(assets.ModelDir + "/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["tie_word_embeddings"] = tie
	if raw, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, hf.ConfigFileName), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
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

// TestKeepDTypeBitIdentical loads the same checkpoints with float32 weights and with weights kept
// in their stored dtype, and checks that the kept model holds 16-bit weights and computes the same
// bits: losses, logits, hidden states, also with a substituted (float32) layer, and the same
// parameter counts, FLOPs, fingerprints and float32 views.
func TestKeepDTypeBitIdentical(t *testing.T) {
	tests := []struct {
		name string
		dir  func(t *testing.T) string // "" for the embedded model
		kept kernels.DType
		tied bool
	}{
		{"embedded BF16", func(*testing.T) string { return "" }, kernels.BF16, false},
		{"F16 tied", func(t *testing.T) string { return writeDTypeCopy(t, hf.F16, true, nil) }, kernels.F16, true},
		{"BF16 tied", func(t *testing.T) string { return writeDTypeCopy(t, hf.BF16, true, nil) }, kernels.BF16, true},
		{"F32 (nothing to keep)", func(t *testing.T) string { return writeDTypeCopy(t, hf.F32, false, nil) }, kernels.F32, false},
	}
	tokens := [][]int{make([]int, 40), make([]int, 40)}
	for b := range tokens {
		for i := range tokens[b] {
			tokens[b][i] = (i*131 + b*977 + 7) % 4096
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			load := func(opts LoadOptions) (*Model, Identity) {
				var m *Model
				var id Identity
				var err error
				if dir == "" {
					m, id, err = LoadIdentifiedFSWith(assets.FS(), assets.ModelDir, opts)
				} else {
					m, id, err = LoadIdentifiedWith(dir, opts)
				}
				if err != nil {
					t.Fatal(err)
				}
				return m, id
			}
			m32, id32 := load(LoadOptions{})
			// Kept in memory of its own, and mapped from the file (embedded: read either way).
			for _, kopts := range []LoadOptions{{KeepDType: true}, {KeepDType: true, Mmap: true}} {
				mk, idk := load(kopts)
				if id32 != idk {
					t.Errorf("identities differ: %+v and %+v", id32, idk)
				}
				// The kept model holds the stored dtype and no float32 copy.
				for i := range mk.Blocks {
					for k := range arch.NumLinearKinds {
						l, l32 := mk.Blocks[i].Layer(k), m32.Blocks[i].Layer(k)
						if l.Weights().DType != tc.kept || (tc.kept != kernels.F32 && l.W != nil) {
							t.Fatalf("block %d %v: held as %v (W set: %v), want %v", i, k, l.Weights().DType, l.W != nil, tc.kept)
						}
						if !bitsEqual(l.Float32(), l32.W) {
							t.Fatalf("block %d %v: Float32 differs from the float32 load", i, k)
						}
					}
				}
				if mk.EmbedWeights().DType != tc.kept || mk.HeadWeights().DType != tc.kept {
					t.Errorf("embeddings/head held as %v/%v, want %v", mk.EmbedWeights().DType, mk.HeadWeights().DType, tc.kept)
				}
				if !bitsEqual(mk.EmbedFloat32(), m32.Embed) || !bitsEqual(mk.HeadFloat32(), m32.Head) {
					t.Errorf("EmbedFloat32/HeadFloat32 differ from the float32 load")
				}
				if mk.tied() != tc.tied || m32.tied() != tc.tied {
					t.Errorf("tied: kept %v, float32 %v, want %v", mk.tied(), m32.tied(), tc.tied)
				}
				if mk.NumParams() != m32.NumParams() || mk.FLOPsPerToken(40) != m32.FLOPsPerToken(40) {
					t.Errorf("NumParams %d vs %d, FLOPs %v vs %v", mk.NumParams(), m32.NumParams(), mk.FLOPsPerToken(40), m32.FLOPsPerToken(40))
				}
				compare := func(what string, a, b *Model) float64 {
					t.Helper()
					s1, n1, err1 := a.SequenceNLL(tokens)
					s2, n2, err2 := b.SequenceNLL(tokens)
					if err1 != nil || err2 != nil || n1 != n2 || math.Float64bits(s1) != math.Float64bits(s2) {
						t.Fatalf("%s: NLL %v (%d, %v) kept, %v (%d, %v) float32", what, s1, n1, err1, s2, n2, err2)
					}
					l1, err1 := a.Logits(tokens[0])
					l2, err2 := b.Logits(tokens[0])
					if err1 != nil || err2 != nil || !bitsEqual(l1, l2) {
						t.Fatalf("%s: logits differ (%v, %v)", what, err1, err2)
					}
					return s1
				}
				dense := compare("dense", mk, m32)
				// A substituted layer (float32, as candidates set it) takes precedence over the kept one.
				ck, c32 := mk.Clone(), m32.Clone()
				w := slices.Clone(m32.Blocks[1].Gate.W)
				for i := range w {
					w[i] *= 0.5
				}
				ck.Blocks[1].Gate.W, c32.Blocks[1].Gate.W = w, w
				if sub := compare("substituted", ck, c32); sub == dense {
					t.Errorf("substituting a layer did not change the loss")
				}
				if mk.Blocks[1].Gate.W != nil && tc.kept != kernels.F32 {
					t.Errorf("the clone's substitution reached the kept model")
				}
			}
		})
	}
}

// TestKeepDTypeRefusesNonFinite: a NaN or an infinity in a kept 16-bit weight is refused at load,
// naming the file, the tensor and the element, as with float32 weights.
func TestKeepDTypeRefusesNonFinite(t *testing.T) {
	for _, dt := range []hf.DType{hf.BF16, hf.F16} {
		for _, v := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
			dir := writeDTypeCopy(t, dt, false, func(name string, w []float32) {
				if name == "model.layers.3.mlp.down_proj.weight" {
					w[5*704+9] = v // row 5, column 9: past the first 1024-element block
				}
			})
			for _, mmap := range []bool{false, true} {
				_, _, err := LoadIdentifiedWith(dir, LoadOptions{KeepDType: true, Mmap: mmap})
				want := []string{filepath.Join(dir, "model.safetensors"), "tensor model.layers.3.mlp.down_proj.weight", "element 3529 [5 9]", fmtValue(v)}
				for _, w := range want {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("%s %v weight (mmap %v): error %v, want it to contain %q", dt, v, mmap, err, w)
					}
				}
			}
		}
	}
}
