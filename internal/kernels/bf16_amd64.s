// AVX512_BF16 kernels of the bf16 compute path (compute_bf16.go). The Go
// assembler does not know the AVX512_BF16 instructions (VDPBF16PS,
// VCVTNE2PS2BF16), so they are written as their bytes (encoded by GNU as;
// each line's comment gives the instruction in AT&T syntax).

//go:build amd64 && !noasm

#include "textflag.h"

// func sbgemmKernel6x32(k2 int, a *uint16, rsa int, b *uint16, bstride int, c *float32, ldc int, alpha, beta float32)
//
// C[i, j] = alpha·Σ_q dot(A(i,q), B(q,j)) + beta·C[i, j] for the 6×32 tile
// (beta == 0: C not read), where q runs over k2 pairs of k, A(i,q) is the
// bfloat16 pair a[i*rsa + 2q], a[i*rsa + 2q + 1] and B(q, j) the pair at
// b[q*32 + 2j] (j < 16) or b[bstride + q*32 + 2(j-16)] (j ≥ 16): two packed
// micro-panels of 16 columns (strides in uint16 elements). VDPBF16PS adds
// both products of a pair to the float32 accumulator (products exact).
// Registers as in sgemmKernel6x32: Z0..Z11 accumulators, Z12, Z13 the B
// pairs, Z14, Z15 the broadcast A pairs.
TEXT ·sbgemmKernel6x32(SB), NOSPLIT, $0-64
	MOVQ k2+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ rsa+16(FP), R11
	SHLQ $1, R11
	LEAQ (R11)(R11*2), R12
	LEAQ (SI)(R11*1), R10
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R8
	SHLQ $2, R8

	MOVQ DX, AX
	MOVQ $6, BX
prefetch:
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	PREFETCHT0 124(AX)
	ADDQ R8, AX
	DECQ BX
	JNZ  prefetch

	MOVQ b+24(FP), DI
	MOVQ bstride+32(FP), AX
	LEAQ (DI)(AX*2), AX

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

	MOVQ CX, BX
	SHRQ $2, BX
	JZ   tail

