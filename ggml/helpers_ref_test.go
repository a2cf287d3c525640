package ggml

// Straightforward transcriptions of ggml-quants.c functions that helpers.go computes in a
// faster order, for TestFastHelpersMatchReference.

// refMakeQkx2Quants is make_qkx2_quants: asymmetric codes L[i] in [0, nmax] for x ≈ scale·L − min,
// the scale and min fitted by weighted least squares over nstep+1 trial scales. It returns the
// scale and ggml's the_min (the negated offset, ≥ 0).
func refMakeQkx2Quants(nmax int32, x, weights []float32, L, Laux []uint8, rmin, rdelta float32, nstep int, useMad bool) (float32, float32) {
	n := len(x)
	weights = weights[:n]
	L = L[:n]
	Laux = Laux[:n]
	minv, maxv := x[0], x[0]
	sumW := weights[0]
	sumX := sumW * x[0]
	for i := 1; i < n; i++ {
		if x[i] < minv {
			minv = x[i]
		}
		if x[i] > maxv {
			maxv = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if minv > 0 {
		minv = 0
	}
	if maxv == minv {
		for i := range L {
			L[i] = 0
		}
		return 0, -minv
	}
	fnmax := float32(nmax)
	iscale := fnmax / (maxv - minv)
	scale := 1 / iscale
	var bestError float32
	for i, v := range x {
		l := nearestInt(iscale * (v - minv))
		L[i] = uint8(imax(0, imin(nmax, l)))
		diff := float32(scale*float32(L[i])) + minv - v
		if useMad {
			diff = fabsf(diff)
		} else {
			diff = diff * diff
		}
		bestError += float32(weights[i] * diff)
	}
	if nstep < 1 {
		return scale, -minv
	}
	for is := 0; is <= nstep; is++ {
		iscale = (rmin + float32(rdelta*float32(is)) + fnmax) / (maxv - minv)
		var sumL, sumL2, sumXL float32
		for i, v := range x {
			l := nearestInt(iscale * (v - minv))
			l = imax(0, imin(nmax, l))
			Laux[i] = uint8(l)
			w := weights[i]
			fl := float32(l)
			sumL += float32(w * fl)
			sumL2 += float32(float32(w*fl) * fl)
			sumXL += float32(float32(w*fl) * v)
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var curError float32
			for i, v := range x {
				diff := float32(thisScale*float32(Laux[i])) + thisMin - v
				if useMad {
					diff = fabsf(diff)
				} else {
					diff = diff * diff
				}
				curError += float32(weights[i] * diff)
			}
			if curError < bestError {
				copy(L, Laux)
				bestError = curError
				scale = thisScale
				minv = thisMin
			}
		}
	}
	return scale, -minv
}

// refMakeQkx3Quants is make_qkx3_quants with weights (all its callers here pass them) and squared
// errors.
func refMakeQkx3Quants(nmax int32, x, weights []float32, L, Laux []uint8, rmin, rdelta float32, nstep int) (float32, float32) {
	n := len(x)
	weights = weights[:n]
	L = L[:n]
	Laux = Laux[:n]
	minv, maxv := x[0], x[0]
	sumW := weights[0]
	sumX := sumW * x[0]
	for i := 1; i < n; i++ {
		if x[i] < minv {
			minv = x[i]
		}
		if x[i] > maxv {
			maxv = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if minv > 0 {
		minv = 0
	}
	if maxv <= minv {
		for i := range L {
			L[i] = 0
		}
		return 0, -minv
	}
	fnmax := float32(nmax)
	iscale := fnmax / (maxv - minv)
	scale := 1 / iscale
	var bestMad float32
	for i, v := range x {
		l := nearestInt(iscale * (v - minv))
		L[i] = uint8(imax(0, imin(nmax, l)))
		diff := float32(scale*float32(L[i])) + minv - v
		diff = diff * diff
		bestMad += float32(weights[i] * diff)
	}
	if nstep < 1 {
		return scale, -minv
	}
	for is := 0; is <= nstep; is++ {
		iscale = (rmin + float32(rdelta*float32(is)) + fnmax) / (maxv - minv)
		var sumL, sumL2, sumXL float32
		for i, v := range x {
			l := nearestInt(iscale * (v - minv))
			l = imax(0, imin(nmax, l))
			Laux[i] = uint8(l)
			w := weights[i]
			fl := float32(l)
			sumL += float32(w * fl)
			sumL2 += float32(float32(w*fl) * fl)
			sumXL += float32(float32(w*fl) * v)
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var mad float32
			for i, v := range x {
				diff := float32(thisScale*float32(Laux[i])) + thisMin - v
				diff = diff * diff
				mad += float32(weights[i] * diff)
			}
			if mad < bestMad {
				copy(L, Laux)
				bestMad = mad
				scale = thisScale
				minv = thisMin
			}
		}
	}
	return scale, -minv
}

// refBestIndexInt8 is ggml's best_index_int8: the index of the value of the sorted table val
// nearest to x (the upper one on ties).
func refBestIndexInt8(val *[16]int8, x float32) int {
	x = float32(x) // a rounding point, should x be a product inlined
	if x <= float32(val[0]) {
		return 0
	}
	if x >= float32(val[15]) {
		return 15
	}
	ml, mu := 0, 15
	for mu-ml > 1 {
		mav := (ml + mu) / 2
		if x < float32(val[mav]) {
			mu = mav
		} else {
			ml = mav
		}
	}
	if x-float32(val[mu-1]) < float32(val[mu])-x {
		return mu - 1
	}
	return mu
}

// refMakeQxQuants is make_qx_quants with rmse_type 1: symmetric codes L[i] in [0, 2·nmax), the
// scale chosen among 19 candidates to minimise the weighted error with weights w (ggml's
// x[i]² when its quant weights are NULL: the caller passes them).
func refMakeQxQuants(nmax int32, x, w []float32, L []int8) float32 {
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
	iscale := float32(-nmax) / maxv
	var sumlx, suml2 float32
	for i, v := range x {
		l := nearestInt(iscale * v)
		l = imax(-nmax, imin(nmax-1, l))
		L[i] = int8(l + nmax)
		fl := float32(l)
		sumlx += float32(float32(w[i]*v) * fl)
		suml2 += float32(float32(w[i]*fl) * fl)
	}
	var scale float32
	if suml2 != 0 {
		scale = sumlx / suml2
	}
	best := scale * sumlx
	for is := int32(-9); is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(float32(nmax) + float32(0.1*float32(is))) / maxv
		sumlx, suml2 = 0, 0
		for i, v := range x {
			l := nearestInt(iscale * v)
			l = imax(-nmax, imin(nmax-1, l))
			fl := float32(l)
			sumlx += float32(float32(w[i]*v) * fl)
			suml2 += float32(float32(w[i]*fl) * fl)
		}
		if suml2 > 0 && sumlx*sumlx > best*suml2 {
			for i, v := range x {
				l := nearestInt(iscale * v)
				L[i] = int8(nmax + imax(-nmax, imin(nmax-1, l)))
			}
			scale = sumlx / suml2
			best = scale * sumlx
		}
	}
	return scale
}
