package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// kpath is one implementation of the kernels: the portable Go code, the
// AVX2/FMA assembly, or the AVX2 assembly with the AVX-512 Gemm kernel.
type kpath int

const (
	pathGo kpath = iota
	pathAVX2
	pathAVX512
)

// paths returns the kernel implementations available in this build and on
// this CPU: the portable one always, the assembly ones when built and
// supported.
func paths() []kpath {
	ps := []kpath{pathGo}
	if hasAsm && useAsm {
		ps = append(ps, pathAVX2)
	}
	if hasAsm && useAVX512 {
		ps = append(ps, pathAVX512)
	}
	return ps
}

// withPath runs f with the kernels of path p selected.
func withPath(t testing.TB, p kpath, f func()) {
	t.Helper()
	oldAsm, old512 := useAsm, useAVX512
	useAsm, useAVX512 = p >= pathAVX2, p == pathAVX512
	defer func() { useAsm, useAVX512 = oldAsm, old512 }()
	f()
}

func pathName(p kpath) string {
	return [...]string{"go", "avx2", "avx512"}[p]
}

func randSlice(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// refGemm is the float64 reference for C = alpha·op(A)·op(B) + beta·C; it also
// returns the per-element bound Σ|a||b| used to scale the tolerance.
func refGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) (want, mag []float64) {
	want = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				var av, bv float64
				if transA {
					av = float64(a[p*lda+i])
				} else {
					av = float64(a[i*lda+p])
				}
				if transB {
					bv = float64(b[j*ldb+p])
				} else {
					bv = float64(b[p*ldb+j])
				}
				s += av * bv
				sa += math.Abs(av * bv)
			}
			v := float64(alpha) * s
			mg := math.Abs(float64(alpha)) * sa
			if beta != 0 {
				v += float64(beta) * float64(c[i*ldc+j])
				mg += math.Abs(float64(beta) * float64(c[i*ldc+j]))
			}
			want[i*n+j] = v
			mag[i*n+j] = mg
		}
	}
	return want, mag
}

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	padA, padB     int // extra stride beyond the minimum
	padC           int
}

// layout returns the stored shapes of A (ar×ac) and B (br×bc), as op(·) transposes them, and
// the strides of A, B and C with the case's padding.
func (tc gemmCase) layout() (ar, ac, br, bc, lda, ldb, ldc int) {
	ar, ac = tc.m, tc.k
	if tc.transA {
		ar, ac = tc.k, tc.m
	}
	br, bc = tc.k, tc.n
	if tc.transB {
		br, bc = tc.n, tc.k
	}
	return ar, ac, br, bc, max(1, ac+tc.padA), max(1, bc+tc.padB), tc.n + tc.padC
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,%dx%dx%d,a=%g,b=%g,pad=%d/%d/%d", tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.padA, tc.padB, tc.padC)
}

func gemmCases() []gemmCase {
	var cases []gemmCase
	sizes := []int{1, 3, 7, 17, 33, 65, 127, 129}
	i := 0
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, m := range sizes {
				for _, n := range sizes {
					// Cycle k, alpha, beta and padding deterministically so that
					// every combination of transposes sees every m and n.
					k := sizes[(i*5+3)%len(sizes)]
					alphas := []float32{1, -0.5, 2.25}
					betas := []float32{0, 1, -0.75, 0.5}
					cases = append(cases, gemmCase{tA, tB, m, n, k, alphas[i%3], betas[i%4], i % 3, (i / 3) % 3, i % 2})
					i++
				}
			}
		}
	}
	// Larger shapes crossing the cache blocks (kc=256, mc=144) and the model's.
	big := [][3]int{{300, 70, 600}, {150, 257, 513}, {256, 256, 64}, {64, 704, 256}, {289, 33, 257}, {13, 1000, 40}}
	for _, s := range big {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				cases = append(cases, gemmCase{tA, tB, s[0], s[1], s[2], 1, float32(i%2) * 0.5, 1, 2, 3})
				i++
			}
		}
	}
	// Transposed A with a row stride that is a multiple of 512 (packed A).
	cases = append(cases, gemmCase{true, false, 40, 50, 300, 1, 0, 512 - 40, 0, 0},
		gemmCase{true, true, 13, 20, 30, 1, 0.5, 1024 - 13, 0, 0})
	// k = 0 and alpha = 0: only beta·C.
	cases = append(cases, gemmCase{false, false, 5, 9, 0, 1, 0.5, 0, 0, 0},
		gemmCase{false, true, 5, 9, 3, 0, 2, 0, 0, 1},
		gemmCase{true, false, 5, 9, 0, 1, 0, 1, 0, 0})
	return cases
}