loop4:
	VMOVUPS 0(DI), Z12
	VMOVUPS 0(AX), Z13
	VPBROADCASTD (SI), Z14
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xc4  // vdpbf16ps %zmm12, %zmm14, %zmm0
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xcd  // vdpbf16ps %zmm13, %zmm14, %zmm1
	VPBROADCASTD (SI)(R11*1), Z15
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xd4  // vdpbf16ps %zmm12, %zmm15, %zmm2
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xdd  // vdpbf16ps %zmm13, %zmm15, %zmm3
	VPBROADCASTD (SI)(R11*2), Z14
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xe4  // vdpbf16ps %zmm12, %zmm14, %zmm4
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xed  // vdpbf16ps %zmm13, %zmm14, %zmm5
	VPBROADCASTD (SI)(R12*1), Z15
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xf4  // vdpbf16ps %zmm12, %zmm15, %zmm6
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xfd  // vdpbf16ps %zmm13, %zmm15, %zmm7
	VPBROADCASTD (SI)(R11*4), Z14
	BYTE $0x62; BYTE $0x52; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xc4  // vdpbf16ps %zmm12, %zmm14, %zmm8
	BYTE $0x62; BYTE $0x52; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xcd  // vdpbf16ps %zmm13, %zmm14, %zmm9
	VPBROADCASTD (R10)(R11*4), Z15
	BYTE $0x62; BYTE $0x52; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xd4  // vdpbf16ps %zmm12, %zmm15, %zmm10
	BYTE $0x62; BYTE $0x52; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xdd  // vdpbf16ps %zmm13, %zmm15, %zmm11
	ADDQ $4, SI
	ADDQ $4, R10
	VMOVUPS 64(DI), Z12
	VMOVUPS 64(AX), Z13
	VPBROADCASTD (SI), Z14
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xc4  // vdpbf16ps %zmm12, %zmm14, %zmm0
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xcd  // vdpbf16ps %zmm13, %zmm14, %zmm1
	VPBROADCASTD (SI)(R11*1), Z15
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xd4  // vdpbf16ps %zmm12, %zmm15, %zmm2
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xdd  // vdpbf16ps %zmm13, %zmm15, %zmm3
	VPBROADCASTD (SI)(R11*2), Z14
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xe4  // vdpbf16ps %zmm12, %zmm14, %zmm4
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xed  // vdpbf16ps %zmm13, %zmm14, %zmm5
	VPBROADCASTD (SI)(R12*1), Z15
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xf4  // vdpbf16ps %zmm12, %zmm15, %zmm6
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xfd  // vdpbf16ps %zmm13, %zmm15, %zmm7
	VPBROADCASTD (SI)(R11*4), Z14
	BYTE $0x62; BYTE $0x52; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xc4  // vdpbf16ps %zmm12, %zmm14, %zmm8
	BYTE $0x62; BYTE $0x52; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xcd  // vdpbf16ps %zmm13, %zmm14, %zmm9
	VPBROADCASTD (R10)(R11*4), Z15
	BYTE $0x62; BYTE $0x52; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xd4  // vdpbf16ps %zmm12, %zmm15, %zmm10
	BYTE $0x62; BYTE $0x52; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xdd  // vdpbf16ps %zmm13, %zmm15, %zmm11
	ADDQ $4, SI
	ADDQ $4, R10
	VMOVUPS 128(DI), Z12
	VMOVUPS 128(AX), Z13
	VPBROADCASTD (SI), Z14
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xc4  // vdpbf16ps %zmm12, %zmm14, %zmm0
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xcd  // vdpbf16ps %zmm13, %zmm14, %zmm1
	VPBROADCASTD (SI)(R11*1), Z15
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xd4  // vdpbf16ps %zmm12, %zmm15, %zmm2
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xdd  // vdpbf16ps %zmm13, %zmm15, %zmm3
	VPBROADCASTD (SI)(R11*2), Z14
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xe4  // vdpbf16ps %zmm12, %zmm14, %zmm4
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xed  // vdpbf16ps %zmm13, %zmm14, %zmm5
	VPBROADCASTD (SI)(R12*1), Z15
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xf4  // vdpbf16ps %zmm12, %zmm15, %zmm6
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xfd  // vdpbf16ps %zmm13, %zmm15, %zmm7
	VPBROADCASTD (SI)(R11*4), Z14
	BYTE $0x62; BYTE $0x52; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xc4  // vdpbf16ps %zmm12, %zmm14, %zmm8
	BYTE $0x62; BYTE $0x52; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xcd  // vdpbf16ps %zmm13, %zmm14, %zmm9
	VPBROADCASTD (R10)(R11*4), Z15
	BYTE $0x62; BYTE $0x52; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xd4  // vdpbf16ps %zmm12, %zmm15, %zmm10
	BYTE $0x62; BYTE $0x52; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xdd  // vdpbf16ps %zmm13, %zmm15, %zmm11
	ADDQ $4, SI
	ADDQ $4, R10
	VMOVUPS 192(DI), Z12
	VMOVUPS 192(AX), Z13
	VPBROADCASTD (SI), Z14
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xc4  // vdpbf16ps %zmm12, %zmm14, %zmm0
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xcd  // vdpbf16ps %zmm13, %zmm14, %zmm1
	VPBROADCASTD (SI)(R11*1), Z15
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xd4  // vdpbf16ps %zmm12, %zmm15, %zmm2
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xdd  // vdpbf16ps %zmm13, %zmm15, %zmm3
	VPBROADCASTD (SI)(R11*2), Z14
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xe4  // vdpbf16ps %zmm12, %zmm14, %zmm4
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xed  // vdpbf16ps %zmm13, %zmm14, %zmm5
	VPBROADCASTD (SI)(R12*1), Z15
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xf4  // vdpbf16ps %zmm12, %zmm15, %zmm6
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xfd  // vdpbf16ps %zmm13, %zmm15, %zmm7
	VPBROADCASTD (SI)(R11*4), Z14
	BYTE $0x62; BYTE $0x52; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xc4  // vdpbf16ps %zmm12, %zmm14, %zmm8
	BYTE $0x62; BYTE $0x52; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xcd  // vdpbf16ps %zmm13, %zmm14, %zmm9
	VPBROADCASTD (R10)(R11*4), Z15
	BYTE $0x62; BYTE $0x52; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xd4  // vdpbf16ps %zmm12, %zmm15, %zmm10
	BYTE $0x62; BYTE $0x52; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xdd  // vdpbf16ps %zmm13, %zmm15, %zmm11
	ADDQ $4, SI
	ADDQ $4, R10
	ADDQ $256, DI
	ADDQ $256, AX
	DECQ BX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   done

