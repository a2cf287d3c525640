package ggml

import "encoding/binary"

// kvaluesIQ4NL is ggml's kvalues_iq4nl: the 16 non-linear levels of IQ4_NL and IQ4_XS.
var kvaluesIQ4NL = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// iq4Index[k] is the index of the level of kvaluesIQ4NL nearest to any x with ⌊2x⌋ = k − 254,
// for −127 < x < 113 (see bestIndexIQ4).
var iq4Index = func() (t [481]uint8) {
	for k := range t {
		// x >= (v[j-1]+v[j])/2, the midpoint, exactly when ⌊2x⌋ >= v[j-1]+v[j].
		n := 0
		for j := 1; j < 16; j++ {
			if k-254 >= int(kvaluesIQ4NL[j-1])+int(kvaluesIQ4NL[j]) {
				n = j
			}
		}
		t[k] = uint8(n)
	}
	return t
}()

// bestIndexIQ4 is ggml's best_index_int8(16, kvalues_iq4nl, x): the index of the nearest
// level, the upper one on a tie. ggml finds it by bisection and compares x − v[j−1] with
// v[j] − x; near a midpoint both differences are exact in float32 (the levels are integers
// at least 11 apart and the midpoints at least 4.5 from zero), so the comparison is x against
// the midpoint, which ⌊2x⌋ decides since twice every midpoint is an integer.
func bestIndexIQ4(x float32) int {
	x = float32(x) // a rounding point, should x be a product inlined
	if x <= -127 {
		return 0
	}
	if !(x < 113) { // x >= 113, or NaN, for which ggml's comparisons all fail: 15
		return 15
	}
	f := 2 * x
	i := int32(f)
	if float32(i) > f {
		i--
	}
	return int(iq4Index[i+254])
}

// iq4Scratch is the working memory of quantize_row_iq4_nl_impl.
type iq4Scratch struct {
	L      [QK_K]uint8
	weight [32]float32
	scales [QK_K / 32]float32
}

// iq4Impl is quantize_row_iq4_nl_impl(super, 32, …, ntry): one IQ4_NL block (super = 32) or
// one IQ4_XS super-block (super = 256), written to b in that type's layout.
func iq4Impl(s *iq4Scratch, b []byte, x, qw []float32, super, ntry int) {
	values := &kvaluesIQ4NL
	var sigma2 float32
	for _, v := range x[:super] {
		sigma2 += float32(v * v)
	}
	sigma2 *= 2 / float32(super)

	nb := super / 32
	var q4 []byte
	if nb > 1 {
		q4 = b[8 : 8+super/2]
	} else {
		q4 = b[2 : 2+super/2]
	}
	clear(q4)
	putFP16(b, 0)

	var maxScale, amaxScale float32
	for ib := 0; ib < nb; ib++ {
		xb := x[32*ib : 32*ib+32]
		Lb := s.L[32*ib : 32*ib+32]
		weight := s.weight[:]
		if qw != nil {
			qwb := qw[32*ib : 32*ib+32]
			for j, v := range xb {
				weight[j] = qwb[j] * sqrtf(sigma2+float32(v*v))
			}
		} else {
			for j, v := range xb {
				weight[j] = v * v
			}
		}
		var amax, maxv float32
		for _, v := range xb {
			ax := fabsf(v)
			if ax > amax {
				amax = ax
				maxv = v
			}
		}
		if amax < groupMaxEps {
			s.scales[ib] = 0
			continue
		}
		var d float32
		if ntry > 0 {
			d = -maxv / float32(values[0])
		} else {
			d = maxv / float32(values[0])
		}
		id := 1 / d
		var sumqx, sumq2 float32
		for j, v := range xb {
			al := id * v
			l := bestIndexIQ4(al)
			Lb[j] = uint8(l)
			q := float32(values[l])
			w := weight[j]
			sumqx += float32(float32(w*q) * v)
			sumq2 += float32(float32(w*q) * q)
		}
		d = 0
		if sumq2 > 0 {
			d = sumqx / sumq2
		}
		best := d * sumqx
		for itry := -ntry; itry <= ntry; itry++ {
			id = float32(itry+int(values[0])) / maxv
			sumqx, sumq2 = 0, 0
			for j, v := range xb {
				al := id * v
				l := bestIndexIQ4(al)
				q := float32(values[l])
				w := weight[j]
				sumqx += float32(float32(w*q) * v)
				sumq2 += float32(float32(w*q) * q)
			}
			if sumq2 > 0 && sumqx*sumqx > best*sumq2 {
				d = sumqx / sumq2
				best = d * sumqx
			}
		}
		s.scales[ib] = d
		absD := fabsf(d)
		if absD > amaxScale {
			amaxScale = absD
			maxScale = d
		}
	}

	if nb > 1 {
		var scalesH uint16
		scalesL := b[4:8]
		d := -maxScale / 32
		putFP16(b, d)
		var id float32
		if d != 0 {
			id = 1 / d
		}
		for ib := 0; ib < nb; ib++ {
			l := nearestInt(id * s.scales[ib])
			l = imax(-32, imin(31, l))
			dl := d * float32(l)
			var idl float32
			if dl != 0 {
				idl = 1 / dl
			}
			Lb := s.L[32*ib : 32*ib+32]
			xb := x[32*ib : 32*ib+32]
			for j, v := range xb {
				Lb[j] = uint8(bestIndexIQ4(idl * v))
			}
			l += 32
			lL := uint8(l & 0xf)
			lH := uint8(l >> 4)
			if ib%2 == 0 {
				scalesL[ib/2] = lL
			} else {
				scalesL[ib/2] |= lL << 4
			}
			scalesH |= uint16(lH) << (2 * (ib % 8))
		}
		binary.LittleEndian.PutUint16(b[2:], scalesH)
	} else {
		putFP16(b, s.scales[0])
		if ntry > 0 {
			var id float32
			if s.scales[0] != 0 {
				id = 1 / s.scales[0]
			}
			for j, v := range x[:super] {
				s.L[j] = uint8(bestIndexIQ4(id * v))
			}
		}
	}

	for i := 0; i < super/32; i++ {
		for j := 0; j < 16; j++ {
			q4[16*i+j] = s.L[32*i+j] | s.L[32*i+16+j]<<4
		}
	}
}

// quantizeIQ4_NL is quantize_iq4_nl on one row (ntry 7, with or without importance weights:
// llama-quantize's path; quantize_row_iq4_nl_ref's ntry −1 is not used by it).
func quantizeIQ4_NL(y []byte, x, qw []float32) {
	var s iq4Scratch
	for ib := 0; ib < len(x)/32; ib++ {
		var qwb []float32
		if qw != nil {
			qwb = qw[32*ib : 32*ib+32]
		}
		iq4Impl(&s, y[18*ib:18*ib+18], x[32*ib:32*ib+32], qwb, 32, 7)
	}
}

// quantizeIQ4_XS is quantize_iq4_xs on one row.
func quantizeIQ4_XS(y []byte, x, qw []float32) {
	var s iq4Scratch
	for ib := 0; ib < len(x)/QK_K; ib++ {
		var qwb []float32
		if qw != nil {
			qwb = qw[QK_K*ib : QK_K*ib+QK_K]
		}
		iq4Impl(&s, y[136*ib:136*ib+136], x[QK_K*ib:QK_K*ib+QK_K], qwb, QK_K, 7)
	}
}
