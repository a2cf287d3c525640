package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/internal/modelspec"
	"github.com/evopress/evopress/model"
)

// The architectures have the published models' parameter counts, and configs evopress reads
// with the right shapes.
func TestSpecs(t *testing.T) {
	want := map[string]struct {
		params int64
		files  int
	}{
		"llama-3.2-1b": {1_235_814_400, 1},
		"llama-3.1-8b": {8_030_261_248, 4},
		"qwen2.5-7b":   {7_615_616_512, 4},
		"mistral-7b":   {7_248_023_552, 3},
	}
	if len(modelspec.Specs) != len(want) {
		t.Errorf("%d specs, want %d", len(modelspec.Specs), len(want))
	}
	for key, w := range want {
		s := modelspec.Specs[key]
		if got := s.Params(); got != w.params {
			t.Errorf("%s: %d parameters, want %d", key, got, w.params)
		}
		if names, _ := s.Shards(); len(names) != w.files {
			t.Errorf("%s: %d files, want %d", key, len(names), w.files)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), mustJSON(t, s.Config()), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := hf.LoadConfig(dir)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		q, kv := cfg.QKVSize()
		if cfg.ModelType != s.ModelType || cfg.NumHiddenLayers != s.Layers || cfg.HiddenSize != s.Hidden || q != s.Heads*(q/s.Heads) ||
			kv*s.Heads != q*s.KVHeads || cfg.TieWordEmbeddings != s.Tied || cfg.QKVBias != s.QKVBias || cfg.VocabSize != s.Vocab {
			t.Errorf("%s: config read back as %+v", key, cfg)
		}
	}
}

// A small architecture written sharded loads as a model, and the bytes depend on the seed only
// (not on the number of cores).
func TestWriteSmall(t *testing.T) {
	s := modelspec.Spec{Name: "test", ModelType: "qwen2", Hidden: 64, MLP: 96, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 300, QKVBias: true,
		MaxPos: 512, RopeTheta: 10000, RMSEps: 1e-6, BOS: 1, EOS: 2, ShardBytes: 40_000}
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	if err := write(s, a, 7); err != nil {
		t.Fatal(err)
	}
	old := runtime.GOMAXPROCS(1)
	err := write(s, b, 7)
	runtime.GOMAXPROCS(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(s, c, 8); err != nil {
		t.Fatal(err)
	}
	names, _ := s.Shards()
	if len(names) < 2 {
		t.Fatalf("%d files, want a sharded checkpoint", len(names))
	}
	for _, n := range names {
		x, _ := os.ReadFile(filepath.Join(a, n))
		y, _ := os.ReadFile(filepath.Join(b, n))
		z, _ := os.ReadFile(filepath.Join(c, n))
		if !bytes.Equal(x, y) || bytes.Equal(x, z) {
			t.Errorf("%s: same bytes with other cores %v (want true), with another seed %v (want false)", n, bytes.Equal(x, y), bytes.Equal(x, z))
		}
	}
	m, _, err := model.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Blocks) != 2 || m.Vocab != 300 {
		t.Errorf("loaded %d blocks, vocab %d", len(m.Blocks), m.Vocab)
	}
	w := m.Blocks[1].Layer(0).W
	var sum, sq float64
	for _, v := range w {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	if mean, sd := sum/float64(len(w)), sq/float64(len(w)); mean > 0.005 || mean < -0.005 || sd < 0.0003 || sd > 0.0005 {
		t.Errorf("weights: mean %v, variance %v, want about 0 and 0.0004", mean, sd)
	}
	if err := write(s, a, 7); err == nil {
		t.Error("a non-empty output folder was accepted")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
