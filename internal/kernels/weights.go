package kernels

import (
	"fmt"
	"math"
	"sync"
)

// DType is the element type of a Weights matrix.
type DType uint8

// Element types of Weights. BF16 and F16 values convert to float32 exactly.
const (
	F32     DType = iota // float32
	BF16                 // bfloat16: the top 16 bits of a float32
	F16                  // IEEE 754 binary16
	Decoded              // a compact form expanded to float32 on demand by a Decoder
)

// String returns the safetensors name of the dtype ("F32", "BF16", "F16"), or "Decoded".
func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case BF16:
		return "BF16"
	case F16:
		return "F16"
	case Decoded:
		return "Decoded"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// valid reports whether d is one of the dtypes above.
func (d DType) valid() bool { return d <= Decoded }

// Size is the size of one element in bytes (0 for Decoded, whose elements have no fixed size,
// and for an unknown dtype).
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
// F32, 16-bit floats (bfloat16 or binary16 bits) in Bits, or, for Decoded, a compact form
// (quantized blocks, codes and scales, …) that Dec expands. GemmW converts the elements to
// float32 while it packs them, a panel at a time, so a product with Weights gives the same bits
// as the same product with the converted float32 matrix, without a float32 copy of the matrix
// in memory.
type Weights struct {
	DType DType
	F32   []float32 // the elements when DType is F32
	Bits  []uint16  // the elements' bits when DType is BF16 or F16
	Dec   Decoder   // the elements when DType is Decoded

	off int // Decoded: the first element of Dec this Weights starts at (see from)
}

// Decoder is a read-only matrix held in a compact form that expands to float32 on demand: the
// Decoded form of Weights. Its elements are numbered as those of a row-major []float32 of Len
// elements. GemmW asks for short ranges as it packs (for y = x·Wᵀ: a stretch of up to 256
// elements of each of 16 rows of W), so Decode must be cheap for any range, including ones that
// start or end inside a row's quantization block; it must give the same values at every call
// and be safe for concurrent use.
type Decoder interface {
	// Len is the number of elements.
	Len() int
	// Decode writes elements [off, off+len(dst)) to dst, 0 ≤ off ≤ off+len(dst) ≤ Len().
	Decode(dst []float32, off int)
}

// DecodedWeights returns Weights of type Decoded over d.
func DecodedWeights(d Decoder) Weights { return Weights{DType: Decoded, Dec: d} }

// F32Weights returns w as Weights of type F32 (no copy).
func F32Weights(w []float32) Weights { return Weights{DType: F32, F32: w} }

// Len is the number of elements.
func (w Weights) Len() int {
	switch w.DType {
	case F32:
		return len(w.F32)
	case Decoded:
		if w.Dec == nil {
			return 0
		}
		return w.Dec.Len() - w.off
	}
	return len(w.Bits)
}

// IsZero reports whether w holds no matrix at all (the zero Weights).
func (w Weights) IsZero() bool { return w.F32 == nil && w.Bits == nil && w.Dec == nil }

// from returns the elements from index off on.
func (w Weights) from(off int) Weights {
	switch w.DType {
	case F32:
		return Weights{DType: F32, F32: w.F32[off:]}
	case Decoded:
		if off < 0 || off > w.Len() {
			panic(fmt.Sprintf("kernels: Weights offset %d outside [0, %d]", off, w.Len()))
		}
		return Weights{DType: Decoded, Dec: w.Dec, off: w.off + off}
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
	case Decoded:
		if off < 0 || off+len(dst) > w.Len() {
			panic(fmt.Sprintf("kernels: Weights elements [%d, %d) outside [0, %d)", off, off+len(dst), w.Len()))
		}
		w.Dec.Decode(dst, w.off+off)
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
// and Decoded elements of B are converted to float32 when B's panels are packed, so the result
// is bit-identical to Gemm with B converted to float32 beforehand. Safe for concurrent use.
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
	if !b.DType.valid() {
		panic(fmt.Sprintf("kernels: %s: b has unknown %v", name, b.DType))
	}
	if b.DType == Decoded && b.Dec == nil {
		panic(fmt.Sprintf("kernels: %s: b is Decoded without a Decoder", name))
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

// packBDecoded is packB for a Decoded operand: each micro-panel's elements are decoded into a
// scratch matrix (decodeBlock) that packB then packs as float32 — the same copies of the same
// values, hence the same bits as packing the decoded matrix, and with the same kernels (the
// AVX2 transposition for full panels of transposed B).
func packBDecoded(dst []float32, b Weights, ldb int, trans bool, p0, kc, j0, nc int) {
	sc := decodePool.Get().(*[]float32)
	defer decodePool.Put(sc)
	*sc = grow(*sc, nr*kc)
	s := *sc
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		ld := decodeBlock(s, b, ldb, trans, p0, kc, j0+jr, cols)
		packB(dst[jr*kc:], F32Weights(s), ld, trans, 0, kc, 0, cols)
	}
}

// decodeBlock decodes columns [j, j+cols) and rows [p0, p0+kc) of op(B) into s and returns the
// row stride of s as a matrix b: for transposed B, the cols rows of b, s[c*kc+p] = b(j+c, p0+p)
// (stride kc); otherwise kc rows of cols elements, s[p*cols+c] = b(p0+p, j+c) (stride cols).
func decodeBlock(s []float32, b Weights, ldb int, trans bool, p0, kc, j, cols int) int {
	if trans {
		for c := 0; c < cols; c++ {
			b.ToFloat32(s[c*kc:(c+1)*kc], (j+c)*ldb+p0)
		}
		return kc
	}
	for p := 0; p < kc; p++ {
		b.ToFloat32(s[p*cols:(p+1)*cols], (p0+p)*ldb+j)
	}
	return cols
}

// decodePool holds packBDecoded's and packBBF16's scratch matrices (*[]float32).
var decodePool = sync.Pool{New: func() any { return new([]float32) }}
