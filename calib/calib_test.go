package calib

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/model"
)

// mapSource serves random tensors of the requested shape (a fresh tensor per name, drawn
// deterministically from the seed and the name), so any config yields a model.
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
	norm := len(shape) == 1 // RMSNorm weights around 1
	for i := range t {
		if norm {
			t[i] = float32(1 + 0.1*rng.NormFloat64())
		} else {
			t[i] = float32(0.08 * rng.NormFloat64())
		}
	}
	s.tensors[name] = t
	return t, nil
}

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

func tinySeqs(seed uint64, n, T, vocab int) [][]int {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([][]int, n)
	for i := range out {
		out[i] = make([]int, T)
		for j := range out[i] {
			out[i][j] = rng.IntN(vocab)
		}
	}
	return out
}

// captured holds, per block and kind, every input row the forward fed to the layer.
type captured map[[2]int][]float32

// capture runs the whole model over seqs in one batch with a hook that copies every layer input.
func capture(t *testing.T, m *model.Model, seqs [][]int) captured {
	t.Helper()
	a, err := m.Embedding(seqs)
	if err != nil {
		t.Fatal(err)
	}
	c := captured{}
	m.Forward(a, 0, len(m.Blocks), func(block int, kind arch.LinearKind, x []float32, rows, cols int) {
		key := [2]int{block, int(kind)}
		c[key] = append(c[key], x[:rows*cols]...)
	})
	return c
}

// bruteHessian is 2XᵀX/N in float64 straight from the definition.
func bruteHessian(X []float32, cols int) []float64 {
	n := len(X) / cols
	H := make([]float64, cols*cols)
	for r := 0; r < n; r++ {
		x := X[r*cols : (r+1)*cols]
		for i := range x {
			for j := range x {
				H[i*cols+j] += float64(x[i]) * float64(x[j])
			}
		}
	}
	for i := range H {
		H[i] *= 2 / float64(n)
	}
	return H
}

