//go:build amd64 && !noasm

#include "textflag.h"

// Eight trial scales of make_qkx2_quants / make_qkx3_quants at once, one per 32-bit lane of a
// YMM register (see qkx.go). Only AVX2 integer and plain AVX float operations (VMULPS, VADDPS,
// VSUBPS): no fused multiply-add, each lane rounds exactly as ggml's scalar C does.

// func qkxSumsAVX2(n int, xm, x, w, is *float32, nmax int, codes *int32, sums *float32)
TEXT ·qkxSumsAVX2(SB), NOSPLIT, $0-64
	MOVQ n+0(FP), CX
	MOVQ xm+8(FP), SI
	MOVQ x+16(FP), DI
	MOVQ w+24(FP), R8
	MOVQ is+32(FP), R9
	MOVQ nmax+40(FP), AX
	MOVQ codes+48(FP), R10
	MOVQ sums+56(FP), R11
	VMOVUPS (R9), Y0           // the eight inverse scales
	VMOVD AX, X1
	VPBROADCASTD X1, Y1        // nmax
	VPXOR Y2, Y2, Y2           // 0
	MOVL $0x4B400000, AX       // 12582912.0f, nearest_int's 1.5·2^23
	VMOVD AX, X3
	VPBROADCASTD X3, Y3
	MOVL $0x007FFFFF, AX
	VMOVD AX, X4
	VPBROADCASTD X4, Y4
	MOVL $0x00400000, AX
	VMOVD AX, X5
	VPBROADCASTD X5, Y5
	VXORPS Y6, Y6, Y6          // sum_l
	VXORPS Y7, Y7, Y7          // sum_l2
	VXORPS Y8, Y8, Y8          // sum_xl
	TESTQ CX, CX
	JLE sumsdone
sumsloop:
	VBROADCASTSS (SI), Y9
	VMULPS Y9, Y0, Y9          // iscale*(x[i] - min)
	VADDPS Y3, Y9, Y9          // nearest_int: + 12582912.0f,
	VPAND Y4, Y9, Y9           // & 0x7fffff,
	VPSUBD Y5, Y9, Y9          // - 0x400000
	VPMINSD Y1, Y9, Y9         // MIN(nmax, l)
	VPMAXSD Y2, Y9, Y9         // MAX(0, ·)
	VMOVDQU Y9, (R10)
	VCVTDQ2PS Y9, Y10          // (float)l
	VBROADCASTSS (R8), Y11
	VMULPS Y10, Y11, Y11       // w*l
	VADDPS Y11, Y6, Y6         // sum_l += w*l
	VMULPS Y10, Y11, Y12
	VADDPS Y12, Y7, Y7         // sum_l2 += w*l*l
	VBROADCASTSS (DI), Y13
	VMULPS Y13, Y11, Y13
	VADDPS Y13, Y8, Y8         // sum_xl += w*l*x[i]
	ADDQ $4, SI
	ADDQ $4, DI
	ADDQ $4, R8
	ADDQ $32, R10
	DECQ CX
	JNZ sumsloop
sumsdone:
	VMOVUPS Y6, (R11)
	VMOVUPS Y7, 32(R11)
	VMOVUPS Y8, 64(R11)
	VZEROUPPER
	RET

// func qkxFitErrAVX2(n int, x, w *float32, codes *int32, sums *float32, sumW, sumX float32, mad int, out *float32) int
//
// From each lane's sums (sums[0:8] Σw·L, [8:16] Σw·L², [16:24] Σw·L·x): D = sum_w·sum_l2 −
// sum_l², and where D > 0 the least-squares scale and min (the min clamped to 0, the scale then
// refitted) and the error Σ w·d² (or Σ w·|d|, mad ≠ 0) of d = scale·L + min − x. Writes the
// scales to out[0:8], the mins to out[8:16], the errors to out[16:24]; returns the mask of lanes
// with D > 0.
TEXT ·qkxFitErrAVX2(SB), NOSPLIT, $0-72
	MOVQ sums+32(FP), SI
	VMOVUPS (SI), Y7           // sum_l
	VMOVUPS 32(SI), Y8         // sum_l2
	VMOVUPS 64(SI), Y9         // sum_xl
	VBROADCASTSS sumW+40(FP), Y10
	VBROADCASTSS sumX+44(FP), Y11
	VMULPS Y8, Y10, Y12        // sum_w*sum_l2
	VMULPS Y7, Y7, Y13         // sum_l*sum_l
	VSUBPS Y13, Y12, Y12       // D
	VXORPS Y14, Y14, Y14
	VCMPPS $0x1E, Y14, Y12, Y15 // D > 0 (ordered)
	VMOVMSKPS Y15, AX
	MOVQ AX, ret+64(FP)
	VMULPS Y9, Y10, Y0         // sum_w*sum_xl
	VMULPS Y7, Y11, Y1         // sum_x*sum_l
	VSUBPS Y1, Y0, Y0
	VDIVPS Y12, Y0, Y0         // this_scale
	VMULPS Y11, Y8, Y1         // sum_l2*sum_x
	VMULPS Y9, Y7, Y2          // sum_l*sum_xl
	VSUBPS Y2, Y1, Y1
	VDIVPS Y12, Y1, Y1         // this_min
	VCMPPS $0x1E, Y14, Y1, Y2  // this_min > 0
	VDIVPS Y8, Y9, Y3          // sum_xl/sum_l2
	VBLENDVPS Y2, Y3, Y0, Y0   // this_scale = this_min > 0 ? sum_xl/sum_l2 : this_scale
	VANDNPS Y1, Y2, Y1         // this_min = this_min > 0 ? 0 : this_min
	VANDPS Y15, Y0, Y0         // lanes without D > 0: 0, 0
	VANDPS Y15, Y1, Y1
	MOVQ out+56(FP), R12
	VMOVUPS Y0, (R12)
	VMOVUPS Y1, 32(R12)

	MOVQ n+0(FP), CX
	MOVQ x+8(FP), DI
	MOVQ w+16(FP), R8
	MOVQ codes+24(FP), R10
	MOVQ mad+48(FP), DX
	VXORPS Y2, Y2, Y2          // the error sums
	MOVL $0x7FFFFFFF, AX
	VMOVD AX, X3
	VPBROADCASTD X3, Y3        // fabsf's mask
	TESTQ CX, CX
	JLE errdone
	TESTQ DX, DX
	JNZ madloop
