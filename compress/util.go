package compress

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"
)

// errNotFinite is wrapped by the input checks when a matrix holds NaN or ±Inf.
var errNotFinite = errors.New("compress: value is NaN or infinite")

// checkLayer validates the shape of a weight matrix W of rows×cols.
func checkLayer(name string, W []float32, rows, cols int) error {
	if rows <= 0 || cols <= 0 {
		return fmt.Errorf("compress: %s: rows and cols must be positive, got %d×%d", name, rows, cols)
	}
	if rows > math.MaxInt32/cols {
		return fmt.Errorf("compress: %s: layer %d×%d has more than 2³¹−1 weights", name, rows, cols)
	}
	if len(W) != rows*cols {
		return fmt.Errorf("compress: %s: len(W) = %d, want rows·cols = %d", name, len(W), rows*cols)
	}
	if i := firstNonFinite(W); i >= 0 {
		return fmt.Errorf("compress: %s: W[%d]: %w", name, i, errNotFinite)
	}
	return nil
}

// checkHessian validates the shape and the values of a cols×cols Hessian.
// Its diagonal must be non-negative (a Hessian 2XᵀX/N is positive
// semi-definite); the rest is checked by the factorisation.
func checkHessian(name string, H []float32, cols int) error {
	if len(H) != cols*cols {
		return fmt.Errorf("compress: %s: len(H) = %d, want cols² = %d", name, len(H), cols*cols)
	}
	if i := firstNonFinite(H); i >= 0 {
		return fmt.Errorf("compress: %s: H[%d]: %w", name, i, errNotFinite)
	}
	for i := 0; i < cols; i++ {
		if d := H[i*cols+i]; d < 0 {
			return fmt.Errorf("compress: %s: H[%d,%d] = %g is negative: H is not positive semi-definite", name, i, i, d)
		}
	}
	return nil
}

// checkFraction validates a sparsity in [0, 1].
func checkFraction(name string, s float64) error {
	if !(s >= 0 && s <= 1) {
		return fmt.Errorf("compress: %s: sparsity %v outside [0, 1]", name, s)
	}
	return nil
}

func firstNonFinite(x []float32) int {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}

// targetCount is the exact number of weights a sparsity s prunes out of n:
// round(s·n), halves rounded up.
func targetCount(s float64, n int) int {
	z := int(math.Floor(s*float64(n) + 0.5))
	return min(max(z, 0), n)
}

// cumShare returns round(total·part/whole) with halves rounded up, computed
// exactly in 128-bit integer arithmetic. It is the cumulative share used to
// split an exact total over consecutive pieces: piece b gets
// cumShare(total, end_b, whole) − cumShare(total, start_b, whole), so the
// pieces add up to total exactly and each differs from its proportional share
// by less than one. Requires 0 ≤ part ≤ whole, whole > 0, total ≥ 0.
func cumShare(total, part, whole int) int {
	hi, lo := bits.Mul64(2*uint64(total), uint64(part))
	var carry uint64
	lo, carry = bits.Add64(lo, uint64(whole), 0)
	hi += carry
	q, _ := bits.Div64(hi, lo, 2*uint64(whole))
	return int(q)
}

// selectSmallest reorders idx so that idx[:k] holds the k entries with the
// smallest keys[idx[i]], ties broken by the smaller index, i.e. the strict
// total order (key, index). Expected linear time (quickselect with a
// median-of-three pivot), falling back to a full sort of the remaining range
// when the partitions degenerate. keys must not hold NaN.
func selectSmallest(keys []float64, idx []int32, k int) {
	if k <= 0 || k >= len(idx) {
		return
	}
	less := func(a, b int32) bool {
		ka, kb := keys[a], keys[b]
		return ka < kb || (ka == kb && a < b)
	}
	t := k - 1 // the position that must hold the k-th smallest element
	lo, hi := 0, len(idx)-1
	budget := 2 * bits.Len(uint(len(idx)))
	for hi > lo {
		if budget == 0 {
			slices.SortFunc(idx[lo:hi+1], func(a, b int32) int {
				if less(a, b) {
					return -1
				}
				if less(b, a) {
					return 1
				}
				return 0
			})
			return
		}
		budget--
		mid := lo + (hi-lo)/2
		if less(idx[mid], idx[lo]) {
			idx[mid], idx[lo] = idx[lo], idx[mid]
		}
		if less(idx[hi], idx[lo]) {
			idx[hi], idx[lo] = idx[lo], idx[hi]
		}
		if less(idx[hi], idx[mid]) {
			idx[hi], idx[mid] = idx[mid], idx[hi]
		}
		pivot := idx[mid]
		i, j := lo, hi
		for i <= j {
			for less(idx[i], pivot) {
				i++
			}
			for less(pivot, idx[j]) {
				j--
			}
			if i <= j {
				idx[i], idx[j] = idx[j], idx[i]
				i++
				j--
			}
		}
		switch {
		case t <= j:
			hi = j
		case t >= i:
			lo = i
		default:
			return
		}
	}
}

// parallelRows runs fn over [0, rows) split into contiguous chunks, one per
// available CPU. fn must only touch the rows it is given.
func parallelRows(rows int, fn func(r0, r1 int)) {
	p := min(runtime.GOMAXPROCS(0), rows)
	if p <= 1 {
		fn(0, rows)
		return
	}
	var wg sync.WaitGroup
	chunk := (rows + p - 1) / p
	for r0 := 0; r0 < rows; r0 += chunk {
		r1 := min(r0+chunk, rows)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(r0, r1)
		}()
	}
	wg.Wait()
}
