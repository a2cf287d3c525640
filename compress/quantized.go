package compress

import (
	"fmt"
	"math"
)

// Quantized is a weight matrix quantized per (row, group) on an asymmetric
// uniform grid: the weight at (r, j) dequantizes to
//
//	Scale[r·G + g]·(Codes[r·Cols + j] − Zero[r·G + g])
//
// where G = NumGroups() and g is the group of column j: j / GroupSize
// (GroupSize 0: the single group 0), or GIdx[j] when GIdx is set.
type Quantized struct {
	// Rows and Cols are the shape of the weight matrix (out × in).
	Rows, Cols int
	// Bits is the code width, 1..8; codes lie in [0, 2^Bits − 1].
	Bits int
	// GroupSize is the number of consecutive input columns sharing a scale
	// and zero within a row; 0 (or ≥ Cols) means one group per row (GPTQ and
	// RTN store 0 whenever there is a single group).
	// With GIdx set, groups are consecutive in the act-order processing
	// order, not in column order.
	GroupSize int
	// Codes holds one code per weight, row-major in the original column order.
	Codes []uint8
	// Scale holds Rows·NumGroups() positive scales, row-major. Every scale is
	// exactly representable in IEEE binary16 (GPTQ and RTN round it so), so
	// a 16-bit store is lossless.
	Scale []float32
	// Zero holds Rows·NumGroups() zero points, integers in [0, 2^Bits − 1]
	// (so Bits wide), stored as float32.
	Zero []float32
	// GIdx maps each input column to its group (the reference's g_idx, for
	// act-order with more than one group); nil means group j / GroupSize.
	GIdx []int32
}

// NumGroups returns the number of groups per row: ceil(Cols/GroupSize), or 1
// when GroupSize is 0 or at least Cols.
func (q *Quantized) NumGroups() int {
	if q.GroupSize <= 0 || q.GroupSize >= q.Cols {
		return 1
	}
	return (q.Cols + q.GroupSize - 1) / q.GroupSize
}

// Validate checks that q is self-consistent: shapes, code range, zero points
// integral and in range, scales positive, finite and binary16-representable,
// group indices in range.
func (q *Quantized) Validate() error {
	if q == nil {
		return fmt.Errorf("compress: nil Quantized")
	}
	if q.Rows <= 0 || q.Cols <= 0 || q.Rows > math.MaxInt/q.Cols {
		return fmt.Errorf("compress: Quantized: bad shape %d×%d", q.Rows, q.Cols)
	}
	if q.Bits < 1 || q.Bits > 8 {
		return fmt.Errorf("compress: Quantized: Bits %d outside 1..8", q.Bits)
	}
	if q.GroupSize < 0 {
		return fmt.Errorf("compress: Quantized: negative GroupSize %d", q.GroupSize)
	}
	if len(q.Codes) != q.Rows*q.Cols {
		return fmt.Errorf("compress: Quantized: %d codes, want %d", len(q.Codes), q.Rows*q.Cols)
	}
	ng := q.NumGroups()
	if len(q.Scale) != q.Rows*ng || len(q.Zero) != q.Rows*ng {
		return fmt.Errorf("compress: Quantized: %d scales and %d zeros, want %d", len(q.Scale), len(q.Zero), q.Rows*ng)
	}
	maxq := uint8(1<<q.Bits - 1)
	for i, c := range q.Codes {
		if c > maxq {
			return fmt.Errorf("compress: Quantized: code %d at %d exceeds %d bits", c, i, q.Bits)
		}
	}
	for i, s := range q.Scale {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("compress: Quantized: scale %g at %d is not positive and finite", s, i)
		}
		if _, ok := Float16Bits(s); !ok {
			return fmt.Errorf("compress: Quantized: scale %g at %d is not exactly representable in binary16", s, i)
		}
	}
	for i, z := range q.Zero {
		if z != float32(math.Trunc(float64(z))) || z < 0 || z > float32(maxq) {
			return fmt.Errorf("compress: Quantized: zero point %g at %d is not an integer in [0, %d]", z, i, maxq)
		}
	}
	if q.GIdx != nil {
		if len(q.GIdx) != q.Cols {
			return fmt.Errorf("compress: Quantized: %d group indices, want %d", len(q.GIdx), q.Cols)
		}
		for j, g := range q.GIdx {
			if g < 0 || int(g) >= ng {
				return fmt.Errorf("compress: Quantized: group index %d of column %d outside [0, %d)", g, j, ng)
			}
		}
	}
	return nil
}

