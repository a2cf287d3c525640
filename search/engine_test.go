package search_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/sparse"
)

// dropCosts returns distinct integer costs 1..n per unit kind, shuffled by seed.
func dropCosts(n int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 99))
	cost := make([]float64, 2*n)
	for kind := range 2 {
		for b, v := range rng.Perm(n) {
			cost[2*b+kind] = float64(v + 1)
		}
	}
	return cost
}

// linearFitness: Σ cost of dropped units + noise·[0,1) per (batch, candidate).
func linearFitness(cost []float64, noise float64) func(search.Batch, search.Levels) float64 {
	return func(b search.Batch, p search.Levels) float64 {
		s := 0.0
		for i, v := range p {
			s += cost[i] * float64(v)
		}
		return s + noise*batchNoise(b, p)
	}
}

// sortedOptimum drops the k cheapest units of each kind (costs distinct ⇒ unique optimum).
func sortedOptimum(cost []float64, n, k int) search.Levels {
	p := make(search.Levels, 2*n)
	for kind := range 2 {
		idx := make([]int, n)
		for b := range idx {
			idx[b] = 2*b + kind
		}
		sort.Slice(idx, func(i, j int) bool { return cost[idx[i]] < cost[idx[j]] })
		for _, u := range idx[:k] {
			p[u] = 1
		}
	}
	return p
}

// parentTrace records the parent after every checkpoint.
type parentTrace struct{ parents []search.Levels }

func (t *parentTrace) Save(st *search.State) error {
	t.parents = append(t.parents, st.Parent.Clone())
	return nil
}

func TestDropLinearReachesOptimum(t *testing.T) {
	const n, k = 32, 8
	var sum int
	for _, seed := range []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			mode, err := drop.NewK(n, k, drop.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cost := dropCosts(n, seed)
			opt := sortedOptimum(cost, n, k)
			cfg := search.NewConfig(mode.Defaults(), seed, 2048, 64)
			trace := &parentTrace{}
			res, err := search.Run(context.Background(), cfg, mode, fnEval{f: linearFitness(cost, 0.5)}, search.WithCheckpointer(trace))
			if err != nil {
				t.Fatal(err)
			}
			if !res.Profile.Equal(opt) {
				t.Fatalf("final profile %v, want the optimum %v", res.Profile, opt)
			}
			first := slices.IndexFunc(trace.parents, func(p search.Levels) bool { return p.Equal(opt) })
			t.Logf("seed %d: optimum reached at generation %d (defaults: %d generations)", seed, first, mode.Defaults().Generations)
			if first < 0 || first > cfg.Generations {
				t.Fatalf("optimum first reached at generation %d, want within the default %d", first, cfg.Generations)
			}
			sum += first
			// Once reached, the optimum is never lost: elitism, and noise (< 0.5) below every
			// cost difference (≥ 1).
			for g := first; g < len(trace.parents); g++ {
				if !trace.parents[g].Equal(opt) {
					t.Fatalf("optimum lost at generation %d", g)
				}
			}
		})
	}
	if mean := float64(sum) / 10; mean > 60 {
		t.Errorf("optimum reached after %.1f generations on average, want ≤ 60", mean)
	} else {
		t.Logf("optimum reached after %.1f generations on average", mean)
	}
}

