package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// f16Ref converts binary16 bits to float64 from the format's definition (independently of
// f16Bits): (−1)^s · 2^(e−15) · (1 + m/1024), subnormals 2^−14 · m/1024.
func f16Ref(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e, m := int(h>>10)&0x1f, float64(h&0x3ff)
	switch {
	case e == 0x1f && m == 0:
		return math.Inf(int(s))
	case e == 0x1f:
		return math.NaN()
	case e == 0:
		return s * math.Ldexp(m/1024, -14)
	}
	return s * math.Ldexp(1+m/1024, e-15)
}

// TestConvert16 converts every 16-bit pattern on each path: bfloat16 is the top half of the
// float32 bits, binary16 is exact (NaN stays NaN: the hardware conversion sets the quiet bit of
// a signalling NaN, which is why weights are checked finite at load).
func TestConvert16(t *testing.T) {
	all := make([]uint16, 1<<16+5) // not a multiple of 8: the tail too
	for i := range all {
		all[i] = uint16(i)
	}
	for _, asm := range paths() {
		t.Run(pathName(asm), func(t *testing.T) {
			withPath(t, asm, func() {
				got := make([]float32, len(all))
				convertBF16(got, all)
				for i, h := range all {
					if math.Float32bits(got[i]) != uint32(h)<<16 {
						t.Fatalf("bfloat16 %#04x: got bits %#08x, want %#08x", h, math.Float32bits(got[i]), uint32(h)<<16)
					}
				}
				convertF16(got, all)
				for i, h := range all {
					want := f16Ref(h)
					g := float64(got[i])
					if math.IsNaN(want) {
						if !math.IsNaN(g) {
							t.Fatalf("binary16 %#04x: got %v, want NaN", h, g)
						}
						continue
					}
					if g != want || math.Signbit(g) != math.Signbit(want) {
						t.Fatalf("binary16 %#04x: got %v, want %v", h, g, want)
					}
					if F16ToFloat32(h) != got[i] {
						t.Fatalf("binary16 %#04x: F16ToFloat32 %v, converted %v", h, F16ToFloat32(h), got[i])
					}
				}
			})
		})
	}
}

// rand16 returns n random 16-bit floats of dtype dt (finite, of about unit size, with some
// zeros and subnormals), with their float32 values.
func rand16(rng *rand.Rand, dt DType, n int) ([]uint16, []float32) {
	bits := make([]uint16, n)
	for i := range bits {
		v := float32(rng.NormFloat64())
		switch i % 17 {
		case 3:
			v = 0
		case 5:
			v = -v * 1e-6 // subnormal binary16
		}
		b := math.Float32bits(v)
		if dt == BF16 {
			bits[i] = uint16(b >> 16)
		} else {
			bits[i] = f16FromFloat(v)
		}
	}
	w := Weights{DType: dt, Bits: bits}
	return bits, w.Float32()
}

// f16FromFloat truncates a float32 of magnitude < 65504 to binary16 bits (any nearby value
// will do for the tests).
func f16FromFloat(v float32) uint16 {
	var s uint16
	if v < 0 {
		s, v = 0x8000, -v
	}
	if v < 0x1p-14 {
		return s | uint16(v*0x1p24) // subnormal (or zero)
	}
	e := math.Ilogb(float64(v))
	m := uint16((float64(v)/math.Ldexp(1, e) - 1) * 1024)
	return s | uint16(e+15)<<10 | m
}

// TestGemmW checks that a product with a 16-bit B operand has exactly the bits of the same
// product with B converted to float32 first, on every path, for every shape of the Gemm tests
// (partial panels, k not a multiple of 8, both transposes, padded strides), serial and split.
func TestGemmW(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(old)
	runtime.GOMAXPROCS(max(old, 3)) // large cases split across goroutines
	for _, asm := range paths() {
		for _, dt := range []DType{BF16, F16} {
			t.Run(fmt.Sprintf("%s/%v", pathName(asm), dt), func(t *testing.T) {
				withPath(t, asm, func() {
					rng := rand.New(rand.NewPCG(7, uint64(dt)))
					cases := append(gemmCases(), gemmCase{false, true, 300, 1000, 700, 1, 0, 0, 5, 0},
						gemmCase{false, true, 70, 48, 264, 1, 1, 0, 0, 0})
					for ci, tc := range cases {
						ar, ac, br, bc, lda, ldb, ldc := tc.layout()
						a := randSlice(rng, max(0, (ar-1)*lda+ac))
						bits, bf := rand16(rng, dt, max(0, (br-1)*ldb+bc))
						c0 := randSlice(rng, (tc.m-1)*ldc+tc.n)
						want := append([]float32(nil), c0...)
						got := append([]float32(nil), c0...)
						w := Weights{DType: dt, Bits: bits}
						if ci%2 == 0 {
							GemmSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, bf, ldb, tc.beta, want, ldc)
							GemmWSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, w, ldb, tc.beta, got, ldc)
						} else {
							Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, bf, ldb, tc.beta, want, ldc)
							GemmW(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, w, ldb, tc.beta, got, ldc)
						}
						for i := range want {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("%v: C[%d] = %v with %v B, %v with float32 B", tc, i, got[i], dt, want[i])
							}
						}
					}
					// F32 Weights are Gemm itself.
					a, b := randSlice(rng, 40*50), randSlice(rng, 30*50)
					c1, c2 := make([]float32, 40*30), make([]float32, 40*30)
					Gemm(false, true, 40, 30, 50, 1, a, 50, b, 50, 0, c1, 30)
					GemmW(false, true, 40, 30, 50, 1, a, 50, F32Weights(b), 50, 0, c2, 30)
					for i := range c1 {
						if c1[i] != c2[i] {
							t.Fatalf("F32 Weights: C[%d] = %v, Gemm %v", i, c2[i], c1[i])
						}
					}
				})
			})
		}
	}
}

