package compress

import (
	"math"
)

// Magnitude prunes the rows×cols matrix W to the given sparsity by zeroing
// the round(sparsity·rows·cols) entries of least |w| over the whole layer
// (ties broken by the smaller row-major index), without any compensation.
// It returns a new matrix; W is not modified. The result has exactly that
// many pruned entries set to +0 (more zeros only if W already held more).
func Magnitude(W []float32, rows, cols int, sparsity float64) ([]float32, error) {
	if err := checkLayer("Magnitude", W, rows, cols); err != nil {
		return nil, err
	}
	if err := checkFraction("Magnitude", sparsity); err != nil {
		return nil, err
	}
	n := rows * cols
	z := targetCount(sparsity, n)
	keys := make([]float64, n)
	idx := make([]int32, n)
	for i, v := range W {
		keys[i] = math.Abs(float64(v))
		idx[i] = int32(i)
	}
	selectSmallest(keys, idx, z)
	out := make([]float32, n)
	copy(out, W)
	for _, i := range idx[:z] {
		out[i] = 0
	}
	return out, nil
}

// Wanda prunes W with the Wanda criterion (Sun et al. 2024, "A Simple and
// Effective Pruning Approach for Large Language Models"): the score of W_ij
// is |W_ij|·‖x_j‖, where ‖x_j‖ is the norm of input feature j over the
// calibration tokens, and each output row is pruned separately (the paper's
// per-output comparison group), without compensation. W is not modified.
//
// ‖x_j‖ comes from the Hessian: H = 2XᵀX/N gives H_jj = 2‖x_j‖²/N, so
// ‖x_j‖ = sqrt(N·H_jj/2) ∝ sqrt(H_jj); the constant factor does not change
// the order within a row, so sqrt(H_jj) is used. Dead inputs (H_jj = 0)
// score 0 and are pruned first.
//
// The total is exact, Z = round(sparsity·rows·cols); row r prunes
// round(Z·(r+1)/rows) − round(Z·r/rows) entries (cumulative rounding, i.e.
// floor or ceil of sparsity·cols), which is the paper's per-row count when
// sparsity·cols is an integer. Ties are broken by the smaller column.
func Wanda(W []float32, rows, cols int, H []float32, sparsity float64) ([]float32, error) {
	if err := checkLayer("Wanda", W, rows, cols); err != nil {
		return nil, err
	}
	if err := checkHessian("Wanda", H, cols); err != nil {
		return nil, err
	}
	if err := checkFraction("Wanda", sparsity); err != nil {
		return nil, err
	}
	norm := make([]float64, cols)
	for j := range norm {
		norm[j] = math.Sqrt(float64(H[j*cols+j]))
	}
	z := targetCount(sparsity, rows*cols)
	out := make([]float32, rows*cols)
	copy(out, W)
	keys := make([]float64, cols)
	idx := make([]int32, cols)
	prev := 0
	for r := 0; r < rows; r++ {
		upto := cumShare(z, r+1, rows)
		k := upto - prev
		prev = upto
		row := out[r*cols : (r+1)*cols]
		for j, v := range row {
			keys[j] = math.Abs(float64(v)) * norm[j]
			idx[j] = int32(j)
		}
		selectSmallest(keys, idx, k)
		for _, j := range idx[:k] {
			row[j] = 0
		}
	}
	return out, nil
}