// TestDropBruteForce compares the search with exhaustive enumeration on small instances with a
// non-additive fitness (dropping neighbouring units costs extra).
func TestDropBruteForce(t *testing.T) {
	const n = 8
	for _, tc := range []struct {
		name   string
		k      int
		opts   drop.Options
		lambda int
	}{
		{"plain k=3", 3, drop.Options{}, 16},
		{"whole blocks k=3", 3, drop.Options{WholeBlocks: true}, 16},
		{"keep k=2", 2, drop.Options{Keep: []string{"model.layers.0", "model.layers.7.mlp", "model.layers.3.self_attn"}}, 16},
		// 6 droppable blocks, 2 dropped: C(6,2) = 15 profiles, so at most 14 offspring.
		{"whole blocks keep k=2", 2, drop.Options{WholeBlocks: true, Keep: []string{"model.layers.1.mlp", "model.layers.6"}}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode, err := drop.NewK(n, tc.k, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			cost := dropCosts(n, 7)
			f := func(p search.Levels) float64 {
				s := 0.0
				for i, v := range p {
					s += cost[i] * float64(v)
					if v == 1 && i+1 < len(p) && p[i+1] == 1 {
						s += 0.75 // interaction: consecutive dropped units
					}
				}
				return s
			}
			best, bestF, legal := search.Levels(nil), math.Inf(1), 0
			p := make(search.Levels, 2*n)
			for code := range 1 << (2 * n) {
				for i := range p {
					p[i] = code >> i & 1
				}
				if !mode.Legal(p) {
					continue
				}
				legal++
				if v := f(p); v < bestF {
					best, bestF = p.Clone(), v
				}
			}
			cfg := search.Config{Offspring: tc.lambda, Stages: []search.Stage{{2, 64}, {1, 256}}, Generations: 40, Seed: 5, SeqLen: 64, PoolChunks: 16, InitTokens: 256}
			res, err := search.Run(context.Background(), cfg, mode,
				fnEval{f: func(_ search.Batch, p search.Levels) float64 { return f(p) }})
			if err != nil {
				t.Fatal(err)
			}
			if res.Fitness != bestF || !res.Profile.Equal(best) {
				t.Fatalf("search found %v (%v), brute force over %d legal profiles %v (%v)", res.Profile, res.Fitness, legal, best, bestF)
			}
		})
	}
}

// quantInstance: two sizes of layers, widths 2..6, error ∝ w·numel·4^−bits.
func quantInstance(t *testing.T, rule search.GroupBy, target float64) (*quant.Mode, func(search.Levels) float64) {
	t.Helper()
	numel := []int64{100, 100, 100, 300, 300, 300}
	w := []float64{1.0, 2.7, 0.4, 1.9, 0.8, 3.3}
	var layers []quant.Layer
	for i, n := range numel {
		layers = append(layers, quant.Layer{Name: fmt.Sprintf("model.layers.%d.mlp.up_proj", i), Numel: n, Bits: []int{2, 3, 4, 5, 6}})
	}
	mode, err := quant.New(quant.Config{Layers: layers, Target: target, GroupBy: rule})
	if err != nil {
		t.Fatal(err)
	}
	return mode, func(p search.Levels) float64 {
		s := 0.0
		for i, b := range p {
			s += w[i] * float64(numel[i]) * math.Pow(4, -float64(b))
		}
		return s
	}
}

func TestQuantBruteForce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rule   search.GroupBy
		target float64
		// reachable reports whether a legal profile can be reached from the start under rule
		reachable func(p search.Levels) bool
	}{
		{"size integer target", search.GroupSize, 4, func(p search.Levels) bool {
			return p[0]+p[1]+p[2] == 12 && p[3]+p[4]+p[5] == 12
		}},
		{"none integer target", search.GroupNone, 4, func(search.Levels) bool { return true }},
		{"none fractional target", search.GroupNone, 3.5, func(search.Levels) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode, f := quantInstance(t, tc.rule, tc.target)
			best, bestF := search.Levels(nil), math.Inf(1)
			p := make(search.Levels, 6)
			var rec func(i int)
			rec = func(i int) {
				if i == len(p) {
					if mode.Legal(p) && tc.reachable(p) {
						if v := f(p); v < bestF {
							best, bestF = p.Clone(), v
						}
					}
					return
				}
				for b := 2; b <= 6; b++ {
					p[i] = b
					rec(i + 1)
				}
			}
			rec(0)
			cfg := search.Config{Offspring: 16, Stages: []search.Stage{{4, 64}, {1, 256}}, Generations: 40, Seed: 11, SeqLen: 64, PoolChunks: 16, InitTokens: 256}
			res, err := search.Run(context.Background(), cfg, mode,
				fnEval{f: func(_ search.Batch, p search.Levels) float64 { return f(p) }})
			if err != nil {
				t.Fatal(err)
			}
			if res.Fitness != bestF || !res.Profile.Equal(best) {
				t.Fatalf("search found %v (%v), brute force %v (%v)", res.Profile, res.Fitness, best, bestF)
			}
		})
	}
}