// TestGemmWPanics checks that a short or untyped B operand is refused by name.
func TestGemmWPanics(t *testing.T) {
	a, c := make([]float32, 12), make([]float32, 16)
	for _, tc := range []struct {
		name string
		b    Weights
		want string
	}{
		{"short", Weights{DType: BF16, Bits: make([]uint16, 11)}, "kernels: GemmW: len(b)=11 < 12 needed for 4×3 with ld=3"},
		{"dtype", Weights{DType: 9, Bits: make([]uint16, 12)}, "kernels: GemmW: b has unknown DType(9)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); fmt.Sprint(r) != tc.want {
					t.Fatalf("panic %v, want %q", r, tc.want)
				}
			}()
			GemmW(false, true, 4, 4, 3, 1, a, 3, tc.b, 3, 0, c, 4)
		})
	}
}

// BenchmarkGemmW measures x·Wᵀ at the Llama-3.2-1B layer shapes (1024 token rows) with W in
// each dtype, on each assembly path and, where the CPU has AVX512_BF16, under ComputeBF16
// (compare with benchstat -col /dtype or /kernel).
func BenchmarkGemmW(b *testing.B) {
	type variant struct {
		name    string
		path    kpath
		compute Compute
	}
	var variants []variant
	for _, p := range benchPaths() {
		variants = append(variants, variant{pathName(p), p, ComputeF32})
	}
	if hasBF16 {
		variants = append(variants, variant{"bf16", pathAVX512, ComputeBF16})
	}
	for _, v := range variants {
		for _, s := range []struct{ m, n, k int }{{1024, 2048, 2048}, {1024, 8192, 2048}, {1024, 2048, 8192}} {
			for _, dt := range []DType{F32, BF16, F16} {
				b.Run(fmt.Sprintf("kernel=%s/shape=%dx%dx%d/dtype=%v", v.name, s.m, s.n, s.k, dt), func(b *testing.B) {
					withPath(b, v.path, func() {
						withCompute(b, v.compute, func() { benchGemmW(b, s.m, s.n, s.k, dt) })
					})
				})
			}
		}
	}
}

// benchGemmW runs GemmW on one m×n×k shape with W in dtype dt.
func benchGemmW(b *testing.B, m, n, k int, dt DType) {
	rng := rand.New(rand.NewPCG(1, 1))
	a := randSlice(rng, m*k)
	w := F32Weights(randSlice(rng, n*k))
	if dt != F32 {
		bits, _ := rand16(rng, dt, n*k)
		w = Weights{DType: dt, Bits: bits}
	}
	c := make([]float32, m*n)
	cpu0 := processCPUSeconds()
	for b.Loop() {
		GemmW(false, true, m, n, k, 1, a, k, w, k, 0, c, n)
	}
	flops := 2 * float64(m) * float64(n) * float64(k) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := processCPUSeconds() - cpu0; cpu > 0 {
		b.ReportMetric(flops/cpu/1e9, "GFLOP/cpu-s")
	}
}

// blockDecoder is a Decoder standing in for a quantized format: it holds the values in rows of
// cols, cut into blocks of block values, and Decode expands every block the range touches
// (whole) into a scratch before copying the range out, as the database's decoders do. It panics
// on a range outside the matrix.
type blockDecoder struct {
	v           []float32
	cols, block int
}

func (d *blockDecoder) Len() int { return len(d.v) }

func (d *blockDecoder) Decode(dst []float32, off int) {
	if off < 0 || off+len(dst) > len(d.v) {
		panic(fmt.Sprintf("blockDecoder: [%d, %d) outside [0, %d)", off, off+len(dst), len(d.v)))
	}
	for len(dst) > 0 {
		r, c := off/d.cols, off%d.cols
		b0 := c / d.block * d.block
		b1 := min(b0+d.block, d.cols, len(d.v)-r*d.cols) // the last row may be short
		var blk [64]float32
		copy(blk[:b1-b0], d.v[r*d.cols+b0:r*d.cols+b1])
		n := copy(dst, blk[c-b0:b1-b0])
		dst, off = dst[n:], off+n
	}
}

