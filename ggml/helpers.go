package ggml

import (
	"encoding/binary"
	"math"
)

// The arithmetic below follows ggml-quants.c operation by operation in float32, in the same
// order: that is what makes the output byte-identical. Every product that is added to or
// subtracted from something is wrapped in an explicit float32() conversion, which the Go
// specification defines as a rounding point: without it a compiler may fuse a*b+c into one
// fused multiply-add (Go does on arm64, ppc64, s390x and amd64 with GOAMD64=v3), which rounds
// once instead of twice. ggml's reference build (libggml-base for x86-64) has no FMA.

// groupMaxEps is ggml-quants.c's GROUP_MAX_EPS: a group whose largest magnitude is below it is
// all zero.
const groupMaxEps = float32(1e-15)

// nearestInt is ggml's nearest_int: round to nearest, ties to even, by adding 1.5·2^23 and
// reading the mantissa. Like ggml, it is exact for |f| ≤ 4194303 and returns the same
// (meaningless) value ggml does outside that range.
func nearestInt(f float32) int32 {
	val := float32(f) + 12582912 // float32(f): no fusing with a product inlined as f
	i := int32(math.Float32bits(val))
	return (i & 0x007fffff) - 0x00400000
}

// fabsf is C's fabsf.
func fabsf(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// sqrtf is C's sqrtf: the float64 square root of a float32 rounds to the correctly rounded
// float32 result.
func sqrtf(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// roundf is C's roundf (halves away from zero).
func roundf(x float32) float32 { return float32(math.Round(float64(x))) }

// fmaxC and fminC are ggml's MAX and MIN macros on floats: a > b ? a : b and a < b ? a : b,
// which differ from Go's max and min when an argument is NaN.
func fmaxC(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

func imax(a, b int32) int32 {
	if a > b {
		return a
	}
	return b
}

func imin(a, b int32) int32 {
	if a < b {
		return a
	}
	return b
}

// putFP16 stores f as float16 (GGML_FP32_TO_FP16) at b[0:2], little-endian.
func putFP16(b []byte, f float32) { binary.LittleEndian.PutUint16(b, FP32ToFP16(f)) }

// getFP16 reads the float16 at b[0:2].
func getFP16(b []byte) float32 { return fp16Table[binary.LittleEndian.Uint16(b)] }

// makeQxQuants is make_qx_quants with rmse_type 1: symmetric codes L[i] in [0, 2·nmax), the
// scale chosen among 19 candidates to minimise the weighted error with weights w (ggml's
// x[i]² when its quant weights are NULL: the caller passes them). The candidates do not depend
// on one another, so they are evaluated eight at a time (b's kernels) and compared in ggml's
// order. b is scratch.
func makeQxQuants(b *qkxBatch, nmax int32, x, w []float32, L []int8) float32 {
	n := len(x)
	w = w[:n]
	L = L[:n]
	var maxv, amax float32
	for _, v := range x {
		ax := fabsf(v)
		if ax > amax {
			amax = ax
			maxv = v
		}
	}
	if amax < groupMaxEps {
		for i := range L {
			L[i] = 0
		}
		return 0
	}
	// Trial 0 is ggml's first scale, -nmax/max; trials 1..18 its is = -9..-1, 1..9.
	const trials = 19
	var scale, best float32
	for t0 := 0; t0 < trials; t0 += lanes {
		for k := range lanes {
			t := min(t0+k, trials-1)
			switch {
			case t == 0:
				b.iscale[k] = float32(-nmax) / maxv
			default:
				is := int32(t - 10)
				if is >= 0 {
					is++
				}
				b.iscale[k] = -(float32(nmax) + float32(0.1*float32(is))) / maxv
			}
		}
		b.qxSums(x, w, nmax)
		for k := range min(lanes, trials-t0) {
			sumlx, suml2 := b.sum[0][k], b.sum[1][k]
			if t0+k == 0 {
				for i := range L {
					L[i] = int8(b.codes[i][k] + nmax)
				}
				scale = 0
				if suml2 != 0 {
					scale = sumlx / suml2
				}
				best = scale * sumlx
				continue
			}
			if suml2 > 0 && sumlx*sumlx > best*suml2 {
				for i := range L {
					L[i] = int8(b.codes[i][k] + nmax)
				}
				scale = sumlx / suml2
				best = scale * sumlx
			}
		}
	}
	return scale
}

// makeQ3Quants is make_q3_quants with do_rmse: symmetric codes refined one at a time for the
// x²-weighted error.
func makeQ3Quants(nmax int32, x []float32, L []int8) float32 {
	n := len(x)
	L = L[:n]
	var maxv, amax float32
	for _, v := range x {
		ax := fabsf(v)
		if ax > amax {
			amax = ax
			maxv = v
		}
	}
	if amax < groupMaxEps {
		for i := range L {
			L[i] = 0
		}
		return 0
	}
	iscale := float32(-nmax) / maxv
	var sumlx, suml2 float32
	for i, v := range x {
		l := nearestInt(iscale * v)
		l = imax(-nmax, imin(nmax-1, l))
		L[i] = int8(l)
		w := v * v
		fl := float32(l)
		sumlx += float32(float32(w*v) * fl)
		suml2 += float32(float32(w*fl) * fl)
	}
	for itry := 0; itry < 5; itry++ {
		nChanged := 0
		for i, v := range x {
			w := v * v
			li := float32(L[i])
			slx := sumlx - float32(float32(w*v)*li)
			if slx > 0 {
				sl2 := suml2 - float32(float32(w*li)*li)
				newL := nearestInt(float32(v*sl2) / slx)
				newL = imax(-nmax, imin(nmax-1, newL))
				if newL != int32(L[i]) {
					fl := float32(newL)
					slx += float32(float32(w*v) * fl)
					sl2 += float32(float32(w*fl) * fl)
					if sl2 > 0 && slx*slx*suml2 > sumlx*sumlx*sl2 {
						L[i] = int8(newL)
						sumlx = slx
						suml2 = sl2
						nChanged++
					}
				}
			}
		}
		if nChanged == 0 {
			break
		}
	}
	for i := range L {
		L[i] += int8(nmax)
	}
	if suml2 > 0 {
		return sumlx / suml2
	}
	return 0
}

// makeQkx2Quants is make_qkx2_quants: asymmetric codes L[i] in [0, nmax] for x ≈ scale·L − min,
// the scale and min fitted by weighted least squares over nstep+1 trial scales. It returns the
// scale and ggml's the_min (the negated offset, ≥ 0). b is scratch.
func makeQkx2Quants(b *qkxBatch, nmax int32, x, weights []float32, L []uint8, rmin, rdelta float32, nstep int, useMad bool) (float32, float32) {
	return makeQkxQuants(b, nmax, x, weights, L, rmin, rdelta, nstep, useMad, false)
}

// makeQkx3Quants is make_qkx3_quants with weights (all its callers here pass them) and squared
// errors.
func makeQkx3Quants(b *qkxBatch, nmax int32, x, weights []float32, L []uint8, rmin, rdelta float32, nstep int) (float32, float32) {
	return makeQkxQuants(b, nmax, x, weights, L, rmin, rdelta, nstep, false, true)
}

// fitScaleMin is the weighted least-squares scale and min of make_qkx2_quants and
// make_qkx3_quants for one trial (d > 0), the min clamped to ≤ 0.
func fitScaleMin(sumW, sumX, sumL, sumL2, sumXL, d float32) (float32, float32) {
	scale := (float32(sumW*sumXL) - float32(sumX*sumL)) / d
	mn := (float32(sumL2*sumX) - float32(sumL*sumXL)) / d
	if mn > 0 {
		mn = 0
		scale = sumXL / sumL2
	}
	return scale, mn
}

// makeQpQuants is make_qp_quants: non-negative codes L[i] in [0, nmax] for the positive values
// x (block scales or mins) with one scale, weighted by qw.
func makeQpQuants(nmax int32, x []float32, L []uint8, qw []float32) float32 {
	n := len(x)
	L = L[:n]
	qw = qw[:n]
	var maxv float32
	for _, v := range x {
		maxv = fmaxC(maxv, v)
	}
	if maxv < groupMaxEps {
		for i := range L {
			L[i] = 0
		}
		return 0
	}
	fnmax := float32(nmax)
	iscale := fnmax / maxv
	for i, v := range x {
		L[i] = uint8(nearestInt(iscale * v))
	}
	scale := 1 / iscale
	var bestMse float32
	for i, v := range x {
		diff := v - float32(scale*float32(L[i]))
		w := qw[i]
		bestMse += float32(float32(w*diff) * diff)
	}
	for is := int32(-4); is <= 4; is++ {
		if is == 0 {
			continue
		}
		iscaleIs := (float32(0.1*float32(is)) + fnmax) / maxv
		scaleIs := 1 / iscaleIs
		var mse float32
		for i, v := range x {
			l := nearestInt(iscaleIs * v)
			l = imin(nmax, l)
			diff := v - float32(scaleIs*float32(l))
			w := qw[i]
			mse += float32(float32(w*diff) * diff)
		}
		if mse < bestMse {
			bestMse = mse
			iscale = iscaleIs
		}
	}
	var sumlx, suml2 float32
	for i, v := range x {
		l := nearestInt(iscale * v)
		l = imin(nmax, l)
		L[i] = uint8(l)
		w := qw[i]
		fl := float32(l)
		sumlx += float32(float32(w*v) * fl)
		suml2 += float32(float32(w*fl) * fl)
	}
	for itry := 0; itry < 5; itry++ {
		nChanged := 0
		for i, v := range x {
			w := qw[i]
			li := float32(L[i])
			slx := sumlx - float32(float32(w*v)*li)
			sl2 := suml2 - float32(float32(w*li)*li)
			if slx > 0 && sl2 > 0 {
				newL := nearestInt(float32(v*sl2) / slx)
				newL = imin(nmax, newL)
				if newL != int32(L[i]) {
					fl := float32(newL)
					slx += float32(float32(w*v) * fl)
					sl2 += float32(float32(w*fl) * fl)
					if slx*slx*suml2 > sumlx*sumlx*sl2 {
						L[i] = uint8(newL)
						sumlx = slx
						suml2 = sl2
						nChanged++
					}
				}
			}
		}
		if nChanged == 0 {
			break
		}
	}
	if suml2 > 0 {
		return sumlx / suml2
	}
	return 0
}