func TestSparseBruteForce(t *testing.T) {
	numel := []int64{1000, 1000, 2000, 2000, 2000}
	names := []string{"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
		"model.layers.0.mlp.up_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.up_proj"}
	a := []float64{1, 3, 0.5, 2, 1.5}
	c := []float64{1.3, -0.7, 2.2, -1.6, 0.4}
	f := func(p search.Levels) float64 {
		s := 0.0
		for i, l := range p {
			s += a[i] * (float64(l) - c[i]) * (float64(l) - c[i])
		}
		return s
	}
	for _, rule := range []search.GroupBy{search.GroupNone, search.GroupSize, search.GroupKind} {
		t.Run(rule.String(), func(t *testing.T) {
			var layers []sparse.Layer
			for i := range numel {
				layers = append(layers, sparse.Layer{Name: names[i], Numel: numel[i], Lo: -3, Hi: 3})
			}
			mode, err := sparse.New(sparse.Config{Layers: layers, Sparsity: 0.5, D: 100, GroupBy: rule})
			if err != nil {
				t.Fatal(err)
			}
			// group sums of levels are invariant under the rule
			group := func(i int) string {
				switch rule {
				case search.GroupSize:
					return fmt.Sprint(numel[i])
				case search.GroupKind:
					return search.UnitKind(names[i])
				}
				return ""
			}
			best, bestF := search.Levels(nil), math.Inf(1)
			p := make(search.Levels, len(numel))
			var rec func(i int)
			rec = func(i int) {
				if i == len(p) {
					sums := map[string]int{}
					for j, l := range p {
						sums[group(j)] += l
					}
					for _, s := range sums {
						if s != 0 {
							return
						}
					}
					if v := f(p); mode.Legal(p) && v < bestF {
						best, bestF = p.Clone(), v
					}
					return
				}
				for l := -3; l <= 3; l++ {
					p[i] = l
					rec(i + 1)
				}
			}
			rec(0)
			cfg := search.Config{Offspring: 8, Stages: []search.Stage{{2, 64}, {1, 256}}, Generations: 30, Seed: 3, SeqLen: 64, PoolChunks: 16, InitTokens: 256}
			res, err := search.Run(context.Background(), cfg, mode,
				fnEval{f: func(_ search.Batch, p search.Levels) float64 { return f(p) }})
			if err != nil {
				t.Fatal(err)
			}
			if res.Fitness != bestF || !res.Profile.Equal(best) {
				t.Fatalf("search found %v (%v), brute force %v (%v)", res.Profile, res.Fitness, best, bestF)
			}
		})
	}
}