sqloop:
	VCVTDQ2PS (R10), Y4
	VMULPS Y4, Y0, Y4          // this_scale*L[i]
	VADDPS Y1, Y4, Y4          // + this_min
	VBROADCASTSS (DI), Y5
	VSUBPS Y5, Y4, Y4          // - x[i]
	VMULPS Y4, Y4, Y4          // diff*diff
	VBROADCASTSS (R8), Y6
	VMULPS Y4, Y6, Y4          // w*diff
	VADDPS Y4, Y2, Y2
	ADDQ $4, DI
	ADDQ $4, R8
	ADDQ $32, R10
	DECQ CX
	JNZ sqloop
	JMP errdone
madloop:
	VCVTDQ2PS (R10), Y4
	VMULPS Y4, Y0, Y4
	VADDPS Y1, Y4, Y4
	VBROADCASTSS (DI), Y5
	VSUBPS Y5, Y4, Y4
	VANDPS Y3, Y4, Y4          // fabsf(diff)
	VBROADCASTSS (R8), Y6
	VMULPS Y4, Y6, Y4
	VADDPS Y4, Y2, Y2
	ADDQ $4, DI
	ADDQ $4, R8
	ADDQ $32, R10
	DECQ CX
	JNZ madloop
errdone:
	VMOVUPS Y2, 64(R12)
	VZEROUPPER
	RET

// func qxSumsAVX2(n int, x, w, is *float32, nmax int, codes *int32, sums *float32)
//
// Eight trial scales of make_qx_quants: per lane l = clamp(nearest_int(is·x[i]), −nmax,
// nmax−1), written to codes, and Σ w·x·l to sums[0:8], Σ w·l·l to sums[8:16].
TEXT ·qxSumsAVX2(SB), NOSPLIT, $0-56
	MOVQ n+0(FP), CX
	MOVQ x+8(FP), DI
	MOVQ w+16(FP), R8
	MOVQ is+24(FP), R9
	MOVQ nmax+32(FP), AX
	MOVQ codes+40(FP), R10
	MOVQ sums+48(FP), R11
	VMOVUPS (R9), Y0           // the eight inverse scales
	MOVQ AX, BX
	DECQ BX
	VMOVD BX, X1
	VPBROADCASTD X1, Y1        // nmax-1
	NEGQ AX
	VMOVD AX, X2
	VPBROADCASTD X2, Y2        // -nmax
	MOVL $0x4B400000, AX       // 12582912.0f
	VMOVD AX, X3
	VPBROADCASTD X3, Y3
	MOVL $0x007FFFFF, AX
	VMOVD AX, X4
	VPBROADCASTD X4, Y4
	MOVL $0x00400000, AX
	VMOVD AX, X5
	VPBROADCASTD X5, Y5
	VXORPS Y6, Y6, Y6          // sum_lx
	VXORPS Y7, Y7, Y7          // sum_l2
	TESTQ CX, CX
	JLE qxdone
qxloop:
	VBROADCASTSS (DI), Y8      // x[i]
	VMULPS Y8, Y0, Y9          // iscale*x[i]
	VADDPS Y3, Y9, Y9
	VPAND Y4, Y9, Y9
	VPSUBD Y5, Y9, Y9          // nearest_int
	VPMINSD Y1, Y9, Y9         // MIN(nmax-1, l)
	VPMAXSD Y2, Y9, Y9         // MAX(-nmax, ·)
	VMOVDQU Y9, (R10)
	VCVTDQ2PS Y9, Y10          // (float)l
	VBROADCASTSS (R8), Y11     // w
	VMULPS Y8, Y11, Y12        // w*x[i]
	VMULPS Y10, Y12, Y12       // w*x[i]*l
	VADDPS Y12, Y6, Y6
	VMULPS Y10, Y11, Y13       // w*l
	VMULPS Y10, Y13, Y13       // w*l*l
	VADDPS Y13, Y7, Y7
	ADDQ $4, DI
	ADDQ $4, R8
	ADDQ $32, R10
	DECQ CX
	JNZ qxloop
qxdone:
	VMOVUPS Y6, (R11)
	VMOVUPS Y7, 32(R11)
	VZEROUPPER
	RET
