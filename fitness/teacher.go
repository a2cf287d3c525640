// Package fitness scores candidate models against the dense model on calibration text: the
// KL divergence KL(P_dense ‖ P_candidate) of the next-token distributions averaged over positions
// (the last position of each sequence dropped), or the candidate's perplexity.
//
// The dense model's distributions are computed once per calibration chunk and cached
// (Teacher), memory-bounded: full distributions are stored as float16 probabilities with the
// per-position constant Σ p·log p, or, for large vocabularies, only the top-k tokens
// (Options.TopK). A chunk evicted from the cache is recomputed on demand.
//
// Evaluator adapts a Teacher to the search engine. It reuses the parent's hidden states up to the
// first block in which a candidate differs from its parent ("prefix reuse"), which is exact: the
// blocks before it compute the same function on the same input.
package fitness

import (
	"container/list"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/model"
)

// Options configures a Teacher.
type Options struct {
	// TopK > 0 keeps only the dense model's k most likely tokens per position; both
	// distributions are restricted to them and renormalised ("top-k KL"). 0 = full KL.
	TopK int
	// CacheBytes bounds the memory of cached dense distributions (default 2 GiB).
	CacheBytes int64
	// Batch is how many chunks one dense forward processes (default 16).
	Batch int
}

// Teacher holds the dense model and its cached next-token distributions on a calibration pool.
type Teacher struct {
	dense *model.Model
	pool  [][]int
	opt   Options

	mu    sync.Mutex
	cache map[int]*list.Element
	lru   *list.List
	bytes int64
}

// entry is the dense distribution of one chunk at its T−1 predicting positions.
type entry struct {
	chunk int
	// full KL: probs [(T−1)·V] float16 bits of p̂ = f16(p); negEnt[t] = Σ p̂·log p; mass[t] = Σ p̂.
	probs          []uint16
	negEnt, mass   []float64
	topIdx         []int32 // top-k: [(T−1)·k] token ids
	topLogp        []float32
	topP           []float32 // renormalised top-k probabilities
	topNegEnt      []float64 // Σ p̃·log p̃ per position
	sizeBytes      int64
	positions, voc int
}

// NewTeacher returns a teacher for the dense model over the calibration pool (chunks of equal
// length). Nothing is computed until a chunk is first needed.
func NewTeacher(dense *model.Model, pool [][]int, opt Options) (*Teacher, error) {
	if len(pool) == 0 {
		return nil, fmt.Errorf("fitness: empty calibration pool")
	}
	if opt.TopK < 0 || opt.TopK > dense.Vocab {
		return nil, fmt.Errorf("fitness: top-k %d outside [0, %d]", opt.TopK, dense.Vocab)
	}
	if opt.TopK == dense.Vocab {
		opt.TopK = 0
	}
	if opt.CacheBytes <= 0 {
		opt.CacheBytes = 2 << 30
	}
	if opt.Batch <= 0 {
		opt.Batch = 16
	}
	return &Teacher{dense: dense, pool: pool, opt: opt, cache: map[int]*list.Element{}, lru: list.New()}, nil
}

// Dense returns the dense model.
func (t *Teacher) Dense() *model.Model { return t.dense }

// Pool returns the calibration chunks.
func (t *Teacher) Pool() [][]int { return t.pool }

// TopK returns the top-k setting (0 = full KL).
func (t *Teacher) TopK() int { return t.opt.TopK }