func TestDeterminismAcrossGOMAXPROCS(t *testing.T) {
	mode, err := drop.NewK(16, 4, drop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cost := dropCosts(16, 4)
	cfg := search.Config{Offspring: 16, Stages: []search.Stage{{4, 512}, {1, 2048}}, Generations: 12, Seed: 42, SeqLen: 256, PoolChunks: 32}
	run := func(procs int, seed uint64) *search.Result {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		c := cfg
		c.Seed = seed
		// Noise larger than cost gaps so the path depends on every batch draw.
		res, err := search.Run(context.Background(), c, mode, fnEval{f: linearFitness(cost, 4), parallel: true})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := run(1, 42), run(4, 42)
	if !sameRun(a, b) {
		t.Fatalf("GOMAXPROCS 1 and 4 differ:\n%v %v\n%v %v", a.Profile, a.History, b.Profile, b.History)
	}
	if c := run(4, 43); sameRun(a, c) {
		t.Fatal("seeds 42 and 43 gave identical runs")
	}
}

// cancelAt cancels the run's context when it is asked to score generation gen at stage stage.
type cancelAt struct {
	inner       search.Evaluator
	gen, stage  int
	cancel      context.CancelFunc
	returnValid bool // return scores despite the cancellation
}

func (c *cancelAt) Evaluate(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
	if b.Generation == c.gen && b.Stage == c.stage {
		c.cancel()
		if !c.returnValid {
			return nil, fmt.Errorf("forward pass: %w", ctx.Err())
		}
	}
	return c.inner.Evaluate(ctx, parent, cands, b)
}

func TestInterruptAndResume(t *testing.T) {
	dmode, err := drop.NewK(12, 3, drop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	qmode, qf := quantInstance(t, search.GroupNone, 3.5)
	modes := []struct {
		mode search.Mode
		eval search.Evaluator
	}{
		{dmode, fnEval{f: linearFitness(dropCosts(12, 1), 3)}},
		{qmode, fnEval{f: func(b search.Batch, p search.Levels) float64 { return qf(p) * (1 + 0.3*batchNoise(b, p)) }}},
	}
	cfg := search.Config{Offspring: 8, Stages: []search.Stage{{3, 128}, {2, 256}, {1, 512}}, Generations: 10, Seed: 9, SeqLen: 64, PoolChunks: 16, InitTokens: 256}
	for _, m := range modes {
		base, err := search.Run(context.Background(), cfg, m.mode, m.eval)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			gen, stage int
			valid      bool
		}{{1, 1, false}, {4, 2, false}, {4, 3, true}, {7, 3, false}, {10, 1, true}} {
			t.Run(fmt.Sprintf("%s/gen%d-stage%d-valid%t", m.mode.Name(), tc.gen, tc.stage, tc.valid), func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "checkpoint.json")
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				ev := &cancelAt{inner: m.eval, gen: tc.gen, stage: tc.stage, cancel: cancel, returnValid: tc.valid}
				part, err := search.Run(ctx, cfg, m.mode, ev, search.WithCheckpointer(&search.FileCheckpointer{Path: path}))
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("interrupted run: error %v, want context.Canceled", err)
				}
				if part == nil || part.Generations != tc.gen-1 {
					t.Fatalf("interrupted run returned %+v, want the result of generation %d", part, tc.gen-1)
				}
				st, err := search.LoadCheckpoint(path)
				if err != nil {
					t.Fatal(err)
				}
				if st.Generation != tc.gen-1 || !st.Parent.Equal(part.Profile) {
					t.Fatalf("checkpoint at generation %d parent %v, want %d %v", st.Generation, st.Parent, tc.gen-1, part.Profile)
				}
				entries, _ := os.ReadDir(dir)
				if len(entries) != 1 {
					t.Fatalf("run dir holds %d entries, want only the checkpoint", len(entries))
				}
				res, err := search.Run(context.Background(), cfg, m.mode, m.eval,
					search.WithResume(st), search.WithCheckpointer(&search.FileCheckpointer{Path: path}))
				if err != nil {
					t.Fatal(err)
				}
				if !sameRun(res, base) {
					t.Fatalf("resumed run differs from the uninterrupted one:\n%v %v %v\n%v %v %v",
						res.Profile, res.Fitness, res.History, base.Profile, base.Fitness, base.History)
				}
			})
		}
	}
}

