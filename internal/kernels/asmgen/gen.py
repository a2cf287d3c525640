#!/usr/bin/python3
# Generates the AVX-512 micro-kernels: ../gemm512_amd64.s (float32 FMA) and ../bf16_amd64.s
# (AVX512_BF16), and the float64 ones: ../dgemm_amd64.s (AVX2, 6×8) and ../dgemm512_amd64.s
# (AVX-512, 6×16). Run from this folder: python3 gen.py (it rewrites all four files).
# The unrolled micro-kernels are written out step by step; the AVX512_BF16 instructions, which
# the Go assembler does not know, are encoded to bytes by GNU as (binutils).
import re, subprocess

ADDRS = ["(SI)", "(SI)(R11*1)", "(SI)(R11*2)", "(SI)(R12*1)", "(SI)(R11*4)", "(R10)(R11*4)"]


def enc(att):
    """The bytes of one instruction (AT&T syntax) as Go assembler BYTE directives."""
    open('/tmp/evopress-asmgen-x.s', 'w').write(att + "\n")
    subprocess.check_call(['as', '-o', '/tmp/evopress-asmgen-x.o', '/tmp/evopress-asmgen-x.s'])
    out = subprocess.check_output(['objdump', '-d', '/tmp/evopress-asmgen-x.o']).decode()
    line = [l for l in out.splitlines() if re.match(r'\s+0:', l)][0]
    hexes = line.split('\t')[1].split()
    return "\tBYTE " + "; BYTE ".join("$0x" + h for h in hexes) + "  // " + att


def fma_step(off):
    """One step of k of the float32 kernel: B row in Z12, Z13, A broadcasts, 12 FMAs."""
    s = [f"\tVMOVUPS {off}(DI), Z12", f"\tVMOVUPS {off}(AX), Z13"]
    for i, a in enumerate(ADDRS):
        r = "Z14" if i % 2 == 0 else "Z15"
        s += [f"\tVBROADCASTSS {a}, {r}", f"\tVFMADD231PS Z12, {r}, Z{2*i}", f"\tVFMADD231PS Z13, {r}, Z{2*i+1}"]
    s += ["\tADDQ R13, SI", "\tADDQ R13, R10"]
    return "\n".join(s)


def bf16_step(off):
    """One pair of k of the bf16 kernel: B pairs in Z12, Z13, A pairs broadcast, 12 VDPBF16PS."""
    s = [f"\tVMOVUPS {off}(DI), Z12", f"\tVMOVUPS {off}(AX), Z13"]
    for i, a in enumerate(ADDRS):
        r = 14 if i % 2 == 0 else 15
        s += [f"\tVPBROADCASTD {a}, Z{r}",
              enc(f"vdpbf16ps %zmm12, %zmm{r}, %zmm{2*i}"),
              enc(f"vdpbf16ps %zmm13, %zmm{r}, %zmm{2*i+1}")]
    s += ["\tADDQ $4, SI", "\tADDQ $4, R10"]
    return "\n".join(s)


def kernel(prologue, step, alpha_off):
    """The 6×32 kernel: prologue, zeroed accumulators, the k loop (4 steps unrolled, then the
    rest), C = alpha·acc (+ beta·C), with alpha and beta at alpha_off, alpha_off+4 of the frame."""
    o = [prologue]
    o += [f"\tVPXORD Z{i}, Z{i}, Z{i}" for i in range(12)]
    o.append('''
	MOVQ CX, BX
	SHRQ $2, BX
	JZ   tail

loop4:''')
    o += [step(64 * u) for u in range(4)]
    o.append('''	ADDQ $256, DI
	ADDQ $256, AX
	DECQ BX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   done

loop1:''')
    o.append(step(0))
    o.append(f'''	ADDQ $64, DI
	ADDQ $64, AX
	DECQ CX
	JNZ  loop1

done:
	VBROADCASTSS alpha+{alpha_off}(FP), Z14''')
    o += [f"\tVMULPS Z14, Z{i}, Z{i}" for i in range(12)]
    o.append(f'''	MOVL beta+{alpha_off+4}(FP), AX
	ANDL $0x7fffffff, AX
	JZ   store
	VBROADCASTSS beta+{alpha_off+4}(FP), Z15''')
    for i in range(6):
        o += [f"\tVFMADD231PS (DX), Z15, Z{2*i}", f"\tVFMADD231PS 64(DX), Z15, Z{2*i+1}",
              f"\tVMOVUPS Z{2*i}, (DX)", f"\tVMOVUPS Z{2*i+1}, 64(DX)"]
        if i < 5:
            o.append("\tADDQ R8, DX")
    o.append("\tVZEROUPPER\n\tRET\n\nstore:")
    for i in range(6):
        o += [f"\tVMOVUPS Z{2*i}, (DX)", f"\tVMOVUPS Z{2*i+1}, 64(DX)"]
        if i < 5:
            o.append("\tADDQ R8, DX")
    o.append("\tVZEROUPPER\n\tRET")
    return o


