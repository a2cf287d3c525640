package fitness

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search"
)

// Kind selects the fitness function.
type Kind string

// The fitness functions.
const (
	// KL is KL(P_dense ‖ P_candidate) averaged over predicting positions.
	KL Kind = "kl"
	// PPL is the candidate's mean next-token NLL on the calibration batch (log perplexity).
	PPL Kind = "ppl"
)

// ParseKind checks a --fitness value.
func ParseKind(s string) (Kind, error) {
	switch Kind(s) {
	case KL, PPL:
		return Kind(s), nil
	}
	return "", fmt.Errorf("unknown fitness %q (want kl or ppl)", s)
}

// Builder turns a profile (levels in the mode's unit order) into a candidate model, typically a
// Clone of the dense model with sub-blocks skipped or layer weights swapped.
type Builder func(p search.Levels) (*model.Model, error)

// Evaluator scores candidate profiles for the search engine (it implements search.Evaluator).
type Evaluator struct {
	teacher   *Teacher
	build     Builder
	kind      Kind
	unitBlock []int
	nBlocks   int

	// PrefixReuse starts each candidate from the parent's hidden states before the first block
	// it changes (default true). Results are identical either way.
	PrefixReuse bool
	// SubBatch is how many sequences one forward processes (default 16).
	SubBatch int

	blocksRun, blocksFull atomic.Int64
	tokens                atomic.Int64
}

// NewEvaluator returns an evaluator for profiles over units (unit names as arch.ParseUnit reads
// them; the block of each is kept for prefix reuse).
func NewEvaluator(t *Teacher, units []string, build Builder, kind Kind) (*Evaluator, error) {
	if kind == "" {
		kind = KL
	}
	if _, err := ParseKind(string(kind)); err != nil {
		return nil, err
	}
	e := &Evaluator{teacher: t, build: build, kind: kind, nBlocks: len(t.dense.Blocks), PrefixReuse: true, SubBatch: 16}
	for _, name := range units {
		u, err := arch.ParseUnit(name)
		if err != nil || u.Block() >= e.nBlocks {
			return nil, fmt.Errorf("fitness: unit %q does not name a block of the %d-block model (want model.layers.N....)", name, e.nBlocks)
		}
		e.unitBlock = append(e.unitBlock, u.Block())
	}
	return e, nil
}

// Stats reports the blocks computed and the blocks a full forward of every candidate would have
// computed, and the input tokens scored, since the evaluator was made.
func (e *Evaluator) Stats() (blocksRun, blocksFull, tokens int64) {
	return e.blocksRun.Load(), e.blocksFull.Load(), e.tokens.Load()
}

// firstChanged is the first block in which child differs from parent (nBlocks when equal).
func (e *Evaluator) firstChanged(parent, child search.Levels) int {
	f := e.nBlocks
	for i := range child {
		if child[i] != parent[i] && e.unitBlock[i] < f {
			f = e.unitBlock[i]
		}
	}
	return f
}

// Evaluate implements search.Evaluator: EvaluateRange over every sub-batch, then Combine.
func (e *Evaluator) Evaluate(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
	sums, count, err := e.EvaluateRange(ctx, parent, cands, b, 0, e.SubBatches(b))
	if err != nil {
		return nil, err
	}
	return Combine([][][]float64{sums}, []int{count}, len(cands)), nil
}

// SubBatches returns how many forwards of SubBatch sequences cover the batch b.
func (e *Evaluator) SubBatches(b search.Batch) int {
	sub := max(1, e.SubBatch)
	return (len(b.Chunks) + sub - 1) / sub
}