func TestInterruptDuringInit(t *testing.T) {
	mode, _ := drop.NewK(12, 3, drop.Options{})
	path := filepath.Join(t.TempDir(), "ck.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := search.Config{Offspring: 8, Stages: []search.Stage{{1, 128}}, Generations: 3, SeqLen: 64, PoolChunks: 64}
	ev := &cancelAt{inner: fnEval{f: linearFitness(dropCosts(12, 1), 0)}, gen: 0, stage: 0, cancel: cancel}
	res, err := search.Run(ctx, cfg, mode, ev, search.WithCheckpointer(&search.FileCheckpointer{Path: path}))
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Fatalf("got %v, %v; want nil and context.Canceled", res, err)
	}
	if _, err := search.LoadCheckpoint(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("checkpoint after an interrupted init: %v, want none", err)
	}
	// Cancelled before starting: initialisation completes only if the evaluator ignores ctx;
	// the loop then stops before generation 1.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	smode := sparseToy(t)
	res, err = search.Run(ctx2, cfg, smode, fnEval{f: func(search.Batch, search.Levels) float64 { return 0 }})
	if !errors.Is(err, context.Canceled) || res == nil || res.Generations != 0 || !strings.Contains(err.Error(), "interrupted after generation 0 of 3") {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func sparseToy(t *testing.T) *sparse.Mode {
	t.Helper()
	var layers []sparse.Layer
	for i, name := range search.LinearUnitNames(2) {
		layers = append(layers, sparse.Layer{Name: name, Numel: int64(1000 * (1 + i%3)), Lo: -2, Hi: 2})
	}
	m, err := sparse.New(sparse.Config{Layers: layers, Sparsity: 0.5, D: 100})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestResumeMoreGenerations(t *testing.T) {
	mode, _ := drop.NewK(10, 3, drop.Options{WholeBlocks: true})
	ev := fnEval{f: linearFitness(dropCosts(10, 2), 2)}
	cfg := search.Config{Offspring: 6, Stages: []search.Stage{{2, 64}, {1, 128}}, Generations: 9, Seed: 1, SeqLen: 64, PoolChunks: 8, InitTokens: 128}
	full, err := search.Run(context.Background(), cfg, mode, ev)
	if err != nil {
		t.Fatal(err)
	}
	var last *search.State
	short := cfg
	short.Generations = 4
	if _, err := search.Run(context.Background(), short, mode, ev,
		search.WithCheckpointer(search.CheckpointerFunc(func(st *search.State) error { last = st; return nil }))); err != nil {
		t.Fatal(err)
	}
	res, err := search.Run(context.Background(), cfg, mode, ev, search.WithResume(last))
	if err != nil {
		t.Fatal(err)
	}
	if !sameRun(res, full) {
		t.Fatalf("4+5 generations differ from 9: %v vs %v", res.Profile, full.Profile)
	}
	// Resuming a finished run returns it unchanged.
	again, err := search.Run(context.Background(), short, mode, ev, search.WithResume(last))
	if err != nil || again.Generations != 4 || !again.Profile.Equal(last.Parent) {
		t.Fatalf("resuming a finished run: %+v, %v", again, err)
	}
}

func TestResumeRefusesAnotherProblem(t *testing.T) {
	mode, _ := drop.NewK(10, 3, drop.Options{})
	ev := fnEval{f: linearFitness(dropCosts(10, 2), 0)}
	cfg := search.Config{Offspring: 6, Stages: []search.Stage{{2, 64}, {1, 128}}, Generations: 2, Seed: 1, SeqLen: 64, PoolChunks: 8, InitTokens: 128}
	var st *search.State
	if _, err := search.Run(context.Background(), cfg, mode, ev,
		search.WithCheckpointer(search.CheckpointerFunc(func(s *search.State) error { st = s; return nil }))); err != nil {
		t.Fatal(err)
	}
	otherK, _ := drop.NewK(10, 4, drop.Options{})
	otherN, _ := drop.NewK(11, 3, drop.Options{})
	for _, tc := range []struct {
		name    string
		mode    search.Mode
		mod     func(*search.Config)
		state   func(*search.State)
		wantErr string
	}{
		{name: "other k", mode: otherK, wantErr: "signature"},
		{name: "other model", mode: otherN, wantErr: "units differ"},
		{name: "other mode", mode: sparseToy(t), wantErr: `checkpoint is for mode "drop", not "sparse"`},
		{name: "seed", mod: func(c *search.Config) { c.Seed = 2 }, wantErr: "seed 1, config 2"},
		{name: "offspring", mod: func(c *search.Config) { c.Offspring = 7 }, wantErr: "offspring 6, config 7"},
		{name: "stages", mod: func(c *search.Config) { c.Stages = []search.Stage{{1, 64}} }, wantErr: `stages "2:64,1:128", config "1:64"`},
		{name: "seq len", mod: func(c *search.Config) { c.SeqLen = 32 }, wantErr: "seq len 64, config 32"},
		{name: "pool", mod: func(c *search.Config) { c.PoolChunks = 9 }, wantErr: "pool chunks 8, config 9"},
		{name: "init tokens", mod: func(c *search.Config) { c.InitTokens = 64 }, wantErr: "init tokens 128, config 64"},
		{name: "illegal parent", state: func(s *search.State) { s.Parent[0] = 5 }, wantErr: "not legal"},
		{name: "bad rng", state: func(s *search.State) { s.RNG = []byte("x") }, wantErr: "random state"},
		{name: "history", state: func(s *search.State) { s.History = s.History[:1] }, wantErr: "history has 1 records for 2 generations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.mod != nil {
				tc.mod(&c)
			}
			m := tc.mode
			if m == nil {
				m = mode
			}
			s := *st
			s.Parent = st.Parent.Clone()
			if tc.state != nil {
				tc.state(&s)
			}
			_, err := search.Run(context.Background(), c, m, ev, search.WithResume(&s))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want containing %q", err, tc.wantErr)
			}
		})
	}
}

