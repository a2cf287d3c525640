// Package baselines implements the depth-pruning methods EvoPress is compared against
// (docs/design.md, "The method": baselines), each returning a drop profile over the units of
// package search/drop (the sub-blocks model.layers.N.self_attn and model.layers.N.mlp, level 1 =
// dropped):
//
//   - ShortGPT (Men et al. 2024): Block Influence BI_i = 1 − mean cosine similarity between block
//     i's input and output hidden states over every calibration token; the k blocks with the
//     lowest BI are dropped.
//   - WindowCosine (Gromov et al. 2024, "The Unreasonable Ineffectiveness of the Deeper Layers"):
//     for every window of k consecutive blocks [ℓ, ℓ+k), the angular distance
//     arccos(cos(h_ℓ, h_{ℓ+k}))/π between the hidden states before and after it; the window with
//     the smallest distance is dropped. The paper measures the last token of each sequence
//     (WindowLast, the default); WindowAll averages the per-token angular distance over every
//     position instead, which looked attractive (our damage measure is next-token loss at every
//     position, and a chunk then gives 256 observations instead of one) but measured worse on
//     llama-pd-11m: it picks blocks 7–9 (held-out perplexity 85.0) where the last token picks
//     3–5 (79.5; docs/results.md). The paper's choice is therefore the default. The paper's
//     "healing" fine-tune is not part of any method compared here.
//   - ShortenedPPL (Kim et al. 2024, Shortened LLaMA, PPL criterion): the calibration perplexity
//     of the model with each single block removed; the k blocks whose removal raises it least
//     are dropped (one-shot, as in the paper).
//   - NormRatio (weight subcloning, Samragh et al. 2023): ‖f(x) − x‖/‖f(x)‖ per token, f(x)
//     the block's output and x its input (the block's relative contribution to the residual
//     stream), averaged over calibration tokens; the k lowest are dropped.
//   - Random: the best of N random legal profiles by the search's KL fitness, with EvoPress's
//     token budget (see RandomPlan).
//   - Exhaustive: every legal profile scored by KL on one fixed batch; refused above
//     Options.MaxProfiles profiles.
//
// The four score-based methods drop whole blocks, as in their papers. Random and Exhaustive
// drop k attention and k MLP sub-blocks independently, like EvoPress's default, or whole blocks
// with Options.WholeBlocks.
//
// Statistics are computed on a seeded sample of calibration chunks (Options.Tokens, Options.Seed;
// see SampleBatch), the dense model's hidden states at every block boundary.
package baselines

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
)

// Method names a depth-pruning baseline.
type Method string

// The depth-pruning baselines.
const (
	ShortGPT     Method = "shortgpt"
	WindowCosine Method = "window-cosine"
	ShortenedPPL Method = "shortened-ppl"
	NormRatio    Method = "norm-ratio"
	Random       Method = "random"
	Exhaustive   Method = "exhaustive"
)

// Methods lists every depth-pruning baseline, in the order of the documentation.
var Methods = []Method{ShortGPT, WindowCosine, ShortenedPPL, NormRatio, Random, Exhaustive}

// ParseMethod checks a --method value.
func ParseMethod(s string) (Method, error) {
	for _, m := range Methods {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, len(Methods))
	for i, m := range Methods {
		names[i] = string(m)
	}
	return "", fmt.Errorf("unknown depth-pruning method %q (want one of %s)", s, strings.Join(names, ", "))
}

// Window positions for WindowCosine.
const (
	// WindowAll averages the angular distance over every token position.
	WindowAll = "all"
	// WindowLast uses only the last token of each sequence, as Gromov et al. do (default).
	WindowLast = "last"
)

// Defaults of Options fields left zero.
const (
	// DefaultMaxProfiles is the largest space Exhaustive enumerates.
	DefaultMaxProfiles = 5000
	// DefaultFitnessTokens is the batch size Exhaustive scores on, and Random's final stage
	// (EvoPress's last selection stage).
	DefaultFitnessTokens = 32768
	// DefaultShortenedPPLTokens is the calibration budget of ShortenedPPL (n forwards).
	DefaultShortenedPPLTokens = 32768
	// RandomScreenTokens is the batch every random profile is first scored on (EvoPress's
	// initialisation and first-stage batch).
	RandomScreenTokens = 2048
)

