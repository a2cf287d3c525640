package ggml

import (
	"encoding/binary"
	"math"
)

// The decoders: ggml-quants.c's dequantize_row_* (and the float conversions), one block at a
// time. Each writes len(y) = BlockSize values decoded from one block b.

func dequantQ4_0(y []float32, b []byte) {
	d := getFP16(b)
	qs := b[2:18]
	for j := 0; j < 16; j++ {
		y[j] = float32(int32(qs[j]&0x0F)-8) * d
		y[j+16] = float32(int32(qs[j]>>4)-8) * d
	}
}

func dequantQ4_1(y []float32, b []byte) {
	d, m := getFP16(b), getFP16(b[2:])
	qs := b[4:20]
	for j := 0; j < 16; j++ {
		y[j] = float32(float32(qs[j]&0x0F)*d) + m
		y[j+16] = float32(float32(qs[j]>>4)*d) + m
	}
}

func dequantQ5_0(y []float32, b []byte) {
	d := getFP16(b)
	qh := binary.LittleEndian.Uint32(b[2:])
	qs := b[6:22]
	for j := 0; j < 16; j++ {
		xh0 := uint8(qh>>j<<4) & 0x10
		xh1 := uint8(qh>>(j+12)) & 0x10
		y[j] = float32(int32(qs[j]&0x0F|xh0)-16) * d
		y[j+16] = float32(int32(qs[j]>>4|xh1)-16) * d
	}
}

func dequantQ5_1(y []float32, b []byte) {
	d, m := getFP16(b), getFP16(b[2:])
	qh := binary.LittleEndian.Uint32(b[4:])
	qs := b[8:24]
	for j := 0; j < 16; j++ {
		xh0 := uint8(qh>>j<<4) & 0x10
		xh1 := uint8(qh>>(j+12)) & 0x10
		y[j] = float32(float32(qs[j]&0x0F|xh0)*d) + m
		y[j+16] = float32(float32(qs[j]>>4|xh1)*d) + m
	}
}

// dequantQ8_0, dequantQ2_K, dequantQ3_K and dequantQ5_K run the AVX2 kernel with the block's
// factors computed here exactly as the portable loops (…Go, ggml's C transcribed) compute them,
// or the portable loop.
func dequantQ8_0(y []float32, b []byte) {
	if useAVX2 {
		dequantQ8_0AVX2(&y[:32][0], &b[:34][0], getFP16(b))
		return
	}
	dequantQ8_0Go(y, b)
}

func dequantQ2_K(y []float32, b []byte) {
	var dm [32]float32
	d, mn := getFP16(b[80:]), getFP16(b[82:])
	for i, s := range b[0:16] {
		dm[2*i], dm[2*i+1] = d*float32(s&0xF), mn*float32(s>>4)
	}
	if useAVX2 {
		dequantQ2KAVX2(&y[:QK_K][0], &b[:84][0], &dm)
		return
	}
	dequantQ2KGo(y, b, &dm)
}

func dequantQ3_K(y []float32, b []byte) {
	var dl [16]float32
	dAll := getFP16(b[108:])
	sc := b[96:108]
	for k := range 16 {
		var low uint8
		if k < 8 {
			low = sc[k] & 0xF
		} else {
			low = sc[k-8] >> 4
		}
		s := int32(int8(low|((sc[8+k%4]>>(2*(k/4)))&3)<<4)) - 32
		dl[k] = dAll * float32(s)
	}
	if useAVX2 {
		dequantQ3KAVX2(&y[:QK_K][0], &b[:110][0], &dl)
		return
	}
	dequantQ3KGo(y, b, &dl)
}

func dequantQ5_K(y []float32, b []byte) {
	if !useAVX2 {
		dequantQ5KGo(y, b)
		return
	}
	var dm [16]float32
	dequantQ4KScales(&dm, b)
	dequantQ5KAVX2(&y[:QK_K][0], &b[:176][0], &dm)
}

func dequantQ8_0Go(y []float32, b []byte) {
	d := getFP16(b)
	for j, q := range b[2:34] {
		y[j] = float32(int8(q)) * d
	}
}

