package kernels

import "runtime"

// Implementation names the kernels in use: "avx2-fma/amd64" for the assembly kernels (with or
// without the AVX-512 Gemm kernel, which gives the same bits), "avx512-bf16/amd64" under
// ComputeBF16, else "generic/GOARCH". Results are bit-identical between machines with the same implementation;
// different implementations round differently (FMA, summation order), so a distributed search
// requires every worker to report the same name.
func Implementation() string {
	if useBF16() {
		return "avx512-bf16/" + runtime.GOARCH
	}
	if useAsm {
		return "avx2-fma/" + runtime.GOARCH
	}
	return "generic/" + runtime.GOARCH
}

// AsmAVX2 reports whether the AVX2/FMA assembly kernels are in use: the build has them, the CPU
// has AVX2 and FMA, and EVOPRESS_KERNELS does not say generic. Other packages' assembly (the
// level decoders of db and ggml) follows this choice, so that EVOPRESS_KERNELS narrows
// everything at once.
func AsmAVX2() bool { return useAsm }

// AsmAVX512 reports whether the AVX-512 kernels are in use (AsmAVX2, the CPU has AVX512F, and
// EVOPRESS_KERNELS does not say avx2 or generic).
func AsmAVX512() bool { return useAVX512 }
