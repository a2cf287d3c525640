package ggml

// The K-quants: 256-weight super-blocks of 16 or 32-weight sub-blocks whose scales (and mins)
// are themselves quantized (ggml-quants.c). Each function encodes one row (a multiple of 256
// weights); without qw the quantize_row_*_ref path, with it quantize_row_*_impl, as
// quantize_q*_K chooses.

// quantizeQ2_K is quantize_q2_K on one row.
func quantizeQ2_K(y []byte, x, qw []float32) {
	var s qkxBatch
	for i := 0; i < len(x)/QK_K; i++ {
		b := y[84*i : 84*i+84]
		xs := x[QK_K*i : QK_K*i+QK_K]
		if qw == nil {
			q2KRefBlock(&s, b, xs)
		} else {
			q2KImplBlock(&s, b, xs, qw[QK_K*i:QK_K*i+QK_K])
		}
	}
}

// q2KPack writes the 2-bit codes L into qs (block_q2_K.qs).
func q2KPack(qs []byte, L *[QK_K]uint8) {
	for j := 0; j < QK_K; j += 128 {
		for l := 0; l < 32; l++ {
			qs[j/4+l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6
		}
	}
}

func q2KRefBlock(s *qkxBatch, b []byte, x []float32) {
	var L [QK_K]uint8
	var weights [16]float32
	var mins, scales [QK_K / 16]float32
	const q4scale = float32(15)
	sc := b[0:16]
	var maxScale, maxMin float32
	for j := 0; j < QK_K/16; j++ {
		xb := x[16*j : 16*j+16]
		for l := range weights {
			weights[l] = fabsf(xb[l])
		}
		scales[j], mins[j] = makeQkx2Quants(s, 3, xb, weights[:], L[16*j:16*j+16], -0.5, 0.1, 15, true)
		if scales[j] > maxScale {
			maxScale = scales[j]
		}
		if mins[j] > maxMin {
			maxMin = mins[j]
		}
	}
	if maxScale > 0 {
		iscale := q4scale / maxScale
		for j := range scales {
			sc[j] = uint8(nearestInt(iscale * scales[j]))
		}
		putFP16(b[80:], maxScale/q4scale)
	} else {
		for j := range scales {
			sc[j] = 0
		}
		putFP16(b[80:], 0)
	}
	if maxMin > 0 {
		iscale := q4scale / maxMin
		for j := range mins {
			l := nearestInt(iscale * mins[j])
			sc[j] |= uint8(l << 4)
		}
		putFP16(b[82:], maxMin/q4scale)
	} else {
		putFP16(b[82:], 0)
	}
	dAll, mAll := getFP16(b[80:]), getFP16(b[82:])
	for j := 0; j < QK_K/16; j++ {
		d := dAll * float32(sc[j]&0xF)
		if d == 0 {
			continue
		}
		dm := float32(mAll * float32(sc[j]>>4))
		for ii := 0; ii < 16; ii++ {
			l := nearestInt((x[16*j+ii] + dm) / d)
			L[16*j+ii] = uint8(imax(0, imin(3, l)))
		}
	}
	q2KPack(b[16:80], &L)
}

func q2KImplBlock(s *qkxBatch, b []byte, x, qw []float32) {
	var L [QK_K]uint8
	var mins, scales, sw [QK_K / 16]float32
	var weight [16]float32
	var Ls, Lm [QK_K / 16]uint8
	var sumx2 float32
	for _, v := range x[:QK_K] {
		sumx2 += float32(v * v)
	}
	sigma2 := sumx2 / QK_K
	for j := 0; j < QK_K/16; j++ {
		xb := x[16*j : 16*j+16]
		qwImpl(weight[:], qw[16*j:16*j+16], xb, sigma2)
		for l := 0; l < QK_K/16; l++ {
			sw[j] += weight[l]
		}
		scales[j], mins[j] = makeQkx3Quants(s, 3, xb, weight[:], L[16*j:16*j+16], -0.9, 0.05, 36)
	}
	dm := makeQpQuants(15, scales[:], Ls[:], sw[:])
	mm := makeQpQuants(15, mins[:], Lm[:], sw[:])
	putFP16(b[80:], dm)
	putFP16(b[82:], mm)
	dm, mm = getFP16(b[80:]), getFP16(b[82:])
	sc := b[0:16]
	for j := range sc {
		sc[j] = Ls[j] | Lm[j]<<4
	}
	for j := 0; j < QK_K/16; j++ {
		d := dm * float32(sc[j]&0xF)
		if d == 0 {
			continue
		}
		m := float32(mm * float32(sc[j]>>4))
		for ii := 0; ii < 16; ii++ {
			l := nearestInt((x[16*j+ii] + m) / d)
			L[16*j+ii] = uint8(imax(0, imin(3, l)))
		}
	}
	q2KPack(b[16:80], &L)
}

// quantizeQ3_K is quantize_q3_K on one row.
func quantizeQ3_K(y []byte, x, qw []float32) {
	var s qkxBatch
	for i := 0; i < len(x)/QK_K; i++ {
		b := y[110*i : 110*i+110]
		xs := x[QK_K*i : QK_K*i+QK_K]
		if qw == nil {
			q3KRefBlock(b, xs)
		} else {
			q3KImplBlock(&s, b, xs, qw[QK_K*i:QK_K*i+QK_K])
		}
	}
}

// q3KSetScale stores the 6-bit scale l (0..63) of sub-block j into block_q3_K.scales.
func q3KSetScale(sc []byte, j int, l int8) {
	if j < 8 {
		sc[j] = uint8(l & 0xF)
	} else {
		sc[j-8] |= uint8(l&0xF) << 4
	}
	l >>= 4
	sc[j%4+8] |= uint8(l) << (2 * (j / 4))
}

// q3KFinish requantizes x with the stored scales and packs the codes (the part shared by
// quantize_row_q3_K_ref and quantize_row_q3_K_impl).
func q3KFinish(b []byte, x []float32, L *[QK_K]int8) {
	sc := b[96:108]
	dAll := getFP16(b[108:])
	for j := 0; j < QK_K/16; j++ {
		var s int8
		if j < 8 {
			s = int8(sc[j] & 0xF)
		} else {
			s = int8(sc[j-8] >> 4)
		}
		s = int8((uint8(s) | ((sc[8+j%4]>>(2*(j/4)))&3)<<4)) - 32
		d := dAll * float32(s)
		if d == 0 {
			continue
		}
		for ii := 0; ii < 16; ii++ {
			l := nearestInt(x[16*j+ii] / d)
			L[16*j+ii] = int8(imax(-4, imin(3, l)) + 4)
		}
	}
	hmask := b[0:32]
	clear(hmask)
	m := 0
	hm := uint8(1)
	for j := 0; j < QK_K; j++ {
		if L[j] > 3 {
			hmask[m] |= hm
			L[j] -= 4
		}
		m++
		if m == QK_K/8 {
			m = 0
			hm <<= 1
		}
	}
	qs := b[32:96]
	for j := 0; j < QK_K; j += 128 {
		for l := 0; l < 32; l++ {
			qs[j/4+l] = uint8(L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6)
		}
	}
}

func q3KRefBlock(b []byte, x []float32) {
	var L [QK_K]int8
	var scales [QK_K / 16]float32
	var maxScale, amax float32
	for j := 0; j < QK_K/16; j++ {
		scales[j] = makeQ3Quants(4, x[16*j:16*j+16], L[16*j:16*j+16])
		scale := fabsf(scales[j])
		if scale > amax {
			amax = scale
			maxScale = scales[j]
		}
	}
	sc := b[96:108]
	clear(sc)
	if maxScale != 0 {
		iscale := -32 / maxScale
		for j := 0; j < QK_K/16; j++ {
			l := int8(nearestInt(iscale * scales[j]))
			l = int8(imax(-32, imin(31, int32(l))) + 32)
			q3KSetScale(sc, j, l)
		}
		putFP16(b[108:], 1/iscale)
	} else {
		putFP16(b[108:], 0)
	}
	q3KFinish(b, x, &L)
}

func q3KImplBlock(s *qkxBatch, b []byte, x, qw []float32) {
	var L [QK_K]int8
	var scales, sw [QK_K / 16]float32
	var weight [16]float32
	var Ls [QK_K / 16]int8
	var sumx2 float32
	for _, v := range x[:QK_K] {
		sumx2 += float32(v * v)
	}
	sigma2 := 2 * sumx2 / QK_K
	for j := 0; j < QK_K/16; j++ {
		xb := x[16*j : 16*j+16]
		qwImpl(weight[:], qw[16*j:16*j+16], xb, sigma2)
		var sumw float32
		for _, w := range weight {
			sumw += w
		}
		sw[j] = sumw
		scales[j] = makeQxQuants(s, 4, xb, weight[:], L[16*j:16*j+16])
	}
	sc := b[96:108]
	clear(sc)
	dBlock := makeQxQuants(s, 32, scales[:], sw[:], Ls[:])
	for j := 0; j < QK_K/16; j++ {
		q3KSetScale(sc, j, Ls[j])
	}
	putFP16(b[108:], dBlock)
	q3KFinish(b, x, &L)
}

// getScaleMinK4 is get_scale_min_k4: the 6-bit scale and min of sub-block j of a Q4_K/Q5_K
// block's 12 scale bytes.
func getScaleMinK4(j int, q []byte) (uint8, uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return (q[j+4] & 0xF) | ((q[j-4] >> 6) << 4), (q[j+4] >> 4) | ((q[j] >> 6) << 4)
}

// setScaleMinK4 stores the 6-bit scale ls and min lm of sub-block j.
func setScaleMinK4(q []byte, j int, ls, lm uint8) {
	if j < 4 {
		q[j] = ls
		q[j+4] = lm
	} else {
		q[j+4] = (ls & 0xF) | ((lm & 0xF) << 4)
		q[j-4] |= (ls >> 4) << 6
		q[j] |= (lm >> 4) << 6
	}
}

// kRequant requantizes a Q4_K/Q5_K super-block with its stored scales and mins (codes in
// [0, nmax]); sub-blocks whose scale is zero keep their first-pass codes.
func kRequant(b []byte, x []float32, L *[QK_K]uint8, nmax int32) {
	d0, m0 := getFP16(b[0:]), getFP16(b[2:])
	sc := b[4:16]
	for j := 0; j < QK_K/32; j++ {
		s, m := getScaleMinK4(j, sc)
		d := d0 * float32(s)
		if d == 0 {
			continue
		}
		dm := float32(m0 * float32(m))
		for ii := 0; ii < 32; ii++ {
			l := nearestInt((x[32*j+ii] + dm) / d)
			L[32*j+ii] = uint8(imax(0, imin(nmax, l)))
		}
	}
}

// kScalesRef is the first pass of quantize_row_q4_K_ref and quantize_row_q5_K_ref: per 32-weight
// sub-block, make_qkx2_quants with weights av_x + |x|; then the scales and mins quantized to 6
// bits against their maxima.
func kScalesRef(s *qkxBatch, b []byte, x []float32, L *[QK_K]uint8, nmax int32, rmin, rdelta float32, nstep int) {
	var weights [32]float32
	var mins, scales [QK_K / 32]float32
	var maxScale, maxMin float32
	for j := 0; j < QK_K/32; j++ {
		xb := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xb {
			sumX2 += float32(v * v)
		}
		avX := sqrtf(sumX2 / 32)
		for l, v := range xb {
			weights[l] = avX + fabsf(v)
		}
		scales[j], mins[j] = makeQkx2Quants(s, nmax, xb, weights[:], L[32*j:32*j+32], rmin, rdelta, nstep, false)
		if scales[j] > maxScale {
			maxScale = scales[j]
		}
		if mins[j] > maxMin {
			maxMin = mins[j]
		}
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	sc := b[4:16]
	for j := 0; j < QK_K/32; j++ {
		ls := uint8(nearestInt(invScale * scales[j]))
		lm := uint8(nearestInt(invMin * mins[j]))
		ls = min(63, ls)
		lm = min(63, lm)
		setScaleMinK4(sc, j, ls, lm)
	}
	putFP16(b[0:], maxScale/63)
	putFP16(b[2:], maxMin/63)
}

// kScalesImpl is the first pass of quantize_row_q4_K_impl and quantize_row_q5_K_impl:
// make_qkx3_quants with the importance weights, the scales and mins quantized by
// make_qp_quants. clampLs applies q5_K's MIN(63, ·) (a no-op, kept for the record).
func kScalesImpl(s *qkxBatch, b []byte, x, qw []float32, L *[QK_K]uint8, nmax int32) {
	var weights [32]float32
	var mins, scales, sw [QK_K / 32]float32
	var Ls, Lm [QK_K / 32]uint8
	var sumX2 float32
	for _, v := range x[:QK_K] {
		sumX2 += float32(v * v)
	}
	sigma2 := 2 * sumX2 / QK_K
	for j := 0; j < QK_K/32; j++ {
		xb := x[32*j : 32*j+32]
		qwImpl(weights[:], qw[32*j:32*j+32], xb, sigma2)
		var sumw float32
		for _, w := range weights {
			sumw += w
		}
		sw[j] = sumw
		scales[j], mins[j] = makeQkx3Quants(s, nmax, xb, weights[:], L[32*j:32*j+32], -0.9, 0.05, 36)
	}
	dBlock := makeQpQuants(63, scales[:], Ls[:], sw[:])
	mBlock := makeQpQuants(63, mins[:], Lm[:], sw[:])
	sc := b[4:16]
	for j := 0; j < QK_K/32; j++ {
		ls, lm := Ls[j], Lm[j]
		if nmax == 31 { // quantize_row_q5_K_impl clamps, quantize_row_q4_K_impl does not
			ls = min(63, ls)
			lm = min(63, lm)
		}
		setScaleMinK4(sc, j, ls, lm)
	}
	putFP16(b[0:], dBlock)
	putFP16(b[2:], mBlock)
}

// quantizeQ4_K is quantize_q4_K on one row.
func quantizeQ4_K(y []byte, x, qw []float32) {
	var s qkxBatch
	for i := 0; i < len(x)/QK_K; i++ {
		b := y[144*i : 144*i+144]
		xs := x[QK_K*i : QK_K*i+QK_K]
		var L [QK_K]uint8
		if qw == nil {
			kScalesRef(&s, b, xs, &L, 15, -1, 0.1, 20)
		} else {
			kScalesImpl(&s, b, xs, qw[QK_K*i:QK_K*i+QK_K], &L, 15)
		}
		kRequant(b, xs, &L, 15)
		q := b[16:144]
		for j := 0; j < QK_K; j += 64 {
			for l := 0; l < 32; l++ {
				q[l] = L[j+l] | L[j+l+32]<<4
			}
			q = q[32:]
		}
	}
}

// quantizeQ5_K is quantize_q5_K on one row.
func quantizeQ5_K(y []byte, x, qw []float32) {
	var s qkxBatch
	for i := 0; i < len(x)/QK_K; i++ {
		b := y[176*i : 176*i+176]
		xs := x[QK_K*i : QK_K*i+QK_K]
		var L [QK_K]uint8
		if qw == nil {
			kScalesRef(&s, b, xs, &L, 31, -0.5, 0.1, 15)
		} else {
			kScalesImpl(&s, b, xs, qw[QK_K*i:QK_K*i+QK_K], &L, 31)
		}
		kRequant(b, xs, &L, 31)
		qh := b[16:48]
		ql := b[48:176]
		clear(qh)
		m1, m2 := uint8(1), uint8(2)
		for n := 0; n < QK_K; n += 64 {
			for j := 0; j < 32; j++ {
				l1 := L[n+j]
				if l1 > 15 {
					l1 -= 16
					qh[j] |= m1
				}
				l2 := L[n+j+32]
				if l2 > 15 {
					l2 -= 16
					qh[j] |= m2
				}
				ql[j] = l1 | l2<<4
			}
			m1 <<= 2
			m2 <<= 2
			ql = ql[32:]
		}
	}
}

// quantizeQ6_K is quantize_q6_K on one row: quantize_row_q6_K_ref without qw; with it
// quantize_row_q6_K_impl, which passes the importance vector itself as make_qx_quants' weights.
func quantizeQ6_K(y []byte, x, qw []float32) {
	var w2 [16]float32
	var s qkxBatch
	for i := 0; i < len(x)/QK_K; i++ {
		b := y[210*i : 210*i+210]
		xs := x[QK_K*i : QK_K*i+QK_K]
		var L [QK_K]int8
		var scales [QK_K / 16]float32
		var maxScale, maxAbsScale float32
		for ib := 0; ib < QK_K/16; ib++ {
			xb := xs[16*ib : 16*ib+16]
			var w []float32
			if qw != nil {
				w = qw[QK_K*i+16*ib : QK_K*i+16*ib+16]
			} else {
				for j, v := range xb {
					w2[j] = v * v
				}
				w = w2[:]
			}
			scale := makeQxQuants(&s, 32, xb, w, L[16*ib:16*ib+16])
			scales[ib] = scale
			absScale := fabsf(scale)
			if absScale > maxAbsScale {
				maxAbsScale = absScale
				maxScale = scale
			}
		}
		if maxAbsScale < groupMaxEps {
			clear(b)
			continue
		}
		iscale := -128 / maxScale
		putFP16(b[208:], 1/iscale)
		sc := b[192:208]
		for ib := range scales {
			sc[ib] = uint8(int8(imin(127, nearestInt(iscale*scales[ib]))))
		}
		d0 := getFP16(b[208:])
		for j := 0; j < QK_K/16; j++ {
			d := d0 * float32(int8(sc[j]))
			if d == 0 {
				continue
			}
			for ii := 0; ii < 16; ii++ {
				l := nearestInt(xs[16*j+ii] / d)
				L[16*j+ii] = int8(imax(-32, imin(31, l)) + 32)
			}
		}
		ql := b[0:128]
		qh := b[128:192]
		for j := 0; j < QK_K; j += 128 {
			for l := 0; l < 32; l++ {
				q1 := uint8(L[j+l]) & 0xF
				q2 := uint8(L[j+l+32]) & 0xF
				q3 := uint8(L[j+l+64]) & 0xF
				q4 := uint8(L[j+l+96]) & 0xF
				ql[l] = q1 | q3<<4
				ql[l+32] = q2 | q4<<4
				qh[l] = uint8(L[j+l]>>4) | uint8(L[j+l+32]>>4)<<2 | uint8(L[j+l+64]>>4)<<4 | uint8(L[j+l+96]>>4)<<6
			}
			ql = ql[64:]
			qh = qh[32:]
		}
	}
}
