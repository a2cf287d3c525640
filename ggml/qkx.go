package ggml

// lanes is the number of trial scales of make_qkx2_quants / make_qkx3_quants evaluated together.
const lanes = 8

// qkxBatch evaluates up to eight consecutive trial scales of makeQkxQuants together: the trial
// sums in one pass over the values and the errors in another, each lane accumulating in ggml's
// order (with AVX2 one lane per element of a vector register, qkx_amd64.s).
type qkxBatch struct {
	xm     [32]float32 // x[i] − min for the current min
	iscale [lanes]float32
	codes  [32][lanes]int32  // the codes L[i] of every lane
	sum    [3][lanes]float32 // Σ w·L, Σ w·L², Σ w·L·x
	fit    [3][lanes]float32 // scale, min and error of every lane (fitErr)
}

// sumsGo computes, for every lane k, the codes L[i] = clamp(nearest_int(iscale[k]·xm[i]), 0,
// nmax) and the sums Σ w·L, Σ w·L·L and Σ w·L·x.
func (b *qkxBatch) sumsGo(x, w []float32, nmax int32) {
	n := len(x)
	w = w[:n]
	xm := b.xm[:n]
	var sl, sl2, sxl [lanes]float32
	for i, v := range x {
		wi, xmi := w[i], xm[i]
		c := &b.codes[i]
		for k := range lanes {
			l := imax(0, imin(nmax, nearestInt(b.iscale[k]*xmi)))
			c[k] = l
			fl := float32(l)
			wl := float32(wi * fl)
			sl[k] += wl
			sl2[k] += float32(wl * fl)
			sxl[k] += float32(wl * v)
		}
	}
	b.sum = [3][lanes]float32{sl, sl2, sxl}
}

// fitErrGo computes every lane's least-squares scale and min from its sums where D =
// Σw·ΣwL² − (ΣwL)² > 0 (0 and 0 elsewhere), and its error Σ w·d² (or Σ w·|d|) with d =
// scale·L + min − x; it returns the mask of the lanes with D > 0.
func (b *qkxBatch) fitErrGo(x, w []float32, sumW, sumX float32, useMad bool) uint8 {
	var ok uint8
	sc, mn := &b.fit[0], &b.fit[1]
	for k := range lanes {
		sl, sl2, sxl := b.sum[0][k], b.sum[1][k], b.sum[2][k]
		d := float32(sumW*sl2) - float32(sl*sl)
		sc[k], mn[k] = 0, 0
		if d > 0 {
			ok |= 1 << k
			sc[k], mn[k] = fitScaleMin(sumW, sumX, sl, sl2, sxl, d)
		}
	}
	n := len(x)
	w = w[:n]
	var e [lanes]float32
	for i, v := range x {
		wi := w[i]
		c := &b.codes[i]
		for k := range lanes {
			diff := float32(sc[k]*float32(c[k])) + mn[k] - v
			if useMad {
				diff = fabsf(diff)
			} else {
				diff = diff * diff
			}
			e[k] += float32(wi * diff)
		}
	}
	b.fit[2] = e
	return ok
}

// qxSumsGo computes, for every lane k, make_qx_quants' codes l = clamp(nearest_int(iscale[k]·x[i]),
// −nmax, nmax−1) and the sums Σ w·x·l and Σ w·l·l.
func (b *qkxBatch) qxSumsGo(x, w []float32, nmax int32) {
	n := len(x)
	w = w[:n]
	var slx, sl2 [lanes]float32
	for i, v := range x {
		wi := w[i]
		wx := wi * v
		c := &b.codes[i]
		for k := range lanes {
			l := imax(-nmax, imin(nmax-1, nearestInt(b.iscale[k]*v)))
			c[k] = l
			fl := float32(l)
			slx[k] += float32(wx * fl)
			sl2[k] += float32(float32(wi*fl) * fl)
		}
	}
	b.sum[0], b.sum[1] = slx, sl2
}

func (b *qkxBatch) setMin(x []float32, minv float32) {
	xm := b.xm[:len(x)]
	for i, v := range x {
		xm[i] = v - minv
	}
}

// makeQkxQuants computes make_qkx2_quants (qkx3 false) or make_qkx3_quants (qkx3 true: an
// empty range is max <= min rather than max == min) for up to 32 values. ggml tries the trial
// scales one after the other, each from the min of the best fit so far; here up to eight
// consecutive trials are evaluated together from the current min, and the ones after a trial
// that changed the min are evaluated again. The candidates are compared in ggml's order, so the
// result is the same. b is scratch (its previous content does not matter).
func makeQkxQuants(b *qkxBatch, nmax int32, x, weights []float32, L []uint8, rmin, rdelta float32, nstep int, useMad, qkx3 bool) (float32, float32) {
	n := len(x)
	weights = weights[:n]
	L = L[:n]
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
	if maxv == minv || (qkx3 && maxv <= minv) {
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
	b.setMin(x, minv)
	for is := 0; is <= nstep; {
		nl := min(lanes, nstep+1-is)
		for k := range lanes {
			b.iscale[k] = trialIscale(rmin, rdelta, is+min(k, nl-1), fnmax, maxv, minv)
		}
		b.sums(x, weights, nmax)
		ok := b.fitErr(x, weights, sumW, sumX, useMad)
		done := nl
		for k := range nl {
			if ok&(1<<k) == 0 || !(b.fit[2][k] < bestError) {
				continue
			}
			for i := range L {
				L[i] = uint8(b.codes[i][k])
			}
			bestError, scale = b.fit[2][k], b.fit[0][k]
			if b.fit[1][k] != minv {
				// The later trials depend on the new min: evaluate them again.
				minv = b.fit[1][k]
				b.setMin(x, minv)
				done = k + 1
				break
			}
		}
		is += done
	}
	return scale, -minv
}

// trialIscale is the inverse scale of trial is: (rmin + rdelta·is + nmax)/(max − min).
func trialIscale(rmin, rdelta float32, is int, fnmax, maxv, minv float32) float32 {
	return (rmin + float32(rdelta*float32(is)) + fnmax) / (maxv - minv)
}
