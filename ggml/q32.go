package ggml

import (
	"encoding/binary"
	"math"
)

// The 32-weight block types: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (ggml-quants.c). Each function
// encodes one row x (a multiple of 32 weights) into y; qw is the row's importance vector or nil.

// quantizeQ4_0 is quantize_q4_0 on one row: quantize_row_q4_0_ref without qw,
// quantize_row_q4_0_impl with it.
func quantizeQ4_0(y []byte, x, qw []float32) {
	if qw == nil {
		for ib := 0; ib < len(x)/32; ib++ {
			q4_0RefBlock(y[18*ib:18*ib+18], x[32*ib:32*ib+32])
		}
		return
	}
	sigma2 := rowSigma2(x)
	var weight [32]float32
	var L [32]int8
	var s qkxBatch
	for ib := 0; ib < len(x)/32; ib++ {
		xb := x[32*ib : 32*ib+32]
		qwImpl(weight[:], qw[32*ib:32*ib+32], xb, sigma2)
		d := makeQxQuants(&s, 8, xb, weight[:], L[:])
		b := y[18*ib : 18*ib+18]
		putFP16(b, d)
		for j := 0; j < 16; j++ {
			b[2+j] = uint8(L[j]) | uint8(L[j+16])<<4
		}
	}
}

func q4_0RefBlock(b []byte, x []float32) {
	x = x[:32]
	var amax, maxv float32
	for _, v := range x {
		if amax < fabsf(v) {
			amax = fabsf(v)
			maxv = v
		}
	}
	d := maxv / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putFP16(b, d)
	for j := 0; j < 16; j++ {
		x0 := float32(x[j] * id)
		x1 := float32(x[16+j] * id)
		xi0 := uint8(imin(15, int32(int8(int32(x0+8.5)))))
		xi1 := uint8(imin(15, int32(int8(int32(x1+8.5)))))
		b[2+j] = xi0 | xi1<<4
	}
}

// quantizeQ4_1 is quantize_q4_1 on one row.
func quantizeQ4_1(y []byte, x, qw []float32) {
	if qw == nil {
		for ib := 0; ib < len(x)/32; ib++ {
			q4_1RefBlock(y[20*ib:20*ib+20], x[32*ib:32*ib+32])
		}
		return
	}
	sigma2 := rowSigma2(x)
	var weight [32]float32
	var L [32]uint8
	var s qkxBatch
	for ib := 0; ib < len(x)/32; ib++ {
		xb := x[32*ib : 32*ib+32]
		qwImpl(weight[:], qw[32*ib:32*ib+32], xb, sigma2)
		d, theMin := makeQkx3Quants(&s, 15, xb, weight[:], L[:], -0.9, 0.05, 36)
		b := y[20*ib : 20*ib+20]
		putFP16(b, d)
		putFP16(b[2:], -theMin)
		for j := 0; j < 16; j++ {
			b[4+j] = L[j] | L[j+16]<<4
		}
	}
}

func q4_1RefBlock(b []byte, x []float32) {
	x = x[:32]
	minv := float32(math.MaxFloat32)
	maxv := float32(-math.MaxFloat32)
	for _, v := range x {
		if v < minv {
			minv = v
		}
		if v > maxv {
			maxv = v
		}
	}
	d := (maxv - minv) / 15
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putFP16(b, d)
	putFP16(b[2:], minv)
	for j := 0; j < 16; j++ {
		x0 := float32((x[j] - minv) * id)
		x1 := float32((x[16+j] - minv) * id)
		xi0 := uint8(imin(15, int32(int8(int32(x0+0.5)))))
		xi1 := uint8(imin(15, int32(int8(int32(x1+0.5)))))
		b[4+j] = xi0 | xi1<<4
	}
}

// quantizeQ5_0 is quantize_q5_0 on one row.
func quantizeQ5_0(y []byte, x, qw []float32) {
	if qw == nil {
		for ib := 0; ib < len(x)/32; ib++ {
			q5_0RefBlock(y[22*ib:22*ib+22], x[32*ib:32*ib+32])
		}
		return
	}
	sigma2 := rowSigma2(x)
	var weight [32]float32
	var L [32]int8
	var s qkxBatch
	for ib := 0; ib < len(x)/32; ib++ {
		xb := x[32*ib : 32*ib+32]
		qwImpl(weight[:], qw[32*ib:32*ib+32], xb, sigma2)
		d := makeQxQuants(&s, 16, xb, weight[:], L[:])
		b := y[22*ib : 22*ib+22]
		putFP16(b, d)
		var qh uint32
		for j := 0; j < 16; j++ {
			xi0, xi1 := uint8(L[j]), uint8(L[j+16])
			b[6+j] = xi0&0x0F | (xi1&0x0F)<<4
			qh |= uint32(xi0&0x10) >> 4 << j
			qh |= uint32(xi1&0x10) >> 4 << (j + 16)
		}
		binary.LittleEndian.PutUint32(b[2:], qh)
	}
}

