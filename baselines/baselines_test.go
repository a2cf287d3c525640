package baselines

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
	"github.com/evopress/evopress/tokenizer"
)

// fixture is a real 5-block model — the first five blocks of the embedded llama-pd-11m, so
// that exhaustive spaces stay small — with a calibration pool of the embedded text.
type fixture struct {
	m    *model.Model
	pool [][]int
}

var fix *fixture

func load(t *testing.T) *fixture {
	t.Helper()
	if fix != nil {
		return fix
	}
	full, _, err := model.LoadFS(assets.FS(), assets.ModelDir)
	if err != nil {
		t.Fatal(err)
	}
	m := full.Clone()
	m.Blocks = m.Blocks[:5]
	tj, err := assets.ReadFile(assets.ModelDir + "/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := assets.ReadFile(assets.ModelDir + "/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Parse(tj, tc, assets.ModelName)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := assets.ReadFile(assets.CalibText)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw[:min(len(raw), 40000)])
	pool, err := data.CalibrationPool(tok.Encode(text, false), 32, 24*32)
	if err != nil {
		t.Fatal(err)
	}
	fix = &fixture{m: m, pool: pool}
	return fix
}

// dropCounts returns the numbers of attention and MLP units p drops.
func dropCounts(p search.Levels) (attn, mlp int) {
	for i, v := range p {
		if v == 1 {
			if i%2 == 0 {
				attn++
			} else {
				mlp++
			}
		}
	}
	return attn, mlp
}

func TestEveryMethodLegal(t *testing.T) {
	f := load(t)
	n := len(f.m.Blocks)
	ctx := context.Background()
	for _, method := range Methods {
		for _, whole := range []bool{false, true} {
			for k := 1; k <= 2; k++ {
				opt := Options{K: k, WholeBlocks: whole, Tokens: 8 * 32, Seed: 3, Samples: 12}
				if method == Random || method == Exhaustive {
					opt.Tokens = 2 * 32 // they score up to 100 profiles each
				}
				res, err := Run(ctx, f.m, f.pool, method, opt)
				if err != nil {
					t.Fatalf("%s k=%d whole=%t: %v", method, k, whole, err)
				}
				if len(res.Profile) != 2*n || !slices.Equal(res.Units, drop.UnitNames(n)) {
					t.Fatalf("%s: profile of %d levels over %d units", method, len(res.Profile), len(res.Units))
				}
				a, ml := dropCounts(res.Profile)
				if a != k || ml != k {
					t.Errorf("%s k=%d whole=%t: drops %d attention and %d MLP units, want %d each", method, k, whole, a, ml, k)
				}
				wantWhole := whole || (method != Random && method != Exhaustive)
				if wantWhole && !slices.Equal(res.Attn, res.MLP) {
					t.Errorf("%s k=%d: not whole blocks: attention %v, MLP %v", method, k, res.Attn, res.MLP)
				}
				mode, _ := drop.NewK(n, k, drop.Options{WholeBlocks: wantWhole})
				if !mode.Legal(res.Profile) {
					t.Errorf("%s k=%d: illegal profile %v", method, k, res.Profile)
				}
				if (method == Random || method == Exhaustive) == math.IsNaN(res.Fitness) {
					t.Errorf("%s: fitness %v", method, res.Fitness)
				}
			}
		}
	}
}

// bruteStats recomputes the hidden-state statistics sequence by sequence, block by block, from
// single-sequence forwards, in float64.
type bruteStats struct {
	cos, ratio     []float64
	angAll, angEnd [][]float64
}