// EvaluateRange scores cands on the sub-batches [lo, hi) of b (sub-batch k holds the chunks
// b.Chunks[k·SubBatch : (k+1)·SubBatch]). sums[k−lo][i] is candidate i's summed fitness over
// the predicting positions of sub-batch k, and count the number of those positions (the same
// for every candidate). Ranges scored apart and merged with Combine give exactly Evaluate's
// values, which lets a distributed search split one candidate's batch over several workers.
func (e *Evaluator) EvaluateRange(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch, lo, hi int) (sums [][]float64, count int, err error) {
	if len(b.Chunks) == 0 {
		return nil, 0, fmt.Errorf("fitness: empty batch")
	}
	if len(cands) == 0 {
		return nil, 0, fmt.Errorf("fitness: no candidates to score")
	}
	if lo < 0 || hi > e.SubBatches(b) || lo >= hi {
		return nil, 0, fmt.Errorf("fitness: sub-batch range [%d, %d) outside the batch's %d", lo, hi, e.SubBatches(b))
	}
	L := b.Tokens / len(b.Chunks)
	if L < 2 {
		return nil, 0, fmt.Errorf("fitness: batch of %d tokens over %d chunks: sequences shorter than 2 tokens", b.Tokens, len(b.Chunks))
	}
	// Candidates are built one at a time, just before their forward, and dropped after it: a
	// model holds the database levels its layers take, and those its builder's cache cannot
	// keep are its own, so building every candidate first would hold them all at once (32
	// initial candidates at 1B shapes: gigabytes). Several sub-batches build each candidate
	// once per sub-batch, at the cost of reading those levels again.
	first := make([]int, len(cands))
	for i, c := range cands {
		if parent != nil && e.PrefixReuse && len(parent) == len(c) {
			first[i] = e.firstChanged(parent, c)
		}
	}
	needed := map[int]bool{}
	for _, f := range first {
		if f > 0 {
			needed[f] = true
		}
	}
	sub := max(1, e.SubBatch)
	for k := lo; k < hi; k++ {
		chunks := b.Chunks[k*sub : min((k+1)*sub, len(b.Chunks))]
		tokens := make([][]int, len(chunks))
		for i, c := range chunks {
			if c < 0 || c >= len(e.teacher.pool) {
				return nil, 0, fmt.Errorf("fitness: chunk %d outside the pool of %d", c, len(e.teacher.pool))
			}
			if len(e.teacher.pool[c]) < L {
				return nil, 0, fmt.Errorf("fitness: chunk %d has %d tokens, batch needs %d", c, len(e.teacher.pool[c]), L)
			}
			tokens[i] = e.teacher.pool[c][:L]
		}
		var ents []*entry
		if e.kind == KL {
			var err error
			if ents, err = e.teacher.entries(chunks); err != nil {
				return nil, 0, err
			}
		}
		// The parent, like the candidates, is built for the sub-batch and dropped once its
		// states are saved, so at most one model's levels are held besides the cache's.
		var m0 *model.Model
		var err error
		if len(needed) > 0 {
			m0, err = e.build(parent)
		} else {
			m0, err = e.build(cands[0])
		}
		if err != nil {
			return nil, 0, err
		}
		// Candidates (and their parent) differ from each other only in their blocks (prefix
		// reuse relies on it), so one embedding serves them all: theirs, which may be stored as
		// the compressed file stores it (a GGUF's quantized token embedding), not the teacher's.
		a0, err := m0.Embedding(tokens)
		if err != nil {
			return nil, 0, err
		}
		saved := map[int]*model.Activations{0: a0}
		if len(needed) > 0 {
			cur := a0.Clone()
			for blk := 0; blk < e.nBlocks; blk++ {
				if err := ctx.Err(); err != nil {
					return nil, 0, err
				}
				m0.Forward(cur, blk, blk+1, nil)
				if needed[blk+1] {
					saved[blk+1] = cur.Clone()
				}
			}
			m0 = nil
		}
		row := make([]float64, len(cands))
		work := &model.Activations{}
		for i := range cands {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
			m := m0
			if m == nil {
				if m, err = e.build(cands[i]); err != nil {
					return nil, 0, err
				}
			}
			m0 = nil
			f := first[i]
			work.CopyFrom(saved[f])
			m.Forward(work, f, e.nBlocks, nil)
			e.blocksRun.Add(int64(e.nBlocks - f))
			e.blocksFull.Add(int64(e.nBlocks))
			s, n := e.score(m, work, tokens, ents)
			if math.IsNaN(s) || math.IsInf(s, 0) {
				// Candidates are built from a dense model whose weights were checked at load and
				// from checksummed database levels: a non-finite fitness means broken input, and
				// ranking it (NaN compares false with everything) would corrupt the search.
				return nil, 0, fmt.Errorf("fitness: candidate %d %v: %s %v on pool chunks %v: %w",
					i, cands[i], e.kind, s, chunks, m.NonFiniteLoss(tokens, string(e.kind), s))
			}
			row[i] = s
			if i == 0 {
				count += n
			}
		}
		sums = append(sums, row)
		e.tokens.Add(int64(len(cands) * len(chunks) * L))
	}
	return sums, count, nil
}

// Combine merges the partial sums of consecutive sub-batch ranges, in order (parts[j] and
// counts[j] from EvaluateRange over the j-th range), into the mean fitness of n candidates:
// the same additions in the same order as one EvaluateRange over the whole batch, so the
// result is bit-identical to Evaluate's.
func Combine(parts [][][]float64, counts []int, n int) []float64 {
	sums := make([]float64, n)
	count := 0
	for j, part := range parts {
		for _, row := range part {
			for i := range sums {
				sums[i] += row[i]
			}
		}
		count += counts[j]
	}
	for i := range sums {
		sums[i] /= float64(count)
	}
	return sums
}

// score returns the summed fitness over the predicting positions of a's sequences and their count.
func (e *Evaluator) score(m *model.Model, a *model.Activations, tokens [][]int, ents []*entry) (float64, int) {
	if e.kind == PPL {
		return m.NLL(a, tokens)
	}
	T := a.T
	partial := make([]float64, a.Rows())
	k := e.teacher.opt.TopK
	m.ForEachLogits(a, func(row int, logits []float32) {
		b, pos := row/T, row%T
		sp := scratchPool.Get().(*[]float32)
		if len(*sp) < len(logits) {
			*sp = make([]float32, len(logits))
		}
		partial[row] = ents[b].klRow(pos, logits, k, *sp)
		scratchPool.Put(sp)
	})
	var s float64
	n := 0
	for b := 0; b < a.B; b++ {
		for t := 0; t < T-1; t++ {
			s += partial[b*T+t]
			n++
		}
	}
	return s, n
}

var scratchPool = sync.Pool{New: func() any { return new([]float32) }}

var _ search.Evaluator = (*Evaluator)(nil)
