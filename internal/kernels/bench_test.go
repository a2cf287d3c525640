package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// gemmBenchShape is one m×n×k product of the Gemm benchmarks.
type gemmBenchShape struct {
	m, n, k        int
	transA, transB bool
}

// gemmBenchShapes are the model's shapes (m×n×k) plus the reference target.
var gemmBenchShapes = []gemmBenchShape{
	{8192, 256, 256, false, true},
	{8192, 704, 256, false, true},
	{8192, 256, 704, false, true},
	{8192, 4096, 256, false, true},
	{2048, 576, 1536, false, false},
	{2048, 576, 1536, false, true},
	{256, 256, 8192, true, false}, // Hessian XᵀX over 8192 tokens
	{256, 256, 64, false, true},   // attention Q·Kᵀ per head
	{256, 64, 256, false, false},  // attention P·V per head
}

// benchPaths are the paths the Gemm benchmarks compare: the assembly ones
// where they exist (the portable path is an order of magnitude slower).
func benchPaths() []kpath {
	ps := paths()
	if len(ps) > 1 {
		ps = ps[1:]
	}
	return ps
}

func benchGemm(b *testing.B, serial bool) {
	for _, p := range benchPaths() {
		for _, s := range gemmBenchShapes {
			name := fmt.Sprintf("%s/%dx%dx%d_tA%v_tB%v", pathName(p), s.m, s.n, s.k, s.transA, s.transB)
			b.Run(name, func(b *testing.B) { withPath(b, p, func() { benchGemmShape(b, s, serial) }) })
		}
	}
}

// benchGemmShape runs Gemm (or GemmSerial) on one shape of gemmBenchShapes.
func benchGemmShape(b *testing.B, s gemmBenchShape, serial bool) {
	rng := rand.New(rand.NewPCG(1, 1))
	lda, ldb := s.k, s.n
	if s.transA {
		lda = s.m
	}
	if s.transB {
		ldb = s.k
	}
	a := randSlice(rng, s.m*s.k)
	bm := randSlice(rng, s.k*s.n)
	c := make([]float32, s.m*s.n)
	f := Gemm
	if serial {
		f = GemmSerial
	}
	f(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
	b.ResetTimer()
	cpu0 := processCPUSeconds()
	for b.Loop() {
		f(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
	}
	cpu := processCPUSeconds() - cpu0
	flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu > 0 {
		// Throughput per CPU-second (per core busy): robust to other
		// processes competing for the cores.
		b.ReportMetric(flops/cpu/1e9, "GFLOP/cpu-s")
	}
}

// BenchmarkGemm measures Gemm (all GOMAXPROCS) at the model's shapes.
func BenchmarkGemm(b *testing.B) { benchGemm(b, false) }

// BenchmarkGemmSerial measures GemmSerial (one goroutine).
func BenchmarkGemmSerial(b *testing.B) { benchGemm(b, true) }

func benchVec(b *testing.B, n int, f func(x, y []float32)) {
	rng := rand.New(rand.NewPCG(2, 2))
	x := randSlice(rng, n)
	y := randSlice(rng, n)
	for i := range x {
		x[i] = -abs32(x[i]) * 3
	}
	b.SetBytes(int64(4 * n))
	cpu0 := processCPUSeconds()
	for b.Loop() {
		f(x, y)
	}
	cpu := processCPUSeconds() - cpu0
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
	if cpu > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/cpu/1e9, "Gelem/cpu-s")
	}
}

