package memcheck

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/internal/modelspec"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
)

// heldBytes is the memory a loaded model's weights take, walked through its fields.
func heldBytes(m *model.Model) int64 {
	size := func(w kernels.Weights) int64 { return int64(w.Len() * w.DType.Size()) }
	n := size(m.EmbedWeights()) + 4*int64(len(m.Norm))
	if !m.Config.TieWordEmbeddings {
		n += size(m.HeadWeights())
	}
	for i := range m.Blocks {
		b := &m.Blocks[i]
		n += 4 * int64(len(b.AttnNorm)+len(b.MLPNorm))
		for k := range arch.NumLinearKinds {
			l := b.Layer(k)
			n += size(l.Weights()) + 4*int64(len(l.B))
		}
	}
	return n
}

// The shape read from the headers is what loading the model holds: the embedded llama-pd-11m
// (BF16), and a float32 copy of it.
func TestShapeMatchesLoadedModel(t *testing.T) {
	s, err := ModelShapeFS(assets.FS(), assets.ModelDir)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := model.LoadIdentifiedFSWith(assets.FS(), assets.ModelDir, model.LoadOptions{KeepDType: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.WeightBytes, heldBytes(m); got != want || s.DTypes != "BF16" {
		t.Errorf("llama-pd-11m: WeightBytes %d (%s), the loaded model holds %d", got, s.DTypes, want)
	}
	f32, _, err := model.LoadFS(assets.FS(), assets.ModelDir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Float32Bytes, heldBytes(f32); got != want {
		t.Errorf("llama-pd-11m: Float32Bytes %d, the float32 model holds %d", got, want)
	}

	// A float32 checkpoint of the same model: every weight 4 bytes whether kept or not.
	dir := t.TempDir()
	ck, err := hf.OpenCheckpointFS(assets.FS(), assets.ModelDir)
	if err != nil {
		t.Fatal(err)
	}
	var ts []hf.TensorData
	for _, name := range ck.Names() {
		info, _ := ck.Info(name)
		v, err := ck.ReadFloat32(name, info.Shape...)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, hf.TensorData{Name: name, DType: hf.F32, Shape: info.Shape, F32: v})
	}
	ck.Close()
	if err := hf.WriteSafetensors(filepath.Join(dir, hf.SafetensorsFileName), ts, nil); err != nil {
		t.Fatal(err)
	}
	cfg, _ := assets.ReadFile(assets.ModelDir + "/config.json")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	s32, err := ModelShape(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s32.WeightBytes != s.Float32Bytes || s32.Float32Bytes != s.Float32Bytes || s32.DTypes != "F32" {
		t.Errorf("float32 copy: WeightBytes %d, Float32Bytes %d (%s), want both %d", s32.WeightBytes, s32.Float32Bytes, s32.DTypes, s.Float32Bytes)
	}
}

// specShape is the shape of a published architecture.
func specShape(t *testing.T, key string) *Shape {
	t.Helper()
	s, err := SpecShape(modelspec.Specs[key])
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return s
}

// The published architectures' shapes: 2 bytes per matrix weight, 4 per norm and bias value
// (counted from modelspec's tensor list, independently of ShapeOf's walk), and their sizes.
func TestSpecShapes(t *testing.T) {
	for _, c := range []struct {
		key       string
		weights   int64 // WeightBytes
		maxLinear int64
		maxIn     int
	}{
		// 2 bytes per parameter, 2 more per norm (and bias) value: (2·blocks+1)·hidden norm values.
		{"llama-3.2-1b", 2*1_235_814_400 + 2*33*2048, 2048 * 8192, 8192},
		{"llama-3.1-8b", 2*8_030_261_248 + 2*65*4096, 4096 * 14336, 14336},
		{"qwen2.5-7b", 2*7_615_616_512 + 2*(57*3584+28*(3584+512+512)), 3584 * 18944, 18944},
		{"mistral-7b", 2*7_248_023_552 + 2*65*4096, 4096 * 14336, 14336},
	} {
		t.Run(c.key, func(t *testing.T) {
			sp := modelspec.Specs[c.key]
			s := specShape(t, c.key)
			var want, linear int64
			for _, ts := range sp.Tensors() {
				if len(ts.Shape) == 1 {
					want += 4 * ts.Numel()
					continue
				}
				want += 2 * ts.Numel()
				if ts.Name != arch.Embedding().HF() && ts.Name != arch.LMHead().HF() {
					linear += ts.Numel()
				}
			}
			if s.WeightBytes != want || s.WeightBytes != c.weights {
				t.Errorf("WeightBytes %d, the tensor list gives %d, want %d", s.WeightBytes, want, c.weights)
			}
			if s.Float32Bytes != 4*sp.Params() {
				t.Errorf("Float32Bytes %d, want 4 × %d parameters", s.Float32Bytes, sp.Params())
			}
			if s.LinearWeights != linear || s.MaxLinear != c.maxLinear || s.MaxIn != c.maxIn || s.Tensors != len(sp.Tensors()) {
				t.Errorf("LinearWeights %d (want %d), MaxLinear %d (want %d), MaxIn %d (want %d), %d tensors (want %d)",
					s.LinearWeights, linear, s.MaxLinear, c.maxLinear, s.MaxIn, c.maxIn, s.Tensors, len(sp.Tensors()))
			}
		})
	}
	// A missing tensor is an error (the load would fail on it).
	cfg := specShape(t, "llama-3.2-1b").Config
	if _, err := ShapeOf(cfg, func(string) (hf.TensorInfo, bool) { return hf.TensorInfo{}, false }); err == nil {
		t.Error("ShapeOf without tensors: no error")
	}
}

// TestProfileLevels checks the levels a profile's layers hold, as their files store them: a
// quant or gguf layer at its value's bits per weight (float32 without one), a sparse layer at
// 1.5 bits of bitmask and counts per weight plus 4 bytes per kept weight.
func TestProfileLevels(t *testing.T) {
	s := specShape(t, "llama-3.2-1b")
	q, gate := int64(2048*2048), int64(8192*2048)
	for _, c := range []struct {
		name   string
		p      *profile.Profile
		levels int64
	}{
		{"quant", &profile.Profile{Mode: profile.ModeQuant,
			Levels: map[string]int{"model.layers.0.self_attn.q_proj": 12, "model.layers.3.mlp.gate_proj": 14, "lm_head": 3},
			Values: map[string]float64{"model.layers.0.self_attn.q_proj": 4.5}},
			q*45/80 + 512 + 4*gate},
		{"sparse", &profile.Profile{Mode: profile.ModeSparse,
			Levels: map[string]int{"model.layers.0.self_attn.q_proj": 1, "model.layers.3.mlp.gate_proj": -1},
			Values: map[string]float64{"model.layers.0.self_attn.q_proj": 0.75}},
			q*3/16 + q + gate*3/16 + 4*gate},
		{"drop", &profile.Profile{Mode: profile.ModeDrop, Levels: map[string]int{"model.layers.0.self_attn.q_proj": 1}}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e Estimate
			e.Profile(s, c.p)
			var got int64
			for _, p := range e.Parts {
				if p.Name == "levels" {
					got += p.Bytes
				}
			}
			if got != c.levels {
				t.Errorf("levels %d bytes, want %d", got, c.levels)
			}
		})
	}
}