// recorder checks the engine's calls to the evaluator against the protocol.
type recorder struct {
	t      *testing.T
	mode   search.Mode
	cfg    search.Config
	calls  []search.Batch
	ncands []int
	evals  int64
	tokens int64
	prev   struct{ gen, stage int }
	fit    func(search.Batch, search.Levels) float64
}

func (r *recorder) Evaluate(_ context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
	t := r.t
	r.calls = append(r.calls, b)
	r.ncands = append(r.ncands, len(cands))
	r.evals += int64(len(cands))
	r.tokens += int64(len(cands) * b.Tokens)
	tokens := r.cfg.InitTokens
	if b.Stage > 0 {
		tokens = r.cfg.Stages[b.Stage-1].Tokens
	}
	wantChunks := max(1, tokens/r.cfg.SeqLen)
	if len(b.Chunks) != wantChunks || b.Tokens != min(tokens, wantChunks*r.cfg.SeqLen) {
		t.Fatalf("gen %d stage %d: %d chunks, %d tokens; want %d chunks, %d tokens", b.Generation, b.Stage,
			len(b.Chunks), b.Tokens, wantChunks, min(tokens, wantChunks*r.cfg.SeqLen))
	}
	for i, c := range b.Chunks {
		if c < 0 || c >= r.cfg.PoolChunks || (i > 0 && c <= b.Chunks[i-1]) {
			t.Fatalf("chunks %v not distinct, sorted and within the pool", b.Chunks)
		}
	}
	seen := map[string]bool{}
	for i, c := range cands {
		if !r.mode.Legal(c) {
			t.Fatalf("illegal candidate %v", c)
		}
		if seen[c.String()] {
			t.Fatalf("duplicate candidate %v", c)
		}
		seen[c.String()] = true
		isParent := parent != nil && c.Equal(parent)
		last := b.Stage == len(r.cfg.Stages)
		if isParent != (last && i == 0) {
			t.Fatalf("gen %d stage %d: candidate %d parent=%t; the parent must be candidate 0 of the last stage only", b.Generation, b.Stage, i, isParent)
		}
	}
	if b.Generation == 0 {
		if parent != nil || b.Stage != 0 {
			t.Fatalf("init call with parent %v stage %d", parent, b.Stage)
		}
	} else {
		want := struct{ gen, stage int }{r.prev.gen, r.prev.stage + 1}
		if r.prev.stage == len(r.cfg.Stages) || r.prev.gen == 0 {
			want = struct{ gen, stage int }{r.prev.gen + 1, 1}
		}
		if b.Generation != want.gen || b.Stage != want.stage {
			t.Fatalf("call for gen %d stage %d after gen %d stage %d", b.Generation, b.Stage, r.prev.gen, r.prev.stage)
		}
		wantN := r.cfg.Offspring
		if b.Stage > 1 {
			wantN = min(wantN, r.cfg.Stages[b.Stage-2].Survivors)
		}
		if b.Stage == len(r.cfg.Stages) {
			wantN++
		}
		if len(cands) != wantN {
			t.Fatalf("gen %d stage %d: %d candidates, want %d", b.Generation, b.Stage, len(cands), wantN)
		}
	}
	r.prev = struct{ gen, stage int }{b.Generation, b.Stage}
	out := make([]float64, len(cands))
	for i, c := range cands {
		out[i] = r.fit(b, c)
		c[0] = 99 // the engine passes copies: scribbling must not matter
	}
	return out, nil
}