PROLOGUE_F32 = '''// AVX-512 SGEMM micro-kernel: the 6×32 tile of C in 12 zmm registers. Each
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
'''

PROLOGUE_BF16 = '''// AVX512_BF16 kernels of the bf16 compute path (compute_bf16.go). The Go
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
'''

CVT = '''// func cvtBF16AVX512(dst *uint16, src *float32, n int)
//
// Rounds n float32 values (n%32 == 0, n > 0) to bfloat16 (round to nearest
// even; the instruction treats subnormal inputs as zero and quiets NaNs).
TEXT ·cvtBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

cvtloop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1'''

CVT_TAIL = '''	VMOVUPS Z2, (DI)
	ADDQ $128, SI
	ADDQ $64, DI
	SUBQ $32, CX
	JNZ  cvtloop
	VZEROUPPER
	RET
'''

def d_step(off, zmm):
    """One step of k of a float64 kernel: the 8 (ymm) or 16 (zmm) doubles of B's row in two
    registers (12, 13), the 6 A values broadcast (14, 15), 12 FMAs."""
    v = "Z" if zmm else "Y"
    if zmm:
        s = [f"\tVMOVUPD {off}(DI), Z12", f"\tVMOVUPD {off}(AX), Z13"]
    else:
        s = [f"\tVMOVUPD {off}(DI), Y12", f"\tVMOVUPD {off+32}(DI), Y13"]
    for i, a in enumerate(ADDRS):
        r = f"{v}14" if i % 2 == 0 else f"{v}15"
        s += [f"\tVBROADCASTSD {a}, {r}", f"\tVFMADD231PD {v}12, {r}, {v}{2*i}", f"\tVFMADD231PD {v}13, {r}, {v}{2*i+1}"]
    s += ["\tADDQ R13, SI", "\tADDQ R13, R10"]
    return "\n".join(s)


def dkernel(prologue, zmm, alpha_off):
    """A float64 kernel (6×8 in ymm or 6×16 in zmm): prologue, zeroed accumulators, the k loop (4
    steps unrolled, then the rest), C = alpha·acc (+ beta·C), alpha and beta at alpha_off,
    alpha_off+8 of the frame. Each step of k advances each packed B micro-panel by 64 bytes."""
    v = "Z" if zmm else "Y"
    half = 64 if zmm else 32  # bytes of C per register
    bump = "\tADDQ $%d, DI\n\tADDQ $%d, AX" if zmm else "\tADDQ $%d, DI"
    o = [prologue]
    o += [f"\tVPXORD Z{i}, Z{i}, Z{i}" if zmm else f"\tVXORPD Y{i}, Y{i}, Y{i}" for i in range(12)]
    o.append('''
	MOVQ CX, BX
	SHRQ $2, BX
	JZ   tail

loop4:''')
    o += [d_step(64 * u, zmm) for u in range(4)]
    o.append((bump.replace("%d", "256")) + '''
	DECQ BX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   done

loop1:''')
    o.append(d_step(0, zmm))
    o.append(bump.replace("%d", "64") + f'''
	DECQ CX
	JNZ  loop1

done:
	VBROADCASTSD alpha+{alpha_off}(FP), {v}14''')
    o += [f"\tVMULPD {v}14, {v}{i}, {v}{i}" for i in range(12)]
    o.append(f'''	MOVQ beta+{alpha_off+8}(FP), AX
	SHLQ $1, AX
	JZ   store
	VBROADCASTSD beta+{alpha_off+8}(FP), {v}15''')
    for i in range(6):
        o += [f"\tVFMADD231PD (DX), {v}15, {v}{2*i}", f"\tVFMADD231PD {half}(DX), {v}15, {v}{2*i+1}",
              f"\tVMOVUPD {v}{2*i}, (DX)", f"\tVMOVUPD {v}{2*i+1}, {half}(DX)"]
        if i < 5:
            o.append("\tADDQ R8, DX")
    o.append("\tVZEROUPPER\n\tRET\n\nstore:")
    for i in range(6):
        o += [f"\tVMOVUPD {v}{2*i}, (DX)", f"\tVMOVUPD {v}{2*i+1}, {half}(DX)"]
        if i < 5:
            o.append("\tADDQ R8, DX")
    o.append("\tVZEROUPPER\n\tRET")
    return o