// entries returns the cached entries of the chunks, computing missing ones with dense forwards.
func (t *Teacher) entries(chunks []int) ([]*entry, error) {
	out := make([]*entry, len(chunks))
	var missing []int
	t.mu.Lock()
	for i, c := range chunks {
		if c < 0 || c >= len(t.pool) {
			t.mu.Unlock()
			return nil, fmt.Errorf("fitness: chunk %d outside the pool of %d", c, len(t.pool))
		}
		if el, ok := t.cache[c]; ok {
			t.lru.MoveToFront(el)
			out[i] = el.Value.(*entry)
		} else {
			missing = append(missing, i)
		}
	}
	t.mu.Unlock()
	for lo := 0; lo < len(missing); lo += t.opt.Batch {
		hi := min(lo+t.opt.Batch, len(missing))
		batch := make([][]int, 0, hi-lo)
		for _, i := range missing[lo:hi] {
			batch = append(batch, t.pool[chunks[i]])
		}
		es, err := t.compute(batch)
		if err != nil {
			return nil, err
		}
		t.mu.Lock()
		for j, i := range missing[lo:hi] {
			e := es[j]
			e.chunk = chunks[i]
			out[i] = e
			if _, ok := t.cache[e.chunk]; !ok {
				t.cache[e.chunk] = t.lru.PushFront(e)
				t.bytes += e.sizeBytes
			}
		}
		for t.bytes > t.opt.CacheBytes && t.lru.Len() > 0 {
			el := t.lru.Back()
			old := el.Value.(*entry)
			t.lru.Remove(el)
			delete(t.cache, old.chunk)
			t.bytes -= old.sizeBytes
		}
		t.mu.Unlock()
	}
	return out, nil
}

// EntryBytes is the memory the teacher's cache holds for one calibration chunk of T tokens
// over a vocabulary of vocab tokens, at its T−1 predicting positions: 2·vocab + 16 bytes per
// position for full distributions (float16 probabilities, Σ p̂·log p and Σ p̂ in float64), or
// 12·topK + 8 with top-k (token ids, log-probabilities and probabilities, Σ p̃·log p̃).
func EntryBytes(T, vocab, topK int) int64 {
	P := int64(T - 1)
	if topK > 0 && topK < vocab {
		return P * (12*int64(topK) + 8)
	}
	return P * (2*int64(vocab) + 16)
}

// compute runs the dense model on chunks and builds their entries.
func (t *Teacher) compute(chunks [][]int) ([]*entry, error) {
	a, err := t.dense.Embedding(chunks)
	if err != nil {
		return nil, err
	}
	t.dense.Forward(a, 0, len(t.dense.Blocks), nil)
	T, V, k := a.T, t.dense.Vocab, t.opt.TopK
	P := T - 1
	es := make([]*entry, len(chunks))
	for i := range es {
		e := &entry{positions: P, voc: V}
		if k == 0 {
			e.probs = make([]uint16, P*V)
			e.negEnt = make([]float64, P)
			e.mass = make([]float64, P)
			e.sizeBytes = EntryBytes(T, V, 0)
		} else {
			e.topIdx = make([]int32, P*k)
			e.topLogp = make([]float32, P*k)
			e.topP = make([]float32, P*k)
			e.topNegEnt = make([]float64, P)
			e.sizeBytes = EntryBytes(T, V, k)
		}
		es[i] = e
	}
	t.dense.ForEachLogits(a, func(row int, logits []float32) {
		b, pos := row/T, row%T
		e := es[b]
		lse := model.LogSumExp(logits)
		if k == 0 {
			p := e.probs[pos*V : (pos+1)*V]
			var negEnt, mass float64
			for v, z := range logits {
				lp := z - lse
				h := hf.Float32ToFloat16(float32(math.Exp(float64(lp))))
				p[v] = h
				ph := float64(f16[h])
				negEnt += ph * float64(lp)
				mass += ph
			}
			e.negEnt[pos], e.mass[pos] = negEnt, mass
			return
		}
		idx := topK(logits, k)
		sub := make([]float32, k)
		for j, v := range idx {
			sub[j] = logits[v]
		}
		lseK := model.LogSumExp(sub)
		var negEnt float64
		for j, v := range idx {
			lp := sub[j] - lseK
			pr := float32(math.Exp(float64(lp)))
			e.topIdx[pos*k+j] = int32(v)
			e.topLogp[pos*k+j] = lp
			e.topP[pos*k+j] = pr
			negEnt += float64(pr) * float64(lp)
		}
		e.topNegEnt[pos] = negEnt
		_ = lse
	})
	for b, e := range es {
		ent := e.negEnt
		if k > 0 {
			ent = e.topNegEnt
		}
		for _, v := range ent {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("fitness: the dense model's distribution on a calibration chunk: %w",
					t.dense.NonFiniteLoss(chunks[b:b+1], "entropy", v))
			}
		}
	}
	return es, nil
}

