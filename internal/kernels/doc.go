// Package kernels provides the float32 compute kernels of evopress: a
// general matrix multiply (Gemm, GemmSerial) for the model forward (linear
// layers y = x·Wᵀ, attention Q·Kᵀ and P·V) and for Hessian accumulation
// (H += Xᵀ·X), and the vector operations around it (Dot, Axpy, Scale, Max,
// SumExp, ExpTo, SiLUMul, RMSNorm); and a float64 matrix multiply (Dgemm,
// DgemmSerial) for the GPTQ/SparseGPT database builds.
//
// # Two implementations of every kernel
//
// Each kernel exists twice: a portable Go version (generic.go, always
// compiled) and an AVX2/FMA Go-assembly version (*_amd64.s, built on amd64
// unless the noasm build tag is given); Gemm has a third, AVX-512 micro-kernel. dispatch_amd64.go declares the
// assembly functions and picks one implementation per call from the
// package variable useAsm, which is set at start-up to
// cpu.X86.HasAVX2 && cpu.X86.HasFMA (golang.org/x/sys/cpu); the tests flip
// it so that both implementations are checked on the same machine.
// dispatch_noasm.go (//go:build !amd64 || noasm) routes everything to the Go
// versions, so `go test -tags noasm` exercises the portable build. No cgo.
//
// # Gemm
//
// C = alpha·op(A)·op(B) + beta·C on row-major matrices, in the manner of
// BLIS/GotoBLAS:
//
//   - The micro-kernel (gemm_amd64.s) keeps a 6×16 tile of C in 12 ymm
//     registers; each step of k loads one 16-wide row of packed B (2 ymm),
//     broadcasts 6 values of A and issues 12 FMAs (4 steps unrolled). On
//     Zen 3 this reaches ~32 flop/cycle per core, i.e. close to peak.
//   - Where the CPU has AVX-512 (useAVX512, set from AVX512F), full pairs of
//     B micro-panels go through a 6×32 kernel (gemm512_amd64.s) holding the
//     tile in 12 zmm registers; it reads the same packed panels and
//     accumulates every element in the same FMA order, so the results have
//     the same bits as the AVX2 kernel's (TestGemmAVX512SameBits) and
//     Implementation does not change. On Zen 5 it doubles the throughput
//     (BenchmarkGemmSerial: 212 vs 104 GFLOP per CPU-second at 8192×704×256,
//     the measured FMA peaks being 210 and 105, BenchmarkPeakFMA).
//   - The micro-kernel reads A through strides, A(i,p) = a[i*rs + p*cs], so A
//     is usually not packed at all: a row-major A (x in x·Wᵀ) is read in
//     place with rs=lda, cs=1, and a transposed A (Xᵀ in XᵀX) with rs=1,
//     cs=lda. Only a transposed A whose stride is a multiple of 512 floats
//     (whose rows alias into few cache sets) is packed into kc×6 panels, as
//     is the last partial 6-row panel.
//   - B is always packed, kc×16 micro-panels in the order the kernel reads
//     them; packing handles op(B): a plain B is copied 16 floats at a time, a
//     transposed B (HF weights W[out×in] in x·Wᵀ) is transposed 8×8 at a time
//     in assembly.
//   - GemmW takes B as Weights: float32, or the bits of bfloat16 or IEEE
//     binary16 values as the checkpoint stores them. Packing converts them to
//     float32 (bfloat16: a 16-bit shift, VPMOVZXWD+VPSLLD; binary16: F16C's
//     VCVTPH2PS, or a 65,536-entry table in Go). The conversions are exact
//     and the packed panels are the same floats, so the product has the same
//     bits as Gemm with B converted beforehand, at half the memory for B.
//     Weights may also be Decoded: a compact form (quantized blocks, codes and
//     scales) behind a Decoder; packing decodes each micro-panel's stretch of
//     16 rows into a 16×kc scratch and packs that as float32 (the same
//     transposition kernel), so the bits are again those of Gemm with the
//     decoded matrix (TestGemmWDecoded).
//   - Blocking: k in blocks of ≤256 (a 16 KB B micro-panel stays in L1), rows
//     in blocks of ≤144 (the A block, 144 KB, stays in L2), columns in blocks
//     of ≤4096 (the packed B block, ≤4 MB, lives in L3). Block sizes are
//     balanced (k=704 → 3 blocks of 235) rather than cut at the limit.
//   - Edges: partial tiles (m%6, n%16) are computed into a 6×16 scratch tile
//     and copied out, so any m, n, k and strides work.
//   - beta is applied by the first k block (beta==0 stores without reading C,
//     so NaNs in C are ignored); later k blocks accumulate.
//   - Gemm splits C into up to 4·GOMAXPROCS tiles (each ≥1 Mflop and ≥96
//     wide in a split dimension, shaped to minimise their perimeter) that
//     GOMAXPROCS goroutines, the caller included, take from an atomic
//     counter, which keeps the load balanced when cores are shared; below
//     4 Mflop it runs serially.
//     GemmSerial never starts goroutines, for callers that parallelise at a
//     higher level (e.g. attention heads).
//   - Packing buffers come from a sync.Pool, so calls do not allocate in the
//     steady state and concurrent calls never share a buffer.
//
// # Dgemm (float64)
//
// Dgemm and DgemmSerial are the float64 C = alpha·op(A)·op(B) + beta·C, with Gemm's
// conventions, checks, panics and parallel split, for the database builds (package compress):
// GPTQ's lazy batch updates and SparseGPT's, and the Cholesky-style updates of their Hessian
// inverses, which need float64. The structure is Gemm's (dgemm.go): B packed in kc×8
// micro-panels, A read in place (or packed), an AVX2 micro-kernel with a 6×8 tile in 12 ymm
// registers (dgemm_amd64.s) and, where the CPU has AVX-512, a 6×16 one in 12 zmm registers
// reading two B micro-panels (dgemm512_amd64.s); both generated by asmgen/gen.py.
//
// Same bits on every path: each element of C is one fused multiply-add chain over k in
// increasing order (from 0 within each block of 256 values of k; later blocks add to C),
// then alpha·acc, then beta·C added by one fused multiply-add (beta==0: alpha·acc stored).
// The portable kernel (dgemmKernelGo) does exactly this with math.FMA (an intrinsic on amd64
// and arm64), and partial edge tiles apply the same epilogue, so the portable, AVX2 and
// AVX-512 paths, a -tags noasm build, and any split across goroutines give identical results
// (TestDgemmSameBits, TestDgemmFused). A database built with one is the same file as with
// another; Implementation() describes the float32 kernels and is unaffected.
//
// BenchmarkDgemm compares it with gonum's blas64.Gemm at the callers' shapes. On Zen 5 (2
// cores; go test -bench 'Dgemm|PeakFMA' -count 3, medians) in GFLOP per CPU-second: AVX-512
// 85.6 (GPTQ update 2048×8064×128), 92.2 (Cholesky update 4096×4096×128, B transposed), 85.4
// (1024³), against a float64 FMA peak of 97.8 (half of BenchmarkPeakFMA's 195.6); AVX2 46.1,
// 49.6, 43.7; gonum 6.8, 7.7, 7.6. The portable path is a correctness twin, not a fast one:
// 3.7 at 1024³ (-tags noasm), 9.1 with GOAMD64=v3, where math.FMA needs no run-time check.
//
// # bfloat16 compute
//
// SetCompute(ComputeBF16), on CPUs with AVX512_BF16 (HasBF16Compute), switches the products
// with weights (GemmW, GemmWSerial) to bfloat16 operands: compute_bf16.go packs A block by
// block into rows of bfloat16 values (VCVTNE2PS2BF16: round to nearest even, subnormal inputs
// as zero) and B into micro-panels of bfloat16 pairs (column j's B(2q, j), B(2q+1, j) side by
// side; BF16 weights are moved as stored, F32 and F16 ones rounded), and a 6×32 micro-kernel
// (bf16_amd64.s) issues one VDPBF16PS per 16 columns and pair of k: both products exact, added
// to a float32 accumulator. Twice the arithmetic per instruction of an FMA; the operands keep 8
// bits of mantissa, so results differ from float32's (within the bfloat16 rounding of the
// operands: TestGemmWBF16) and Implementation says "avx512-bf16". Gemm (attention, Hessians)
// stays float32. The Go assembler does not know the BF16 instructions: bf16_amd64.s holds
// their bytes, encoded by GNU as, with the instruction in a comment. gemm512_amd64.s and
// bf16_amd64.s are generated by asmgen/gen.py (Python 3; GNU as for the bytes).
//
// # Vector kernels
//
// Dot, Axpy, Scale and Max process 32 floats per iteration with 4
// independent accumulators. The exponential (SumExp, ExpTo, SiLUMul) is
// Cephes' expf: n = round(x·log2e), r = x − n·ln2 with ln2 split in two
// (Cody–Waite), exp(r) = 1 + r + r²·P(r) with a degree-5 polynomial, and the
// result scaled by 2^n in two steps so that gradual underflow is right; the
// input is clamped to [−104, 89] (results 0 and +Inf at the ends), NaN
// propagates. It is within ~2 ulp (≈2.4e-7 relative) of the correctly rounded
// exp for normal results. Sums of exponentials are accumulated in float64.
// SiLU uses e = exp(−|g|) and sigmoid = 1/(1+e) or e/(1+e) by the sign of g,
// which has neither overflow nor cancellation for any finite g. RMSNorm
// accumulates the mean of squares in float64. In the assembly versions the
// exponential-based kernels process 16 elements per step and send the last
// len%8 elements through the same vector code on a zero-padded copy, so a
// result does not depend on an element's position; Dot, Axpy, Scale and Max
// finish with scalar FMA/max instructions.
//
// # Errors
//
// Inconsistent dimensions, strides or slice lengths are programming errors
// and panic with a message naming the argument; values (NaN, Inf, huge or
// tiny numbers) never cause a panic.
package kernels