loop1:
	VMOVUPS 0(DI), Z12
	VMOVUPS 0(AX), Z13
	VPBROADCASTD (SI), Z14
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xc4  // vdpbf16ps %zmm12, %zmm14, %zmm0
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xcd  // vdpbf16ps %zmm13, %zmm14, %zmm1
	VPBROADCASTD (SI)(R11*1), Z15
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xd4  // vdpbf16ps %zmm12, %zmm15, %zmm2
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xdd  // vdpbf16ps %zmm13, %zmm15, %zmm3
	VPBROADCASTD (SI)(R11*2), Z14
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xe4  // vdpbf16ps %zmm12, %zmm14, %zmm4
	BYTE $0x62; BYTE $0xd2; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xed  // vdpbf16ps %zmm13, %zmm14, %zmm5
	VPBROADCASTD (SI)(R12*1), Z15
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xf4  // vdpbf16ps %zmm12, %zmm15, %zmm6
	BYTE $0x62; BYTE $0xd2; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xfd  // vdpbf16ps %zmm13, %zmm15, %zmm7
	VPBROADCASTD (SI)(R11*4), Z14
	BYTE $0x62; BYTE $0x52; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xc4  // vdpbf16ps %zmm12, %zmm14, %zmm8
	BYTE $0x62; BYTE $0x52; BYTE $0x0e; BYTE $0x48; BYTE $0x52; BYTE $0xcd  // vdpbf16ps %zmm13, %zmm14, %zmm9
	VPBROADCASTD (R10)(R11*4), Z15
	BYTE $0x62; BYTE $0x52; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xd4  // vdpbf16ps %zmm12, %zmm15, %zmm10
	BYTE $0x62; BYTE $0x52; BYTE $0x06; BYTE $0x48; BYTE $0x52; BYTE $0xdd  // vdpbf16ps %zmm13, %zmm15, %zmm11
	ADDQ $4, SI
	ADDQ $4, R10
	ADDQ $64, DI
	ADDQ $64, AX
	DECQ CX
	JNZ  loop1

done:
	VBROADCASTSS alpha+56(FP), Z14
	VMULPS Z14, Z0, Z0
	VMULPS Z14, Z1, Z1
	VMULPS Z14, Z2, Z2
	VMULPS Z14, Z3, Z3
	VMULPS Z14, Z4, Z4
	VMULPS Z14, Z5, Z5
	VMULPS Z14, Z6, Z6
	VMULPS Z14, Z7, Z7
	VMULPS Z14, Z8, Z8
	VMULPS Z14, Z9, Z9
	VMULPS Z14, Z10, Z10
	VMULPS Z14, Z11, Z11
	MOVL beta+60(FP), AX
	ANDL $0x7fffffff, AX
	JZ   store
	VBROADCASTSS beta+60(FP), Z15
	VFMADD231PS (DX), Z15, Z0
	VFMADD231PS 64(DX), Z15, Z1
	VMOVUPS Z0, (DX)
	VMOVUPS Z1, 64(DX)
	ADDQ R8, DX
	VFMADD231PS (DX), Z15, Z2
	VFMADD231PS 64(DX), Z15, Z3
	VMOVUPS Z2, (DX)
	VMOVUPS Z3, 64(DX)
	ADDQ R8, DX
	VFMADD231PS (DX), Z15, Z4
	VFMADD231PS 64(DX), Z15, Z5
	VMOVUPS Z4, (DX)
	VMOVUPS Z5, 64(DX)
	ADDQ R8, DX
	VFMADD231PS (DX), Z15, Z6
	VFMADD231PS 64(DX), Z15, Z7
	VMOVUPS Z6, (DX)
	VMOVUPS Z7, 64(DX)
	ADDQ R8, DX
	VFMADD231PS (DX), Z15, Z8
	VFMADD231PS 64(DX), Z15, Z9
	VMOVUPS Z8, (DX)
	VMOVUPS Z9, 64(DX)
	ADDQ R8, DX
	VFMADD231PS (DX), Z15, Z10
	VFMADD231PS 64(DX), Z15, Z11
	VMOVUPS Z10, (DX)
	VMOVUPS Z11, 64(DX)
	VZEROUPPER
	RET

store:
	VMOVUPS Z0, (DX)
	VMOVUPS Z1, 64(DX)
	ADDQ R8, DX
	VMOVUPS Z2, (DX)
	VMOVUPS Z3, 64(DX)
	ADDQ R8, DX
	VMOVUPS Z4, (DX)
	VMOVUPS Z5, 64(DX)
	ADDQ R8, DX
	VMOVUPS Z6, (DX)
	VMOVUPS Z7, 64(DX)
	ADDQ R8, DX
	VMOVUPS Z8, (DX)
	VMOVUPS Z9, 64(DX)
	ADDQ R8, DX
	VMOVUPS Z10, (DX)
	VMOVUPS Z11, 64(DX)
	VZEROUPPER
	RET

// func cvtBF16AVX512(dst *uint16, src *float32, n int)
//
// Rounds n float32 values (n%32 == 0, n > 0) to bfloat16 (round to nearest
// even; the instruction treats subnormal inputs as zero and quiets NaNs).
TEXT ·cvtBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

cvtloop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	BYTE $0x62; BYTE $0xf2; BYTE $0x77; BYTE $0x48; BYTE $0x72; BYTE $0xd0  // vcvtne2ps2bf16 %zmm0, %zmm1, %zmm2
	VMOVUPS Z2, (DI)
	ADDQ $128, SI
	ADDQ $64, DI
	SUBQ $32, CX
	JNZ  cvtloop
	VZEROUPPER
	RET

