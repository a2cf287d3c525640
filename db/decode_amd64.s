//go:build amd64 && !noasm

#include "textflag.h"

// AVX-512 decoders of levels held as stored (compact.go), sixteen weights per ZMM register.
// They move bits (the sparse expansions) or compute with plain VSUBPS and VMULPS (the 4-bit
// codes): each lane gives the bits the scalar Go code gives.

// func sparseExpandF32(dst *float32, n16 int, mask, vals *byte) int
// For each of n16 chunks of 16 weights: the chunk's 16 mask bits (two bytes) select the lanes
// that take the next stored float32 values in order (VEXPANDPS from memory, reading only the
// values it takes), the others +0. Returns the number of values taken.
TEXT ·sparseExpandF32(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ n16+8(FP), CX
	MOVQ mask+16(FP), R8
	MOVQ vals+24(FP), SI
	XORQ DX, DX
	TESTQ CX, CX
	JLE f32done
f32loop:
	MOVWLZX (R8), AX
	KMOVW AX, K1
	VEXPANDPS.Z (SI), K1, Z0
	VMOVUPS Z0, (DI)
	POPCNTL AX, AX
	ADDQ AX, DX
	LEAQ (SI)(AX*4), SI
	ADDQ $2, R8
	ADDQ $64, DI
	DECQ CX
	JNZ f32loop
f32done:
	VZEROUPPER
	MOVQ DX, ret+32(FP)
	RET

// func sparseExpandBF16(dst *float32, n16 int, mask, vals *byte) int
// sparseExpandF32 for bfloat16 values: sixteen 16-bit values widened to float32 bits (a 16-bit
// shift), then expanded. It reads 32 bytes of values from each chunk's first one: the values
// need 32 bytes of padding after them.
TEXT ·sparseExpandBF16(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ n16+8(FP), CX
	MOVQ mask+16(FP), R8
	MOVQ vals+24(FP), SI
	XORQ DX, DX
	TESTQ CX, CX
	JLE bf16done
bf16loop:
	MOVWLZX (R8), AX
	KMOVW AX, K1
	VPMOVZXWD (SI), Z0
	VPSLLD $16, Z0, Z0
	VPEXPANDD.Z Z0, K1, Z1
	VMOVUPS Z1, (DI)
	POPCNTL AX, AX
	ADDQ AX, DX
	LEAQ (SI)(AX*2), SI
	ADDQ $2, R8
	ADDQ $64, DI
	DECQ CX
	JNZ bf16loop
bf16done:
	VZEROUPPER
	MOVQ DX, ret+32(FP)
	RET

// func quant4AVX512(dst *float32, n16 int, codes *byte, sg, zg float32)
// n16 chunks of sixteen 4-bit codes (eight bytes, low nibble first): sg·(float32(code) − zg).
// Each byte b is widened to a quadword, b | b<<28 puts b's low nibble in the low doubleword and
// its high nibble in the high one, and a 0xF mask per doubleword keeps them.
TEXT ·quant4AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ n16+8(FP), CX
	MOVQ codes+16(FP), SI
	VBROADCASTSS sg+24(FP), Z14
	VBROADCASTSS zg+28(FP), Z13
	MOVL $0x0F, AX
	VPBROADCASTD AX, Z15
	TESTQ CX, CX
	JLE q4done
q4loop:
	VPMOVZXBQ (SI), Z0
	VPSLLQ $28, Z0, Z1
	VPORQ Z1, Z0, Z0
	VPANDD Z15, Z0, Z0
	VCVTDQ2PS Z0, Z0
	VSUBPS Z13, Z0, Z0
	VMULPS Z14, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $8, SI
	ADDQ $64, DI
	DECQ CX
	JNZ q4loop
q4done:
	VZEROUPPER
	RET

// func quantNAVX512(dst *float32, n8 int, codes *byte, shifts *[8]uint64, w int, sg, zg float32)
// n8 chunks of eight w-bit codes (w bytes, little-endian bit order): sg·(float32(code) − zg).
// The chunk's first eight bytes are broadcast to eight quadwords, shifted right by 0, w, …, 7w
// (shifts) and masked to w bits. Reads eight bytes from each chunk's first one.
TEXT ·quantNAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ codes+16(FP), SI
	MOVQ shifts+24(FP), AX
	VMOVDQU64 (AX), Z12
	MOVQ w+32(FP), CX
	MOVQ CX, DX
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX                    // 2^w − 1
	VPBROADCASTQ AX, Z11
	MOVQ n8+8(FP), CX
	VBROADCASTSS sg+40(FP), Y14
	VBROADCASTSS zg+44(FP), Y13
	TESTQ CX, CX
	JLE qndone
qnloop:
	VPBROADCASTQ (SI), Z0
	VPSRLVQ Z12, Z0, Z0
	VPANDQ Z11, Z0, Z0
	VPMOVQD Z0, Y0
	VCVTDQ2PS Y0, Y0
	VSUBPS Y13, Y0, Y0
	VMULPS Y14, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ DX, SI
	ADDQ $32, DI
	DECQ CX
	JNZ qnloop
qndone:
	VZEROUPPER
	RET

// func quantGIdxAVX512(dst *float32, n8 int, codes *byte, shifts *[8]uint64, w int, gidx *int32, sgs, zgs *float32)
// quantNAVX512 with a scale and zero point per weight: those of group gidx[j] of the row, read
// from sgs and zgs by two AVX2 gathers (plain loads of the values the Go code indexes).
TEXT ·quantGIdxAVX512(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ codes+16(FP), SI
	MOVQ shifts+24(FP), AX
	VMOVDQU64 (AX), Z12
	MOVQ w+32(FP), CX
	MOVQ CX, DX
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX                    // 2^w − 1
	VPBROADCASTQ AX, Z11
	MOVQ gidx+40(FP), R9
	MOVQ sgs+48(FP), R10
	MOVQ zgs+56(FP), R11
	MOVQ n8+8(FP), CX
	TESTQ CX, CX
	JLE qgdone
qgloop:
	VPBROADCASTQ (SI), Z0
	VPSRLVQ Z12, Z0, Z0
	VPANDQ Z11, Z0, Z0
	VPMOVQD Z0, Y0
	VCVTDQ2PS Y0, Y0
	VMOVDQU (R9), Y1
	VPCMPEQD Y3, Y3, Y3
	VGATHERDPS Y3, (R11)(Y1*4), Y4   // zero points
	VPCMPEQD Y3, Y3, Y3
	VGATHERDPS Y3, (R10)(Y1*4), Y2   // scales
	VSUBPS Y4, Y0, Y0
	VMULPS Y2, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ DX, SI
	ADDQ $32, R9
	ADDQ $32, DI
	DECQ CX
	JNZ qgloop
qgdone:
	VZEROUPPER
	RET
