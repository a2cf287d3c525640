package kernels

import (
	"fmt"
	"math"
)

// DType is the element type of a Weights matrix.
type DType uint8

// Element types of Weights. BF16 and F16 values convert to float32 exactly.
const (
	F32  DType = iota // float32
	BF16              // bfloat16: the top 16 bits of a float32
	F16               // IEEE 754 binary16
)

// String returns the safetensors name of the dtype ("F32", "BF16", "F16").
func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case BF16:
		return "BF16"
	case F16:
		return "F16"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// Size is the size of one element in bytes (0 for an unknown dtype).
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case BF16, F16:
		return 2
	}
	return 0
}

// Weights is a read-only row-major matrix operand held in its stored element type: float32 in
// F32, or 16-bit floats (bfloat16 or binary16 bits) in Bits. GemmW converts 16-bit elements to
// float32 while it packs them, exactly, so a product with Weights gives the same bits as the same
// product with the converted float32 matrix, without a float32 copy of the matrix in memory.
type Weights struct {
	DType DType
	F32   []float32 // the elements when DType is F32
	Bits  []uint16  // the elements' bits when DType is BF16 or F16
}

// F32Weights returns w as Weights of type F32 (no copy).
func F32Weights(w []float32) Weights { return Weights{DType: F32, F32: w} }

// Len is the number of elements.
func (w Weights) Len() int {
	if w.DType == F32 {
		return len(w.F32)
	}
	return len(w.Bits)
}

// IsZero reports whether w holds no slice at all (the zero Weights).
func (w Weights) IsZero() bool { return w.F32 == nil && w.Bits == nil }

// from returns the elements from index off on.
func (w Weights) from(off int) Weights {
	if w.DType == F32 {
		return Weights{DType: F32, F32: w.F32[off:]}
	}
	return Weights{DType: w.DType, Bits: w.Bits[off:]}
}

// ToFloat32 writes elements [off, off+len(dst)) of w to dst as float32 (exactly).
func (w Weights) ToFloat32(dst []float32, off int) {
	switch w.DType {
	case F32:
		copy(dst, w.F32[off:off+len(dst)])
	case BF16:
		convertBF16(dst, w.Bits[off:off+len(dst)])
	case F16:
		convertF16(dst, w.Bits[off:off+len(dst)])
	default:
		panic(fmt.Sprintf("kernels: Weights of unknown %v", w.DType))
	}
}

// Float32 returns the elements as a new float32 slice (F32 elements are copied too).
func (w Weights) Float32() []float32 {
	out := make([]float32, w.Len())
	w.ToFloat32(out, 0)
	return out
}

// BF16ToFloat32 converts bfloat16 bits to float32 (exact).
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F16ToFloat32 converts IEEE 754 binary16 bits to float32 (exact; subnormals, infinities and NaN
// payloads included).
func F16ToFloat32(h uint16) float32 { return math.Float32frombits(f16Table[h]) }

// f16Table holds the float32 bits of every binary16 value.
var f16Table = func() *[1 << 16]uint32 {
	var t [1 << 16]uint32
	for i := range t {
		t[i] = f16Bits(uint16(i))
	}
	return &t
}()

// f16Bits converts binary16 bits to float32 bits.
func f16Bits(h uint16) uint32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return sign | 0x7f800000 | mant<<13
	case exp != 0:
		return sign | (exp+112)<<23 | mant<<13
	case mant == 0:
		return sign
	default: // subnormal: normalise
		e := uint32(113)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return sign | e<<23 | (mant&0x3ff)<<13
	}
}

// convertBF16Go and convertF16Go convert len(dst) elements of src.
func convertBF16Go(dst []float32, src []uint16) {
	src = src[:len(dst)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

func convertF16Go(dst []float32, src []uint16) {
	src = src[:len(dst)]
	t := f16Table
	for i, h := range src {
		dst[i] = math.Float32frombits(t[h])
	}
}

// GemmW is Gemm with a B operand held in any DType: C = alpha·op(A)·op(B) + beta·C. 16-bit
// elements of B are converted to float32 when B's panels are packed, so the result is
// bit-identical to Gemm with B converted to float32 beforehand. Safe for concurrent use.
// Under ComputeBF16 (SetCompute) the operands are rounded to bfloat16 instead and the result
// differs accordingly.
func GemmW(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b Weights, ldb int, beta float32, c []float32, ldc int) {
	checkGemmW("GemmW", transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	serial := gemmSerial
	if useBF16() {
		serial = gemmSerialBF16
	}
	gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, serial)
}

// GemmWSerial is GemmW on the calling goroutine only.
func GemmWSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b Weights, ldb int, beta float32, c []float32, ldc int) {
	checkGemmW("GemmWSerial", transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if gemmTrivial(m, n, k, alpha, beta, c, ldc) {
		return
	}
	if useBF16() {
		gemmSerialBF16(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	gemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// checkGemmW is checkGemm for a Weights operand.
func checkGemmW(name string, transA, transB bool, m, n, k int, a []float32, lda int, b Weights, ldb int, c []float32, ldc int) {
	if b.DType.Size() == 0 {
		panic(fmt.Sprintf("kernels: %s: b has unknown %v", name, b.DType))
	}
	checkGemmLen(name, transA, transB, m, n, k, a, lda, b.Len(), ldb, c, ldc)
}

// packB16 is packB for 16-bit elements (see packB).
func packB16(dst []float32, b Weights, ldb int, trans bool, p0, kc, j0, nc int) {
	conv := convertBF16
	if b.DType == F16 {
		conv = convertF16
	}
	bits := b.Bits
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		d := dst[jr*kc : jr*kc+nr*kc]
		if !trans {
			for p := 0; p < kc; p++ {
				o := (p0+p)*ldb + j0 + jr
				dp := d[p*nr : p*nr+nr]
				conv(dp[:cols], bits[o:o+cols])
				clear(dp[cols:])
			}
			continue
		}
		if cols == nr && packBTrans16H(d, b, ldb, j0+jr, p0, kc) {
			continue
		}
		for cc := 0; cc < nr; cc++ {
			if cc >= cols {
				for p := 0; p < kc; p++ {
					d[p*nr+cc] = 0
				}
				continue
			}
			src := bits[(j0+jr+cc)*ldb+p0 : (j0+jr+cc)*ldb+p0+kc]
			if b.DType == F16 {
				t := f16Table
				for p, h := range src {
					d[p*nr+cc] = math.Float32frombits(t[h])
				}
				continue
			}
			for p, h := range src {
				d[p*nr+cc] = math.Float32frombits(uint32(h) << 16)
			}
		}
	}
}