// Options configures a baseline run.
type Options struct {
	// K is the number of blocks dropped (score-based methods, WholeBlocks), or of attention and
	// of MLP sub-blocks each (Random and Exhaustive without WholeBlocks).
	K int
	// WholeBlocks makes Random and Exhaustive drop whole blocks. The score-based methods
	// always drop whole blocks.
	WholeBlocks bool
	// Keep names units or blocks that may not be dropped (see drop.Options.Keep).
	Keep []string
	// Tokens is the calibration token budget: of the statistics (ShortGPT, WindowCosine,
	// NormRatio; 0 = the whole pool), of the perplexity batch (ShortenedPPL; 0 =
	// DefaultShortenedPPLTokens), of the fitness batch (Exhaustive; 0 = DefaultFitnessTokens),
	// of Random's final stage (0 = DefaultFitnessTokens).
	Tokens int
	// Seed seeds the batch sampling and Random's profiles.
	Seed uint64
	// Samples is Random's N (0: RandomPlan's default, the evaluations of an EvoPress run).
	Samples int
	// Survivors is how many of Random's screened profiles are re-scored on the final batch
	// (0: as many as EvoPress's remaining token budget pays for; see NewRandomPlan).
	Survivors int
	// MaxProfiles bounds Exhaustive (0: DefaultMaxProfiles).
	MaxProfiles int
	// WindowPositions is WindowLast (default) or WindowAll.
	WindowPositions string
	// Teacher supplies the cached dense distributions for KL (Random, Exhaustive); it must be
	// a teacher of the same model over the same pool. When nil, one is made with default
	// options.
	Teacher *fitness.Teacher
	// NoPrefixReuse turns off the evaluator's prefix reuse (same results, slower).
	NoPrefixReuse bool
	// SubBatch is how many sequences one forward processes (default 16).
	SubBatch int
	// Progress, when set, is called with the candidates scored so far and their total as a
	// fitness-based method (ShortenedPPL, Random, Exhaustive) advances.
	Progress func(done, total int)
}

// Scored is a profile with its fitness on a batch.
type Scored struct {
	Profile search.Levels `json:"profile"`
	Fitness float64       `json:"fitness"`
}

// Result is a baseline's outcome.
type Result struct {
	Method Method
	// Units are the profile's units (drop.UnitNames).
	Units []string
	// Profile is the chosen drop profile, legal for the drop mode with the run's K,
	// WholeBlocks and Keep.
	Profile search.Levels
	// Dropped are the blocks whose attention (Attn) and MLP (MLP) sub-blocks are dropped.
	Attn, MLP []int
	// Scores: per block (ShortGPT's BI, NormRatio's ratio, ShortenedPPL's mean NLL with the
	// block removed) or per window start (WindowCosine's angular distance); nil for Random and
	// Exhaustive. Kept (undroppable) blocks and illegal windows carry NaN.
	Scores []float64
	// Fitness is the chosen profile's KL on the (last) batch it was scored on (Random,
	// Exhaustive); NaN for the score-based methods.
	Fitness float64
	// Ranking lists every scored profile best first (Exhaustive), or the final-stage survivors
	// (Random).
	Ranking []Scored
	// Batch is the calibration batch of the statistics or of the (final) fitness.
	Batch search.Batch
	// Evaluations counts candidate evaluations (fitness methods; ShortenedPPL: n).
	Evaluations int64
	// Tokens counts input tokens processed: forwards of candidates, or of the dense model.
	Tokens int64
	// Info records the run's settings and method-specific statistics: the profile's "search"
	// record.
	Info    profile.Record
	Elapsed time.Duration
}

// Run executes a baseline on model m with the calibration pool (chunks of equal length).
func Run(ctx context.Context, m *model.Model, pool [][]int, method Method, opt Options) (*Result, error) {
	if _, err := ParseMethod(string(method)); err != nil {
		return nil, err
	}
	if len(pool) == 0 || len(pool[0]) < 2 {
		return nil, fmt.Errorf("baselines: empty calibration pool")
	}
	seqLen := len(pool[0])
	for i, c := range pool {
		if len(c) != seqLen {
			return nil, fmt.Errorf("baselines: calibration chunk %d has %d tokens, want %d", i, len(c), seqLen)
		}
	}
	if opt.Tokens < 0 {
		return nil, fmt.Errorf("baselines: tokens = %d, want ≥ 0 (0: the method's default)", opt.Tokens)
	}
	if opt.Survivors < 0 {
		return nil, fmt.Errorf("baselines: survivors = %d, want ≥ 0 (0: the default)", opt.Survivors)
	}
	if opt.Samples < 0 {
		return nil, fmt.Errorf("baselines: samples = %d, want ≥ 0 (0: the default)", opt.Samples)
	}
	whole := opt.WholeBlocks || (method != Random && method != Exhaustive)
	n := len(m.Blocks)
	mode, err := drop.NewK(n, opt.K, drop.Options{WholeBlocks: whole, Keep: opt.Keep})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var res *Result
	switch method {
	case ShortGPT, NormRatio, WindowCosine:
		res, err = runStats(ctx, m, pool, mode, method, opt)
	case ShortenedPPL:
		res, err = runShortenedPPL(ctx, m, pool, mode, opt)
	case Random:
		res, err = runRandom(ctx, m, pool, mode, opt)
	case Exhaustive:
		res, err = runExhaustive(ctx, m, pool, mode, opt)
	}
	if err != nil {
		return nil, err
	}
	res.Method = method
	res.Units = mode.Units()
	if !mode.Legal(res.Profile) {
		return nil, fmt.Errorf("baselines: %s produced an illegal profile %v (a bug)", method, res.Profile)
	}
	res.Attn, res.MLP = mode.Dropped(res.Profile)
	res.Elapsed = time.Since(start)
	res.Info.K = opt.K
	res.Info.WholeBlocks = whole
	res.Info.Seed = opt.Seed
	res.Info.SeqLen = seqLen
	res.Info.CalibChunks = len(pool)
	res.Info.BatchTokens = res.Batch.Tokens
	res.Info.BatchChunks = len(res.Batch.Chunks)
	res.Info.Evaluations = res.Evaluations
	res.Info.Tokens = res.Tokens
	res.Info.ElapsedS = res.Elapsed.Seconds()
	return res, nil
}

