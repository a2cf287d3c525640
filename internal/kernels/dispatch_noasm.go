//go:build !amd64 || noasm

package kernels

// KernelsEnv names the environment variable that narrows the kernels chosen from the CPU's
// features (see the amd64 build); this build has only the portable ones.
const KernelsEnv = "EVOPRESS_KERNELS"

// hasAsm reports whether this build contains the assembly kernels.
const hasAsm = false

// useAsm selects the assembly kernels; always false in this build.
var useAsm = false

// useAVX512 selects the AVX-512 Gemm kernel; always false in this build.
var useAVX512 = false

// gemmKernel32 is never called in this build (useAVX512 is false).
func gemmKernel32(kc int, a []float32, rs, cs int, b []float32, bstride int, c []float32, ldc int, alpha, beta float32) {
	panic("kernels: AVX-512 kernel in a noasm build")
}

// fmaPeakAsm is never called in this build (useAsm is false).
func fmaPeakAsm(n int, a, b float32) float32 { return fmaPeakGo(n, a, b) }

func gemmKernel(kc int, a []float32, rs, cs int, b, c []float32, ldc int, alpha, beta float32) {
	gemmKernelGo(kc, a, rs, cs, b, c, ldc, alpha, beta)
}

// packBTrans16 reports false: the portable loop in packB does the work.
func packBTrans16(d, b []float32, ldb, j, p0, kc int) bool { return false }

func dot(x, y []float32) float32                   { return dotGo(x, y) }
func axpy(alpha float32, x, y []float32)           { axpyGo(alpha, x, y) }
func scale(alpha float32, x []float32)             { scaleGo(alpha, x) }
func subMul64(y []float64, a float64, x []float64) { subMul64Go(y, a, x) }
func maxf(x []float32) float32                     { return maxGo(x) }
func sumExp(x []float32, shift float32) float64    { return sumExpGo(x, shift) }
func expTo(dst, x []float32, shift float32) float64 {
	return expToGo(dst, x, shift)
}
func siluMul(gate, up []float32)       { siluMulGo(gate, up) }
func sumSquares64(x []float32) float64 { return sumSquares64Go(x) }

func rmsScale(dst, x, w []float32, r float32) { rmsScaleGo(dst, x, w, r) }

// packBTrans16H reports false: the portable loop in packB16 does the work.
func packBTrans16H(d []float32, b Weights, ldb, j, p0, kc int) bool { return false }

func convertBF16(dst []float32, src []uint16) { convertBF16Go(dst, src) }
func convertF16(dst []float32, src []uint16)  { convertF16Go(dst, src) }

// hasBF16 is false: ComputeBF16 needs the AVX512_BF16 assembly.
const hasBF16 = false

func sbgemmKernel(k2 int, a []uint16, rsa int, b []uint16, bstride int, c []float32, ldc int, alpha, beta float32) {
	panic("kernels: bf16 kernel in a build without it")
}

func cvtBF16(dst []uint16, src []float32) { roundBF16Go(dst, src) }

// packBT16AVX is never called in this build (useAsm is false).
func packBT16AVX(dst, b *float32, ldb, kc8 int) { panic("kernels: assembly kernel in a noasm build") }
