package ggml

import "math"

// FP32ToFP16 converts f to IEEE binary16 bits exactly as ggml's GGML_FP32_TO_FP16
// (ggml_compute_fp32_to_fp16 in ggml-impl.h) does: round to nearest, ties to even; overflow to
// ±Inf; underflow to subnormals or ±0 (the sign of zero kept); every NaN to sign|0x7E00.
func FP32ToFP16(f float32) uint16 {
	const scaleToInf = 0x1.0p+112
	const scaleToZero = 0x1.0p-110
	abs := math.Float32frombits(math.Float32bits(f) &^ (1 << 31))
	base := float32(float32(abs*scaleToInf) * scaleToZero)

	w := math.Float32bits(f)
	shl1W := w + w
	sign := w & 0x80000000
	bias := shl1W & 0xFF000000
	if bias < 0x71000000 {
		bias = 0x71000000
	}
	base = math.Float32frombits((bias>>1)+0x07800000) + base
	bits := math.Float32bits(base)
	expBits := (bits >> 13) & 0x00007C00
	mantissaBits := bits & 0x00000FFF
	nonsign := expBits + mantissaBits
	if shl1W > 0xFF000000 {
		nonsign = 0x7E00
	}
	return uint16(sign>>16) | uint16(nonsign)
}

// FP16ToFP32 converts IEEE binary16 bits to float32 exactly (GGML_FP16_TO_FP32).
func FP16ToFP32(h uint16) float32 {
	return fp16Table[h]
}

// fp16Table holds FP16ToFP32 of every binary16 value.
var fp16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = fp16ToFP32(uint16(i))
	}
	return &t
}()

// fp16ToFP32 is ggml_compute_fp16_to_fp32 (ggml-impl.h).
func fp16ToFP32(h uint16) float32 {
	w := uint32(h) << 16
	sign := w & 0x80000000
	twoW := w + w
	const expOffset = 0xE0 << 23
	const expScale = 0x1.0p-112
	normalized := float32(math.Float32frombits((twoW>>4)+expOffset) * expScale)
	const magicMask = 126 << 23
	const magicBias = 0.5
	denormalized := math.Float32frombits((twoW>>17)|magicMask) - magicBias
	const denormalizedCutoff = 1 << 27
	var r uint32
	if twoW < denormalizedCutoff {
		r = math.Float32bits(denormalized)
	} else {
		r = math.Float32bits(normalized)
	}
	return math.Float32frombits(sign | r)
}

// FP32ToBF16 converts f to bfloat16 bits as ggml's GGML_FP32_TO_BF16 does: round to nearest,
// ties to even; NaN kept NaN with the quiet bit set.
func FP32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 64
	}
	return uint16((u + (0x7fff + ((u >> 16) & 1))) >> 16)
}

// BF16ToFP32 converts bfloat16 bits to float32 exactly.
func BF16ToFP32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
