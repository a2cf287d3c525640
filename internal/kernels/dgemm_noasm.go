//go:build !amd64 || noasm

package kernels

func dgemmKernel(kc int, a []float64, rs, cs int, b, c []float64, ldc int, alpha, beta float64) {
	dgemmKernelGo(kc, a, rs, cs, b, c, ldc, alpha, beta)
}

// dgemmKernel16 is never called in this build (useAVX512 is false).
func dgemmKernel16(kc int, a []float64, rs, cs int, b []float64, bstride int, c []float64, ldc int, alpha, beta float64) {
	panic("kernels: AVX-512 kernel in a noasm build")
}