func computeBrute(t *testing.T, m *model.Model, seqs [][]int) bruteStats {
	n, h := len(m.Blocks), m.Hidden
	bs := bruteStats{cos: make([]float64, n), ratio: make([]float64, n)}
	for i := 0; i <= n; i++ {
		bs.angAll = append(bs.angAll, make([]float64, n+1))
		bs.angEnd = append(bs.angEnd, make([]float64, n+1))
	}
	vec := func(x []float32) []float64 {
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = float64(v)
		}
		return out
	}
	norm := func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += v * v
		}
		return math.Sqrt(s)
	}
	cosOf := func(x, y []float64) float64 {
		s := 0.0
		for i := range x {
			s += x[i] * y[i]
		}
		return math.Max(-1, math.Min(1, s/(norm(x)*norm(y))))
	}
	positions := 0
	for _, s := range seqs {
		a, err := m.Embedding([][]int{s})
		if err != nil {
			t.Fatal(err)
		}
		states := [][]float32{slices.Clone(a.X)}
		for i := 0; i < n; i++ {
			m.Forward(a, i, i+1, nil)
			states = append(states, slices.Clone(a.X))
		}
		for pos := 0; pos < len(s); pos++ {
			positions++
			hs := make([][]float64, n+1)
			for i := range hs {
				hs[i] = vec(states[i][pos*h : (pos+1)*h])
			}
			for i := 0; i < n; i++ {
				bs.cos[i] += cosOf(hs[i], hs[i+1])
				d := make([]float64, h)
				for j := range d {
					d[j] = hs[i+1][j] - hs[i][j]
				}
				bs.ratio[i] += norm(d) / norm(hs[i+1])
			}
			for i := 0; i <= n; i++ {
				for j := i + 1; j <= n; j++ {
					ang := math.Acos(cosOf(hs[i], hs[j])) / math.Pi
					bs.angAll[i][j] += ang
					if pos == len(s)-1 {
						bs.angEnd[i][j] += ang
					}
				}
			}
		}
	}
	for i := 0; i < n; i++ {
		bs.cos[i] /= float64(positions)
		bs.ratio[i] /= float64(positions)
	}
	for i := 0; i <= n; i++ {
		for j := i + 1; j <= n; j++ {
			bs.angAll[i][j] /= float64(positions)
			bs.angEnd[i][j] /= float64(len(seqs))
		}
	}
	return bs
}

// argminK returns the k indices with the smallest values (ties: lower index), sorted.
func argminK(v []float64, k int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if v[a] < v[b] {
			return -1
		}
		if v[a] > v[b] {
			return 1
		}
		return 0
	})
	out := slices.Clone(idx[:k])
	slices.Sort(out)
	return out
}

func close(a, b, tol float64) bool { return math.Abs(a-b) <= tol*(1+math.Abs(b)) }

func TestStatsAgainstBruteForce(t *testing.T) {
	f := load(t)
	m, n := f.m, len(f.m.Blocks)
	b := SampleBatch(len(f.pool), 32, 7*32, 11, 0)
	seqs := batchTokens(f.pool, b)
	st, err := ComputeStats(context.Background(), m, seqs, 3) // sub-batches of 3: 3+3+1
	if err != nil {
		t.Fatal(err)
	}
	bs := computeBrute(t, m, seqs)
	if st.Positions != 7*32 || st.Seqs != 7 {
		t.Fatalf("positions %d, seqs %d; want 224, 7", st.Positions, st.Seqs)
	}
	const tol = 1e-5
	for i := 0; i < n; i++ {
		if !close(st.Cosine[i], bs.cos[i], tol) || !close(st.NormRatio[i], bs.ratio[i], tol) {
			t.Errorf("block %d: cos %v ratio %v; brute force %v %v", i, st.Cosine[i], st.NormRatio[i], bs.cos[i], bs.ratio[i])
		}
	}
	for i := 0; i <= n; i++ {
		for j := i + 1; j <= n; j++ {
			if !close(st.Angular[i][j], bs.angAll[i][j], tol) || !close(st.AngularLast[i][j], bs.angEnd[i][j], tol) {
				t.Errorf("angular[%d][%d] = %v / last %v; brute force %v / %v", i, j, st.Angular[i][j], st.AngularLast[i][j], bs.angAll[i][j], bs.angEnd[i][j])
			}
		}
	}
	// The methods pick what the brute-force scores say.
	for k := 1; k <= 3; k++ {
		opt := Options{K: k, Tokens: 7 * 32, Seed: 11, SubBatch: 2}
		bi := make([]float64, n)
		for i := range bi {
			bi[i] = 1 - bs.cos[i]
		}
		for _, tc := range []struct {
			method Method
			pos    string
			want   []int
		}{
			{ShortGPT, "", argminK(bi, k)},
			{NormRatio, "", argminK(bs.ratio, k)},
			{WindowCosine, WindowAll, window(bs.angAll, n, k)},
			{WindowCosine, WindowLast, window(bs.angEnd, n, k)},
			{WindowCosine, "", window(bs.angEnd, n, k)}, // the default: the paper's last token
		} {
			o := opt
			o.WindowPositions = tc.pos
			res, err := Run(context.Background(), m, f.pool, tc.method, o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Attn, tc.want) || !slices.Equal(res.MLP, tc.want) {
				t.Errorf("%s %s k=%d: dropped %v/%v, brute force %v", tc.method, tc.pos, k, res.Attn, res.MLP, tc.want)
			}
		}
	}
}

