package search_test

import (
	"context"
	"hash/fnv"
	"math"
	"sync"

	"github.com/evopress/evopress/search"
)

// batchNoise is a deterministic pseudo-random number in [0, 1) for a candidate on a batch:
// the same candidate gets other noise on another batch, as real fitness values do.
func batchNoise(b search.Batch, p search.Levels) float64 {
	h := fnv.New64a()
	var buf [8]byte
	put := func(v int) {
		for i := range buf {
			buf[i] = byte(uint64(v) >> (8 * i))
		}
		h.Write(buf[:])
	}
	put(b.Stage)
	put(b.Generation)
	for _, c := range b.Chunks {
		put(c)
	}
	put(-1)
	for _, v := range p {
		put(v)
	}
	return float64(h.Sum64()>>11) / (1 << 53)
}

// fnEval scores each candidate with f, optionally in parallel goroutines.
type fnEval struct {
	f        func(b search.Batch, p search.Levels) float64
	parallel bool
}

func (e fnEval) Evaluate(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
	out := make([]float64, len(cands))
	if !e.parallel {
		for i, c := range cands {
			out[i] = e.f(b, c)
		}
		return out, ctx.Err()
	}
	var wg sync.WaitGroup
	for i, c := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = e.f(b, c)
		}()
	}
	wg.Wait()
	return out, ctx.Err()
}

// sameRun compares two results, elapsed times aside.
func sameRun(a, b *search.Result) bool {
	if a == nil || b == nil {
		return a == b
	}
	if !a.Profile.Equal(b.Profile) || !sameFloat(a.Fitness, b.Fitness) || a.Generations != b.Generations ||
		a.Evaluations != b.Evaluations || a.Tokens != b.Tokens || len(a.History) != len(b.History) {
		return false
	}
	for i := range a.History {
		x, y := a.History[i], b.History[i]
		if x.Generation != y.Generation || !sameFloat(x.Best, y.Best) || x.Replaced != y.Replaced ||
			x.Evaluations != y.Evaluations || x.Tokens != y.Tokens {
			return false
		}
	}
	return true
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
