package ggml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refDequantQ4_K and refDequantQ6_K are the block decoders as they were before their scales were
// hoisted and the AVX2 kernels added: ggml-quants.c's loops transcribed. The references of
// TestFastDecoders.
func refDequantQ4_K(y []float32, b []byte) {
	d, mn := getFP16(b), getFP16(b[2:])
	sc := b[4:16]
	q := b[16:144]
	is := 0
	for j := 0; j < QK_K; j += 64 {
		s, m := getScaleMinK4(is, sc)
		d1, m1 := d*float32(s), mn*float32(m)
		s, m = getScaleMinK4(is+1, sc)
		d2, m2 := d*float32(s), mn*float32(m)
		for l := 0; l < 32; l++ {
			y[l] = float32(d1*float32(q[l]&0xF)) - m1
		}
		for l := 0; l < 32; l++ {
			y[32+l] = float32(d2*float32(q[l]>>4)) - m2
		}
		y = y[64:]
		q = q[32:]
		is += 2
	}
}

func refDequantQ6_K(y []float32, b []byte) {
	d := getFP16(b[208:])
	ql := b[0:128]
	qh := b[128:192]
	sc := b[192:208]
	for n := 0; n < QK_K; n += 128 {
		for l := 0; l < 32; l++ {
			is := l / 16
			q1 := int8((ql[l]&0xF)|((qh[l]>>0)&3)<<4) - 32
			q2 := int8((ql[l+32]&0xF)|((qh[l]>>2)&3)<<4) - 32
			q3 := int8((ql[l]>>4)|((qh[l]>>4)&3)<<4) - 32
			q4 := int8((ql[l+32]>>4)|((qh[l]>>6)&3)<<4) - 32
			y[l] = d * float32(int8(sc[is])) * float32(q1)
			y[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			y[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			y[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
		y = y[128:]
		ql = ql[64:]
		qh = qh[32:]
		sc = sc[8:]
	}
}

// refDequantQ2_K and refDequantQ3_K are the portable Q2_K and Q3_K decoders as they were
// (ggml's C transcribed), before the sub-block factors moved out of the loops.
func refDequantQ2_K(y []float32, b []byte) {
	d, mn := getFP16(b[80:]), getFP16(b[82:])
	sc := b[0:16]
	q := b[16:80]
	is := 0
	for n := 0; n < QK_K; n += 128 {
		shift := 0
		for j := 0; j < 4; j++ {
			for half := 0; half < 2; half++ {
				s := sc[is]
				is++
				dl, ml := d*float32(s&0xF), mn*float32(s>>4)
				qq := q[16*half : 16*half+16]
				for l := 0; l < 16; l++ {
					y[l] = float32(dl*float32((qq[l]>>shift)&3)) - ml
				}
				y = y[16:]
			}
			shift += 2
		}
		q = q[32:]
	}
}

func refDequantQ3_K(y []float32, b []byte) {
	dAll := getFP16(b[108:])
	sc := b[96:108]
	hm := b[0:32]
	q := b[32:96]
	m := uint8(1)
	is := 0
	for n := 0; n < QK_K; n += 128 {
		shift := 0
		for j := 0; j < 4; j++ {
			for half := 0; half < 2; half++ {
				k := is
				is++
				var low uint8
				if k < 8 {
					low = sc[k] & 0xF
				} else {
					low = sc[k-8] >> 4
				}
				s := int32(int8(low|((sc[8+k%4]>>(2*(k/4)))&3)<<4)) - 32
				dl := dAll * float32(s)
				qq := q[16*half : 16*half+16]
				hh := hm[16*half : 16*half+16]
				for l := 0; l < 16; l++ {
					v := int32((qq[l] >> shift) & 3)
					if hh[l]&m == 0 {
						v -= 4
					}
					y[l] = dl * float32(v)
				}
				y = y[16:]
			}
			shift += 2
			m <<= 1
		}
		q = q[32:]
	}
}

// refDequantizeRange is DequantizeRange as it was: the codec looked up in the map per call,
// with the reference block decoders for Q2_K, Q3_K, Q4_K and Q6_K and the portable loops (the
// decoders as they were, unchanged) for Q5_K and Q8_0.
func refDequantizeRange(dst []float32, t Type, data []byte, first int) {
	dec := codecs[t].decode
	switch t {
	case Q4_K:
		dec = refDequantQ4_K
	case Q6_K:
		dec = refDequantQ6_K
	case Q2_K:
		dec = refDequantQ2_K
	case Q3_K:
		dec = refDequantQ3_K
	case Q5_K:
		dec = dequantQ5KGo
	case Q8_0:
		dec = dequantQ8_0Go
	}
	bb, bs := t.BlockBytes(), t.BlockSize()
	var tmp [QK_K]float32
	for len(dst) > 0 {
		b, in := first/bs, first%bs
		dec(tmp[:bs], data[b*bb:(b+1)*bb])
		n := copy(dst, tmp[in:bs])
		dst, first = dst[n:], first+n
	}
}

// TestFastDecoders checks the Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_0 decoders — the AVX2 kernels where the CPU has them
// and the portable loops — against the reference ones bit for bit, on blocks of random bytes
// (any binary16 d and dmin: subnormal, huge, infinite, NaN; every scale, min and code) and on
// blocks Quantize makes; and DequantizeRange on those blocks against refDequantizeRange over
// random ranges starting and ending anywhere, for every decoded type.
func TestFastDecoders(t *testing.T) {
	paths := []bool{false}
	if useAVX2 {
		paths = append(paths, true)
	}
	defer func(v bool) { useAVX2 = v }(useAVX2)
	rng := rand.New(rand.NewPCG(7, 11))
	x, im, cols := benchRows()
	x = x[:3*cols]
	for _, avx := range paths {
		useAVX2 = avx
		for _, typ := range Types() {
			if !typ.Codec() {
				continue
			}
			data, err := Quantize(typ, x, cols, im)
			if err != nil {
				t.Fatal(err)
			}
			switch typ {
			case Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_0:
				random := make([]byte, 64*typ.BlockBytes())
				for i := range random {
					random[i] = byte(rng.Uint32())
				}
				data = append(data, random...)
			}
			n := len(data) / typ.BlockBytes() * typ.BlockSize()
			ranges := [][2]int{{0, n}}
			for range 200 {
				off := rng.IntN(n + 1)
				ranges = append(ranges, [2]int{off, off + rng.IntN(min(n-off, 700)+1)})
			}
			for _, r := range ranges {
				got, want := make([]float32, r[1]-r[0]), make([]float32, r[1]-r[0])
				for i := range got {
					got[i] = float32(math.Inf(-1))
				}
				DequantizeRange(got, typ, data, r[0])
				refDequantizeRange(want, typ, data, r[0])
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s (AVX2 %v): value %d of [%d, %d): %v (%08x), reference %v (%08x)", typ, avx, r[0]+i, r[0], r[1], got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
					}
				}
			}
		}
	}
}

// BenchmarkDequantizeRef is BenchmarkDequantize for the reference decoders of Q4_K and Q6_K,
// to compare before and after in one run.
func BenchmarkDequantizeRef(b *testing.B) {
	x, _, cols := benchRows()
	for _, t := range []Type{Q4_K, Q6_K} {
		b.Run(fmt.Sprint(t), func(b *testing.B) {
			q, err := Quantize(t, x, cols, nil)
			if err != nil {
				b.Fatal(err)
			}
			y := make([]float32, len(x))
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				refDequantizeRange(y, t, q, 0)
			}
		})
	}
}