func runGemmCase(t *testing.T, tc gemmCase, serial bool, rng *rand.Rand) {
	t.Helper()
	ar, ac, br, bc, lda, ldb, ldc := tc.layout()
	a := randSlice(rng, max(0, (ar-1)*lda+ac))
	b := randSlice(rng, max(0, (br-1)*ldb+bc))
	c := randSlice(rng, (tc.m-1)*ldc+tc.n)
	if tc.beta == 0 {
		for i := range c {
			if i%3 == 0 {
				c[i] = float32(math.NaN()) // must be ignored
			}
		}
	}
	orig := append([]float32(nil), c...)
	want, mag := refGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
	if serial {
		GemmSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
	} else {
		Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
	}
	bad := 0
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.n; j++ {
			got := float64(c[i*ldc+j])
			tol := 1e-6 + 2e-6*mag[i*tc.n+j]*math.Sqrt(float64(tc.k+1))
			if math.IsNaN(got) || math.Abs(got-want[i*tc.n+j]) > tol {
				if bad < 3 {
					t.Errorf("%v serial=%v: C[%d,%d]=%g want %g (tol %g)", tc, serial, i, j, got, want[i*tc.n+j], tol)
				}
				bad++
			}
		}
		// The padding between rows must be untouched.
		if i < tc.m-1 {
			for j := tc.n; j < ldc; j++ {
				if p := i*ldc + j; c[p] != orig[p] && !(math.IsNaN(float64(c[p])) && math.IsNaN(float64(orig[p]))) {
					t.Errorf("%v: padding C[%d] modified", tc, p)
				}
			}
		}
	}
}

func TestGemm(t *testing.T) {
	for _, asm := range paths() {
		for _, pack := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/packA=%v", pathName(asm), pack), func(t *testing.T) {
				withPath(t, asm, func() {
					forcePackA = pack
					defer func() { forcePackA = false }()
					rng := rand.New(rand.NewPCG(1, 2))
					for ci, tc := range gemmCases() {
						runGemmCase(t, tc, ci%2 == 0, rng)
					}
				})
			})
		}
	}
}

// TestGemmParallelSplit checks shapes large enough for Gemm to split the work
// across goroutines, including splits along n (small m) and uneven chunks.
func TestGemmParallelSplit(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(old)
	for _, procs := range []int{2, 3, 4} {
		runtime.GOMAXPROCS(procs)
		for _, asm := range paths() {
			withPath(t, asm, func() {
				rng := rand.New(rand.NewPCG(3, uint64(procs)))
				for _, tc := range []gemmCase{
					{false, true, 257, 130, 200, 1, 0, 0, 0, 0},
					{true, false, 100, 100, 301, 1, 1, 1, 0, 0},
					{false, false, 7, 900, 300, 0.5, 0, 0, 1, 0},
					{true, true, 600, 20, 100, -1, 0.25, 0, 0, 2},
				} {
					runGemmCase(t, tc, false, rng)
				}
			})
		}
	}
}

// TestGemmConcurrent calls Gemm and GemmSerial from several goroutines at once
// (meant for -race) and checks every result.
func TestGemmConcurrent(t *testing.T) {
	const m, n, k = 70, 90, 110
	rng := rand.New(rand.NewPCG(5, 6))
	a := randSlice(rng, m*k)
	b := randSlice(rng, n*k)
	want, mag := refGemm(false, true, m, n, k, 1, a, k, b, k, 0, nil, n)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := make([]float32, m*n)
			for it := 0; it < 5; it++ {
				if g%2 == 0 {
					Gemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
				} else {
					GemmSerial(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
				}
				for i, v := range c {
					if math.Abs(float64(v)-want[i]) > 1e-5*(1+mag[i]) {
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

func TestGemmPanics(t *testing.T) {
	a := make([]float32, 12)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"negative", func() { Gemm(false, false, -1, 2, 2, 1, a, 2, a, 2, 0, a, 2) }},
		{"short a", func() { Gemm(false, false, 4, 2, 4, 1, a, 4, a, 2, 0, a, 2) }},
		{"small lda", func() { Gemm(false, false, 2, 2, 3, 1, a, 2, a, 2, 0, a, 2) }},
		{"short c", func() { GemmSerial(true, true, 4, 4, 1, 1, a, 4, a, 1, 0, a[:10], 4) }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tc.name)
				}
			}()
			tc.f()
		}()
	}
}