// Dequantize writes the dequantized weights, row-major Rows×Cols, into dst:
// w = Scale·(code − Zero), computed as float32(code − zero) times the float32
// scale (one rounding), which is exactly the value GPTQ and RTN used for
// their error computations. It fails if q is invalid or dst has the wrong
// length.
func (q *Quantized) Dequantize(dst []float32) error {
	if err := q.Validate(); err != nil {
		return err
	}
	if len(dst) != q.Rows*q.Cols {
		return fmt.Errorf("compress: Dequantize: len(dst) = %d, want %d", len(dst), q.Rows*q.Cols)
	}
	ng := q.NumGroups()
	g := q.GroupSize
	if ng == 1 {
		g = q.Cols
	}
	for r := 0; r < q.Rows; r++ {
		codes := q.Codes[r*q.Cols : (r+1)*q.Cols]
		out := dst[r*q.Cols : (r+1)*q.Cols]
		scale := q.Scale[r*ng : (r+1)*ng]
		zero := q.Zero[r*ng : (r+1)*ng]
		for j, c := range codes {
			gi := j / g
			if q.GIdx != nil {
				gi = int(q.GIdx[j])
			}
			out[j] = dequant(c, scale[gi], zero[gi])
		}
	}
	return nil
}

// dequant is the one definition of a grid point: scale·(code − zero) in
// float32 (code − zero is exact, so there is one rounding).
func dequant(code uint8, scale, zero float32) float32 {
	return scale * (float32(code) - zero)
}

// BitsPerWeight returns the storage cost per weight under this convention:
// Bits per code; per (row, group) a 16-bit scale (binary16, lossless, see
// Scale) and a Bits-wide zero point; plus 32 bits per input column for GIdx
// when it is present (stored as int32, as GPTQ checkpoints do). So with
// G groups per row it is Bits + G·(16 + Bits)/Cols (+ 32/Rows with GIdx);
// e.g. 4 bits with groups of 128 cost 4 + 20/128 = 4.15625. Bit-packed codes
// (PackCodes) reach this exactly for the codes.
func (q *Quantized) BitsPerWeight() float64 {
	if q == nil || q.Rows <= 0 || q.Cols <= 0 {
		return 0
	}
	n := float64(q.Rows) * float64(q.Cols)
	total := n*float64(q.Bits) + float64(q.Rows)*float64(q.NumGroups())*float64(16+q.Bits)
	if q.GIdx != nil {
		total += 32 * float64(q.Cols)
	}
	return total / n
}

// Float16Bits returns the IEEE binary16 encoding of f and whether the
// conversion is exact (f is a binary16 value: ±0, subnormal or normal within
// ±65504, or ±Inf). NaN and inexact values return false.
func Float16Bits(f float32) (uint16, bool) {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff == 0:
		return sign, true
	case exp == 128:
		if mant == 0 {
			return sign | 0x7c00, true
		}
		return 0, false
	case exp >= -14 && exp <= 15:
		if mant&0x1fff != 0 {
			return 0, false
		}
		return sign | uint16(exp+15)<<10 | uint16(mant>>13), true
	case exp >= -24 && exp < -14:
		// Subnormal in binary16: value = m·2^-24 with m < 1024.
		full := mant | 0x800000 // 24-bit significand, value = full·2^(exp−23)
		shift := uint(-exp - 1) // 2^(exp−23) / 2^-24 = 2^(exp+1): divide by 2^(−exp−1)
		if full&(1<<shift-1) != 0 {
			return 0, false
		}
		return sign | uint16(full>>shift), true
	}
	return 0, false
}

// Float16Value returns the float32 value of the IEEE binary16 encoding h
// (exact).
func Float16Value(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := int(h >> 10 & 0x1f)
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	case 31:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | mant<<13)
}

// ceilFloat16 rounds a positive finite x up to the next binary16 value
// (x itself if it is one), with the smallest positive subnormal 2^-24 as the
// floor and the largest finite value 65504 as the ceiling.
func ceilFloat16(x float64) float64 {
	const minSub = 1.0 / (1 << 24)
	if x >= 65504 {
		return 65504
	}
	_, e := math.Frexp(x) // x = m·2^e, m ∈ [0.5, 1): binary16 spacing 2^(e−11)
	quantum := math.Max(math.Ldexp(1, e-11), minSub)
	r := math.Ceil(x/quantum) * quantum
	return math.Max(r, minSub)
}
