package baselines

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"slices"

	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
)

// evalGroup is how many candidates one Evaluate call scores (they share the batch's dense
// distributions and the dense prefix states).
const evalGroup = 64

// newEvaluator returns an evaluator of drop profiles over mode's units.
func newEvaluator(m *model.Model, pool [][]int, mode *drop.Mode, opt Options, kind fitness.Kind) (*fitness.Evaluator, error) {
	t := opt.Teacher
	if t == nil {
		var err error
		if t, err = fitness.NewTeacher(m, pool, fitness.Options{}); err != nil {
			return nil, err
		}
	}
	build, err := candidate.DropBuilder(m, mode.Units())
	if err != nil {
		return nil, err
	}
	ev, err := fitness.NewEvaluator(t, mode.Units(), build, kind)
	if err != nil {
		return nil, err
	}
	ev.PrefixReuse = !opt.NoPrefixReuse
	if opt.SubBatch > 0 {
		ev.SubBatch = opt.SubBatch
	}
	return ev, nil
}

// scoreAll scores cands on batch b in groups, relative to the dense (all-kept) profile so that
// prefix reuse starts each candidate at its first dropped block.
func scoreAll(ctx context.Context, ev *fitness.Evaluator, n int, cands []search.Levels, b search.Batch, progress func(int, int)) ([]float64, error) {
	dense := make(search.Levels, 2*n)
	out := make([]float64, 0, len(cands))
	for lo := 0; lo < len(cands); lo += evalGroup {
		hi := min(lo+evalGroup, len(cands))
		f, err := ev.Evaluate(ctx, dense, cands[lo:hi], b)
		if err != nil {
			return nil, err
		}
		out = append(out, f...)
		if progress != nil {
			progress(hi, len(cands))
		}
	}
	return out, nil
}

// rankScored returns the candidates with their fitness, best first (NaN last, ties by index).
func rankScored(cands []search.Levels, fit []float64) []Scored {
	idx := make([]int, len(cands))
	for i := range idx {
		idx[i] = i
	}
	sortByScore(idx, fit)
	out := make([]Scored, len(idx))
	for r, i := range idx {
		out[r] = Scored{Profile: cands[i], Fitness: fit[i]}
	}
	return out
}

// runShortenedPPL scores the model with each droppable block removed by calibration NLL.
func runShortenedPPL(ctx context.Context, m *model.Model, pool [][]int, mode *drop.Mode, opt Options) (*Result, error) {
	n, k := mode.Blocks(), mode.K()
	tokens := opt.Tokens
	if tokens == 0 {
		tokens = DefaultShortenedPPLTokens
	}
	b := SampleBatch(len(pool), len(pool[0]), tokens, opt.Seed, 0)
	ev, err := newEvaluator(m, pool, mode, opt, fitness.PPL)
	if err != nil {
		return nil, err
	}
	blocks, _, _ := droppable(n, opt.Keep)
	cands := make([]search.Levels, len(blocks))
	for i, blk := range blocks {
		cands[i] = wholeProfile(n, []int{blk})
	}
	nll, err := scoreAll(ctx, ev, n, cands, b, opt.Progress)
	if err != nil {
		return nil, err
	}
	res := &Result{Batch: b, Fitness: math.NaN(), Scores: nanScores(n), Evaluations: int64(len(cands))}
	ppl := make(map[string]float64, len(blocks))
	for i, blk := range blocks {
		res.Scores[blk] = nll[i]
		ppl[fmt.Sprint(blk)] = math.Exp(nll[i])
	}
	_, _, res.Tokens = ev.Stats()
	res.Profile = wholeProfile(n, lowestK(res.Scores, blocks, k))
	res.Info.Statistic = "calibration perplexity with the single block removed"
	res.Info.PPLWithoutBlock = ppl
	return res, nil
}

// SpaceSize returns the number of legal profiles of mode (with keep as given to the mode).
func SpaceSize(mode *drop.Mode, keep []string) *big.Int {
	blocks, attn, mlp := droppable(mode.Blocks(), keep)
	k := int64(mode.K())
	if mode.WholeBlocks() {
		return new(big.Int).Binomial(int64(len(blocks)), k)
	}
	a := new(big.Int).Binomial(int64(len(attn)), k)
	return a.Mul(a, new(big.Int).Binomial(int64(len(mlp)), k))
}

