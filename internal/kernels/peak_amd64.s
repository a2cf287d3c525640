//go:build amd64 && !noasm

#include "textflag.h"

// func fmaPeakAVX(n int, a, b float32) float32
//
// The FMA throughput loop behind BenchmarkPeakFMA: n iterations of 12
// independent VFMADD213PS on 8-wide accumulators (acc = a·acc + b, 192 flop
// per iteration, no memory traffic): 12 independent chains cover the FMA
// latency (4–5 cycles) on two FMA pipes. Returns the sum of the 96 lanes
// (accumulators 0..11 added lane-wise, then lanes 0..7 in order, as
// fmaPeakGo), so that the work cannot be elided and can be checked. n ≥ 0.
TEXT ·fmaPeakAVX(SB), NOSPLIT, $32-20
	MOVQ n+0(FP), CX
	VBROADCASTSS a+8(FP), Y12
	VBROADCASTSS b+12(FP), Y13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	TESTQ CX, CX
	JZ    sumY

loopY:
	VFMADD213PS Y13, Y12, Y0
	VFMADD213PS Y13, Y12, Y1
	VFMADD213PS Y13, Y12, Y2
	VFMADD213PS Y13, Y12, Y3
	VFMADD213PS Y13, Y12, Y4
	VFMADD213PS Y13, Y12, Y5
	VFMADD213PS Y13, Y12, Y6
	VFMADD213PS Y13, Y12, Y7
	VFMADD213PS Y13, Y12, Y8
	VFMADD213PS Y13, Y12, Y9
	VFMADD213PS Y13, Y12, Y10
	VFMADD213PS Y13, Y12, Y11
	DECQ CX
	JNZ  loopY

sumY:
	// Accumulators 0..11 lane-wise, then the lanes in order.
	VADDPS Y1, Y0, Y0
	VADDPS Y2, Y0, Y0
	VADDPS Y3, Y0, Y0
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y0, Y0
	VADDPS Y6, Y0, Y0
	VADDPS Y7, Y0, Y0
	VADDPS Y8, Y0, Y0
	VADDPS Y9, Y0, Y0
	VADDPS Y10, Y0, Y0
	VADDPS Y11, Y0, Y0
	VMOVUPS Y0, lanes-32(SP)
	VZEROUPPER
	MOVSS lanes-32(SP), X0
	ADDSS lanes-28(SP), X0
	ADDSS lanes-24(SP), X0
	ADDSS lanes-20(SP), X0
	ADDSS lanes-16(SP), X0
	ADDSS lanes-12(SP), X0
	ADDSS lanes-8(SP), X0
	ADDSS lanes-4(SP), X0
	MOVSS X0, ret+16(FP)
	RET

// func fmaPeakAVX512(n int, a, b float32) float32
//
// fmaPeakAVX on 16-wide zmm accumulators: 384 flop per iteration, 192 lanes.
TEXT ·fmaPeakAVX512(SB), NOSPLIT, $64-20
	MOVQ n+0(FP), CX
	VBROADCASTSS a+8(FP), Z12
	VBROADCASTSS b+12(FP), Z13
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	TESTQ CX, CX
	JZ    sumZ

loopZ:
	VFMADD213PS Z13, Z12, Z0
	VFMADD213PS Z13, Z12, Z1
	VFMADD213PS Z13, Z12, Z2
	VFMADD213PS Z13, Z12, Z3
	VFMADD213PS Z13, Z12, Z4
	VFMADD213PS Z13, Z12, Z5
	VFMADD213PS Z13, Z12, Z6
	VFMADD213PS Z13, Z12, Z7
	VFMADD213PS Z13, Z12, Z8
	VFMADD213PS Z13, Z12, Z9
	VFMADD213PS Z13, Z12, Z10
	VFMADD213PS Z13, Z12, Z11
	DECQ CX
	JNZ  loopZ

sumZ:
	// Accumulators 0..11 lane-wise, then the lanes in order.
	VADDPS Z1, Z0, Z0
	VADDPS Z2, Z0, Z0
	VADDPS Z3, Z0, Z0
	VADDPS Z4, Z0, Z0
	VADDPS Z5, Z0, Z0
	VADDPS Z6, Z0, Z0
	VADDPS Z7, Z0, Z0
	VADDPS Z8, Z0, Z0
	VADDPS Z9, Z0, Z0
	VADDPS Z10, Z0, Z0
	VADDPS Z11, Z0, Z0
	VMOVUPS Z0, lanes-64(SP)
	VZEROUPPER
	MOVSS lanes-64(SP), X0
	ADDSS lanes-60(SP), X0
	ADDSS lanes-56(SP), X0
	ADDSS lanes-52(SP), X0
	ADDSS lanes-48(SP), X0
	ADDSS lanes-44(SP), X0
	ADDSS lanes-40(SP), X0
	ADDSS lanes-36(SP), X0
	ADDSS lanes-32(SP), X0
	ADDSS lanes-28(SP), X0
	ADDSS lanes-24(SP), X0
	ADDSS lanes-20(SP), X0
	ADDSS lanes-16(SP), X0
	ADDSS lanes-12(SP), X0
	ADDSS lanes-8(SP), X0
	ADDSS lanes-4(SP), X0
	MOVSS X0, ret+16(FP)
	RET