// topK returns the indices of the k largest values, in increasing index order (deterministic).
func topK(x []float32, k int) []int {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		if x[idx[a]] != x[idx[b]] {
			return x[idx[a]] > x[idx[b]]
		}
		return idx[a] < idx[b]
	})
	idx = idx[:k]
	sort.Ints(idx)
	return idx
}

// f16 decodes every float16 bit pattern.
var f16 = func() []float32 {
	t := make([]float32, 1<<16)
	for i := range t {
		t[i] = hf.Float16ToFloat32(uint16(i))
	}
	return t
}()

// klRow returns KL(P_dense ‖ P_candidate) at one position given the candidate's logits.
func (e *entry) klRow(pos int, logits []float32, k int, scratch []float32) float64 {
	if k == 0 {
		V := e.voc
		p := e.probs[pos*V : (pos+1)*V]
		pf := scratch[:V]
		for v, h := range p {
			pf[v] = f16[h]
		}
		lse := float64(model.LogSumExp(logits))
		// Σ p̂ (log p − (z − lse)) = negEnt − Σ p̂ z + lse·Σ p̂
		return e.negEnt[pos] - float64(kernels.Dot(pf, logits)) + lse*e.mass[pos]
	}
	sub := scratch[:k]
	for j := 0; j < k; j++ {
		sub[j] = logits[e.topIdx[pos*k+j]]
	}
	lseK := float64(model.LogSumExp(sub))
	kl := e.topNegEnt[pos]
	for j := 0; j < k; j++ {
		kl -= float64(e.topP[pos*k+j]) * (float64(sub[j]) - lseK)
	}
	return kl
}

// Measure returns the mean KL(dense ‖ m) and m's mean next-token NLL over the given pool chunks
// in full, from one forward of m per batch of chunks: the held-out comparison of a compressed
// model with the dense one.
func (t *Teacher) Measure(m *model.Model, chunks []int) (kl, nll float64, err error) {
	var klSum, nllSum float64
	n := 0
	for lo := 0; lo < len(chunks); lo += t.opt.Batch {
		hi := min(lo+t.opt.Batch, len(chunks))
		ents, err := t.entries(chunks[lo:hi])
		if err != nil {
			return 0, 0, err
		}
		tokens := make([][]int, hi-lo)
		for i, c := range chunks[lo:hi] {
			tokens[i] = t.pool[c]
		}
		a, err := m.Embedding(tokens)
		if err != nil {
			return 0, 0, err
		}
		m.Forward(a, 0, len(m.Blocks), nil)
		T := a.T
		kls := make([]float64, a.Rows())
		nlls := make([]float64, a.Rows())
		k := t.opt.TopK
		m.ForEachLogits(a, func(row int, logits []float32) {
			b, pos := row/T, row%T
			nlls[row] = float64(model.LogSumExp(logits) - logits[tokens[b][pos+1]])
			sp := scratchPool.Get().(*[]float32)
			if len(*sp) < len(logits) {
				*sp = make([]float32, len(logits))
			}
			kls[row] = ents[b].klRow(pos, logits, k, *sp)
			scratchPool.Put(sp)
		})
		for b := 0; b < a.B; b++ {
			for p := 0; p < T-1; p++ {
				if v := kls[b*T+p] + nlls[b*T+p]; math.IsNaN(v) || math.IsInf(v, 0) {
					return 0, 0, fmt.Errorf("fitness: pool chunk %d: %w", chunks[lo+b], m.NonFiniteLoss(tokens[b:b+1], "loss", v))
				}
				klSum += kls[b*T+p]
				nllSum += nlls[b*T+p]
				n++
			}
		}
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("fitness: Measure: no tokens")
	}
	return klSum / float64(n), nllSum / float64(n), nil
}
