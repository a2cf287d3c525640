#!/usr/bin/python3
# Generates internal/kernels/bf16_amd64.s (run from this folder: python3 genbf16.py > ../bf16_amd64.s).
# The unrolled micro-kernel is written out step by step; for the AVX512_BF16 instructions,
# which the Go assembler does not know, GNU as (binutils) encodes the bytes.
import subprocess, re
def enc(att):
    open('/tmp/evopress-asmgen-x.s','w').write(att+"\n")
    subprocess.check_call(['as','-o','/tmp/evopress-asmgen-x.o','/tmp/evopress-asmgen-x.s'])
    out=subprocess.check_output(['objdump','-d','/tmp/evopress-asmgen-x.o']).decode()
    line=[l for l in out.splitlines() if re.match(r'\s+0:',l)][0]
    hexes=line.split('\t')[1].split()
    return "\tBYTE " + "; BYTE ".join("$0x"+h for h in hexes) + "  // " + att
def dp(acc, a, b):  # acc += a·b (pairwise bf16 dot)
    return enc(f"vdpbf16ps %zmm{b}, %zmm{a}, %zmm{acc}")
def step(off):
    s=[]
    s.append(f"\tVMOVUPS {off}(DI), Z12")
    s.append(f"\tVMOVUPS {off}(AX), Z13")
    addrs = ["(SI)", "(SI)(R11*1)", "(SI)(R11*2)", "(SI)(R12*1)", "(SI)(R11*4)", "(R10)(R11*4)"]
    for i,a in enumerate(addrs):
        r = 14 if i%2==0 else 15
        s.append(f"\tVPBROADCASTD {a}, Z{r}")
        s.append(dp(2*i, r, 12))
        s.append(dp(2*i+1, r, 13))
    s.append("\tADDQ $4, SI")
    s.append("\tADDQ $4, R10")
    return "\n".join(s)
o=[]
o.append('''// AVX512_BF16 kernels of the bf16 compute path (compute_bf16.go). The Go
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
''')
for i in range(12):
    o.append(f"\tVPXORD Z{i}, Z{i}, Z{i}")
o.append('''
	MOVQ CX, BX
	SHRQ $2, BX
	JZ   tail

loop4:''')
for u in range(4):
    o.append(step(64*u))
o.append('''	ADDQ $256, DI
	ADDQ $256, AX
	DECQ BX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   done

loop1:''')
o.append(step(0))
o.append('''	ADDQ $64, DI
	ADDQ $64, AX
	DECQ CX
	JNZ  loop1

done:
	VBROADCASTSS alpha+56(FP), Z14''')
for i in range(12):
    o.append(f"\tVMULPS Z14, Z{i}, Z{i}")
o.append('''	MOVL beta+60(FP), AX
	ANDL $0x7fffffff, AX
	JZ   store
	VBROADCASTSS beta+60(FP), Z15''')
for i in range(6):
    o.append(f"\tVFMADD231PS (DX), Z15, Z{2*i}")
    o.append(f"\tVFMADD231PS 64(DX), Z15, Z{2*i+1}")
    o.append(f"\tVMOVUPS Z{2*i}, (DX)")
    o.append(f"\tVMOVUPS Z{2*i+1}, 64(DX)")
    if i<5: o.append("\tADDQ R8, DX")
o.append("\tVZEROUPPER\n\tRET\n\nstore:")
for i in range(6):
    o.append(f"\tVMOVUPS Z{2*i}, (DX)")
    o.append(f"\tVMOVUPS Z{2*i+1}, 64(DX)")
    if i<5: o.append("\tADDQ R8, DX")
o.append("\tVZEROUPPER\n\tRET\n")
o.append('''// func cvtBF16AVX512(dst *uint16, src *float32, n int)
//
// Rounds n float32 values (n%32 == 0, n > 0) to bfloat16 (round to nearest
// even; the instruction treats subnormal inputs as zero and quiets NaNs).
TEXT ·cvtBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

cvtloop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1''')
o.append(enc("vcvtne2ps2bf16 %zmm0, %zmm1, %zmm2"))
o.append('''	VMOVUPS Z2, (DI)
	ADDQ $128, SI
	ADDQ $64, DI
	SUBQ $32, CX
	JNZ  cvtloop
	VZEROUPPER
	RET
''')
print("\n".join(o))