func TestSplitGrid(t *testing.T) {
	for _, tc := range []struct{ m, n, p, pm, pn int }{
		{8192, 256, 2, 2, 1},
		{256, 4096, 2, 1, 2},
		{6, 16, 2, 1, 1},
		{1000, 1000, 4, 2, 2},
		{12, 1000, 4, 1, 4},
		{600, 640, 4, 2, 2},
		{5, 1000, 3, 1, 3},
		{256, 256, 8, 2, 2},   // tiles stay ≥ minTileEdge
		{8192, 256, 8, 8, 1},  // rows split, columns kept whole
		{150, 150, 8, 1, 1},   // too small to split at all
		{8192, 4096, 8, 4, 2}, // LM head: 2048×2048 tiles
	} {
		pm, pn := splitGrid(tc.m, tc.n, tc.p)
		if pm != tc.pm || pn != tc.pn {
			t.Errorf("splitGrid(%d,%d,%d) = %d,%d want %d,%d", tc.m, tc.n, tc.p, pm, pn, tc.pm, tc.pn)
		}
	}
	// chunk covers [0,total) exactly with aligned inner boundaries.
	for _, tc := range []struct{ total, p, align int }{{100, 3, 6}, {7, 2, 16}, {8192, 2, 6}} {
		next := 0
		for i := 0; i < tc.p; i++ {
			lo, hi := chunk(tc.total, tc.p, i, tc.align)
			if lo != next || hi < lo || (hi != tc.total && hi%tc.align != 0) {
				t.Errorf("chunk(%d,%d,%d,%d) = %d,%d", tc.total, tc.p, i, tc.align, lo, hi)
			}
			next = hi
		}
		if next != tc.total {
			t.Errorf("chunks of %d end at %d", tc.total, next)
		}
	}
}

func TestImplementation(t *testing.T) {
	got := Implementation()
	want := "generic/" + runtime.GOARCH
	if useAsm { // the AVX-512 Gemm kernel gives the same bits: same name
		want = "avx2-fma/" + runtime.GOARCH
	}
	if got != want {
		t.Fatalf("Implementation() = %q, want %q", got, want)
	}
}

// TestGemmAVX512SameBits checks that the AVX-512 kernel gives exactly the
// bits of the AVX2 one (the same FMA chain per element), for every case of
// TestGemm, A read in place and packed, and for Gemm's parallel split.
func TestGemmAVX512SameBits(t *testing.T) {
	if !hasAsm || !useAVX512 {
		t.Skip("no AVX-512 on this CPU (or a noasm build): nothing to compare")
	}
	cases := append(gemmCases(), gemmCase{false, true, 200, 704, 256, 1, 0, 0, 0, 0},
		gemmCase{false, true, 97, 4096 + 48, 300, 1, 1, 0, 0, 5},
		gemmCase{true, false, 256, 256, 1000, 1, 1, 0, 0, 0})
	for _, pack := range []bool{false, true} {
		forcePackA = pack
		for ci, tc := range cases {
			rng := rand.New(rand.NewPCG(9, uint64(ci)))
			ar, ac, br, bc, lda, ldb, ldc := tc.layout()
			a := randSlice(rng, max(0, (ar-1)*lda+ac))
			b := randSlice(rng, max(0, (br-1)*ldb+bc))
			c0 := randSlice(rng, (tc.m-1)*ldc+tc.n)
			var got [2][]float32
			for i, p := range []kpath{pathAVX2, pathAVX512} {
				withPath(t, p, func() {
					c := append([]float32(nil), c0...)
					if ci%2 == 0 {
						GemmSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
					} else {
						Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
					}
					got[i] = c
				})
			}
			for i := range got[0] {
				if math.Float32bits(got[0][i]) != math.Float32bits(got[1][i]) {
					t.Fatalf("%v packA=%v: C[%d] avx2 %v (%#x), avx512 %v (%#x)", tc, pack, i,
						got[0][i], math.Float32bits(got[0][i]), got[1][i], math.Float32bits(got[1][i]))
				}
			}
		}
	}
	forcePackA = false
}
