package compress

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// factor is what SparseGPT and GPTQ share for one layer: the dead inputs and
// the upper Cholesky factor of the inverse of the damped Hessian.
type factor struct {
	n     int
	dead  []bool // dead[i]: H_ii == 0 in the caller's H (original column order)
	nDead int
	// perm is the processing order (perm[k] = original column processed k-th)
	// or nil for the identity. u is expressed in processing order.
	perm []int
	// u is the n×n row-major upper Cholesky factor of (H + damp·I)⁻¹,
	// (H + damp·I)⁻¹ = uᵀu, zero below the diagonal, in float64.
	u []float64
}

// newFactor prepares H for the OBS column updates, as the reference does:
//
//  1. dead inputs (H_ii == 0) get H_ii = 1 (their row and column of H are
//     set to zero first, which a positive semi-definite H has anyway);
//  2. with actOrder, columns are reordered by decreasing diag(H) (after step
//     1, ties kept in column order);
//  3. H += percdamp·mean(diag H)·I;
//  4. H⁻¹ from the Cholesky factorisation of H, then U = the upper Cholesky
//     factor of H⁻¹ (H⁻¹ = UᵀU).
//
// Everything runs in float64 with gonum (LAPACK dpotrf/dpotri). It fails
// when H is not positive definite after damping or when H⁻¹ is too
// ill-conditioned to be trusted.
func newFactor(H []float32, n int, percdamp float64, actOrder bool) (*factor, error) {
	if !(percdamp >= 0) || math.IsInf(percdamp, 0) {
		return nil, fmt.Errorf("PercDamp %v must be finite and ≥ 0", percdamp)
	}
	f := &factor{n: n, dead: make([]bool, n)}
	h := make([]float64, n*n)
	for i, v := range H {
		h[i] = float64(v)
	}
	for i := 0; i < n; i++ {
		if h[i*n+i] == 0 {
			f.dead[i] = true
			f.nDead++
			for j := 0; j < n; j++ {
				h[i*n+j], h[j*n+i] = 0, 0
			}
			h[i*n+i] = 1
		}
	}
	if actOrder {
		f.perm = make([]int, n)
		for i := range f.perm {
			f.perm[i] = i
		}
		slices.SortStableFunc(f.perm, func(a, b int) int {
			da, db := h[a*n+a], h[b*n+b]
			switch {
			case da > db:
				return -1
			case da < db:
				return 1
			}
			return 0
		})
		p := make([]float64, n*n)
		for i, pi := range f.perm {
			for j, pj := range f.perm {
				p[i*n+j] = h[pi*n+pj]
			}
		}
		h = p
	}
	var mean float64
	for i := 0; i < n; i++ {
		mean += h[i*n+i]
	}
	damp := percdamp * mean / float64(n)
	for i := 0; i < n; i++ {
		h[i*n+i] += damp
	}

	// Each n×n float64 matrix is 512 MiB at n = 8192, so the steps reuse storage: Factorize
	// copies h, the inverse overwrites h (upper triangle; the factorisations read only that),
	// and the second factor is copied straight into f.u, whose lower triangle stays zero.
	var ch mat.Cholesky
	if !ch.Factorize(mat.NewSymDense(n, h)) {
		return nil, fmt.Errorf("H + %g·I is not positive definite (PercDamp %g); H must be a Hessian 2XᵀX/N, or raise the damping", damp, percdamp)
	}
	hinv := mat.NewSymDense(n, h)
	if err := ch.InverseTo(hinv); err != nil {
		return nil, fmt.Errorf("inverting the damped Hessian: %w (raise PercDamp)", err)
	}
	ch = mat.Cholesky{} // drop the first factor before the second is made
	var ch2 mat.Cholesky
	if !ch2.Factorize(hinv) {
		return nil, fmt.Errorf("the inverse of the damped Hessian is not numerically positive definite (raise PercDamp)")
	}
	f.u = make([]float64, n*n)
	ch2.UTo(mat.NewTriDense(n, mat.Upper, f.u))
	for i := 0; i < n; i++ {
		if d := f.u[i*n+i]; !(d > 0) || math.IsInf(d, 0) {
			return nil, fmt.Errorf("factor of the damped Hessian has diagonal %g at %d", d, i)
		}
	}
	return f, nil
}

// lazyUpdate applies the deferred OBS update of a finished block [i1, i2) to
// every later column: W[:, i2:] −= E · U[i1:i2, i2:], where E (rows×(i2−i1),
// row-major) holds the block's scaled errors (w − q)/U_cc. W is rows×n
// row-major float64. This is the one large matrix product of SparseGPT and
// GPTQ (gonum dgemm, float64, parallel).
func (f *factor) lazyUpdate(w []float64, rows int, e []float64, i1, i2 int) {
	n := f.n
	if i2 >= n {
		return
	}
	nb := i2 - i1
	blas64.Gemm(blas.NoTrans, blas.NoTrans, -1,
		blas64.General{Rows: rows, Cols: nb, Stride: nb, Data: e},
		blas64.General{Rows: nb, Cols: n - i2, Stride: n, Data: f.u[i1*n+i2:]},
		1,
		blas64.General{Rows: rows, Cols: n - i2, Stride: n, Data: w[i2:]})
}
