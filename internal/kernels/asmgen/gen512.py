#!/usr/bin/python3
# Generates internal/kernels/gemm512_amd64.s (run from this folder: python3 gen512.py > ../gemm512_amd64.s).
# The unrolled micro-kernel is written out step by step; for the AVX512_BF16 instructions,
# which the Go assembler does not know, GNU as (binutils) encodes the bytes.
def step(off):
    s = []
    s.append(f"\tVMOVUPS {off}(DI), Z12")
    s.append(f"\tVMOVUPS {off}(AX), Z13")
    addrs = ["(SI)", "(SI)(R11*1)", "(SI)(R11*2)", "(SI)(R12*1)", "(SI)(R11*4)", "(R10)(R11*4)"]
    for i, a in enumerate(addrs):
        r = "Z14" if i % 2 == 0 else "Z15"
        s.append(f"\tVBROADCASTSS {a}, {r}")
        s.append(f"\tVFMADD231PS Z12, {r}, Z{2*i}")
        s.append(f"\tVFMADD231PS Z13, {r}, Z{2*i+1}")
    s.append("\tADDQ R13, SI")
    s.append("\tADDQ R13, R10")
    return "\n".join(s)

out = []
out.append('''// AVX-512 SGEMM micro-kernel: the 6×32 tile of C in 12 zmm registers. Each
// element is accumulated exactly as in sgemmKernel6x16 (one FMA chain over k
// in order, then alpha, then beta), so both kernels give the same bits.

//go:build amd64 && !noasm

#include "textflag.h"

// func sgemmKernel6x32(kc int, a *float32, rsa, csa int, b *float32, bstride int, c *float32, ldc int, alpha, beta float32)
//
// C[i, j] = alpha·Σ_p A(i,p)·B(p,j) + beta·C[i, j] for the 6×32 tile
// (beta == 0: C not read), where A(i,p) = a[i*rsa + p*csa] and the 32 columns
// of B are two packed kc×16 micro-panels: B(p, j) = b[p*16+j] for j < 16 and
// b[bstride + p*16 + j-16] for j ≥ 16 (strides in elements).
// Accumulators: Z0..Z11 (row i in Z(2i), Z(2i+1)); B row in Z12, Z13; A
// broadcasts in Z14, Z15. A rows are addressed as SI + i*R11 (row 5 as
// R10 + 4*R11 with R10 = SI + R11); R13 is the step along k; DI and AX walk
// the two B micro-panels.
TEXT ·sgemmKernel6x32(SB), NOSPLIT, $0-72
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ rsa+16(FP), R11
	SHLQ $2, R11
	LEAQ (R11)(R11*2), R12
	LEAQ (SI)(R11*1), R10
	MOVQ csa+24(FP), R13
	SHLQ $2, R13
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9

	// Prefetch the C tile (6 rows of 128 bytes, possibly straddling lines).
	MOVQ DX, AX
	MOVQ $6, BX
prefetch:
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	PREFETCHT0 124(AX)
	ADDQ R8, AX
	DECQ BX
	JNZ  prefetch

	MOVQ b+32(FP), DI
	MOVQ bstride+40(FP), AX
	LEAQ (DI)(AX*4), AX
''')
for i in range(12):
    out.append(f"\tVPXORD Z{i}, Z{i}, Z{i}")
out.append('''
	MOVQ CX, BX
	SHRQ $2, BX
	JZ   tail

loop4:''')
for u in range(4):
    out.append(step(64*u))
out.append('''	ADDQ $256, DI
	ADDQ $256, AX
	DECQ BX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   done

loop1:''')
out.append(step(0))
out.append('''	ADDQ $64, DI
	ADDQ $64, AX
	DECQ CX
	JNZ  loop1

done:
	VBROADCASTSS alpha+64(FP), Z14''')
for i in range(12):
    out.append(f"\tVMULPS Z14, Z{i}, Z{i}")
out.append('''	MOVL beta+68(FP), AX
	ANDL $0x7fffffff, AX
	JZ   store
	VBROADCASTSS beta+68(FP), Z15''')
for i in range(6):
    out.append(f"\tVFMADD231PS (DX), Z15, Z{2*i}")
    out.append(f"\tVFMADD231PS 64(DX), Z15, Z{2*i+1}")
    out.append(f"\tVMOVUPS Z{2*i}, (DX)")
    out.append(f"\tVMOVUPS Z{2*i+1}, 64(DX)")
    if i < 5: out.append("\tADDQ R8, DX")
out.append("\tVZEROUPPER\n\tRET\n\nstore:")
for i in range(6):
    out.append(f"\tVMOVUPS Z{2*i}, (DX)")
    out.append(f"\tVMOVUPS Z{2*i+1}, 64(DX)")
    if i < 5: out.append("\tADDQ R8, DX")
out.append("\tVZEROUPPER\n\tRET")
print("\n".join(out))