func TestEvaluatorProtocol(t *testing.T) {
	dmode, _ := drop.NewK(12, 3, drop.Options{})
	qmode, qf := quantInstance(t, search.GroupSize, 3.25)
	for _, tc := range []struct {
		mode search.Mode
		cfg  search.Config
		fit  func(search.Batch, search.Levels) float64
	}{
		{dmode, search.Config{Offspring: 10, Stages: []search.Stage{{4, 300}, {2, 1000}, {1, 2000}}, Generations: 6, InitTokens: 500, Seed: 3, SeqLen: 128, PoolChunks: 20},
			linearFitness(dropCosts(12, 5), 1)},
		{qmode, search.Config{Offspring: 12, Stages: []search.Stage{{4, 50}, {1, 8192}}, Generations: 5, Seed: 4, SeqLen: 2048, PoolChunks: 4},
			func(b search.Batch, p search.Levels) float64 { return qf(p) + batchNoise(b, p) }},
		{sparseToy(t), search.Config{Offspring: 5, Stages: []search.Stage{{1, 64}}, Generations: 4, SeqLen: 64, PoolChunks: 1},
			func(b search.Batch, p search.Levels) float64 { return batchNoise(b, p) }},
	} {
		t.Run(tc.mode.Name(), func(t *testing.T) {
			r := &recorder{t: t, mode: tc.mode, cfg: tc.cfg, fit: tc.fit}
			if r.cfg.InitTokens == 0 {
				r.cfg.InitTokens = search.DefaultInitTokens
			}
			var progress []search.Progress
			res, err := search.Run(context.Background(), tc.cfg, tc.mode, r, search.WithObserver(func(p search.Progress) { progress = append(progress, p) }))
			if err != nil {
				t.Fatal(err)
			}
			if res.Evaluations != r.evals || res.Tokens != r.tokens {
				t.Fatalf("result counts %d evaluations, %d tokens; evaluator saw %d, %d", res.Evaluations, res.Tokens, r.evals, r.tokens)
			}
			if res.Generations != tc.cfg.Generations || len(res.History) != tc.cfg.Generations+1 || len(progress) != tc.cfg.Generations+1 {
				t.Fatalf("generations %d, history %d, progress %d", res.Generations, len(res.History), len(progress))
			}
			for g, p := range progress {
				h := res.History[g]
				if p.Generation != g || h.Generation != g || p.Generations != tc.cfg.Generations || p.Evaluations != h.Evaluations || !sameFloat(p.Best, h.Best) {
					t.Fatalf("progress %d = %+v, history %+v", g, p, h)
				}
				if g > 0 && p.ETA < 0 {
					t.Fatalf("progress %d: ETA unknown after a generation", g)
				}
			}
			if progress[len(progress)-1].ETA != 0 {
				t.Fatalf("final ETA %v, want 0", progress[len(progress)-1].ETA)
			}
			if !tc.mode.Legal(res.Profile) || res.Fitness != res.History[len(res.History)-1].Best {
				t.Fatalf("final %v (%v) illegal or not the last record", res.Profile, res.Fitness)
			}
		})
	}
}

