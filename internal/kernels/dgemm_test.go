package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func randSlice64(rng *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	return x
}

// refDgemm is the naive triple loop for C = alpha·op(A)·op(B) + beta·C; it
// also returns the per-element magnitude |alpha|·Σ|a||b| + |beta·c| that
// bounds the rounding error of any summation order.
func refDgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) (want, mag []float64) {
	want = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				var av, bv float64
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
				sa += math.Abs(av * bv)
			}
			v, mg := alpha*s, math.Abs(alpha)*sa
			if beta != 0 {
				v += beta * c[i*ldc+j]
				mg += math.Abs(beta * c[i*ldc+j])
			}
			want[i*n+j], mag[i*n+j] = v, mg
		}
	}
	return want, mag
}

// dgemmCase is one product of the Dgemm tests.
type dgemmCase struct {
	gemmCase
	alpha, beta float64
}

func (tc dgemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,%dx%dx%d,a=%g,b=%g,pad=%d/%d/%d", tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.padA, tc.padB, tc.padC)
}

// dgemmCases are Gemm's cases (every transpose with edge sizes 1…129, strides
// beyond the columns, beta 0/1/other, blocks of k and rows crossed, packed A,
// k==0, alpha==0) plus float64-specific ones: alpha −1 with beta 1 (the GPTQ
// update), k==1, m or n == 1, more than one column block (n > ncBlk64), and
// transposed A with a row stride that is a multiple of 256 doubles (packed).
func dgemmCases() []dgemmCase {
	var cases []dgemmCase
	for _, g := range gemmCases() {
		cases = append(cases, dgemmCase{g, float64(g.alpha), float64(g.beta)})
	}
	for i, g := range []gemmCase{
		{false, false, 37, 45, 1, 0, 0, 0, 0, 0},
		{true, true, 1, 70, 20, 0, 0, 3, 1, 2},
		{false, true, 70, 1, 20, 0, 0, 0, 4, 0},
		{true, false, 1, 1, 300, 0, 0, 0, 0, 0},
		{false, false, 50, 200, 128, 0, 0, 3, 5, 7},
		{false, true, 30, 2100, 40, 0, 0, 0, 0, 1},
		{true, false, 40, 50, 300, 0, 0, 256 - 40, 0, 0},
		{true, true, 13, 20, 30, 0, 0, 512 - 13, 0, 0},
		{false, false, 97, 160, 520, 0, 0, 0, 0, 0},
	} {
		alpha, beta := -1.0, 1.0
		if i%3 == 1 {
			alpha, beta = 0.75, -0.5
		} else if i%3 == 2 {
			alpha, beta = -1, 0
		}
		cases = append(cases, dgemmCase{g, alpha, beta})
	}
	return cases
}

// dgemmOperands returns random A, B and C for tc (C with NaNs where beta==0,
// which must be ignored) and the strides.
func dgemmOperands(tc dgemmCase, rng *rand.Rand) (a, b, c []float64, lda, ldb, ldc int) {
	ar, ac, br, bc, lda, ldb, ldc := tc.layout()
	a = randSlice64(rng, max(0, (ar-1)*lda+ac))
	b = randSlice64(rng, max(0, (br-1)*ldb+bc))
	c = randSlice64(rng, (tc.m-1)*ldc+tc.n)
	if tc.beta == 0 {
		for i := 0; i < len(c); i += 3 {
			c[i] = math.NaN()
		}
	}
	return a, b, c, lda, ldb, ldc
}

func runDgemm(tc dgemmCase, serial bool, a []float64, lda int, b []float64, ldb int, c []float64, ldc int) {
	f := Dgemm
	if serial {
		f = DgemmSerial
	}
	f(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
}

// TestDgemm checks Dgemm and DgemmSerial on every path against the naive
// loop, within the rounding bound 2·(k+2)·u·(|alpha|·Σ|a||b| + |beta·c|) of two
// summation orders, and that the padding between C's rows is untouched.
func TestDgemm(t *testing.T) {
	const u = 0x1p-53
	for _, p := range paths() {
		for _, pack := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/packA=%v", pathName(p), pack), func(t *testing.T) {
				withPath(t, p, func() {
					forcePackA = pack
					defer func() { forcePackA = false }()
					rng := rand.New(rand.NewPCG(11, 12))
					for ci, tc := range dgemmCases() {
						a, b, c, lda, ldb, ldc := dgemmOperands(tc, rng)
						orig := append([]float64(nil), c...)
						want, mag := refDgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
						runDgemm(tc, ci%2 == 0, a, lda, b, ldb, c, ldc)
						bad := 0
						for i := 0; i < tc.m; i++ {
							for j := 0; j < tc.n; j++ {
								got, w := c[i*ldc+j], want[i*tc.n+j]
								tol := 2 * float64(tc.k+2) * u * mag[i*tc.n+j]
								if math.IsNaN(got) || math.Abs(got-w) > tol {
									if bad < 3 {
										t.Errorf("%v: C[%d,%d]=%g want %g (tol %g)", tc, i, j, got, w, tol)
									}
									bad++
								}
							}
							for j := tc.n; i < tc.m-1 && j < ldc; j++ {
								if q := i*ldc + j; math.Float64bits(c[q]) != math.Float64bits(orig[q]) {
									t.Errorf("%v: padding C[%d] modified", tc, q)
								}
							}
						}
					}
				})
			})
		}
	}
}