D_PROLOGUE_COMMON = '''	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ rsa+16(FP), R11
	SHLQ $3, R11
	LEAQ (R11)(R11*2), R12
	LEAQ (SI)(R11*1), R10
	MOVQ csa+24(FP), R13
	SHLQ $3, R13
'''

PROLOGUE_D8 = '''// AVX2/FMA DGEMM micro-kernel (float64): the 6×8 tile of C in 12 ymm registers.
// Generated by asmgen/gen.py. Each element is one FMA chain over k in order from
// 0, then alpha·acc, then + beta·C in one FMA: the same bits as dgemmKernel6x16
// and as the portable dgemmKernelGo (math.FMA in the same order).

//go:build amd64 && !noasm

#include "textflag.h"

// func dgemmKernel6x8(kc int, a *float64, rsa, csa int, b, c *float64, ldc int, alpha, beta float64)
//
// C[i, j] = alpha·Σ_p A(i,p)·b[p*8+j] + beta·C[i, j] for the 6×8 tile
// (beta == 0: C not read), where A(i,p) = a[i*rsa + p*csa] (strides in
// elements). Accumulators: Y0..Y11 (row i in Y(2i), Y(2i+1)); B row in Y12,
// Y13; A broadcasts in Y14, Y15. A rows are addressed as SI + i*R11 (row 5 as
// R10 + 4*R11 with R10 = SI + R11); R13 is the step along k.
TEXT ·dgemmKernel6x8(SB), NOSPLIT, $0-72
''' + D_PROLOGUE_COMMON + '''	MOVQ b+32(FP), DI
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R8
	SHLQ $3, R8

	// Prefetch the C tile (6 rows of 64 bytes, possibly straddling lines).
	MOVQ DX, AX
	MOVQ $6, BX
prefetch:
	PREFETCHT0 (AX)
	PREFETCHT0 56(AX)
	ADDQ R8, AX
	DECQ BX
	JNZ  prefetch
'''

PROLOGUE_D16 = '''// AVX-512 DGEMM micro-kernel (float64): the 6×16 tile of C in 12 zmm registers.
// Generated by asmgen/gen.py. Each element is accumulated exactly as in
// dgemmKernel6x8 (one FMA chain over k in order, then alpha, then beta in one
// FMA), so both kernels give the same bits.

//go:build amd64 && !noasm

#include "textflag.h"

// func dgemmKernel6x16(kc int, a *float64, rsa, csa int, b *float64, bstride int, c *float64, ldc int, alpha, beta float64)
//
// C[i, j] = alpha·Σ_p A(i,p)·B(p,j) + beta·C[i, j] for the 6×16 tile
// (beta == 0: C not read), where A(i,p) = a[i*rsa + p*csa] and the 16 columns
// of B are two packed kc×8 micro-panels: B(p, j) = b[p*8+j] for j < 8 and
// b[bstride + p*8 + j-8] for j ≥ 8 (strides in elements).
// Accumulators: Z0..Z11 (row i in Z(2i), Z(2i+1)); B row in Z12, Z13; A
// broadcasts in Z14, Z15; SI, R10, R11, R12, R13 as in dgemmKernel6x8; DI and
// AX walk the two B micro-panels.
TEXT ·dgemmKernel6x16(SB), NOSPLIT, $0-80
''' + D_PROLOGUE_COMMON + '''	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $3, R8

	// Prefetch the C tile (6 rows of 128 bytes, possibly straddling lines).
	MOVQ DX, AX
	MOVQ $6, BX
prefetch:
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	PREFETCHT0 120(AX)
	ADDQ R8, AX
	DECQ BX
	JNZ  prefetch

	MOVQ b+32(FP), DI
	MOVQ bstride+40(FP), AX
	LEAQ (DI)(AX*8), AX
'''


if __name__ == "__main__":
    with open("../gemm512_amd64.s", "w") as f:
        f.write("\n".join(kernel(PROLOGUE_F32, fma_step, 64)) + "\n")
    o = kernel(PROLOGUE_BF16, bf16_step, 56)
    o[-1] += "\n"
    o += [CVT, enc("vcvtne2ps2bf16 %zmm0, %zmm1, %zmm2"), CVT_TAIL]
    with open("../bf16_amd64.s", "w") as f:
        f.write("\n".join(o) + "\n")
    with open("../dgemm_amd64.s", "w") as f:
        f.write("\n".join(dkernel(PROLOGUE_D8, False, 56)) + "\n")
    with open("../dgemm512_amd64.s", "w") as f:
        f.write("\n".join(dkernel(PROLOGUE_D16, True, 64)) + "\n")