func q5_0RefBlock(b []byte, x []float32) {
	x = x[:32]
	var amax, maxv float32
	for _, v := range x {
		if amax < fabsf(v) {
			amax = fabsf(v)
			maxv = v
		}
	}
	d := maxv / -16
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putFP16(b, d)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := float32(x[j] * id)
		x1 := float32(x[16+j] * id)
		xi0 := uint8(imin(31, int32(int8(int32(x0+16.5)))))
		xi1 := uint8(imin(31, int32(int8(int32(x1+16.5)))))
		b[6+j] = xi0&0x0F | (xi1&0x0F)<<4
		qh |= uint32(xi0&0x10) >> 4 << j
		qh |= uint32(xi1&0x10) >> 4 << (j + 16)
	}
	binary.LittleEndian.PutUint32(b[2:], qh)
}

// quantizeQ5_1 is quantize_q5_1 on one row.
func quantizeQ5_1(y []byte, x, qw []float32) {
	if qw == nil {
		for ib := 0; ib < len(x)/32; ib++ {
			q5_1RefBlock(y[24*ib:24*ib+24], x[32*ib:32*ib+32])
		}
		return
	}
	sigma2 := rowSigma2(x)
	var weight [32]float32
	var L [32]uint8
	var s qkxBatch
	for ib := 0; ib < len(x)/32; ib++ {
		xb := x[32*ib : 32*ib+32]
		qwImpl(weight[:], qw[32*ib:32*ib+32], xb, sigma2)
		d, theMin := makeQkx3Quants(&s, 31, xb, weight[:], L[:], -0.9, 0.05, 36)
		b := y[24*ib : 24*ib+24]
		putFP16(b, d)
		putFP16(b[2:], -theMin)
		var qh uint32
		for j := 0; j < 16; j++ {
			xi0, xi1 := L[j], L[j+16]
			b[8+j] = xi0&0x0F | (xi1&0x0F)<<4
			qh |= uint32(xi0&0x10) >> 4 << j
			qh |= uint32(xi1&0x10) >> 4 << (j + 16)
		}
		binary.LittleEndian.PutUint32(b[4:], qh)
	}
}

func q5_1RefBlock(b []byte, x []float32) {
	x = x[:32]
	minv := float32(math.MaxFloat32)
	maxv := float32(-math.MaxFloat32)
	for _, v := range x {
		if v < minv {
			minv = v
		}
		if v > maxv {
			maxv = v
		}
	}
	d := (maxv - minv) / 31
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putFP16(b, d)
	putFP16(b[2:], minv)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := float32((x[j] - minv) * id)
		x1 := float32((x[16+j] - minv) * id)
		xi0 := uint8(int32(x0 + 0.5))
		xi1 := uint8(int32(x1 + 0.5))
		b[8+j] = xi0&0x0F | (xi1&0x0F)<<4
		qh |= uint32(xi0&0x10) >> 4 << j
		qh |= uint32(xi1&0x10) >> 4 << (j + 16)
	}
	binary.LittleEndian.PutUint32(b[4:], qh)
}

// quantizeQ8_0 is quantize_q8_0 on one row (importance weights are not used).
func quantizeQ8_0(y []byte, x, _ []float32) {
	for ib := 0; ib < len(x)/32; ib++ {
		b := y[34*ib : 34*ib+34]
		xb := x[32*ib : 32*ib+32]
		var amax float32
		for _, v := range xb {
			amax = fmaxC(amax, fabsf(v))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putFP16(b, d)
		for j, v := range xb {
			b[2+j] = uint8(int8(int32(roundf(v * id))))
		}
	}
}

// rowSigma2 is the mean square of a row, as the 32-block _impl quantizers compute it.
func rowSigma2(x []float32) float32 {
	var sumX2 float32
	for _, v := range x {
		sumX2 += float32(v * v)
	}
	return sumX2 / float32(len(x))
}

// qwImpl sets w[j] = qw[j]·sqrt(sigma2 + x[j]²), the importance-weighted error weights of the
// _impl quantizers.
func qwImpl(w, qw, x []float32, sigma2 float32) {
	w = w[:len(x)]
	qw = qw[:len(x)]
	for j, v := range x {
		w[j] = qw[j] * sqrtf(sigma2+float32(v*v))
	}
}
