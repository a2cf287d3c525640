package kernels

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// withCompute runs f under Compute c (skipping when the CPU cannot) and restores ComputeF32.
func withCompute(t testing.TB, c Compute, f func()) {
	t.Helper()
	if err := SetCompute(c); err != nil {
		t.Skip(err)
	}
	defer SetCompute(ComputeF32)
	f()
}

// TestBF16Round checks the rounding to bfloat16 against its definition (nearest, ties to even)
// on hand-picked values, and the vector rounding against the Go one on random bit patterns
// (subnormals, infinities and NaNs included).
func TestBF16Round(t *testing.T) {
	for _, tc := range []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // above the tie
		{0x3f807fff, 0x3f80}, // below the tie
		{0xbf808001, 0xbf81}, // negative
		{0x7f7fffff, 0x7f80}, // max float rounds to +Inf
		{0x7f800000, 0x7f80}, // +Inf
		{0xff800000, 0xff80}, // -Inf
		{0x7f800001, 0x7fc0}, // signalling NaN quieted
		{0x7fc12345, 0x7fc1}, // quiet NaN keeps its top payload
		{0x00000001, 0x0000}, // subnormal treated as zero
		{0x807fffff, 0x8000}, // negative subnormal: -0
		{0x00800000, 0x0080}, // smallest normal
	} {
		if got := bf16Round(math.Float32frombits(tc.in)); got != tc.want {
			t.Errorf("bf16Round(%#08x) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
	if !hasBF16 {
		t.Log("no AVX512_BF16: only the Go rounding is checked")
		return
	}
	rng := rand.New(rand.NewPCG(11, 12))
	src := make([]float32, 4096+17)
	for i := range src {
		switch i % 4 {
		case 0:
			src[i] = math.Float32frombits(rng.Uint32())
		case 1:
			src[i] = math.Float32frombits(rng.Uint32() & 0x807fffff) // subnormal or zero
		case 2:
			src[i] = math.Float32frombits(rng.Uint32()&0xffff0000 | 0x8000) // exact tie
		default:
			src[i] = float32(rng.NormFloat64())
		}
	}
	got, want := make([]uint16, len(src)), make([]uint16, len(src))
	roundBF16(got, src)
	roundBF16Go(want, src)
	for i := range src {
		if got[i] != want[i] {
			t.Fatalf("bits %#08x: vector %#04x, Go %#04x", math.Float32bits(src[i]), got[i], want[i])
		}
	}
}

// TestGemmWBF16 checks GemmW under ComputeBF16 against a float64 product of the operands
// rounded to bfloat16 (products exact, float32 sums: the float32 tolerance of TestGemm), for
// every shape of the Gemm tests, B held in each DType, serial and split; and that the result
// is near the float32 product (within the bfloat16 rounding of the operands).
func TestGemmWBF16(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(old)
	runtime.GOMAXPROCS(max(old, 3))
	withCompute(t, ComputeBF16, func() {
		if got := Implementation(); !strings.HasPrefix(got, "avx512-bf16/") {
			t.Errorf("Implementation() = %q under bf16 compute", got)
		}
		rng := rand.New(rand.NewPCG(13, 14))
		cases := append(gemmCases(), gemmCase{false, true, 300, 1000, 700, 1, 0, 0, 6, 0},
			gemmCase{false, true, 70, 48, 263, 1, 1, 0, 0, 0}, gemmCase{false, true, 13, 4096 + 40, 64, 1, 0.5, 2, 0, 0})
		for _, dt := range []DType{BF16, F16, F32} {
			for ci, tc := range cases {
				if dt != BF16 && ci%4 != 0 {
					continue // every shape with BF16 weights, a quarter of them with the others
				}
				ar, ac, br, bc, lda, ldb, ldc := tc.layout()
				a := randSlice(rng, max(0, (ar-1)*lda+ac))
				var w Weights
				var bf []float32
				if dt == F32 {
					bf = randSlice(rng, max(0, (br-1)*ldb+bc))
					w = F32Weights(bf)
				} else {
					var bits []uint16
					bits, bf = rand16(rng, dt, max(0, (br-1)*ldb+bc))
					w = Weights{DType: dt, Bits: bits}
				}
				// The operands as the bf16 path sees them.
				ab, bb := make([]float32, len(a)), make([]float32, len(bf))
				for i, v := range a {
					ab[i] = BF16ToFloat32(bf16Round(v))
				}
				for i, v := range bf {
					bb[i] = BF16ToFloat32(bf16Round(v))
				}
				c := randSlice(rng, (tc.m-1)*ldc+tc.n)
				want, mag := refGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, ab, lda, bb, ldb, tc.beta, c, ldc)
				exact, _ := refGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, bf, ldb, tc.beta, c, ldc)
				if ci%2 == 0 {
					GemmWSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, w, ldb, tc.beta, c, ldc)
				} else {
					GemmW(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, w, ldb, tc.beta, c, ldc)
				}
				for i := 0; i < tc.m; i++ {
					for j := 0; j < tc.n; j++ {
						got, e := float64(c[i*ldc+j]), i*tc.n+j
						tol := 1e-6 + 2e-6*mag[e]*math.Sqrt(float64(tc.k+1))
						if math.IsNaN(got) || math.Abs(got-want[e]) > tol {
							t.Fatalf("%v %v: C[%d,%d] = %g, want %g (bf16 operands, tol %g)", dt, tc, i, j, got, want[e], tol)
						}
						// Each operand moves by at most 2^-9 of itself.
						if d := math.Abs(got - exact[e]); d > 1e-6+mag[e]*(1.0/128) {
							t.Fatalf("%v %v: C[%d,%d] = %g, float32 product %g", dt, tc, i, j, got, exact[e])
						}
					}
				}
			}
		}
	})
}

