package compress

import (
	"fmt"
	"math"
	"slices"

	"github.com/evopress/evopress/internal/kernels"
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
	// work is the float64 working copy of the weights, reused by the levels
	// computed from this factor one after another (see weights).
	work []float64
}

// weights returns the factor's working buffer with length n, allocated on
// first use: the levels of one layer share it instead of each leaving an
// rows×cols float64 copy to the garbage collector.
func (f *factor) weights(n int) []float64 {
	if cap(f.work) < n {
		f.work = make([]float64, n)
	}
	return f.work[:n]
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
// Everything runs in float64 (blocked, the products with kernels.Dgemm). It
// fails when H is not positive definite after damping or when the factor
// is not finite.
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

	// U comes from one Cholesky factorisation and one triangular inverse, in
	// place in h (one n×n float64 matrix: 512 MiB at n = 8192): with J the
	// reversal permutation, J·H·J = L·Lᵀ (L lower) gives H = R·Rᵀ with
	// R = J·L·J upper, so H⁻¹ = R⁻ᵀ·R⁻¹ and U = R⁻¹ = J·L⁻¹·J, whose diagonal
	// is positive: the unique upper Cholesky factor of H⁻¹. J·X·J of a
	// row-major matrix is its element slice reversed.
	slices.Reverse(h)
	if !cholLower(h, n) {
		return nil, fmt.Errorf("H + %g·I is not positive definite (PercDamp %g); H must be a Hessian 2XᵀX/N, or raise the damping", damp, percdamp)
	}
	invLower(h, n)
	slices.Reverse(h)
	f.u = h
	for i := 0; i < n; i++ {
		if d := f.u[i*n+i]; !(d > 0) || math.IsInf(d, 0) {
			return nil, fmt.Errorf("factor of the damped Hessian has diagonal %g at %d (raise PercDamp)", d, i)
		}
	}
	return f, nil
}

// lazyUpdate applies the deferred OBS update of a finished block [i1, i2) to
// every later column: W[:, i2:] −= E · U[i1:i2, i2:], where E (rows×(i2−i1),
// row-major) holds the block's scaled errors (w − q)/U_cc. W is rows×n
// row-major float64. This is the one large matrix product of SparseGPT and
// GPTQ (float64, parallel).
func (f *factor) lazyUpdate(w []float64, rows int, e []float64, i1, i2 int) {
	n := f.n
	if i2 >= n {
		return
	}
	nb := i2 - i1
	dgemm(false, false, rows, n-i2, nb, -1, e, nb, f.u[i1*n+i2:], n, 1, w[i2:], n)
}

// factorBlock is the block size of cholLower and invLower.
const factorBlock = 128

// cholLower overwrites the lower triangle of the n×n row-major matrix a with
// its Cholesky factor L (a = L·Lᵀ, reading only the lower triangle) and sets
// the strict upper triangle to zero. Blocked, left-looking: each block
// column is updated with one product against all finished columns, then
// factored (cholUnblocked) and its panel solved with the block's inverse.
// It reports false when a is not (numerically) positive definite.
func cholLower(a []float64, n int) bool {
	nb := factorBlock
	inv := make([]float64, nb*nb)
	tmp := make([]float64, max(0, n-nb)*nb)
	for j := 0; j < n; j += nb {
		jb := min(nb, n-j)
		if j > 0 {
			dgemm(false, true, jb, jb, j, -1, a[j*n:], n, a[j*n:], n, 1, a[j*n+j:], n)
		}
		if !cholUnblocked(a[j*n+j:], n, jb) {
			return false
		}
		m2 := n - j - jb
		if m2 == 0 {
			break
		}
		if j > 0 {
			dgemm(false, true, m2, jb, j, -1, a[(j+jb)*n:], n, a[j*n:], n, 1, a[(j+jb)*n+j:], n)
		}
		// Panel: A21 ← A21·L11⁻ᵀ.
		invUnblocked(inv, jb, a[j*n+j:], n, jb)
		t := tmp[:m2*jb]
		for r := 0; r < m2; r++ {
			copy(t[r*jb:(r+1)*jb], a[(j+jb+r)*n+j:(j+jb+r)*n+j+jb])
		}
		dgemm(false, true, m2, jb, jb, 1, t, jb, inv, jb, 0, a[(j+jb)*n+j:], n)
	}
	for i := 0; i < n; i++ {
		clear(a[i*n+i+1 : (i+1)*n])
	}
	return true
}

// cholUnblocked factors the jb×jb block at a (row stride ld) in place, lower
// triangle, and reports false at a non-positive, infinite or NaN pivot.
func cholUnblocked(a []float64, ld, jb int) bool {
	for i := 0; i < jb; i++ {
		ri := a[i*ld : i*ld+i+1]
		for k := 0; k <= i; k++ {
			rk := a[k*ld : k*ld+k]
			s := ri[k]
			for p, v := range rk {
				s -= ri[p] * v
			}
			if k < i {
				ri[k] = s / a[k*ld+k]
				continue
			}
			if !(s > 0) || math.IsInf(s, 0) {
				return false
			}
			ri[i] = math.Sqrt(s)
		}
	}
	return true
}

// invUnblocked writes the inverse of the jb×jb lower triangular block l (row
// stride ldl) into dst (row stride ldd), lower triangle, zeros above.
func invUnblocked(dst []float64, ldd int, l []float64, ldl, jb int) {
	for i := 0; i < jb; i++ {
		clear(dst[i*ldd : i*ldd+jb])
	}
	for c := 0; c < jb; c++ {
		dst[c*ldd+c] = 1 / l[c*ldl+c]
		for i := c + 1; i < jb; i++ {
			var s float64
			for p := c; p < i; p++ {
				s += l[i*ldl+p] * dst[p*ldd+c]
			}
			dst[i*ldd+c] = -s / l[i*ldl+i]
		}
	}
}

// invLower overwrites the n×n lower triangular matrix a (row-major, zero
// strict upper triangle) with its inverse. Blocked, from the last block
// column to the first: with the trailing part X22 = L22⁻¹ already in place,
// X21 = −X22·L21·L11⁻¹.
func invLower(a []float64, n int) {
	nb := factorBlock
	inv := make([]float64, nb*nb)
	tmp := make([]float64, max(0, n-nb)*nb)
	const chunk = 512 // X22 is triangular: each row chunk multiplies only up to its diagonal
	for j := (n - 1) / nb * nb; j >= 0; j -= nb {
		jb := min(nb, n-j)
		invUnblocked(inv, jb, a[j*n+j:], n, jb)
		if m2 := n - j - jb; m2 > 0 {
			t := tmp[:m2*jb]
			x22 := a[(j+jb)*n+j+jb:]
			for r0 := 0; r0 < m2; r0 += chunk {
				r1 := min(r0+chunk, m2)
				dgemm(false, false, r1-r0, jb, r1, 1, x22[r0*n:], n, a[(j+jb)*n+j:], n, 0, t[r0*jb:], jb)
			}
			dgemm(false, false, m2, jb, jb, -1, t, jb, inv, jb, 0, a[(j+jb)*n+j:], n)
		}
		for i := 0; i < jb; i++ {
			copy(a[(j+i)*n+j:(j+i)*n+j+jb], inv[i*jb:(i+1)*jb])
		}
	}
}

// dgemm is C = alpha·op(A)·op(B) + beta·C in float64, row-major (kernels.Dgemm: the same bits
// on every kernel path).
func dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	kernels.Dgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