// dequantQ2KGo is the portable loop of dequantQ2_K, with sub-block i's d·scale and dmin·min in
// dm[2i], dm[2i+1].
func dequantQ2KGo(y []float32, b []byte, dm *[32]float32) {
	q := b[16:80]
	is := 0
	for n := 0; n < QK_K; n += 128 {
		shift := 0
		for j := 0; j < 4; j++ {
			for half := 0; half < 2; half++ {
				dl, ml := dm[2*is], dm[2*is+1]
				is++
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

// dequantQ3KGo is the portable loop of dequantQ3_K, with sub-block k's d·scale in dl[k].
func dequantQ3KGo(y []float32, b []byte, dl *[16]float32) {
	hm := b[0:32]
	q := b[32:96]
	m := uint8(1)
	is := 0
	for n := 0; n < QK_K; n += 128 {
		shift := 0
		for j := 0; j < 4; j++ {
			for half := 0; half < 2; half++ {
				d := dl[is]
				is++
				qq := q[16*half : 16*half+16]
				hh := hm[16*half : 16*half+16]
				for l := 0; l < 16; l++ {
					v := int32((qq[l] >> shift) & 3)
					if hh[l]&m == 0 {
						v -= 4
					}
					y[l] = d * float32(v)
				}
				y = y[16:]
			}
			shift += 2
			m <<= 1
		}
		q = q[32:]
	}
}

// dequantQ4_K computes the block's eight sub-block scales and mins once (dequantQ4KScales) and
// decodes the 256 codes with them: float32(d_i·q) − m_i, two roundings as in ggml's C.
func dequantQ4_K(y []float32, b []byte) {
	var dm [16]float32
	dequantQ4KScales(&dm, b)
	if useAVX2 {
		dequantQ4KAVX2(&y[:QK_K][0], &b[:144][16], &dm)
		return
	}
	dequantQ4KGo(y, b, &dm)
}

// dequantQ4KScales sets dm[2i], dm[2i+1] to sub-block i's d·scale and dmin·min.
func dequantQ4KScales(dm *[16]float32, b []byte) {
	d, mn := getFP16(b), getFP16(b[2:])
	sc := b[4:16]
	for i := range 8 {
		s, m := getScaleMinK4(i, sc)
		dm[2*i], dm[2*i+1] = d*float32(s), mn*float32(m)
	}
}

// dequantQ4KGo is the portable loop of dequantQ4_K: 64 values (two sub-blocks) per 32 bytes.
func dequantQ4KGo(y []float32, b []byte, dm *[16]float32) {
	y = y[:QK_K]
	q := b[16:144]
	for j := range 4 {
		d1, m1, d2, m2 := dm[4*j], dm[4*j+1], dm[4*j+2], dm[4*j+3]
		yy := y[64*j : 64*j+64]
		for l, v := range q[32*j : 32*j+32] {
			yy[l] = float32(d1*float32(v&0xF)) - m1
			yy[32+l] = float32(d2*float32(v>>4)) - m2
		}
	}
}

func dequantQ5KGo(y []float32, b []byte) {
	d, mn := getFP16(b), getFP16(b[2:])
	sc := b[4:16]
	qh := b[16:48]
	ql := b[48:176]
	is := 0
	u1, u2 := uint8(1), uint8(2)
	for j := 0; j < QK_K; j += 64 {
		s, m := getScaleMinK4(is, sc)
		d1, m1 := d*float32(s), mn*float32(m)
		s, m = getScaleMinK4(is+1, sc)
		d2, m2 := d*float32(s), mn*float32(m)
		for l := 0; l < 32; l++ {
			v := int32(ql[l] & 0xF)
			if qh[l]&u1 != 0 {
				v += 16
			}
			y[l] = float32(d1*float32(v)) - m1
		}
		for l := 0; l < 32; l++ {
			v := int32(ql[l] >> 4)
			if qh[l]&u2 != 0 {
				v += 16
			}
			y[32+l] = float32(d2*float32(v)) - m2
		}
		y = y[64:]
		ql = ql[32:]
		is += 2
		u1 <<= 2
		u2 <<= 2
	}
}

// dequantQ6_K computes the block's sixteen d·scale products once and decodes the 256 six-bit
// codes with them: (d·scale)·q, the product ggml's C rounds first, then the code's.
func dequantQ6_K(y []float32, b []byte) {
	var ds [16]float32
	d := getFP16(b[208:])
	for i, s := range b[192:208] {
		ds[i] = d * float32(int8(s))
	}
	if useAVX2 {
		dequantQ6KAVX2(&y[:QK_K][0], &b[:210][0], &ds)
		return
	}
	dequantQ6KGo(y, b, &ds)
}

// dequantQ6KGo is the portable loop of dequantQ6_K.
func dequantQ6KGo(y []float32, b []byte, ds *[16]float32) {
	y = y[:QK_K]
	for n := range 2 {
		ql := b[64*n : 64*n+64]
		qh := b[128+32*n : 128+32*n+32]
		yy := y[128*n : 128*n+128]
		for l := range 32 {
			is := 8*n + l/16
			h := qh[l]
			q1 := int8((ql[l]&0xF)|(h&3)<<4) - 32
			q2 := int8((ql[l+32]&0xF)|((h>>2)&3)<<4) - 32
			q3 := int8((ql[l]>>4)|((h>>4)&3)<<4) - 32
			q4 := int8((ql[l+32]>>4)|((h>>6)&3)<<4) - 32
			yy[l] = ds[is] * float32(q1)
			yy[l+32] = ds[is+2] * float32(q2)
			yy[l+64] = ds[is+4] * float32(q3)
			yy[l+96] = ds[is+6] * float32(q4)
		}
	}
}

func dequantIQ4_NL(y []float32, b []byte) {
	d := getFP16(b)
	qs := b[2:18]
	for j := 0; j < 16; j++ {
		y[j] = d * float32(kvaluesIQ4NL[qs[j]&0xf])
		y[j+16] = d * float32(kvaluesIQ4NL[qs[j]>>4])
	}
}

func dequantIQ4_XS(y []float32, b []byte) {
	d := getFP16(b)
	scalesH := binary.LittleEndian.Uint16(b[2:])
	scalesL := b[4:8]
	qs := b[8:136]
	for ib := 0; ib < QK_K/32; ib++ {
		ls := int32((scalesL[ib/2]>>(4*(ib%2)))&0xf) | int32((scalesH>>(2*ib))&3)<<4
		dl := d * float32(ls-32)
		for j := 0; j < 16; j++ {
			y[j] = dl * float32(kvaluesIQ4NL[qs[j]&0xf])
			y[j+16] = dl * float32(kvaluesIQ4NL[qs[j]>>4])
		}
		y = y[32:]
		qs = qs[16:]
	}
}

func dequantF32(y []float32, b []byte) {
	y[0] = math.Float32frombits(binary.LittleEndian.Uint32(b))
}

func dequantF16(y []float32, b []byte) { y[0] = getFP16(b) }

func dequantBF16(y []float32, b []byte) { y[0] = BF16ToFP32(binary.LittleEndian.Uint16(b)) }