// TestDgemmSameBits checks the same-bits guarantee: every path (portable,
// AVX2, AVX-512), serial and split across 2 or 3 goroutines, with A read in
// place or packed, gives exactly the bits of the portable serial result.
func TestDgemmSameBits(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(old)
	cases := append(dgemmCases(),
		dgemmCase{gemmCase{false, false, 300, 1000, 128, 0, 0, 0, 0, 8}, -1, 1},
		dgemmCase{gemmCase{false, true, 200, 200, 300, 0, 0, 0, 0, 0}, 1, 0.5},
		dgemmCase{gemmCase{true, false, 130, 250, 64, 0, 0, 0, 0, 0}, 2, 0})
	for ci, tc := range cases {
		rng := rand.New(rand.NewPCG(13, uint64(ci)))
		a, b, c0, lda, ldb, ldc := dgemmOperands(tc, rng)
		var ref []float64
		for _, p := range paths() {
			for _, procs := range []int{1, 2, 3} {
				for _, pack := range []bool{false, true} {
					runtime.GOMAXPROCS(procs)
					forcePackA = pack
					c := append([]float64(nil), c0...)
					withPath(t, p, func() { runDgemm(tc, procs == 1, a, lda, b, ldb, c, ldc) })
					forcePackA = false
					if ref == nil {
						ref = c
						continue
					}
					for i := range c {
						if math.Float64bits(c[i]) != math.Float64bits(ref[i]) {
							t.Fatalf("%v: %s procs=%d packA=%v: C[%d] = %v (%#x), portable serial %v (%#x)", tc, pathName(p), procs, pack,
								i, c[i], math.Float64bits(c[i]), ref[i], math.Float64bits(ref[i]))
						}
					}
				}
			}
		}
	}
}

// TestDgemmFused checks that the sums and the beta·C term are fused
// multiply-adds (one rounding) on every path, in the kernels and in the edge
// tiles: with x = 1+2⁻³⁰, x·x − 1 = 2⁻²⁹ + 2⁻⁶⁰ exactly, which an unfused
// product rounds to 2⁻²⁹.
func TestDgemmFused(t *testing.T) {
	const x = 1 + 0x1p-30
	const want = 0x1p-29 + 0x1p-60
	for _, p := range paths() {
		withPath(t, p, func() {
			// In the k chain: 1·(−1) then + x·x (kc=2, packed A panel, beta 0).
			a := make([]float64, 2*mr)
			b := make([]float64, 2*nr64)
			for i := 0; i < mr; i++ {
				a[i], a[mr+i] = 1, x
			}
			for j := 0; j < nr64; j++ {
				b[j], b[nr64+j] = -1, x
			}
			c := make([]float64, mr*nr64)
			dgemmKernel(2, a, 1, mr, b, c, nr64, 1, 0)
			for i, v := range c {
				if v != want {
					t.Fatalf("%s: k chain: C[%d] = %v, want %v", pathName(p), i, v, want)
				}
			}
			// In the epilogue: alpha·(1·(−1)) + x·C with C = x, a full tile and a 1×1 edge.
			for i := range c {
				c[i] = x
			}
			dgemmKernel(1, a, 1, mr, b, c, nr64, 1, x)
			one := []float64{x}
			DgemmSerial(false, false, 1, 1, 1, 1, []float64{1}, 1, []float64{-1}, 1, x, one, 1)
			for i, v := range append(c, one...) {
				if v != want {
					t.Fatalf("%s: epilogue: C[%d] = %v, want %v", pathName(p), i, v, want)
				}
			}
		})
	}
}

// TestDgemmConcurrent calls Dgemm and DgemmSerial from several goroutines at
// once (meant for -race) and checks every result against the first.
func TestDgemmConcurrent(t *testing.T) {
	const m, n, k = 70, 90, 110
	rng := rand.New(rand.NewPCG(5, 7))
	a := randSlice64(rng, m*k)
	b := randSlice64(rng, n*k)
	want := make([]float64, m*n)
	DgemmSerial(false, true, m, n, k, 1, a, k, b, k, 0, want, n)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := make([]float64, m*n)
			for it := 0; it < 5; it++ {
				if g%2 == 0 {
					Dgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
				} else {
					DgemmSerial(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
				}
				for i, v := range c {
					if v != want[i] {
						errs <- fmt.Sprintf("goroutine %d: C[%d]=%g want %g", g, i, v, want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestDgemmPanics(t *testing.T) {
	a := make([]float64, 12)
	for _, tc := range []struct {
		name, want string
		f          func()
	}{
		{"negative", "negative dimension", func() { Dgemm(false, false, -1, 2, 2, 1, a, 2, a, 2, 0, a, 2) }},
		{"short a", "len(a)=12 < 16 needed for 4×4 with ld=4", func() { Dgemm(false, false, 4, 2, 4, 1, a, 4, a, 2, 0, a, 2) }},
		{"small lda", "lda=2 < max(1, 3 columns)", func() { Dgemm(false, false, 2, 2, 3, 1, a, 2, a, 2, 0, a, 2) }},
		{"small ldb", "ldb=1 < max(1, 2 columns)", func() { DgemmSerial(false, true, 2, 2, 2, 1, a, 2, a, 1, 0, a, 2) }},
		{"short c", "len(c)=10 < 16", func() { DgemmSerial(true, true, 4, 4, 1, 1, a, 4, a, 1, 0, a[:10], 4) }},
	} {
		func() {
			defer func() {
				r := recover()
				if msg, _ := r.(string); r == nil || !strings.Contains(msg, tc.want) {
					t.Errorf("%s: panic %v, want one with %q", tc.name, r, tc.want)
				}
			}()
			tc.f()
		}()
	}
}
