package kernels

import "runtime"

// Implementation names the kernels in use: "avx2-fma/amd64" for the assembly kernels, else
// "generic/GOARCH". Results are bit-identical between machines with the same implementation;
// different implementations round differently (FMA, summation order), so a distributed search
// requires every worker to report the same name.
func Implementation() string {
	if useAsm {
		return "avx2-fma/" + runtime.GOARCH
	}
	return "generic/" + runtime.GOARCH
}