// BenchmarkVec measures the vector kernels on both paths at typical lengths
// (4096 = a vocabulary row, 704 = an MLP row).
func BenchmarkVec(b *testing.B) {
	var sink float32
	for _, asm := range paths() {
		for _, n := range []int{704, 4096} {
			run := func(name string, f func(x, y []float32)) {
				b.Run(fmt.Sprintf("%s/%s/n=%d", name, pathName(asm), n), func(b *testing.B) {
					withPath(b, asm, func() { benchVec(b, n, f) })
				})
			}
			run("Dot", func(x, y []float32) { sink += Dot(x, y) })
			run("Axpy", func(x, y []float32) { Axpy(1e-9, x, y) })
			run("Scale", func(x, y []float32) { Scale(1, y) })
			run("Max", func(x, y []float32) { sink += Max(x) })
			run("SumExp", func(x, y []float32) { sink += SumExp(x, 0) })
			run("ExpTo", func(x, y []float32) { sink += ExpTo(y, x, 0) })
			run("SiLUMul", func(x, y []float32) { copy(y, x); SiLUMul(y, x) })
			w := make([]float32, n)
			run("RMSNorm", func(x, y []float32) { RMSNorm(y, x, w, 1e-5) })
		}
	}
	_ = sink
}

// dgemmBenchShapes are the shapes of Dgemm's callers: the GPTQ lazy batch
// update (W[:, i+B:] −= Err·H⁻¹[i:i+B, i+B:] with 128 columns per batch), a
// Cholesky trailing update (A22 −= L21·L21ᵀ with a 128 panel), and a square
// product.
var dgemmBenchShapes = []struct {
	name           string
	m, n, k        int
	transA, transB bool
	alpha, beta    float64
}{
	{"gptq", 2048, 8064, 128, false, false, -1, 1},
	{"cholesky", 4096, 4096, 128, false, true, -1, 1},
	{"square", 1024, 1024, 1024, false, false, 1, 0},
}

// BenchmarkDgemm measures Dgemm (all GOMAXPROCS) on the assembly paths and,
// in the same run, gonum's blas64.Gemm (the pure-Go dgemm it replaces) at the
// callers' shapes. The float64 FMA peak is half BenchmarkPeakFMA's float32 one.
func BenchmarkDgemm(b *testing.B) {
	for _, s := range dgemmBenchShapes {
		rng := rand.New(rand.NewPCG(3, 3))
		lda, ldb := s.k, s.n
		if s.transA {
			lda = s.m
		}
		if s.transB {
			ldb = s.k
		}
		a := randSlice64(rng, s.m*s.k)
		bm := randSlice64(rng, s.k*s.n)
		c := randSlice64(rng, s.m*s.n)
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		shape := fmt.Sprintf("%s_%dx%dx%d", s.name, s.m, s.n, s.k)
		names := []string{}
		for _, p := range benchPaths() {
			names = append(names, pathName(p))
		}
		names = append(names, "gonum")
		for i, name := range names {
			b.Run(shape+"/"+name, func(b *testing.B) {
				run := func() {
					Dgemm(s.transA, s.transB, s.m, s.n, s.k, s.alpha, a, lda, bm, ldb, s.beta, c, s.n)
				}
				if name == "gonum" {
					tr := func(t bool) blas.Transpose {
						if t {
							return blas.Trans
						}
						return blas.NoTrans
					}
					ga := blas64.General{Rows: s.m, Cols: s.k, Stride: lda, Data: a}
					if s.transA {
						ga.Rows, ga.Cols = s.k, s.m
					}
					gb := blas64.General{Rows: s.k, Cols: s.n, Stride: ldb, Data: bm}
					if s.transB {
						gb.Rows, gb.Cols = s.n, s.k
					}
					gc := blas64.General{Rows: s.m, Cols: s.n, Stride: s.n, Data: c}
					run = func() { blas64.Gemm(tr(s.transA), tr(s.transB), s.alpha, ga, gb, s.beta, gc) }
					benchFlops(b, flops, run)
					return
				}
				withPath(b, benchPaths()[i], func() { benchFlops(b, flops, run) })
			})
		}
	}
}

// benchFlops runs f (flops floating-point operations) b.N times and reports
// GFLOP/s and GFLOP per CPU-second.
func benchFlops(b *testing.B, flops float64, f func()) {
	f()
	b.ResetTimer()
	cpu0 := processCPUSeconds()
	for b.Loop() {
		f()
	}
	cpu := processCPUSeconds() - cpu0
	total := flops * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu > 0 {
		b.ReportMetric(total/cpu/1e9, "GFLOP/cpu-s")
	}
}