// combinations returns every k-subset of items in lexicographic order.
func combinations(items []int, k int) [][]int {
	var out [][]int
	cur := make([]int, 0, k)
	var rec func(from int)
	rec = func(from int) {
		if len(cur) == k {
			out = append(out, slices.Clone(cur))
			return
		}
		for i := from; i <= len(items)-(k-len(cur)); i++ {
			cur = append(cur, items[i])
			rec(i + 1)
			cur = cur[:len(cur)-1]
		}
	}
	rec(0)
	return out
}

// Enumerate returns every legal profile of mode (keep as given to it), in lexicographic order
// of the dropped blocks (attention combination outer, MLP inner), or an error when there are
// more than limit.
func Enumerate(mode *drop.Mode, keep []string, limit int) ([]search.Levels, error) {
	size := SpaceSize(mode, keep)
	if !size.IsInt64() || size.Int64() > int64(limit) {
		kind := "sub-block"
		if mode.WholeBlocks() {
			kind = "whole-block"
		}
		return nil, fmt.Errorf("exhaustive: %s profiles dropping k = %d of %d blocks (%s) exceed the limit of %d: use whole blocks, a smaller model or k, or raise the limit",
			size, mode.K(), mode.Blocks(), kind, limit)
	}
	n, k := mode.Blocks(), mode.K()
	blocks, attn, mlp := droppable(n, keep)
	var out []search.Levels
	if mode.WholeBlocks() {
		for _, c := range combinations(blocks, k) {
			out = append(out, wholeProfile(n, c))
		}
		return out, nil
	}
	mc := combinations(mlp, k)
	for _, ac := range combinations(attn, k) {
		for _, m := range mc {
			p := make(search.Levels, 2*n)
			for _, b := range ac {
				p[2*b] = 1
			}
			for _, b := range m {
				p[2*b+1] = 1
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// runExhaustive scores every legal profile on one batch.
func runExhaustive(ctx context.Context, m *model.Model, pool [][]int, mode *drop.Mode, opt Options) (*Result, error) {
	limit := opt.MaxProfiles
	if limit <= 0 {
		limit = DefaultMaxProfiles
	}
	cands, err := Enumerate(mode, opt.Keep, limit)
	if err != nil {
		return nil, err
	}
	tokens := opt.Tokens
	if tokens == 0 {
		tokens = DefaultFitnessTokens
	}
	b := SampleBatch(len(pool), len(pool[0]), tokens, opt.Seed, 0)
	ev, err := newEvaluator(m, pool, mode, opt, fitness.KL)
	if err != nil {
		return nil, err
	}
	fit, err := scoreAll(ctx, ev, mode.Blocks(), cands, b, opt.Progress)
	if err != nil {
		return nil, err
	}
	res := &Result{Batch: b, Ranking: rankScored(cands, fit), Evaluations: int64(len(cands))}
	res.Profile, res.Fitness = res.Ranking[0].Profile.Clone(), res.Ranking[0].Fitness
	_, _, res.Tokens = ev.Stats()
	res.Info.Profiles = len(cands)
	res.Info.Fitness = "kl"
	return res, nil
}

// RandomPlan is the budget of the Random baseline.
type RandomPlan struct {
	// Samples is N, the number of distinct random profiles screened.
	Samples int
	// ScreenTokens is the batch all N are scored on (RandomScreenTokens).
	ScreenTokens int
	// Survivors are re-scored on a fresh batch of FinalTokens tokens; the best wins.
	Survivors, FinalTokens int
	// EvoEvaluations and EvoTokens are the evaluations and input tokens of an EvoPress run at
	// its default settings for the same n and k (drop.Defaults, drop.InitialCandidates).
	EvoEvaluations, EvoTokens int64
}

// EvoPressBudget returns the candidate evaluations and input tokens of an EvoPress depth-pruning
// run with the reference defaults for dropping k of n (init, then per generation λ offspring
// on the first stage and the survivors — plus the parent at the last stage — on the next).
func EvoPressBudget(n, k int) (evaluations, tokens int64) {
	s := drop.Defaults(n, k)
	evaluations = int64(drop.InitialCandidates)
	tokens = int64(drop.InitialCandidates) * int64(s.InitTokens)
	for g := 0; g < s.Generations; g++ {
		cands := s.Offspring
		for i, st := range s.Stages {
			if i == len(s.Stages)-1 {
				cands++ // the parent re-enters at the last stage
			}
			evaluations += int64(cands)
			tokens += int64(cands) * int64(st.Tokens)
			cands = st.Survivors
		}
	}
	return evaluations, tokens
}

// NewRandomPlan returns Random's budget for dropping k of n blocks: by default N = the
// evaluations of an EvoPress run (samples > 0 overrides), all screened on RandomScreenTokens,
// and as many of the best re-scored on a batch of finalTokens (0: DefaultFitnessTokens) as
// EvoPress's remaining token budget pays for (at least 1), so that both spend the same tokens.
// N is capped at the size of the space.
func NewRandomPlan(n, k, samples, finalTokens int, space *big.Int) RandomPlan {
	ev, tok := EvoPressBudget(n, k)
	if finalTokens <= 0 {
		finalTokens = DefaultFitnessTokens
	}
	p := RandomPlan{Samples: int(ev), ScreenTokens: RandomScreenTokens, FinalTokens: finalTokens, EvoEvaluations: ev, EvoTokens: tok}
	if samples > 0 {
		p.Samples = samples
	}
	if space.IsInt64() && space.Int64() < int64(p.Samples) {
		p.Samples = int(space.Int64())
	}
	left := tok - int64(p.Samples)*int64(p.ScreenTokens)
	p.Survivors = int(max(1, min(int64(p.Samples), left/int64(finalTokens))))
	return p
}

// randomStream is the PCG stream of Random's profiles.
const randomStream = 0x72616e646f6d // "random"

// RandomProfiles draws up to want distinct legal random profiles of mode, seeded (the mode's
// own sampler, drop.Mode.Initial). Fewer come back only when the space is smaller.
func RandomProfiles(mode *drop.Mode, want int, seed uint64) []search.Levels {
	rng := newRand(seed, randomStream)
	seen := map[string]bool{}
	var out []search.Levels
	for tries := 0; len(out) < want && tries < 1000+100*want/drop.InitialCandidates; tries++ {
		for _, p := range mode.Initial(rng) {
			if len(out) == want {
				break
			}
			if key := p.String(); !seen[key] {
				seen[key] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// runRandom screens N random profiles on one batch and re-scores the best on a larger one.
func runRandom(ctx context.Context, m *model.Model, pool [][]int, mode *drop.Mode, opt Options) (*Result, error) {
	n, k := mode.Blocks(), mode.K()
	plan := NewRandomPlan(n, k, opt.Samples, opt.Tokens, SpaceSize(mode, opt.Keep))
	if opt.Survivors > 0 {
		plan.Survivors = opt.Survivors
	}
	cands := RandomProfiles(mode, plan.Samples, opt.Seed)
	plan.Samples = len(cands)
	plan.Survivors = min(plan.Survivors, len(cands))
	ev, err := newEvaluator(m, pool, mode, opt, fitness.KL)
	if err != nil {
		return nil, err
	}
	seqLen := len(pool[0])
	b1 := SampleBatch(len(pool), seqLen, plan.ScreenTokens, opt.Seed, 1)
	progress := opt.Progress
	total := len(cands) + plan.Survivors
	var p1 func(int, int)
	if progress != nil {
		p1 = func(done, _ int) { progress(done, total) }
	}
	fit, err := scoreAll(ctx, ev, n, cands, b1, p1)
	if err != nil {
		return nil, err
	}
	screened := rankScored(cands, fit)
	final := make([]search.Levels, plan.Survivors)
	for i := range final {
		final[i] = screened[i].Profile
	}
	b2 := SampleBatch(len(pool), seqLen, plan.FinalTokens, opt.Seed, 2)
	var p2 func(int, int)
	if progress != nil {
		p2 = func(done, _ int) { progress(len(cands)+done, total) }
	}
	fit2, err := scoreAll(ctx, ev, n, final, b2, p2)
	if err != nil {
		return nil, err
	}
	res := &Result{Batch: b2, Ranking: rankScored(final, fit2), Evaluations: int64(total)}
	res.Profile, res.Fitness = res.Ranking[0].Profile.Clone(), res.Ranking[0].Fitness
	_, _, res.Tokens = ev.Stats()
	res.Info.Samples = plan.Samples
	res.Info.ScreenTokens = plan.ScreenTokens
	res.Info.Survivors = plan.Survivors
	res.Info.FinalTokens = plan.FinalTokens
	res.Info.EvopressEvaluations = plan.EvoEvaluations
	res.Info.EvopressTokens = plan.EvoTokens
	res.Info.Fitness = "kl"
	return res, nil
}
