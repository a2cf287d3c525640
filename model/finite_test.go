package model

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/hf"
)

// TestFindNonFinite breaks one sub-block of a copy of the embedded model at a time (a NaN weight,
// or finite weights so large that the output overflows) and requires SequenceNLL to fail naming
// that sub-block, where it used to return a NaN sum.
func TestFindNonFinite(t *testing.T) {
	dense := embedded(t)
	seq := [][]int{{1, 5, 9, 13, 17, 21, 25, 29}, {2, 4, 6, 8, 10, 12, 14, 16}}
	if err := dense.FindNonFinite(seq); err != nil {
		t.Fatalf("dense model: %v", err)
	}
	scaled := func(w []float32, f float32) []float32 {
		out := make([]float32, len(w))
		for i, v := range w {
			out[i] = v * f
		}
		return out
	}
	// huge is a finite weight matrix whose products overflow float32: RMSNorm makes the model
	// blind to merely large activations, so only an overflow breaks it.
	huge := func(w []float32) []float32 {
		out := make([]float32, len(w))
		for i := range out {
			out[i] = math.MaxFloat32
		}
		return out
	}
	tests := []struct {
		name  string
		edit  func(m *Model)
		unit  string
		value string // "NaN", or "" for an overflow (an infinity, or a NaN from ∞ − ∞)
	}{
		{"NaN in block 1's q_proj", func(m *Model) {
			m.Blocks[1].Q.W = scaled(m.Blocks[1].Q.W, 1)
			m.Blocks[1].Q.W[0] = float32(math.NaN())
		}, "model.layers.1.self_attn", "NaN"},
		{"overflow in block 2's down_proj", func(m *Model) {
			m.Blocks[2].Down.W = huge(m.Blocks[2].Down.W)
		}, "model.layers.2.mlp", ""},
		{"overflow after a skipped sub-block", func(m *Model) {
			m.Blocks[3].SkipAttn = true
			m.Blocks[3].Down.W = huge(m.Blocks[3].Down.W)
		}, "model.layers.3.mlp", ""},
		{"NaN embedding row", func(m *Model) {
			m.Embed = scaled(m.Embed, 1)
			m.Embed[9*m.Hidden+3] = float32(math.NaN())
		}, UnitEmbedding, "NaN"},
		{"overflowing head", func(m *Model) {
			m.Head = huge(m.Head)
		}, UnitLogits, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := dense.Clone()
			tc.edit(m)
			_, _, err := m.SequenceNLL(seq)
			var nf *NonFiniteError
			if !errors.As(err, &nf) {
				t.Fatalf("SequenceNLL: %v, want a *NonFiniteError", err)
			}
			if nf.Unit != tc.unit || !strings.Contains(err.Error(), tc.unit) || !strings.Contains(err.Error(), tc.value) {
				t.Errorf("error %q (unit %s), want unit %s and a %s", err, nf.Unit, tc.unit, tc.value)
			}
		})
	}
	// The first of two broken sub-blocks is named.
	m := dense.Clone()
	m.Blocks[4].Up.W = huge(m.Blocks[4].Up.W)
	m.Blocks[2].O.W = huge(m.Blocks[2].O.W)
	if err := m.FindNonFinite(seq); err == nil || !strings.Contains(err.Error(), "model.layers.2.self_attn ") {
		t.Errorf("two broken sub-blocks: %v, want model.layers.2.self_attn", err)
	}
	// The dense model is untouched by its clones' diagnoses.
	if err := dense.FindNonFinite(seq); err != nil {
		t.Errorf("dense model after the clones: %v", err)
	}
}

// writeEmbeddedCopy writes the embedded model's first `blocks` blocks (and the global tensors)
// into a new folder whose config.json says numHiddenLayers; edit, when set, may change a tensor.
func writeEmbeddedCopy(t *testing.T, blocks, numHiddenLayers int, edit func(name string, v []float32)) string {
	t.Helper()
	dir := t.TempDir()
	ck, err := hf.OpenCheckpointFS(assets.FS(), assets.ModelDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var tensors []hf.TensorData
	for _, name := range ck.Names() {
		if tn, err := arch.ParseTensor(name); err == nil {
			if b, ok := tn.Block(); ok && b >= blocks {
				continue
			}
		}
		info, _ := ck.Info(name)
		v, err := ck.ReadFloat32(name, info.Shape...)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(name, v)
		}
		tensors = append(tensors, hf.TensorData{Name: name, DType: hf.F32, Shape: info.Shape, F32: v})
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
	cfg["num_hidden_layers"] = numHiddenLayers
	if raw, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, hf.ConfigFileName), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLoadRefusesLayerMismatch: a config.json naming fewer blocks than the weights hold is
// refused (naming both counts and the first extra tensor), as is one naming more.
func TestLoadRefusesLayerMismatch(t *testing.T) {
	tests := []struct {
		name             string
		blocks, cfgLayer int
		want             []string
	}{
		{"fewer in config", 3, 1, []string{"config.json: num_hidden_layers is 1", "tensors of 3 blocks", "model.layers.1.input_layernorm.weight"}},
		{"more in config", 2, 3, []string{"model.safetensors", `no tensor "model.layers.2.`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeEmbeddedCopy(t, tc.blocks, tc.cfgLayer, nil)
			_, _, err := Load(dir)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, _, err := Load(writeEmbeddedCopy(t, 2, 2, nil)); err != nil {
		t.Errorf("matching config: %v", err)
	}
}

// TestLoadRefusesNonFiniteWeight: a NaN or infinite weight is refused at load, naming the file,
// the tensor and the element.
func TestLoadRefusesNonFiniteWeight(t *testing.T) {
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		dir := writeEmbeddedCopy(t, 1, 1, func(name string, w []float32) {
			if name == "model.layers.0.mlp.down_proj.weight" {
				w[704+5] = v // row 1, column 5
			}
		})
		_, _, err := Load(dir)
		want := []string{filepath.Join(dir, "model.safetensors"), "tensor model.layers.0.mlp.down_proj.weight", "element 709 [1 5]", fmtValue(v)}
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v weight: error %v, want it to contain %q", v, err, w)
			}
		}
	}
}

func fmtValue(v float32) string {
	if math.IsNaN(float64(v)) {
		return "NaN"
	}
	return "-Inf"
}
