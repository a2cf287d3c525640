package compress

import (
	"fmt"
	"math"
	"math/bits"
)

// posInf is +Inf.
var posInf = math.Inf(1)

// PackedCodesLen returns the length in bytes of n codes of the given width
// packed by PackCodes: ceil(n·bits/8).
func PackedCodesLen(n, bits int) int {
	return (n*bits + 7) / 8
}

// PackCodes bit-packs codes of the given width (1..8 bits) into a
// little-endian bit stream: code i occupies stream bits [i·bits,
// (i+1)·bits), least significant bit first, and stream bit k is bit k%8 of
// byte k/8. The unused high bits of the last byte are zero. It fails if
// bits is outside 1..8 or a code does not fit in bits.
func PackCodes(codes []uint8, bits int) ([]byte, error) {
	if bits < 1 || bits > 8 {
		return nil, fmt.Errorf("compress: PackCodes: bits %d outside 1..8", bits)
	}
	maxq := uint8(1<<bits - 1)
	out := make([]byte, PackedCodesLen(len(codes), bits))
	if bits == 8 {
		copy(out, codes)
		return out, nil
	}
	var acc uint64
	nacc, o := 0, 0
	for i, c := range codes {
		if c > maxq {
			return nil, fmt.Errorf("compress: PackCodes: code %d at %d does not fit in %d bits", c, i, bits)
		}
		acc |= uint64(c) << nacc
		nacc += bits
		for nacc >= 8 {
			out[o] = byte(acc)
			o++
			acc >>= 8
			nacc -= 8
		}
	}
	if nacc > 0 {
		out[o] = byte(acc)
	}
	return out, nil
}

// UnpackCodes reverses PackCodes: it fills dst with len(dst) codes of the
// given width read from packed. It fails if bits is outside 1..8, if
// len(packed) is not PackedCodesLen(len(dst), bits), or if the padding bits
// of the last byte are not zero (a sign of a wrong length or corruption).
func UnpackCodes(dst []uint8, packed []byte, bits int) error {
	if bits < 1 || bits > 8 {
		return fmt.Errorf("compress: UnpackCodes: bits %d outside 1..8", bits)
	}
	if want := PackedCodesLen(len(dst), bits); len(packed) != want {
		return fmt.Errorf("compress: UnpackCodes: %d bytes for %d codes of %d bits, want %d", len(packed), len(dst), bits, want)
	}
	if bits == 8 {
		copy(dst, packed)
		return nil
	}
	if pad := len(packed)*8 - len(dst)*bits; pad > 0 && packed[len(packed)-1]>>(8-pad) != 0 {
		return fmt.Errorf("compress: UnpackCodes: non-zero padding bits")
	}
	mask := uint64(1)<<bits - 1
	var acc uint64
	nacc, p := 0, 0
	for i := range dst {
		for nacc < bits {
			acc |= uint64(packed[p]) << nacc
			p++
			nacc += 8
		}
		dst[i] = uint8(acc & mask)
		acc >>= bits
		nacc -= bits
	}
	return nil
}

// PackSparse stores W as a bitmask and its stored values: bit i of the mask
// (bit i%8 of byte i/8, ceil(len(W)/8) bytes, padding bits zero) is set iff
// W[i] is stored, and values lists the stored entries in index order. An
// entry is stored unless its bit pattern is +0, so −0 and NaN payloads
// survive and UnpackSparse restores W bit for bit.
func PackSparse(W []float32) (mask []byte, values []float32) {
	mask = make([]byte, (len(W)+7)/8)
	n := 0
	for i, v := range W {
		if math.Float32bits(v) != 0 {
			mask[i>>3] |= 1 << (i & 7)
			n++
		}
	}
	values = make([]float32, 0, n)
	for _, v := range W {
		if math.Float32bits(v) != 0 {
			values = append(values, v)
		}
	}
	return mask, values
}

// UnpackSparse reverses PackSparse into dst (len(dst) entries; unstored
// entries become +0). It fails if the mask length is not ceil(len(dst)/8),
// its padding bits are set, or the number of set bits differs from
// len(values).
func UnpackSparse(dst []float32, mask []byte, values []float32) error {
	if len(mask) != (len(dst)+7)/8 {
		return fmt.Errorf("compress: UnpackSparse: mask of %d bytes for %d entries, want %d", len(mask), len(dst), (len(dst)+7)/8)
	}
	if rem := len(dst) & 7; rem != 0 && mask[len(mask)-1]>>rem != 0 {
		return fmt.Errorf("compress: UnpackSparse: padding bits set in the mask")
	}
	set := 0
	for _, b := range mask {
		set += bits.OnesCount8(b)
	}
	if set != len(values) {
		return fmt.Errorf("compress: UnpackSparse: mask has %d entries, %d values given", set, len(values))
	}
	k := 0
	for i := range dst {
		if mask[i>>3]>>(i&7)&1 != 0 {
			dst[i] = values[k]
			k++
		} else {
			dst[i] = 0
		}
	}
	return nil
}
