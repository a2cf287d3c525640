package imatrix

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/calib"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/model"
)

// mapSource serves random tensors of the requested shape, drawn deterministically from the seed
// and the name, so any config yields a model.
type mapSource struct {
	seed    uint64
	tensors map[string][]float32
}

func (s *mapSource) ReadFloat32(name string, shape ...int) ([]float32, error) {
	if t, ok := s.tensors[name]; ok {
		return t, nil
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	var h uint64 = 14695981039346656037
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	rng := rand.New(rand.NewPCG(s.seed, h))
	t := make([]float32, n)
	for i := range t {
		if len(shape) == 1 { // RMSNorm weights around 1
			t[i] = float32(1 + 0.1*rng.NormFloat64())
		} else {
			t[i] = float32(0.08 * rng.NormFloat64())
		}
	}
	s.tensors[name] = t
	return t, nil
}

// tinyModel is a random Llama model: hidden 32, intermediate 48, 4 heads (2 KV heads), vocab 50.
func tinyModel(t testing.TB, seed uint64, blocks int) *model.Model {
	t.Helper()
	cfg, err := hf.ParseConfig([]byte(fmt.Sprintf(`{"model_type":"llama","hidden_size":32,"intermediate_size":48,
		"num_hidden_layers":%d,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50,"rms_norm_eps":1e-5}`, blocks)), "tiny/config.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, &mapSource{seed: seed, tensors: map[string][]float32{}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tinyText(seed uint64, n, vocab int) []int {
	rng := rand.New(rand.NewPCG(seed, 1))
	ids := make([]int, n)
	for i := range ids {
		ids[i] = rng.IntN(vocab)
	}
	return ids
}

func TestChunks(t *testing.T) {
	ids := []int{1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
	for _, tc := range []struct {
		name        string
		n, max, bos int
		want        [][]int
	}{
		{"BOS replaces each chunk's first token", 4, 0, 1, [][]int{{1, 10, 11, 12}, {1, 14, 15, 16}}},
		{"no BOS", 4, 0, -1, [][]int{{1, 10, 11, 12}, {13, 14, 15, 16}}},
		{"first chunks only", 3, 2, 1, [][]int{{1, 10, 11}, {1, 13, 14}}},
		{"max above the count", 5, 9, 1, [][]int{{1, 10, 11, 12, 13}, {1, 15, 16, 17, 18}}},
		{"one token per chunk", 1, 3, 2, [][]int{{2}, {2}, {2}}},
		{"longer than the text", 12, 0, 1, [][]int{}},
	} {
		got, err := Chunks(ids, tc.n, tc.max, tc.bos)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Chunks = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if ids[4] != 13 {
		t.Errorf("Chunks changed its input: %v", ids)
	}
	if _, err := Chunks(ids, 0, 0, 1); err == nil {
		t.Error("chunk size 0 accepted")
	}
}

// capture runs one chunk through the model alone and returns every linear layer's input rows.
func capture(t *testing.T, m *model.Model, chunk []int) map[[2]int][]float32 {
	t.Helper()
	a, err := m.Embedding([][]int{chunk})
	if err != nil {
		t.Fatal(err)
	}
	c := map[[2]int][]float32{}
	m.Forward(a, 0, len(m.Blocks), func(block int, kind arch.LinearKind, x []float32, rows, cols int) {
		c[[2]int{block, int(kind)}] = append([]float32(nil), x[:rows*cols]...)
	})
	return c
}

func closeRel(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(math.Abs(a), math.Abs(b)) }

// TestComputeBruteForce checks Compute (batched) against the definition: the sum over every
// token of every chunk of the squared input of each layer, with each chunk run alone; and block
// 0's attention input against RMSNorm of the embeddings computed here in float64.
func TestComputeBruteForce(t *testing.T) {
	m := tinyModel(t, 7, 3)
	chunks, err := Chunks(tinyText(3, 50, m.Vocab), 9, 0, 1)
	if err != nil || len(chunks) != 5 {
		t.Fatalf("%d chunks, %v", len(chunks), err)
	}
	got, err := Compute(context.Background(), m, chunks, Options{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got.ChunkCount != 5 || got.ChunkSize != 9 || len(got.Entries) != 3*7 {
		t.Fatalf("chunks %d × %d, %d entries", got.ChunkCount, got.ChunkSize, len(got.Entries))
	}
	want := map[[2]int][]float64{}
	for _, ch := range chunks {
		for key, x := range capture(t, m, ch) {
			cols := m.Blocks[key[0]].Layer(arch.LinearKind(key[1])).In
			if want[key] == nil {
				want[key] = make([]float64, cols)
			}
			for r := 0; r < len(x)/cols; r++ {
				for j := 0; j < cols; j++ {
					v := float64(x[r*cols+j])
					want[key][j] += v * v
				}
			}
		}
	}
	for key, w := range want {
		e := got.Linear(key[0], arch.LinearKind(key[1]))
		name := arch.Weight(key[0], arch.LinearKind(key[1])).GGUF()
		if e == nil || !reflect.DeepEqual(e.Counts, []int64{45}) || len(e.Sums) != len(w) {
			t.Fatalf("%s: entry %+v, want 45 tokens of %d columns", name, e, len(w))
		}
		for j := range w {
			if !closeRel(float64(e.Sums[j]), w[j], 1e-6) {
				t.Errorf("%s column %d: %g, brute force %g", name, j, e.Sums[j], w[j])
			}
		}
	}
	// Block 0's attention input is RMSNorm(embedding)·g, whatever the forward does after it.
	h := m.Hidden
	q0 := make([]float64, h)
	for _, ch := range chunks {
		for _, id := range ch {
			e := m.Embed[id*h : (id+1)*h]
			ss := 0.0
			for _, v := range e {
				ss += float64(v) * float64(v)
			}
			inv := 1 / math.Sqrt(ss/float64(h)+float64(m.Eps))
			for j, v := range e {
				x := float64(v) * inv * float64(m.Blocks[0].AttnNorm[j])
				q0[j] += x * x
			}
		}
	}
	for j, w := range q0 {
		if g := float64(got.Linear(0, arch.QProj).Sums[j]); !closeRel(g, w, 1e-5) {
			t.Errorf("blk.0.attn_q column %d: %g, from the embeddings %g", j, g, w)
		}
	}
	// q, k and v read one input, as do gate and up.
	for b := range 3 {
		for _, pair := range [][2]arch.LinearKind{{arch.QProj, arch.KProj}, {arch.QProj, arch.VProj}, {arch.GateProj, arch.UpProj}} {
			if !reflect.DeepEqual(got.Linear(b, pair[0]).Sums, got.Linear(b, pair[1]).Sums) {
				t.Errorf("block %d: %v and %v differ", b, pair[0], pair[1])
			}
		}
	}
	if err := got.Validate(m); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// The batch split does not matter beyond float64 rounding.
	one, err := Compute(context.Background(), m, chunks, Options{Batch: 5})
	if err != nil {
		t.Fatal(err)
	}
	for n, e := range one.Entries {
		for j, v := range e.Sums {
			if !closeRel(float64(v), float64(got.Entries[n].Sums[j]), 1e-6) {
				t.Fatalf("%s column %d: %g with one batch, %g with batches of 2", n, j, v, got.Entries[n].Sums[j])
			}
		}
	}
}

// TestAddStatsMatchesHook: the level database's Hessians give the same importance matrix as a
// forward pass with the hook (their diagonals are the same sums).
func TestAddStatsMatchesHook(t *testing.T) {
	m := tinyModel(t, 11, 2)
	chunks, _ := Chunks(tinyText(5, 64, m.Vocab), 16, 0, -1)
	want, err := Compute(context.Background(), m, chunks, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCollector(m)
	if err != nil {
		t.Fatal(err)
	}
	err = calib.Run(context.Background(), m, chunks, calib.Options{Batch: 3}, func(_ int, st *calib.Stats) error {
		return c.AddStats(st)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != len(want.Entries) {
		t.Fatalf("%d entries, want %d", len(got.Entries), len(want.Entries))
	}
	for n, w := range want.Entries {
		g := got.Entries[n]
		if !reflect.DeepEqual(g.Counts, w.Counts) {
			t.Errorf("%s: counts %v, want %v", n, g.Counts, w.Counts)
		}
		for j := range w.Sums {
			if !closeRel(float64(g.Sums[j]), float64(w.Sums[j]), 1e-5) {
				t.Errorf("%s column %d: %g from the Hessian, %g from the hook", n, j, g.Sums[j], w.Sums[j])
			}
		}
	}
	if err := c.AddStats(nil); err == nil {
		t.Error("nil statistics accepted")
	}
}

func TestDroppedSubBlock(t *testing.T) {
	m := tinyModel(t, 2, 2)
	m.Blocks[1].SkipAttn = true
	chunks, _ := Chunks(tinyText(1, 20, m.Vocab), 10, 0, 1)
	got, err := Compute(context.Background(), m, chunks, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range arch.LinearKinds() {
		if e := got.Linear(1, k); (e == nil) != (k.Sub() == arch.Attention) {
			t.Errorf("block 1 %v: entry %v with its attention dropped", k, e)
		}
	}
}

func TestComputeErrors(t *testing.T) {
	m := tinyModel(t, 1, 1)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		chunks [][]int
		want   string
	}{
		{"no chunks", context.Background(), nil, "no chunks"},
		{"ragged", context.Background(), [][]int{{1, 2, 3}, {1, 2}}, "chunk 1 has 2 tokens"},
		{"empty chunk", context.Background(), [][]int{{}}, "chunk 0 has 0 tokens"},
		{"token outside the vocabulary", context.Background(), [][]int{{1, 50}}, "outside the vocabulary"},
		{"cancelled", cancelled, [][]int{{1, 2}}, "canceled"},
	} {
		if _, err := Compute(tc.ctx, m, tc.chunks, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	c, _ := NewCollector(m)
	c.Hook()(0, arch.DownProj, make([]float32, 64), 2, 32) // down_proj reads 48 columns
	if _, err := c.Matrix(); err == nil || !strings.Contains(err.Error(), "blk.0.ffn_down.weight: input width 32") {
		t.Errorf("wrong width: %v", err)
	}
	c, _ = NewCollector(m)
	c.Hook()(3, arch.QProj, make([]float32, 32), 1, 32)
	if c.Err() == nil {
		t.Error("a block outside the model was accepted")
	}
	c, _ = NewCollector(m)
	c.Hook()(0, arch.QProj, []float32{float32(math.Inf(1))}, 1, 32)
	if c.Err() == nil {
		t.Error("a short input was accepted")
	}
	c, _ = NewCollector(m)
	x := make([]float32, 32)
	x[3] = 1e30
	c.Hook()(0, arch.QProj, x, 1, 32)
	if _, err := c.Matrix(); err == nil || !strings.Contains(err.Error(), "column 3") {
		t.Errorf("overflowing sum: %v", err)
	}
	if _, err := NewCollector(nil); err == nil {
		t.Error("nil model accepted")
	}
}

func TestValidate(t *testing.T) {
	m := tinyModel(t, 1, 2)
	for _, tc := range []struct {
		name, entry string
		e           *Entry
		want        string
	}{
		{"narrow q", "blk.1.attn_q.weight", &Entry{Sums: make([]float32, 31), Counts: []int64{1}}, "blk.1.attn_q.weight has 1×31 values, the model's layer has 32"},
		{"experts", "blk.0.ffn_down.weight", &Entry{Sums: make([]float32, 96), Counts: []int64{1, 1}}, "blk.0.ffn_down.weight has 2×48"},
		{"head", "output.weight", &Entry{Sums: make([]float32, 48), Counts: []int64{1}}, "hidden size is 32"},
		{"other tensors are ignored", "blk.0.ffn_down_exps.weight", &Entry{Sums: make([]float32, 5), Counts: []int64{1}}, ""},
		{"blocks beyond the model are ignored", "blk.7.attn_q.weight", &Entry{Sums: make([]float32, 5), Counts: []int64{1}}, ""},
		{"a good entry", "blk.0.ffn_down.weight", &Entry{Sums: make([]float32, 48), Counts: []int64{1}}, ""},
	} {
		mx := New()
		mx.Entries[tc.entry] = tc.e
		err := mx.Validate(m)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate = %v, want %q", tc.name, err, tc.want)
		}
	}
}
