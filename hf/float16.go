package hf

import "math"

// Float16ToFloat32 converts IEEE 754 binary16 bits to float32 exactly
// (every binary16 value, subnormals included, is representable). NaN
// payloads are kept in the top mantissa bits.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0: // ±0
		return math.Float32frombits(sign)
	default: // subnormal: normalise
		e := uint32(113) // exponent of 2^-14 in float32 is 127-14 = 113
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	}
}

// Float32ToFloat16 converts a float32 to IEEE 754 binary16 bits with
// round-to-nearest-even. Values beyond the largest finite binary16 (65504)
// after rounding become ±Inf; tiny values round to subnormals or ±0. NaN
// stays NaN (sign and top payload bits kept, quiet bit set).
func Float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13)
	}
	// Unbiased exponent.
	e := exp - 127
	if e > 15 {
		return sign | 0x7c00
	}
	if e >= -14 {
		// Normal binary16 candidate: keep 10 mantissa bits, round the 13 dropped.
		h := uint32(e+15)<<10 | mant>>13
		rem := mant & 0x1fff
		if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
			h++ // may carry into the exponent, up to Inf: both correct
		}
		return sign | uint16(h)
	}
	if e < -25 {
		// Below half the smallest subnormal (2^-25): rounds to zero. (Exactly
		// 2^-25 is e == -25, handled below.)
		return sign
	}
	// Subnormal binary16: value = m · 2^-24. The float32 value is
	// full · 2^(e-23) with full the 24-bit mantissa including the implicit bit.
	full := mant | 0x800000
	// value/2^-24 = full · 2^(e+1) = full >> (-1-e), with -1-e in [14, 24].
	shift := uint32(-1 - e)
	h := full >> shift
	rem := full & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || (rem == half && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

// BFloat16ToFloat32 converts bfloat16 bits to float32 exactly.
func BFloat16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// Float32ToBFloat16 converts a float32 to bfloat16 bits with
// round-to-nearest-even (as PyTorch does); overflow rounds to ±Inf. NaN
// stays NaN (sign and top payload bits kept, quiet bit set).
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
