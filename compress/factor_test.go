package compress

import (
	"fmt"
	"math"
	"testing"
)

// The factor against its definition and an independent textbook U: U upper
// triangular with a positive diagonal, UᵀU·Hd = I for the damped,
// permuted Hessian Hd, and U equal to upperCholInv's (inverse by Gauss–Jordan,
// then a Cholesky factorisation) to float64 rounding, for sizes around the
// block size, with dead inputs and act-order.
func TestFactor(t *testing.T) {
	for _, tc := range []struct {
		n    int
		dead []int
		act  bool
	}{
		{1, nil, false}, {5, nil, false}, {127, nil, false}, {128, nil, false}, {129, nil, false},
		{300, []int{0, 17, 299}, false}, {300, []int{3}, true}, {520, nil, true}, {700, []int{650}, false},
	} {
		t.Run(fmt.Sprintf("n%d/dead%d/act%v", tc.n, len(tc.dead), tc.act), func(t *testing.T) {
			l := newTestLayer(uint64(tc.n), 1, tc.n, 2*tc.n, tc.dead...)
			f, err := newFactor(l.H, tc.n, 0.01, tc.act)
			if err != nil {
				t.Fatal(err)
			}
			n := tc.n
			// The damped Hessian in processing order, dead inputs as newFactor sets them.
			h := make([]float64, n*n)
			for i, v := range l.H {
				h[i] = float64(v)
			}
			for i := 0; i < n; i++ {
				if f.dead[i] {
					for j := 0; j < n; j++ {
						h[i*n+j], h[j*n+i] = 0, 0
					}
					h[i*n+i] = 1
				}
			}
			perm := f.perm
			if perm == nil {
				perm = make([]int, n)
				for i := range perm {
					perm[i] = i
				}
			}
			hp := make([]float64, n*n)
			var mean float64
			for i, pi := range perm {
				for j, pj := range perm {
					hp[i*n+j] = h[pi*n+pj]
				}
				mean += hp[i*n+i]
			}
			for i := 0; i < n; i++ {
				hp[i*n+i] += 0.01 * mean / float64(n)
			}
			want := upperCholInv(hp, n)
			var maxU, maxDiff float64
			for i := 0; i < n; i++ {
				if d := f.u[i*n+i]; !(d > 0) {
					t.Fatalf("U[%d,%d] = %g, want > 0", i, i, d)
				}
				for j := 0; j < n; j++ {
					u := f.u[i*n+j]
					if j < i && u != 0 {
						t.Fatalf("U[%d,%d] = %g below the diagonal", i, j, u)
					}
					maxU = max(maxU, math.Abs(want[i*n+j]))
					maxDiff = max(maxDiff, math.Abs(u-want[i*n+j]))
				}
			}
			if maxDiff > 1e-12*maxU {
				t.Errorf("max |U − textbook U| = %g, max |U| = %g", maxDiff, maxU)
			}
			// (UᵀU)·Hd = I.
			uh := make([]float64, n*n) // U·Hd
			dgemm(false, false, n, n, n, 1, f.u, n, hp, n, 0, uh, n)
			var worst float64
			for i := 0; i < n; i++ {
				for j := 0; j < n; j++ {
					var s float64
					for k := 0; k <= min(i, n-1); k++ {
						s += f.u[k*n+i] * uh[k*n+j]
					}
					if i == j {
						s--
					}
					worst = max(worst, math.Abs(s))
				}
			}
			if worst > 1e-11 {
				t.Errorf("max |UᵀU·Hd − I| = %g", worst)
			}
		})
	}
}

// A Hessian that is not positive definite after damping is an error, not a
// factor: here an indefinite one (no damping) and one with a NaN.
func TestFactorNotPositiveDefinite(t *testing.T) {
	n := 200
	for name, edit := range map[string]func(h []float32){
		"indefinite": func(h []float32) { h[150*n+150] = -1 },
		"nan":        func(h []float32) { h[140*n+140] = float32(math.NaN()) },
	} {
		t.Run(name, func(t *testing.T) {
			l := newTestLayer(9, 1, n, 2*n)
			edit(l.H)
			if _, err := newFactor(l.H, n, 0, false); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
