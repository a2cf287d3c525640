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