// window returns the blocks of the window of k whose end states are closest.
func window(ang [][]float64, n, k int) []int {
	best := 0
	for l := 1; l+k <= n; l++ {
		if ang[l][l+k] < ang[best][best+k] {
			best = l
		}
	}
	out := make([]int, k)
	for i := range out {
		out[i] = best + i
	}
	return out
}

// klOf scores one profile alone, with a fresh teacher and no prefix reuse: an independent
// recomputation of the fitness.
func klOf(t *testing.T, m *model.Model, pool [][]int, p search.Levels, b search.Batch) float64 {
	n := len(m.Blocks)
	teacher, err := fitness.NewTeacher(m, pool, fitness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	units := drop.UnitNames(n)
	build, _ := candidate.DropBuilder(m, units)
	ev, err := fitness.NewEvaluator(teacher, units, build, fitness.KL)
	if err != nil {
		t.Fatal(err)
	}
	ev.PrefixReuse = false
	f, err := ev.Evaluate(context.Background(), nil, []search.Levels{p}, b)
	if err != nil {
		t.Fatal(err)
	}
	return f[0]
}

func TestExhaustiveFindsTheMinimum(t *testing.T) {
	f := load(t)
	m, n := f.m, len(f.m.Blocks)
	for _, tc := range []struct {
		k     int
		whole bool
		space int
	}{
		{1, false, 25}, // 5 attention × 5 MLP choices
		{2, true, 10},  // C(5,2)
	} {
		opt := Options{K: tc.k, WholeBlocks: tc.whole, Tokens: 4 * 32, Seed: 5}
		res, err := Run(context.Background(), m, f.pool, Exhaustive, opt)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Ranking) != tc.space {
			t.Fatalf("k=%d whole=%t: %d profiles scored, want %d", tc.k, tc.whole, len(res.Ranking), tc.space)
		}
		// Enumerate independently by bit masks and score each profile alone.
		best, bestFit := search.Levels(nil), math.Inf(1)
		seen := 0
		for mask := 0; mask < 1<<(2*n); mask++ {
			p := make(search.Levels, 2*n)
			for i := range p {
				p[i] = mask >> i & 1
			}
			a, ml := dropCounts(p)
			if a != tc.k || ml != tc.k {
				continue
			}
			if tc.whole {
				ok := true
				for b := 0; b < n; b++ {
					ok = ok && p[2*b] == p[2*b+1]
				}
				if !ok {
					continue
				}
			}
			seen++
			fv := klOf(t, m, f.pool, p, res.Batch)
			if fv < bestFit {
				best, bestFit = p, fv
			}
		}
		if seen != tc.space {
			t.Fatalf("brute force found %d profiles, want %d", seen, tc.space)
		}
		if !res.Profile.Equal(best) {
			t.Errorf("k=%d whole=%t: exhaustive chose %v (%.6g), brute force %v (%.6g)", tc.k, tc.whole, res.Profile, res.Fitness, best, bestFit)
		}
		if !close(res.Fitness, bestFit, 1e-9) {
			t.Errorf("k=%d whole=%t: fitness %.9g, brute force %.9g", tc.k, tc.whole, res.Fitness, bestFit)
		}
		for i := 1; i < len(res.Ranking); i++ {
			if res.Ranking[i].Fitness < res.Ranking[i-1].Fitness {
				t.Fatalf("ranking not sorted at %d", i)
			}
		}
	}
}

