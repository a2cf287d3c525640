//go:build amd64 && !noasm

package ggml

import "github.com/evopress/evopress/internal/kernels"

// useAVX2 selects the AVX2 kernels (the quantizers' trials, qkx_amd64.s; the block decoders,
// dequant_amd64.s) where the kernels use AVX2 (kernels.AsmAVX2: the CPU has it and
// EVOPRESS_KERNELS allows it); tests flip it to exercise the portable ones too.
var useAVX2 = kernels.AsmAVX2()

//go:noescape
func qkxSumsAVX2(n int, xm, x, w, is *float32, nmax int, codes *int32, sums *float32)

//go:noescape
func qkxFitErrAVX2(n int, x, w *float32, codes *int32, sums *float32, sumW, sumX float32, mad int, out *float32) int

func (b *qkxBatch) sums(x, w []float32, nmax int32) {
	if !useAVX2 {
		b.sumsGo(x, w, nmax)
		return
	}
	qkxSumsAVX2(len(x), &b.xm[0], &x[0], &w[0], &b.iscale[0], int(nmax), &b.codes[0][0], &b.sum[0][0])
}

func (b *qkxBatch) fitErr(x, w []float32, sumW, sumX float32, useMad bool) uint8 {
	if !useAVX2 {
		return b.fitErrGo(x, w, sumW, sumX, useMad)
	}
	mad := 0
	if useMad {
		mad = 1
	}
	return uint8(qkxFitErrAVX2(len(x), &x[0], &w[0], &b.codes[0][0], &b.sum[0][0], sumW, sumX, mad, &b.fit[0][0]))
}

//go:noescape
func qxSumsAVX2(n int, x, w, is *float32, nmax int, codes *int32, sums *float32)

func (b *qkxBatch) qxSums(x, w []float32, nmax int32) {
	if !useAVX2 {
		b.qxSumsGo(x, w, nmax)
		return
	}
	qxSumsAVX2(len(x), &x[0], &w[0], &b.iscale[0], int(nmax), &b.codes[0][0], &b.sum[0][0])
}

// dequantQ4KAVX2 decodes the 128 code bytes q of a Q4_K block into y (256 values) with the
// sub-block factors dm (dequantQ4KScales): float32(d_i·q) − m_i, a VMULPS and a VSUBPS, each
// rounding as the scalar code does (dequant_amd64.s).
//
//go:noescape
func dequantQ4KAVX2(y *float32, q *byte, dm *[16]float32)

// dequantQ6KAVX2 decodes Q6_K block b (its ql and qh arrays) into y (256 values) with the
// sixteen d·scale products ds: ds·float32(q − 32) (dequant_amd64.s).
//
//go:noescape
func dequantQ6KAVX2(y *float32, b *byte, ds *[16]float32)

// dequantQ5KAVX2, dequantQ2KAVX2, dequantQ3KAVX2 and dequantQ8_0AVX2 decode one block b of their
// type into y with the block's factors computed in Go (dequant.go): the scalar code's operations
// lane by lane (dequant_amd64.s).
//
//go:noescape
func dequantQ5KAVX2(y *float32, b *byte, dm *[16]float32)

//go:noescape
func dequantQ2KAVX2(y *float32, b *byte, dm *[32]float32)

//go:noescape
func dequantQ3KAVX2(y *float32, b *byte, dl *[16]float32)

//go:noescape
func dequantQ8_0AVX2(y *float32, b *byte, d float32)
