package db

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/model"
)

// tiny is a small random model written to disk and loaded back, with calibration sequences.
type tiny struct {
	dir   string
	m     *model.Model
	fp    string
	calib [][]int
}

// newTiny writes a random 2-block Llama model (hidden 64, MLP 96, 4 heads of 16, 2 kv heads,
// vocabulary 64) with weights of the given dtype to a temporary directory and loads it.
func newTiny(t testing.TB, seed uint64, dtype hf.DType) *tiny {
	t.Helper()
	return newModel(t, seed, dtype, 64, 96, 2, 4)
}

// newModel writes a random Llama model of the given sizes (kv heads = heads/2, vocabulary 64) and
// loads it.
func newModel(t testing.TB, seed uint64, dtype hf.DType, hidden, inter, blocks, heads int) *tiny {
	t.Helper()
	dir := t.TempDir()
	kv, vocab := heads/2, 64
	hd := hidden / heads
	cfg := fmt.Sprintf(`{"model_type":"llama","hidden_size":%d,"intermediate_size":%d,"num_hidden_layers":%d,
"num_attention_heads":%d,"num_key_value_heads":%d,"vocab_size":%d,"rms_norm_eps":1e-5,"tie_word_embeddings":false,"torch_dtype":"float32"}`,
		hidden, inter, blocks, heads, kv, vocab)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 42))
	var ts []hf.TensorData
	add := func(name string, std, mean float64, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(mean + std*rng.NormFloat64())
		}
		ts = append(ts, hf.TensorData{Name: name, DType: dtype, Shape: shape, F32: v})
	}
	add("model.embed_tokens.weight", 1, 0, vocab, hidden)
	for b := 0; b < blocks; b++ {
		p := fmt.Sprintf("model.layers.%d.", b)
		add(p+"input_layernorm.weight", 0.1, 1, hidden)
		add(p+"post_attention_layernorm.weight", 0.1, 1, hidden)
		add(p+"self_attn.q_proj.weight", 0.1, 0, heads*hd, hidden)
		add(p+"self_attn.k_proj.weight", 0.1, 0, kv*hd, hidden)
		add(p+"self_attn.v_proj.weight", 0.1, 0, kv*hd, hidden)
		add(p+"self_attn.o_proj.weight", 0.1, 0, hidden, heads*hd)
		add(p+"mlp.gate_proj.weight", 0.1, 0, inter, hidden)
		add(p+"mlp.up_proj.weight", 0.1, 0, inter, hidden)
		add(p+"mlp.down_proj.weight", 0.1, 0, hidden, inter)
	}
	add("model.norm.weight", 0.1, 1, hidden)
	add("lm_head.weight", 0.1, 0, vocab, hidden)
	if err := hf.WriteSafetensors(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	m, fp, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	seqs := make([][]int, 24)
	for i := range seqs {
		seqs[i] = make([]int, 32)
		for j := range seqs[i] {
			seqs[i][j] = rng.IntN(vocab)
		}
	}
	return &tiny{dir: dir, m: m, fp: fp, calib: seqs}
}

// config returns a build configuration for the tiny model.
func (tm *tiny) config(out, mode, method string) BuildConfig {
	c := BuildConfig{
		Out: out, Model: tm.m, ModelInfo: ModelInfo{Path: tm.dir, Fingerprint: tm.fp},
		Calib:       tm.calib,
		Calibration: CalibInfo{Source: "test", SHA256: strings.Repeat("ab", 32), Seed: 1},
		Batch:       5, Mode: mode, Method: method,
	}
	if mode == ModeSparse {
		c.Sparse = DefaultSparseParams(0.5)
	} else {
		c.Quant = DefaultQuantParams()
		c.Quant.GroupSize = 32
	}
	return c
}

func build(t testing.TB, cfg BuildConfig) *BuildResult {
	t.Helper()
	res, err := Build(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func open(t testing.TB, dir string) *DB {
	t.Helper()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// snapshot reads every file under dir (relative path → contents), the build lock aside.
func snapshot(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() == LockFile {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshots(t *testing.T, a, b map[string][]byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("%d files vs %d", len(a), len(b))
	}
	for k, v := range a {
		if w, ok := b[k]; !ok {
			t.Errorf("file %s missing", k)
		} else if !bytes.Equal(v, w) {
			t.Errorf("file %s differs", k)
		}
	}
}