// TestGemmWDecoded checks that a product with a Decoded B operand has exactly the bits of the
// same product with the decoded float32 matrix, on every path, for every shape of TestGemmW
// (ranges that start inside a block: kc blocks are balanced, e.g. 700 → 234), serial and split;
// and under ComputeBF16, where the CPU has it, the bits of GemmW with F32 Weights of that
// matrix (both round the same float32 values to bfloat16).
func TestGemmWDecoded(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(old)
	runtime.GOMAXPROCS(max(old, 3))
	cases := append(gemmCases(), gemmCase{false, true, 300, 1000, 700, 1, 0, 0, 5, 0},
		gemmCase{false, true, 70, 48, 264, 1, 1, 0, 0, 0}, gemmCase{false, true, 13, 4096 + 40, 64, 1, 0.5, 2, 0, 0})
	run := func(t *testing.T, bf16 bool) {
		rng := rand.New(rand.NewPCG(17, 18))
		for ci, tc := range cases {
			ar, ac, br, bc, lda, ldb, ldc := tc.layout()
			a := randSlice(rng, max(0, (ar-1)*lda+ac))
			bf := randSlice(rng, max(0, (br-1)*ldb+bc))
			w := DecodedWeights(&blockDecoder{v: bf, cols: ldb, block: []int{32, 64}[ci%2]})
			c0 := randSlice(rng, (tc.m-1)*ldc+tc.n)
			want := append([]float32(nil), c0...)
			got := append([]float32(nil), c0...)
			switch {
			case bf16 && ci%2 == 0:
				GemmWSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, F32Weights(bf), ldb, tc.beta, want, ldc)
				GemmWSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, w, ldb, tc.beta, got, ldc)
			case bf16:
				GemmW(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, F32Weights(bf), ldb, tc.beta, want, ldc)
				GemmW(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, w, ldb, tc.beta, got, ldc)
			case ci%2 == 0:
				GemmSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, bf, ldb, tc.beta, want, ldc)
				GemmWSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, w, ldb, tc.beta, got, ldc)
			default:
				Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, bf, ldb, tc.beta, want, ldc)
				GemmW(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, w, ldb, tc.beta, got, ldc)
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%v: C[%d] = %v with Decoded B, %v with float32 B", tc, i, got[i], want[i])
				}
			}
		}
	}
	for _, asm := range paths() {
		t.Run(pathName(asm), func(t *testing.T) {
			withPath(t, asm, func() { run(t, false) })
		})
	}
	t.Run("bf16", func(t *testing.T) {
		withCompute(t, ComputeBF16, func() { run(t, true) })
	})
}

// TestDecodedWeights checks Len, ToFloat32, Float32, from and IsZero of Decoded Weights
// against the decoded slice, and the refusals by name.
func TestDecodedWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	v := randSlice(rng, 7*45)
	w := DecodedWeights(&blockDecoder{v: v, cols: 45, block: 32})
	if w.Len() != len(v) || w.IsZero() || w.DType.String() != "Decoded" {
		t.Fatalf("Len %d IsZero %v String %q, want %d false Decoded", w.Len(), w.IsZero(), w.DType, len(v))
	}
	if got := w.Float32(); !slices.Equal(got, v) {
		t.Fatalf("Float32 differs from the decoded values")
	}
	for _, r := range [][2]int{{0, 0}, {3, 29}, {31, 2}, {40, 60}, {100, 210}} {
		sub := w.from(r[0])
		if sub.Len() != len(v)-r[0] {
			t.Fatalf("from(%d).Len() = %d, want %d", r[0], sub.Len(), len(v)-r[0])
		}
		got := make([]float32, r[1])
		sub.ToFloat32(got, 5)
		if !slices.Equal(got, v[r[0]+5:r[0]+5+r[1]]) {
			t.Fatalf("from(%d).ToFloat32(_, 5) of %d values differs", r[0], r[1])
		}
	}
	for _, tc := range []struct {
		name string
		f    func()
		want string
	}{
		{"range", func() { w.from(300).ToFloat32(make([]float32, 20), 0) }, "kernels: Weights elements [0, 20) outside [0, 15)"},
		{"offset", func() { w.from(316) }, "kernels: Weights offset 316 outside [0, 315]"},
		{"nil", func() {
			GemmW(false, true, 1, 1, 1, 1, []float32{1}, 1, Weights{DType: Decoded}, 1, 0, []float32{0}, 1)
		}, "kernels: GemmW: b is Decoded without a Decoder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); fmt.Sprint(r) != tc.want {
					t.Fatalf("panic %v, want %q", r, tc.want)
				}
			}()
			tc.f()
		})
	}
}