func TestExhaustiveRefusesLargeSpaces(t *testing.T) {
	f := load(t)
	_, err := Run(context.Background(), f.m, f.pool, Exhaustive, Options{K: 2, Tokens: 64, MaxProfiles: 99})
	if err == nil || !strings.Contains(err.Error(), "100 ") || !strings.Contains(err.Error(), "limit of 99") {
		t.Fatalf("C(5,2)² = 100 profiles over a limit of 99: error %v", err)
	}
	mode, err := drop.NewK(32, 8, drop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Enumerate(mode, nil, DefaultMaxProfiles); err == nil || !strings.Contains(err.Error(), "exceed the limit") {
		t.Fatalf("32 blocks, k = 8: error %v", err)
	}
	want := new(big.Int).Binomial(32, 8)
	want.Mul(want, want)
	if got := SpaceSize(mode, nil); got.Cmp(want) != 0 {
		t.Errorf("space size %v, want %v", got, want)
	}
}

func TestRandomDeterministic(t *testing.T) {
	f := load(t)
	run := func(seed uint64) *Result {
		res, err := Run(context.Background(), f.m, f.pool, Random, Options{K: 2, Seed: seed, Samples: 16, Tokens: 3 * 32})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b, c := run(7), run(7), run(8)
	if !a.Profile.Equal(b.Profile) || a.Fitness != b.Fitness || !slices.Equal(a.Batch.Chunks, b.Batch.Chunks) {
		t.Fatalf("same seed, different results: %v %v vs %v %v", a.Profile, a.Fitness, b.Profile, b.Fitness)
	}
	if slices.Equal(a.Batch.Chunks, c.Batch.Chunks) {
		t.Errorf("seeds 7 and 8 drew the same final batch %v", a.Batch.Chunks)
	}
	// 16 distinct samples; the chosen one is the best survivor on the final batch, recomputed.
	if a.Info.Samples != 16 {
		t.Errorf("samples %v, want 16", a.Info.Samples)
	}
	mode, _ := drop.NewK(len(f.m.Blocks), 2, drop.Options{})
	ps := RandomProfiles(mode, 16, 7)
	keys := map[string]bool{}
	for _, p := range ps {
		keys[p.String()] = true
		if !mode.Legal(p) {
			t.Fatalf("illegal random profile %v", p)
		}
	}
	if len(keys) != 16 {
		t.Fatalf("%d distinct random profiles, want 16", len(keys))
	}
	for _, s := range a.Ranking {
		if !keys[s.Profile.String()] {
			t.Fatalf("survivor %v is not one of the random profiles", s.Profile)
		}
		if got := klOf(t, f.m, f.pool, s.Profile, a.Batch); !close(s.Fitness, got, 1e-9) {
			t.Errorf("survivor %v: fitness %v, recomputed %v", s.Profile, s.Fitness, got)
		}
	}
	if a.Fitness != a.Ranking[0].Fitness || !a.Profile.Equal(a.Ranking[0].Profile) {
		t.Errorf("chosen %v %v, best survivor %v", a.Profile, a.Fitness, a.Ranking[0])
	}
}

func TestShortenedPPLAgainstBruteForce(t *testing.T) {
	f := load(t)
	m, n := f.m, len(f.m.Blocks)
	res, err := Run(context.Background(), m, f.pool, ShortenedPPL, Options{K: 2, Tokens: 5 * 32, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	seqs := batchTokens(f.pool, res.Batch)
	nll := make([]float64, n)
	for b := 0; b < n; b++ {
		c, err := candidate.ApplyDrop(m, map[string]int{
			fmt.Sprintf("model.layers.%d.self_attn", b): 1,
			fmt.Sprintf("model.layers.%d.mlp", b):       1,
		})
		if err != nil {
			t.Fatal(err)
		}
		s, cnt, err := c.SequenceNLL(seqs)
		if err != nil {
			t.Fatal(err)
		}
		nll[b] = s / float64(cnt)
		if !close(res.Scores[b], nll[b], 1e-6) {
			t.Errorf("block %d removed: NLL %v, brute force %v", b, res.Scores[b], nll[b])
		}
	}
	if want := argminK(nll, 2); !slices.Equal(res.Attn, want) {
		t.Errorf("dropped %v, brute force %v", res.Attn, want)
	}
}

func TestKeep(t *testing.T) {
	f := load(t)
	for _, method := range []Method{ShortGPT, NormRatio, WindowCosine, ShortenedPPL, Random, Exhaustive} {
		res, err := Run(context.Background(), f.m, f.pool, method, Options{K: 2, WholeBlocks: true, Keep: []string{"model.layers.1", "model.layers.4.mlp"}, Tokens: 2 * 32, Samples: 4})
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if slices.Contains(res.Attn, 1) || slices.Contains(res.Attn, 4) || len(res.Attn) != 2 {
			t.Errorf("%s dropped a kept block: %v", method, res.Attn)
		}
	}
	// Blocks 1 and 3 kept leave no window of 2 consecutive droppable blocks in 5.
	_, err := Run(context.Background(), f.m, f.pool, WindowCosine, Options{K: 2, Keep: []string{"model.layers.1", "model.layers.3"}, Tokens: 64})
	if err == nil || !strings.Contains(err.Error(), "no window") {
		t.Errorf("window-cosine with no legal window: error %v", err)
	}
}

func TestEvoPressBudget(t *testing.T) {
	// 12 blocks, k = 3: 64 initial profiles on 2048 tokens, then 18 generations of 32
	// offspring on 2048 tokens and 2 survivors + the parent on 32768.
	ev, tok := EvoPressBudget(12, 3)
	if ev != 64+18*(32+3) || tok != 64*2048+18*(32*2048+3*32768) {
		t.Errorf("budget %d evaluations, %d tokens; want 694, 3080192", ev, tok)
	}
	p := NewRandomPlan(12, 3, 0, 0, big.NewInt(48400))
	if p.Samples != 694 || p.Survivors != (3080192-694*2048)/32768 {
		t.Errorf("plan %+v", p)
	}
	if p := NewRandomPlan(12, 3, 0, 0, big.NewInt(220)); p.Samples != 220 {
		t.Errorf("samples %d, want the whole space of 220", p.Samples)
	}
}

func TestSampleBatch(t *testing.T) {
	for _, tc := range []struct{ pool, seqLen, tokens, chunks, got int }{
		{10, 32, 100, 3, 96},
		{10, 32, 0, 10, 320},
		{10, 32, 10000, 10, 320},
		{10, 32, 20, 1, 20},
	} {
		b := SampleBatch(tc.pool, tc.seqLen, tc.tokens, 4, 0)
		if len(b.Chunks) != tc.chunks || b.Tokens != tc.got || !slices.IsSorted(b.Chunks) {
			t.Errorf("%+v: batch %+v", tc, b)
		}
		if b2 := SampleBatch(tc.pool, tc.seqLen, tc.tokens, 4, 0); !slices.Equal(b.Chunks, b2.Chunks) {
			t.Errorf("not deterministic")
		}
		for i := 1; i < len(b.Chunks); i++ {
			if b.Chunks[i] == b.Chunks[i-1] {
				t.Errorf("repeated chunk in %v", b.Chunks)
			}
		}
	}
}

func TestParseMethod(t *testing.T) {
	for _, m := range Methods {
		if got, err := ParseMethod(string(m)); err != nil || got != m {
			t.Errorf("ParseMethod(%q) = %q, %v", m, got, err)
		}
	}
	if _, err := ParseMethod("uniform"); err == nil || !strings.Contains(err.Error(), "shortgpt") {
		t.Errorf("unknown method: error %v", err)
	}
}
