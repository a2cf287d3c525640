package fitness

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search"
)

// loadModel returns the embedded model (llama-pd-11m): the tests need a real model, not the
// shared references, so they run on a clean clone too.
func loadModel(t testing.TB) *model.Model {
	t.Helper()
	m, _, err := model.LoadFS(assets.FS(), assets.ModelDir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// pool builds a deterministic pseudo-random calibration pool of n chunks of T tokens.
func pool(m *model.Model, n, T int) [][]int {
	p := make([][]int, n)
	x := uint32(12345)
	for i := range p {
		p[i] = make([]int, T)
		for j := range p[i] {
			x = x*1664525 + 1013904223
			p[i][j] = int(x>>8) % m.Vocab
		}
	}
	return p
}

func dropUnits(n int) []string {
	var u []string
	for b := 0; b < n; b++ {
		u = append(u, fmt.Sprintf("model.layers.%d.self_attn", b))
	}
	for b := 0; b < n; b++ {
		u = append(u, fmt.Sprintf("model.layers.%d.mlp", b))
	}
	return u
}

// bruteKL computes mean KL(dense ‖ cand) in float64 from full logits.
func bruteKL(t *testing.T, dense, cand *model.Model, seqs [][]int, topk int) float64 {
	var sum float64
	n := 0
	for _, s := range seqs {
		ld, err := dense.Logits(s)
		if err != nil {
			t.Fatal(err)
		}
		lc, _ := cand.Logits(s)
		V := dense.Vocab
		for pos := 0; pos < len(s)-1; pos++ {
			zd, zc := ld[pos*V:(pos+1)*V], lc[pos*V:(pos+1)*V]
			idx := make([]int, 0, V)
			if topk > 0 {
				idx = topK(zd, topk)
			} else {
				for v := 0; v < V; v++ {
					idx = append(idx, v)
				}
			}
			lse := func(z []float32) float64 {
				mx := math.Inf(-1)
				for _, v := range idx {
					mx = math.Max(mx, float64(z[v]))
				}
				var s float64
				for _, v := range idx {
					s += math.Exp(float64(z[v]) - mx)
				}
				return mx + math.Log(s)
			}
			ad, ac := lse(zd), lse(zc)
			var kl float64
			for _, v := range idx {
				lp, lq := float64(zd[v])-ad, float64(zc[v])-ac
				kl += math.Exp(lp) * (lp - lq)
			}
			sum += kl
			n++
		}
	}
	return sum / float64(n)
}

func TestKLAgainstBruteForce(t *testing.T) {
	m := loadModel(t)
	n := len(m.Blocks)
	units := dropUnits(n)
	build, err := candidate.DropBuilder(m, units)
	if err != nil {
		t.Fatal(err)
	}
	p := pool(m, 6, 64)
	dense := make(search.Levels, 2*n)
	cand := make(search.Levels, 2*n)
	cand[2] = 1   // attention of block 2
	cand[n+3] = 1 // MLP of block 3
	candModel, _ := build(cand)
	for _, k := range []int{0, 20} {
		teacher, err := NewTeacher(m, p, Options{TopK: k})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := NewEvaluator(teacher, units, build, KL)
		if err != nil {
			t.Fatal(err)
		}
		b := search.Batch{Chunks: []int{1, 3, 4}, Tokens: 3 * 64}
		got, err := ev.Evaluate(context.Background(), nil, []search.Levels{dense, cand}, b)
		if err != nil {
			t.Fatal(err)
		}
		want := bruteKL(t, m, candModel, [][]int{p[1], p[3], p[4]}, k)
		t.Logf("top-k %d: KL dense %.3g, candidate %.6f (brute force %.6f)", k, got[0], got[1], want)
		if math.Abs(got[0]) > 2e-4 {
			t.Errorf("top-k %d: KL of the dense model to itself = %g, want ≈ 0", k, got[0])
		}
		if math.Abs(got[1]-want) > 2e-3*want+1e-5 {
			t.Errorf("top-k %d: KL %.6f, brute force %.6f", k, got[1], want)
		}
	}
}

func TestPrefixReuseIsExact(t *testing.T) {
	m := loadModel(t)
	n := len(m.Blocks)
	units := dropUnits(n)
	build, _ := candidate.DropBuilder(m, units)
	p := pool(m, 8, 48)
	teacher, _ := NewTeacher(m, p, Options{})
	parent := make(search.Levels, 2*n)
	parent[1] = 1
	parent[n+1] = 1
	var cands []search.Levels
	for _, sw := range [][2]int{{1, 3}, {n + 1, n + 4}, {1, 0}, {n + 1, n}} {
		c := parent.Clone()
		c[sw[0]], c[sw[1]] = 0, 1
		cands = append(cands, c)
	}
	cands = append(cands, parent.Clone())
	b := search.Batch{Chunks: []int{0, 2, 5, 7}, Tokens: 4 * 48}
	for _, kind := range []Kind{KL, PPL} {
		var res [2][]float64
		for i, reuse := range []bool{false, true} {
			ev, _ := NewEvaluator(teacher, units, build, kind)
			ev.PrefixReuse = reuse
			ev.SubBatch = 3
			r, err := ev.Evaluate(context.Background(), parent, cands, b)
			if err != nil {
				t.Fatal(err)
			}
			res[i] = r
			run, full, _ := ev.Stats()
			t.Logf("%s reuse=%v: %d of %d blocks computed", kind, reuse, run, full)
			if reuse && run >= full {
				t.Errorf("prefix reuse computed %d of %d blocks: no saving", run, full)
			}
		}
		for i := range cands {
			if res[0][i] != res[1][i] {
				t.Errorf("%s candidate %d: %v with prefix reuse, %v without: must be bit-identical", kind, i, res[1][i], res[0][i])
			}
		}
	}
}

func TestPPLFitnessIsNLL(t *testing.T) {
	m := loadModel(t)
	n := len(m.Blocks)
	units := dropUnits(n)
	build, _ := candidate.DropBuilder(m, units)
	p := pool(m, 3, 40)
	teacher, _ := NewTeacher(m, p, Options{})
	ev, _ := NewEvaluator(teacher, units, build, PPL)
	got, err := ev.Evaluate(context.Background(), nil, []search.Levels{make(search.Levels, 2*n)}, search.Batch{Chunks: []int{0, 2}, Tokens: 60})
	if err != nil {
		t.Fatal(err)
	}
	s, c, _ := m.SequenceNLL([][]int{p[0][:30], p[2][:30]})
	if math.Abs(got[0]-s/float64(c)) > 1e-9 {
		t.Errorf("ppl fitness %v, mean NLL %v", got[0], s/float64(c))
	}
}

func TestTeacherCacheBound(t *testing.T) {
	m := loadModel(t)
	p := pool(m, 10, 32)
	teacher, _ := NewTeacher(m, p, Options{CacheBytes: 1})
	e1, err := teacher.entries([]int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if teacher.lru.Len() > 1 {
		t.Errorf("cache holds %d entries over a 1-byte budget", teacher.lru.Len())
	}
	e2, _ := teacher.entries([]int{0})
	for i, h := range e1[0].probs {
		if e2[0].probs[i] != h {
			t.Fatal("recomputed entry differs")
		}
	}
}

func TestEvaluatorUnitBlocks(t *testing.T) {
	teacher := &Teacher{dense: &model.Model{Blocks: make([]model.Block, 13)}}
	units := []string{"model.layers.3.mlp", "model.layers.12.self_attn.q_proj", "model.layers.0", "model.layers.7.self_attn"}
	ev, err := NewEvaluator(teacher, units, nil, KL)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 12, 0, 7}; !slices.Equal(ev.unitBlock, want) {
		t.Errorf("unit blocks %v, want %v", ev.unitBlock, want)
	}
	for _, u := range []string{"lm_head", "model.layers.x.mlp", "model.layers.13.mlp", "model.layers.-1.mlp", "model.layers.3.mlp.weight", ""} {
		if _, err := NewEvaluator(teacher, []string{u}, nil, KL); err == nil || !strings.Contains(err.Error(), "does not name a block") {
			t.Errorf("unit %q: error %v", u, err)
		}
	}
}

func TestMeasure(t *testing.T) {
	m := loadModel(t)
	n := len(m.Blocks)
	units := dropUnits(n)
	build, _ := candidate.DropBuilder(m, units)
	p := pool(m, 4, 40)
	teacher, _ := NewTeacher(m, p, Options{Batch: 3})
	cand := make(search.Levels, 2*n)
	cand[1] = 1
	cm, _ := build(cand)
	kl, nll, err := teacher.Measure(cm, []int{0, 1, 3})
	if err != nil {
		t.Fatal(err)
	}
	want := bruteKL(t, m, cm, [][]int{p[0], p[1], p[3]}, 0)
	s, c, _ := cm.SequenceNLL([][]int{p[0], p[1], p[3]})
	if math.Abs(kl-want) > 2e-3*want || math.Abs(nll-s/float64(c)) > 1e-9 {
		t.Errorf("Measure = KL %v NLL %v; want %v %v", kl, nll, want, s/float64(c))
	}
	kl0, _, _ := teacher.Measure(m, []int{2})
	if math.Abs(kl0) > 2e-4 {
		t.Errorf("dense KL to itself %v", kl0)
	}
}

// Sub-batch ranges scored apart, one candidate at a time, and merged with Combine give
// Evaluate's values bit for bit (what a distributed search relies on when it splits a batch).
func TestEvaluateRangeCombineIsExact(t *testing.T) {
	m := loadModel(t)
	n := len(m.Blocks)
	units := dropUnits(n)
	build, _ := candidate.DropBuilder(m, units)
	teacher, _ := NewTeacher(m, pool(m, 12, 32), Options{})
	parent := make(search.Levels, 2*n)
	parent[2], parent[n+3] = 1, 1
	var cands []search.Levels
	for _, sw := range [][2]int{{2, 0}, {n + 3, n + 1}, {2, 4}} {
		c := parent.Clone()
		c[sw[0]], c[sw[1]] = 0, 1
		cands = append(cands, c)
	}
	b := search.Batch{Chunks: []int{0, 1, 3, 4, 6, 8, 9, 10, 11}, Tokens: 9 * 32}
	for _, kind := range []Kind{KL, PPL} {
		ev, _ := NewEvaluator(teacher, units, build, kind)
		ev.SubBatch = 2
		want, err := ev.Evaluate(context.Background(), parent, cands, b)
		if err != nil {
			t.Fatal(err)
		}
		if ns := ev.SubBatches(b); ns != 5 {
			t.Fatalf("%d sub-batches of 2 for 9 chunks, want 5", ns)
		}
		for _, cuts := range [][]int{{0, 5}, {0, 1, 5}, {0, 2, 3, 5}, {0, 1, 2, 3, 4, 5}} {
			for i, c := range cands {
				var parts [][][]float64
				var counts []int
				for j := 0; j+1 < len(cuts); j++ {
					s, cnt, err := ev.EvaluateRange(context.Background(), parent, []search.Levels{c}, b, cuts[j], cuts[j+1])
					if err != nil {
						t.Fatal(err)
					}
					parts, counts = append(parts, s), append(counts, cnt)
				}
				if got := Combine(parts, counts, 1)[0]; got != want[i] {
					t.Errorf("%s cuts %v candidate %d: %v, Evaluate %v: must be bit-identical", kind, cuts, i, got, want[i])
				}
			}
		}
		if _, _, err := ev.EvaluateRange(context.Background(), parent, cands, b, 3, 6); err == nil {
			t.Error("range past the last sub-batch accepted")
		}
	}
}

// TestCandidateEmbedding: candidates start from their own token embedding (a GGUF file's
// quantized one), not the teacher's, and the KL equals the brute-force value over the whole
// candidate model.
func TestCandidateEmbedding(t *testing.T) {
	m := loadModel(t)
	n := len(m.Blocks)
	units := dropUnits(n)
	emb := slices.Clone(m.EmbedFloat32())
	for i := range emb {
		emb[i] *= 1 + 0.05*float32(i%7-3) // a perturbation of every row, as a coarse type's rounding
	}
	base := m.Clone()
	base.Embed, base.EmbedStored = emb, kernels.Weights{}
	if m.Config.TieWordEmbeddings {
		base.Head, base.HeadStored = emb, kernels.Weights{}
	}
	build, err := candidate.DropBuilder(base, units)
	if err != nil {
		t.Fatal(err)
	}
	p := pool(m, 4, 48)
	teacher, err := NewTeacher(m, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewEvaluator(teacher, units, build, KL)
	if err != nil {
		t.Fatal(err)
	}
	dense := make(search.Levels, 2*n)
	cand := make(search.Levels, 2*n)
	cand[n+5] = 1
	got, err := ev.Evaluate(context.Background(), dense, []search.Levels{dense, cand}, search.Batch{Chunks: []int{0, 2}, Tokens: 2 * 48})
	if err != nil {
		t.Fatal(err)
	}
	for i, lv := range []search.Levels{dense, cand} {
		cm, _ := build(lv)
		want := bruteKL(t, m, cm, [][]int{p[0], p[2]}, 0)
		t.Logf("candidate %d: KL %.6f, brute force %.6f", i, got[i], want)
		if want < 1e-3 || math.Abs(got[i]-want) > 2e-3*want+1e-5 {
			t.Errorf("candidate %d: KL %.6f, brute force over the candidate's own embedding %.6f", i, got[i], want)
		}
	}
}
