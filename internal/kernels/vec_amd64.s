//go:build amd64 && !noasm

#include "textflag.h"

// Vector kernels (AVX2/FMA). Each constant below is replicated 8 times so
// that it can be used directly as a 256-bit memory operand.

DATA expHi<>+0(SB)/4, $0x42b20000
DATA expHi<>+4(SB)/4, $0x42b20000
DATA expHi<>+8(SB)/4, $0x42b20000
DATA expHi<>+12(SB)/4, $0x42b20000
DATA expHi<>+16(SB)/4, $0x42b20000
DATA expHi<>+20(SB)/4, $0x42b20000
DATA expHi<>+24(SB)/4, $0x42b20000
DATA expHi<>+28(SB)/4, $0x42b20000
GLOBL expHi<>(SB), RODATA|NOPTR, $32

DATA expLo<>+0(SB)/4, $0xc2d00000
DATA expLo<>+4(SB)/4, $0xc2d00000
DATA expLo<>+8(SB)/4, $0xc2d00000
DATA expLo<>+12(SB)/4, $0xc2d00000
DATA expLo<>+16(SB)/4, $0xc2d00000
DATA expLo<>+20(SB)/4, $0xc2d00000
DATA expLo<>+24(SB)/4, $0xc2d00000
DATA expLo<>+28(SB)/4, $0xc2d00000
GLOBL expLo<>(SB), RODATA|NOPTR, $32