// TestGemmBF16OnlyWeights checks that ComputeBF16 leaves Gemm (no weights: attention,
// Hessians) in float32, bit for bit.
func TestGemmBF16OnlyWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	a, b := randSlice(rng, 70*90), randSlice(rng, 50*90)
	c1, c2 := make([]float32, 70*50), make([]float32, 70*50)
	Gemm(false, true, 70, 50, 90, 1, a, 90, b, 90, 0, c1, 50)
	withCompute(t, ComputeBF16, func() {
		Gemm(false, true, 70, 50, 90, 1, a, 90, b, 90, 0, c2, 50)
	})
	for i := range c1 {
		if c1[i] != c2[i] {
			t.Fatalf("Gemm under bf16 compute: C[%d] = %v, want %v", i, c2[i], c1[i])
		}
	}
}

// TestComputeSelection checks parsing, naming and the refusal where the CPU lacks the unit.
func TestComputeSelection(t *testing.T) {
	for _, s := range []string{"fp32", "bf16"} {
		c, err := ParseCompute(s)
		if err != nil || c.String() != s {
			t.Errorf("ParseCompute(%q) = %v, %v", s, c, err)
		}
	}
	if _, err := ParseCompute("int8"); err == nil || !strings.Contains(err.Error(), "int8") {
		t.Errorf("ParseCompute(int8) error = %v", err)
	}
	err := SetCompute(ComputeBF16)
	defer SetCompute(ComputeF32)
	if HasBF16Compute() != (err == nil) {
		t.Fatalf("HasBF16Compute %v but SetCompute(bf16) = %v", HasBF16Compute(), err)
	}
	if err != nil && !strings.Contains(err.Error(), "AVX512_BF16") {
		t.Errorf("refusal does not name the missing unit: %v", err)
	}
	if err == nil && CurrentCompute() != ComputeBF16 {
		t.Errorf("CurrentCompute() = %v after SetCompute(bf16)", CurrentCompute())
	}
	if err := SetCompute(ComputeF32); err != nil || CurrentCompute() != ComputeF32 {
		t.Errorf("SetCompute(fp32) = %v, current %v", err, CurrentCompute())
	}
}