// TestParentWinsTies: with a constant fitness the parent is never replaced.
func TestParentWinsTies(t *testing.T) {
	mode, _ := drop.NewK(12, 3, drop.Options{})
	trace := &parentTrace{}
	cfg := search.Config{Offspring: 8, Stages: []search.Stage{{2, 64}, {1, 64}}, Generations: 5, SeqLen: 64, PoolChunks: 4, InitTokens: 64}
	res, err := search.Run(context.Background(), cfg, mode,
		fnEval{f: func(search.Batch, search.Levels) float64 { return 1 }}, search.WithCheckpointer(trace))
	if err != nil {
		t.Fatal(err)
	}
	for g, p := range trace.parents {
		if !p.Equal(trace.parents[0]) {
			t.Fatalf("parent changed at generation %d despite equal fitness", g)
		}
	}
	for _, h := range res.History {
		if h.Replaced {
			t.Fatalf("generation %d marked replaced", h.Generation)
		}
	}
	// NaN ranks last: an evaluator returning NaN for all but the parent keeps the parent; NaN
	// for the parent lets any finite offspring win.
	res, err = search.Run(context.Background(), cfg, mode, search.EvaluatorFunc(
		func(_ context.Context, parent search.Levels, cands []search.Levels, _ search.Batch) ([]float64, error) {
			out := make([]float64, len(cands))
			for i, c := range cands {
				out[i] = math.NaN()
				if parent != nil && c.Equal(parent) {
					out[i] = 0
				}
			}
			return out, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range res.History[1:] {
		if h.Replaced || h.Best != 0 {
			t.Fatalf("NaN offspring beat the parent: %+v", h)
		}
	}
}

// illegalInit is a mode whose Initial proposes an illegal profile.
type illegalInit struct{ search.Mode }

func (illegalInit) Initial(*rand.Rand) []search.Levels {
	return []search.Levels{{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}}
}

type wrongLength struct{ search.Mode }

// stuck is a mode whose mutation returns the profile unchanged.
type stuck struct{ search.Mode }

func (stuck) Mutate(_ *rand.Rand, p search.Levels) search.Levels { return p }

func (m wrongLength) Mutate(rng *rand.Rand, p search.Levels) search.Levels { return p[:1] }

// TestSmallNeighbourhood: a parent with fewer legal neighbours than λ makes a generation with
// those it has (Record.Short), and one with none keeps the parent without scoring; the run
// completes every generation either way.
func TestSmallNeighbourhood(t *testing.T) {
	// drop 1 of 2: the parent has exactly 3 neighbours (swap attention, MLP or both).
	small, _ := drop.NewK(2, 1, drop.Options{})
	// A mode whose mutations never move: no neighbour at all.
	single := stuck{small}
	cfg := search.Config{Offspring: 4, Stages: []search.Stage{{2, 64}, {1, 64}}, Generations: 3, SeqLen: 64, PoolChunks: 64, InitTokens: 64}
	for _, tc := range []struct {
		name      string
		mode      search.Mode
		short     int
		evalsPerG int64
	}{
		{"3 neighbours", small, 1, 3 + 2 + 1}, // 3 offspring, 2 survivors, the parent
		{"none", single, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := search.Run(context.Background(), cfg, tc.mode, fnEval{f: linearFitness(dropCosts(2, 3), 0.5)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Generations != cfg.Generations || len(res.History) != cfg.Generations+1 {
				t.Fatalf("%d generations, %d records; want %d", res.Generations, len(res.History), cfg.Generations)
			}
			for _, h := range res.History[1:] {
				prev := res.History[h.Generation-1]
				if h.Short != tc.short || h.Evaluations-prev.Evaluations != tc.evalsPerG {
					t.Fatalf("generation %d: short %d, %d evaluations; want %d, %d", h.Generation, h.Short,
						h.Evaluations-prev.Evaluations, tc.short, tc.evalsPerG)
				}
			}
			if !tc.mode.Legal(res.Profile) {
				t.Fatalf("final profile %v is not legal", res.Profile)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	mode, _ := drop.NewK(6, 2, drop.Options{})
	ok := search.Config{Offspring: 3, Stages: []search.Stage{{1, 64}}, Generations: 2, SeqLen: 64, PoolChunks: 64}
	zero := fnEval{f: func(search.Batch, search.Levels) float64 { return 0 }}
	for _, tc := range []struct {
		name    string
		cfg     search.Config
		mode    search.Mode
		eval    search.Evaluator
		wantErr string
	}{
		{"nil mode", ok, nil, zero, "mode is nil"},
		{"nil evaluator", ok, mode, nil, "evaluator is nil"},
		{"bad config", search.Config{}, mode, zero, "offspring = 0"},
		{"init pool too small", search.Config{Offspring: 3, Stages: []search.Stage{{1, 64}}, Generations: 1, SeqLen: 64, PoolChunks: 4},
			mode, zero, "init tokens 2048 need 32 chunks of 64 tokens but the calibration pool holds only 4"},
		{"illegal initial", ok, illegalInit{mode}, zero, "initial profile 0 [1 1 1 1 1 1 1 1 1 1 1 1] is not legal"},
		{"mutation length", ok, wrongLength{mode}, zero, "mutation returned 1 levels for 12 units"},
		{"evaluator error", ok, mode, search.EvaluatorFunc(func(context.Context, search.Levels, []search.Levels, search.Batch) ([]float64, error) {
			return nil, errors.New("out of memory")
		}), "evaluate: out of memory"},
		{"evaluator length", ok, mode, search.EvaluatorFunc(func(context.Context, search.Levels, []search.Levels, search.Batch) ([]float64, error) {
			return []float64{1}, nil
		}), "returned 1 fitness values for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := search.Run(context.Background(), tc.cfg, tc.mode, tc.eval)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want containing %q", err, tc.wantErr)
			}
		})
	}
	// A failing checkpointer stops the run.
	_, err := search.Run(context.Background(), ok, mode, zero, search.WithCheckpointer(
		search.CheckpointerFunc(func(st *search.State) error {
			if st.Generation == 1 {
				return errors.New("disk full")
			}
			return nil
		})))
	if err == nil || !strings.Contains(err.Error(), "checkpoint after generation 1: disk full") {
		t.Fatalf("checkpoint failure: %v", err)
	}
}