DATA expLog2e<>+0(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+4(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+8(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+12(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+16(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+20(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+24(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL expLog2e<>(SB), RODATA|NOPTR, $32

DATA expC1<>+0(SB)/4, $0x3f318000
DATA expC1<>+4(SB)/4, $0x3f318000
DATA expC1<>+8(SB)/4, $0x3f318000
DATA expC1<>+12(SB)/4, $0x3f318000
DATA expC1<>+16(SB)/4, $0x3f318000
DATA expC1<>+20(SB)/4, $0x3f318000
DATA expC1<>+24(SB)/4, $0x3f318000
DATA expC1<>+28(SB)/4, $0x3f318000
GLOBL expC1<>(SB), RODATA|NOPTR, $32

DATA expC2<>+0(SB)/4, $0xb95e8083
DATA expC2<>+4(SB)/4, $0xb95e8083
DATA expC2<>+8(SB)/4, $0xb95e8083
DATA expC2<>+12(SB)/4, $0xb95e8083
DATA expC2<>+16(SB)/4, $0xb95e8083
DATA expC2<>+20(SB)/4, $0xb95e8083
DATA expC2<>+24(SB)/4, $0xb95e8083
DATA expC2<>+28(SB)/4, $0xb95e8083
GLOBL expC2<>(SB), RODATA|NOPTR, $32

DATA expP0<>+0(SB)/4, $0x39506967
DATA expP0<>+4(SB)/4, $0x39506967
DATA expP0<>+8(SB)/4, $0x39506967
DATA expP0<>+12(SB)/4, $0x39506967
DATA expP0<>+16(SB)/4, $0x39506967
DATA expP0<>+20(SB)/4, $0x39506967
DATA expP0<>+24(SB)/4, $0x39506967
DATA expP0<>+28(SB)/4, $0x39506967
GLOBL expP0<>(SB), RODATA|NOPTR, $32

DATA expP1<>+0(SB)/4, $0x3ab743ce
DATA expP1<>+4(SB)/4, $0x3ab743ce
DATA expP1<>+8(SB)/4, $0x3ab743ce
DATA expP1<>+12(SB)/4, $0x3ab743ce
DATA expP1<>+16(SB)/4, $0x3ab743ce
DATA expP1<>+20(SB)/4, $0x3ab743ce
DATA expP1<>+24(SB)/4, $0x3ab743ce
DATA expP1<>+28(SB)/4, $0x3ab743ce
GLOBL expP1<>(SB), RODATA|NOPTR, $32

DATA expP2<>+0(SB)/4, $0x3c088908
DATA expP2<>+4(SB)/4, $0x3c088908
DATA expP2<>+8(SB)/4, $0x3c088908
DATA expP2<>+12(SB)/4, $0x3c088908
DATA expP2<>+16(SB)/4, $0x3c088908
DATA expP2<>+20(SB)/4, $0x3c088908
DATA expP2<>+24(SB)/4, $0x3c088908
DATA expP2<>+28(SB)/4, $0x3c088908
GLOBL expP2<>(SB), RODATA|NOPTR, $32

DATA expP3<>+0(SB)/4, $0x3d2aa9c1
DATA expP3<>+4(SB)/4, $0x3d2aa9c1
DATA expP3<>+8(SB)/4, $0x3d2aa9c1
DATA expP3<>+12(SB)/4, $0x3d2aa9c1
DATA expP3<>+16(SB)/4, $0x3d2aa9c1
DATA expP3<>+20(SB)/4, $0x3d2aa9c1
DATA expP3<>+24(SB)/4, $0x3d2aa9c1
DATA expP3<>+28(SB)/4, $0x3d2aa9c1
GLOBL expP3<>(SB), RODATA|NOPTR, $32

DATA expP4<>+0(SB)/4, $0x3e2aaaaa
DATA expP4<>+4(SB)/4, $0x3e2aaaaa
DATA expP4<>+8(SB)/4, $0x3e2aaaaa
DATA expP4<>+12(SB)/4, $0x3e2aaaaa
DATA expP4<>+16(SB)/4, $0x3e2aaaaa
DATA expP4<>+20(SB)/4, $0x3e2aaaaa
DATA expP4<>+24(SB)/4, $0x3e2aaaaa
DATA expP4<>+28(SB)/4, $0x3e2aaaaa
GLOBL expP4<>(SB), RODATA|NOPTR, $32

DATA expP5<>+0(SB)/4, $0x3f000000
DATA expP5<>+4(SB)/4, $0x3f000000
DATA expP5<>+8(SB)/4, $0x3f000000
DATA expP5<>+12(SB)/4, $0x3f000000
DATA expP5<>+16(SB)/4, $0x3f000000
DATA expP5<>+20(SB)/4, $0x3f000000
DATA expP5<>+24(SB)/4, $0x3f000000
DATA expP5<>+28(SB)/4, $0x3f000000
GLOBL expP5<>(SB), RODATA|NOPTR, $32

DATA one<>+0(SB)/4, $0x3f800000
DATA one<>+4(SB)/4, $0x3f800000
DATA one<>+8(SB)/4, $0x3f800000
DATA one<>+12(SB)/4, $0x3f800000
DATA one<>+16(SB)/4, $0x3f800000
DATA one<>+20(SB)/4, $0x3f800000
DATA one<>+24(SB)/4, $0x3f800000
DATA one<>+28(SB)/4, $0x3f800000
GLOBL one<>(SB), RODATA|NOPTR, $32

DATA bias127<>+0(SB)/4, $0x0000007f
DATA bias127<>+4(SB)/4, $0x0000007f
DATA bias127<>+8(SB)/4, $0x0000007f
DATA bias127<>+12(SB)/4, $0x0000007f
DATA bias127<>+16(SB)/4, $0x0000007f
DATA bias127<>+20(SB)/4, $0x0000007f
DATA bias127<>+24(SB)/4, $0x0000007f
DATA bias127<>+28(SB)/4, $0x0000007f
GLOBL bias127<>(SB), RODATA|NOPTR, $32

DATA signMask<>+0(SB)/4, $0x80000000
DATA signMask<>+4(SB)/4, $0x80000000
DATA signMask<>+8(SB)/4, $0x80000000
DATA signMask<>+12(SB)/4, $0x80000000
DATA signMask<>+16(SB)/4, $0x80000000
DATA signMask<>+20(SB)/4, $0x80000000
DATA signMask<>+24(SB)/4, $0x80000000
DATA signMask<>+28(SB)/4, $0x80000000
GLOBL signMask<>(SB), RODATA|NOPTR, $32

DATA negInf<>+0(SB)/4, $0xff800000
DATA negInf<>+4(SB)/4, $0xff800000
DATA negInf<>+8(SB)/4, $0xff800000
DATA negInf<>+12(SB)/4, $0xff800000
DATA negInf<>+16(SB)/4, $0xff800000
DATA negInf<>+20(SB)/4, $0xff800000
DATA negInf<>+24(SB)/4, $0xff800000
DATA negInf<>+28(SB)/4, $0xff800000
GLOBL negInf<>(SB), RODATA|NOPTR, $32

// EXP8 computes X = exp(X) for 8 floats (Cephes expf with Cody–Waite range
// reduction): clamp to [LO, HI] (NaN kept: X is the second source of
// min/max), n = round(x·log2e), r = x − n·ln2 (two parts),
// y = 1 + r + r²·P(r) with P evaluated by Estrin's scheme
// (P = (p5+p4·r) + r²·(p3+p2·r) + r⁴·(p1+p0·r), to shorten the dependency
// chain), result = y·2^⌊n/2⌋·2^(n−⌊n/2⌋).
// N, T, U, V, W are scratch registers; HI and LO hold the clamp bounds.
#define EXP8(X, N, T, U, V, W, HI, LO) \
	VMINPS       X, HI, X; \
	VMAXPS       X, LO, X; \
	VMULPS       expLog2e<>(SB), X, N; \
	VROUNDPS     $0, N, N; \
	VFNMADD231PS expC1<>(SB), N, X; \
	VFNMADD231PS expC2<>(SB), N, X; \
	VMULPS       X, X, U; \
	VMOVUPS      expP4<>(SB), T; \
	VFMADD213PS  expP5<>(SB), X, T; \
	VMOVUPS      expP2<>(SB), V; \
	VFMADD213PS  expP3<>(SB), X, V; \
	VMOVUPS      expP0<>(SB), W; \
	VFMADD213PS  expP1<>(SB), X, W; \
	VFMADD213PS  V, U, W; \
	VFMADD213PS  T, U, W; \
	VFMADD213PS  X, U, W; \
	VADDPS       one<>(SB), W, W; \
	VCVTPS2DQ    N, N; \
	VPSRAD       $1, N, U; \
	VPSUBD       U, N, N; \
	VPADDD       bias127<>(SB), U, U; \
	VPSLLD       $23, U, U; \
	VPADDD       bias127<>(SB), N, N; \
	VPSLLD       $23, N, N; \
	VMULPS       U, W, W; \
	VMULPS       N, W, X

// ACC64 adds the 8 floats of X (a Y register; XL its low half) to the float64
// accumulator A (4 lanes); T, TL are scratch.
#define ACC64(X, XL, T, TL, A) \
	VEXTRACTF128 $1, X, TL; \
	VCVTPS2PD    XL, X; \
	VCVTPS2PD    TL, T; \
	VADDPD       T, X, X; \
	VADDPD       X, A, A

// HSUM64 reduces the float64 accumulators A, B (low halves AL) into AL[0].
#define HSUM64(A, AL, B, T, TL) \
	VADDPD       B, A, A; \
	VEXTRACTF128 $1, A, TL; \
	VADDPD       TL, AL, AL; \
	VUNPCKHPD    AL, AL, TL; \
	VADDSD       TL, AL, AL

// func dotAVX(x, y []float32) float32
TEXT ·dotAVX(SB), NOSPLIT, $0-52
	MOVQ   x_base+0(FP), SI
	MOVQ   y_base+24(FP), DI
	MOVQ   x_len+8(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   CX, BX
	SHRQ   $5, BX
	JZ     dot8

dot32:
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DI
	DECQ        BX
	JNZ         dot32

dot8:
	ANDQ $31, CX
	MOVQ CX, BX
	SHRQ $3, BX
	JZ   dotred

dot8loop:
	VMOVUPS     (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $32, SI
	ADDQ        $32, DI
	DECQ        BX
	JNZ         dot8loop

dotred:
	ANDQ         $7, CX
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVHLPS     X0, X0, X1
	VADDPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VADDSS       X1, X0, X0
	TESTQ        CX, CX
	JZ           dotend

dot1:
	VMOVSS      (SI), X4
	VFMADD231SS (DI), X4, X0
	ADDQ        $4, SI
	ADDQ        $4, DI
	DECQ        CX
	JNZ         dot1

dotend:
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// func axpyAVX(alpha float32, x, y []float32)
TEXT ·axpyAVX(SB), NOSPLIT, $0-56
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ         x_base+8(FP), SI
	MOVQ         y_base+32(FP), DI
	MOVQ         x_len+16(FP), CX
	MOVQ         CX, BX
	SHRQ         $5, BX
	JZ           axpy8

axpy32:
	VMOVUPS     (SI), Y1
	VMOVUPS     32(SI), Y2
	VMOVUPS     64(SI), Y3
	VMOVUPS     96(SI), Y4
	VFMADD213PS (DI), Y0, Y1
	VFMADD213PS 32(DI), Y0, Y2
	VFMADD213PS 64(DI), Y0, Y3
	VFMADD213PS 96(DI), Y0, Y4
	VMOVUPS     Y1, (DI)
	VMOVUPS     Y2, 32(DI)
	VMOVUPS     Y3, 64(DI)
	VMOVUPS     Y4, 96(DI)
	ADDQ        $128, SI
	ADDQ        $128, DI
	DECQ        BX
	JNZ         axpy32

axpy8:
	ANDQ $31, CX
	MOVQ CX, BX
	SHRQ $3, BX
	JZ   axpy1pre

axpy8loop:
	VMOVUPS     (SI), Y1
	VFMADD213PS (DI), Y0, Y1
	VMOVUPS     Y1, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	DECQ        BX
	JNZ         axpy8loop

axpy1pre:
	ANDQ $7, CX
	JZ   axpyend

axpy1:
	VMOVSS      (SI), X1
	VFMADD213SS (DI), X0, X1
	VMOVSS      X1, (DI)
	ADDQ        $4, SI
	ADDQ        $4, DI
	DECQ        CX
	JNZ         axpy1

axpyend:
	VZEROUPPER
	RET

// func scaleAVX(alpha float32, x []float32)
TEXT ·scaleAVX(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ         x_base+8(FP), SI
	MOVQ         x_len+16(FP), CX
	MOVQ         CX, BX
	SHRQ         $5, BX
	JZ           scale8

scale32:
	VMULPS  (SI), Y0, Y1
	VMULPS  32(SI), Y0, Y2
	VMULPS  64(SI), Y0, Y3
	VMULPS  96(SI), Y0, Y4
	VMOVUPS Y1, (SI)
	VMOVUPS Y2, 32(SI)
	VMOVUPS Y3, 64(SI)
	VMOVUPS Y4, 96(SI)
	ADDQ    $128, SI
	DECQ    BX
	JNZ     scale32

scale8:
	ANDQ $31, CX
	MOVQ CX, BX
	SHRQ $3, BX
	JZ   scale1pre

scale8loop:
	VMULPS  (SI), Y0, Y1
	VMOVUPS Y1, (SI)
	ADDQ    $32, SI
	DECQ    BX
	JNZ     scale8loop

scale1pre:
	ANDQ $7, CX
	JZ   scaleend

scale1:
	VMULSS (SI), X0, X1
	VMOVSS X1, (SI)
	ADDQ   $4, SI
	DECQ   CX
	JNZ    scale1

scaleend:
	VZEROUPPER
	RET

// func maxAVX(x []float32) float32
//
// acc = x > acc ? x : acc per lane (VMAXPS with acc as second source), so
// NaN elements are skipped; the accumulators start at −Inf.
TEXT ·maxAVX(SB), NOSPLIT, $0-28
	MOVQ    x_base+0(FP), SI
	MOVQ    x_len+8(FP), CX
	VMOVUPS negInf<>(SB), Y0
	VMOVUPS Y0, Y1
	VMOVUPS Y0, Y2
	VMOVUPS Y0, Y3
	MOVQ    CX, BX
	SHRQ    $5, BX
	JZ      max8

max32:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VMAXPS  Y0, Y4, Y0
	VMAXPS  Y1, Y5, Y1
	VMAXPS  Y2, Y6, Y2
	VMAXPS  Y3, Y7, Y3
	ADDQ    $128, SI
	DECQ    BX
	JNZ     max32

max8:
	ANDQ $31, CX
	MOVQ CX, BX
	SHRQ $3, BX
	JZ   maxred

max8loop:
	VMOVUPS (SI), Y4
	VMAXPS  Y0, Y4, Y0
	ADDQ    $32, SI
	DECQ    BX
	JNZ     max8loop

maxred:
	ANDQ         $7, CX
	VMAXPS       Y1, Y0, Y0
	VMAXPS       Y3, Y2, Y2
	VMAXPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VMOVHLPS     X0, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VMAXSS       X1, X0, X0
	TESTQ        CX, CX
	JZ           maxend

max1:
	VMOVSS (SI), X4
	VMAXSS X0, X4, X0
	ADDQ   $4, SI
	DECQ   CX
	JNZ    max1

maxend:
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func sumExpAVX(x []float32, shift float32) float64
//
// len(x) must be a multiple of 8. Σ exp(x_i − shift) accumulated in float64
// (two accumulators, alternating between 8-element groups).
TEXT ·sumExpAVX(SB), NOSPLIT, $0-40
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS shift+24(FP), Y13
	VMOVUPS      expHi<>(SB), Y15
	VMOVUPS      expLo<>(SB), Y14
	VXORPD       Y12, Y12, Y12
	VXORPD       Y11, Y11, Y11
	MOVQ         CX, BX
	SHRQ         $4, BX
	JZ           sumexp8

sumexp16:
	VMOVUPS (SI), Y0
	VSUBPS  Y13, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4, Y5, Y15, Y14)
	ACC64(Y0, X0, Y1, X1, Y12)
	VMOVUPS 32(SI), Y6
	VSUBPS  Y13, Y6, Y6
	EXP8(Y6, Y7, Y8, Y9, Y10, Y5, Y15, Y14)
	ACC64(Y6, X6, Y7, X7, Y11)
	ADDQ    $64, SI
	DECQ    BX
	JNZ     sumexp16

sumexp8:
	TESTQ $8, CX
	JZ    sumexpend
	VMOVUPS (SI), Y0
	VSUBPS  Y13, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4, Y5, Y15, Y14)
	ACC64(Y0, X0, Y1, X1, Y12)

sumexpend:
	HSUM64(Y12, X12, Y11, Y0, X0)
	VMOVSD X12, ret+32(FP)
	VZEROUPPER
	RET

// func expToAVX(dst, x []float32, shift float32) float64
//
// len(x) must be a multiple of 8 and len(dst) ≥ len(x). dst_i = exp(x_i − shift);
// returns Σ dst_i accumulated in float64.
TEXT ·expToAVX(SB), NOSPLIT, $0-64
	MOVQ         dst_base+0(FP), DI
	MOVQ         x_base+24(FP), SI
	MOVQ         x_len+32(FP), CX
	VBROADCASTSS shift+48(FP), Y13
	VMOVUPS      expHi<>(SB), Y15
	VMOVUPS      expLo<>(SB), Y14
	VXORPD       Y12, Y12, Y12
	VXORPD       Y11, Y11, Y11
	MOVQ         CX, BX
	SHRQ         $4, BX
	JZ           expto8

expto16:
	VMOVUPS (SI), Y0
	VSUBPS  Y13, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4, Y5, Y15, Y14)
	VMOVUPS Y0, (DI)
	ACC64(Y0, X0, Y1, X1, Y12)
	VMOVUPS 32(SI), Y6
	VSUBPS  Y13, Y6, Y6
	EXP8(Y6, Y7, Y8, Y9, Y10, Y5, Y15, Y14)
	VMOVUPS Y6, 32(DI)
	ACC64(Y6, X6, Y7, X7, Y11)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    BX
	JNZ     expto16

expto8:
	TESTQ $8, CX
	JZ    exptoend
	VMOVUPS (SI), Y0
	VSUBPS  Y13, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4, Y5, Y15, Y14)
	VMOVUPS Y0, (DI)
	ACC64(Y0, X0, Y1, X1, Y12)

exptoend:
	HSUM64(Y12, X12, Y11, Y0, X0)
	VMOVSD X12, ret+56(FP)
	VZEROUPPER
	RET

// SILU8 computes G = G·sigmoid(G)·UP for the 8 floats in G (UP a memory
// operand), using e = exp(−|g|) and sigmoid = (g<0 ? e : 1)/(1+e).
// X, N, T, U, V, W are scratch. Needs Y15 = exp high clamp, Y14 = exp low
// clamp, Y13 = 1.0.
#define SILU8(G, UP, X, N, T, U, V, W) \
	VORPS     signMask<>(SB), G, X; \
	EXP8(X, N, T, U, V, W, Y15, Y14); \
	VADDPS    Y13, X, N; \
	VBLENDVPS G, X, Y13, T; \
	VDIVPS    N, T, T; \
	VMULPS    T, G, G; \
	VMULPS    UP, G, G

// func siluMulAVX(gate, up []float32)
//
// len(gate) must be a multiple of 8 and len(up) ≥ len(gate).
TEXT ·siluMulAVX(SB), NOSPLIT, $0-48
	MOVQ    gate_base+0(FP), SI
	MOVQ    gate_len+8(FP), CX
	MOVQ    up_base+24(FP), DI
	VMOVUPS expHi<>(SB), Y15
	VMOVUPS expLo<>(SB), Y14
	VMOVUPS one<>(SB), Y13
	SHRQ    $3, CX
	JZ      siluend

silu8:
	VMOVUPS (SI), Y0
	SILU8(Y0, (DI), Y1, Y2, Y3, Y4, Y5, Y6)
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     silu8

siluend:
	VZEROUPPER
	RET

// func sumSquares64AVX(x []float32) float64
//
// len(x) must be a multiple of 16. Σ x_i² accumulated in float64.
TEXT ·sumSquares64AVX(SB), NOSPLIT, $0-32
	MOVQ   x_base+0(FP), SI
	MOVQ   x_len+8(FP), CX
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	SHRQ   $4, CX
	JZ     sumsqend

sumsq16:
	VCVTPS2PD   (SI), Y0
	VCVTPS2PD   16(SI), Y1
	VCVTPS2PD   32(SI), Y2
	VCVTPS2PD   48(SI), Y3
	VFMADD231PD Y0, Y0, Y4
	VFMADD231PD Y1, Y1, Y5
	VFMADD231PD Y2, Y2, Y6
	VFMADD231PD Y3, Y3, Y7
	ADDQ        $64, SI
	DECQ        CX
	JNZ         sumsq16

sumsqend:
	VADDPD Y6, Y4, Y4
	VADDPD Y7, Y5, Y5
	HSUM64(Y4, X4, Y5, Y0, X0)
	VMOVSD X4, ret+24(FP)
	VZEROUPPER
	RET

// func rmsScaleAVX(dst, x, w []float32, r float32)
//
// len(x) must be a multiple of 8, len(dst), len(w) ≥ len(x).
// dst_i = w_i·(x_i·r), rounding as in the Go twin.
TEXT ·rmsScaleAVX(SB), NOSPLIT, $0-76
	MOVQ         dst_base+0(FP), DI
	MOVQ         x_base+24(FP), SI
	MOVQ         x_len+32(FP), CX
	MOVQ         w_base+48(FP), DX
	VBROADCASTSS r+72(FP), Y0
	SHRQ         $3, CX
	JZ           rmsend

rms8:
	VMULPS  (SI), Y0, Y1
	VMULPS  (DX), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     rms8

rmsend:
	VZEROUPPER
	RET

// func subMul64AVX(y []float64, a float64, x []float64)
// y[i] -= a*x[i]: VMULPD then VSUBPD (two roundings, as the Go loop).
TEXT ·subMul64AVX(SB), NOSPLIT, $0-56
	VBROADCASTSD a+24(FP), Y0
	MOVQ         y_base+0(FP), DI
	MOVQ         x_base+32(FP), SI
	MOVQ         x_len+40(FP), CX
	MOVQ         CX, BX
	SHRQ         $4, BX
	JZ           sub4

sub16:
	VMULPD  (SI), Y0, Y1
	VMULPD  32(SI), Y0, Y2
	VMULPD  64(SI), Y0, Y3
	VMULPD  96(SI), Y0, Y4
	VMOVUPD (DI), Y5
	VMOVUPD 32(DI), Y6
	VMOVUPD 64(DI), Y7
	VMOVUPD 96(DI), Y8
	VSUBPD  Y1, Y5, Y5
	VSUBPD  Y2, Y6, Y6
	VSUBPD  Y3, Y7, Y7
	VSUBPD  Y4, Y8, Y8
	VMOVUPD Y5, (DI)
	VMOVUPD Y6, 32(DI)
	VMOVUPD Y7, 64(DI)
	VMOVUPD Y8, 96(DI)
	ADDQ    $128, SI
	ADDQ    $128, DI
	DECQ    BX
	JNZ     sub16

sub4:
	ANDQ $15, CX
	MOVQ CX, BX
	SHRQ $2, BX
	JZ   sub1pre

sub4loop:
	VMULPD  (SI), Y0, Y1
	VMOVUPD (DI), Y5
	VSUBPD  Y1, Y5, Y5
	VMOVUPD Y5, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    BX
	JNZ     sub4loop

sub1pre:
	ANDQ $3, CX
	JZ   subend

sub1:
	VMULSD (SI), X0, X1
	VMOVSD (DI), X5
	VSUBSD X1, X5, X5
	VMOVSD X5, (DI)
	ADDQ   $8, SI
	ADDQ   $8, DI
	DECQ   CX
	JNZ    sub1

subend:
	VZEROUPPER
	RET