// batchStream is the PCG stream of batch sampling, so that batches do not depend on what else
// the seed drives.
const batchStream = 0x626173656c696e65 // "baseline"

// SampleBatch draws a seeded batch of max(1, tokens/seqLen) distinct chunks of a pool of
// poolChunks chunks (all of them when tokens is 0 or exceeds the pool), in increasing order;
// Batch.Tokens is min(tokens, chunks·seqLen). The same arguments always give the same batch.
// stage distinguishes several batches drawn from one seed.
func SampleBatch(poolChunks, seqLen, tokens int, seed uint64, stage int) search.Batch {
	if tokens <= 0 || tokens > poolChunks*seqLen {
		tokens = poolChunks * seqLen
	}
	n := min(poolChunks, max(1, tokens/seqLen))
	rng := rand.New(rand.NewPCG(seed, batchStream+uint64(stage)))
	perm := rng.Perm(poolChunks)
	chunks := slices.Clone(perm[:n])
	slices.Sort(chunks)
	return search.Batch{Stage: stage, Chunks: chunks, Tokens: min(tokens, n*seqLen)}
}

// batchTokens returns the token sequences of a batch (each truncated to Tokens/len(Chunks)).
func batchTokens(pool [][]int, b search.Batch) [][]int {
	L := b.Tokens / len(b.Chunks)
	out := make([][]int, len(b.Chunks))
	for i, c := range b.Chunks {
		out[i] = pool[c][:L]
	}
	return out
}

// wholeProfile returns the whole-block profile dropping blocks.
func wholeProfile(n int, blocks []int) search.Levels {
	p := make(search.Levels, 2*n)
	for _, b := range blocks {
		p[2*b], p[2*b+1] = 1, 1
	}
	return p
}

// droppable returns which blocks, attention units and MLP units keep leaves droppable (the
// names were validated by drop.NewK: sub-block unit names or block names, see arch.ParseUnit).
func droppable(n int, keep []string) (blocks, attn, mlp []int) {
	kept := make(map[string]bool, len(keep))
	for _, s := range keep {
		kept[strings.TrimSpace(s)] = true
	}
	units := drop.UnitNames(n)
	for b := range n {
		blk := arch.Block(b).String()
		a := !kept[blk] && !kept[units[2*b]]
		ml := !kept[blk] && !kept[units[2*b+1]]
		if a {
			attn = append(attn, b)
		}
		if ml {
			mlp = append(mlp, b)
		}
		if a && ml {
			blocks = append(blocks, b)
		}
	}
	return blocks, attn, mlp
}

// newRand returns a PCG-seeded generator.
func newRand(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// nanScores returns a slice of n NaNs.
func nanScores(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// sortByScore orders indices by their score, lowest first; NaN ranks last and ties go to the
// lower index.
func sortByScore(idx []int, scores []float64) {
	key := func(i int) float64 {
		if math.IsNaN(scores[i]) {
			return math.Inf(1)
		}
		return scores[i]
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch ka, kb := key(a), key(b); {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return a - b
	})
}

// lowestK returns the k candidates (indices into scores, restricted to allowed) with the lowest
// scores, ties broken by the lower index, in increasing index order. NaN ranks last.
func lowestK(scores []float64, allowed []int, k int) []int {
	idx := slices.Clone(allowed)
	sortByScore(idx, scores)
	out := slices.Clone(idx[:k])
	slices.Sort(out)
	return out
}