func TestHessiansMatchBruteForce(t *testing.T) {
	m := tinyModel(t, 1, 3)
	seqs := tinySeqs(2, 7, 12, m.Vocab)
	ref := capture(t, m, seqs)
	for _, batch := range []int{1, 3, 16} {
		t.Run(fmt.Sprintf("batch%d", batch), func(t *testing.T) {
			seen := 0
			err := Run(context.Background(), m, seqs, Options{Batch: batch}, func(block int, st *Stats) error {
				if block != seen {
					t.Fatalf("block %d visited, want %d", block, seen)
				}
				seen++
				for k := range arch.NumLinearKinds {
					h := st.Hessian(k)
					X := ref[[2]int{block, int(k)}]
					want := bruteHessian(X, h.Cols)
					if h.N != len(X)/h.Cols || h.N != 7*12 {
						t.Errorf("block %d %s: N = %d, want %d", block, k, h.N, 7*12)
					}
					var maxDiff, maxAbs float64
					for i, v := range h.H {
						maxDiff = math.Max(maxDiff, math.Abs(float64(v)-want[i]))
						maxAbs = math.Max(maxAbs, math.Abs(want[i]))
					}
					if maxDiff > 2e-6*maxAbs {
						t.Errorf("block %d %s: max |H − 2XᵀX/N| = %g (max |H| %g)", block, k, maxDiff, maxAbs)
					}
				}
				if st.Hessian(arch.QProj) != st.Hessian(arch.VProj) || st.Hessian(arch.GateProj) != st.Hessian(arch.UpProj) {
					t.Error("q/k/v or gate/up do not share their Hessian")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if seen != len(m.Blocks) {
				t.Errorf("%d blocks visited, want %d", seen, len(m.Blocks))
			}
		})
	}
}

// TestSequential checks that in sequential mode a block's replaced weights feed the next block:
// the Hessians of block 1 must equal those of a model whose block 0 carries the replaced weights
// from the start, and differ from the dense model's.
func TestSequential(t *testing.T) {
	m := tinyModel(t, 3, 3)
	seqs := tinySeqs(4, 5, 10, m.Vocab)
	halve := func(l *model.Linear) []float32 {
		w := append([]float32(nil), l.W...)
		for i := range w {
			w[i] *= 0.5
		}
		return w
	}
	work := m.Clone()
	var seqStats []*Stats
	err := Run(context.Background(), work, seqs, Options{Batch: 2, Sequential: true}, func(block int, st *Stats) error {
		seqStats = append(seqStats, st)
		if block == 0 {
			work.Blocks[0].Down.W = halve(&work.Blocks[0].Down)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if &m.Blocks[0].Down.W[0] == &work.Blocks[0].Down.W[0] {
		t.Fatal("clone shares the replaced weights")
	}
	ref := m.Clone()
	ref.Blocks[0].Down.W = work.Blocks[0].Down.W
	want, err := Collect(context.Background(), ref, seqs, 2)
	if err != nil {
		t.Fatal(err)
	}
	dense, err := Collect(context.Background(), m, seqs, 2)
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < 3; b++ {
		for _, k := range []arch.LinearKind{arch.QProj, arch.OProj, arch.GateProj, arch.DownProj} {
			got, w := seqStats[b].Hessian(k).H, want[b].Hessian(k).H
			wantDense := b == 0 // block 0's statistics come before the replacement
			same := true
			for i := range got {
				if got[i] != w[i] {
					same = false
					break
				}
			}
			if !same {
				t.Errorf("block %d %s: sequential Hessian differs from the replaced model's", b, k)
			}
			d := dense[b].Hessian(k).H
			equalDense := true
			for i := range got {
				if got[i] != d[i] {
					equalDense = false
					break
				}
			}
			if equalDense != wantDense {
				t.Errorf("block %d %s: equal to the dense model's Hessian = %v, want %v", b, k, equalDense, wantDense)
			}
		}
	}
}

func TestNeedStatsAndBlocks(t *testing.T) {
	m := tinyModel(t, 5, 4)
	seqs := tinySeqs(6, 4, 8, m.Vocab)
	all, err := Collect(context.Background(), m, seqs, 3)
	if err != nil {
		t.Fatal(err)
	}
	var visited []int
	err = Run(context.Background(), m, seqs, Options{Batch: 3, Blocks: 3, NeedStats: func(b int) bool { return b == 2 }},
		func(block int, st *Stats) error {
			visited = append(visited, block)
			if (st != nil) != (block == 2) {
				t.Errorf("block %d: stats given = %v", block, st != nil)
			}
			if st != nil {
				for i, v := range st.Down.H {
					if v != all[2].Down.H[i] {
						t.Fatalf("block 2 Hessian differs after propagation-only blocks at %d", i)
					}
				}
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(visited) != "[0 1 2]" {
		t.Errorf("visited %v, want [0 1 2]", visited)
	}
}

func TestErrors(t *testing.T) {
	m := tinyModel(t, 7, 2)
	seqs := tinySeqs(8, 2, 6, m.Vocab)
	nop := func(int, *Stats) error { return nil }
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	stop := fmt.Errorf("stop here")
	tests := []struct {
		name string
		err  error
	}{
		{"nil model", Run(ctx, nil, seqs, Options{}, nop)},
		{"no sequences", Run(ctx, m, nil, Options{}, nop)},
		{"nil func", Run(ctx, m, seqs, Options{}, nil)},
		{"blocks out of range", Run(ctx, m, seqs, Options{Blocks: 3}, nop)},
		{"ragged", Run(ctx, m, [][]int{{1, 2, 3}, {1, 2}}, Options{}, nop)},
		{"token out of vocabulary", Run(ctx, m, [][]int{{1, 2, 50}}, Options{}, nop)},
		{"cancelled", Run(cancelled, m, seqs, Options{}, nop)},
		{"callback error", Run(ctx, m, seqs, Options{}, func(int, *Stats) error { return stop })},
	}
	for _, tc := range tests {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := NewStats(m, 2); err == nil {
		t.Error("NewStats out of range accepted")
	}
}

// BenchmarkHessian measures the accumulation of one batch of 16 sequences × 256 tokens into a
// Hessian of llama-pd-11m's input widths (256: attention and MLP inputs; 704: down_proj). GFLOP/s
// counts the n(n+1)·rows flops of the symmetric product XᵀX; gemm-GFLOP/s counts 2n²·rows, as a
// general matrix product would.
func BenchmarkHessian(b *testing.B) {
	const rows = 16 * 256
	for _, cols := range []int{256, 704} {
		b.Run(fmt.Sprintf("%dx%d", rows, cols), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, uint64(cols)))
			X := make([]float32, rows*cols)
			for i := range X {
				X[i] = float32(rng.NormFloat64())
			}
			h, _ := compress.NewHessian(cols)
			for b.Loop() {
				if err := h.Add(X, rows); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			n := float64(cols)
			b.ReportMetric(n*(n+1)*rows/sec/1e9, "GFLOP/s")
			b.ReportMetric(2*n*n*rows/sec/1e9, "gemm-GFLOP/s")
		})
	}
}

// BenchmarkStatsBlock measures the calibration statistics of one block of the real llama-pd-11m
// (forward + the block's four Hessians) over 32 sequences of 256 tokens.
func BenchmarkStatsBlock(b *testing.B) {
	dir := filepath.Join("..", "..", "shared", "models", "llama-pd-11m")
	if _, err := os.Stat(dir); err != nil {
		b.Skipf("%s is absent", dir)
	}
	m, _, err := model.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	seqs := tinySeqs(1, 32, 256, m.Vocab)
	for b.Loop() {
		err := Run(context.Background(), m, seqs, Options{Blocks: 1}, func(int, *Stats) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(32*256)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
