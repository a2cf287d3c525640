//go:build amd64 && !noasm

package kernels

import (
	"os"

	"golang.org/x/sys/cpu"
)

// KernelsEnv names the environment variable that narrows the kernels chosen from the CPU's
// features, to compare them or to work around one: "generic" (the portable Go code), "avx2"
// (no AVX-512 Gemm kernel; the same bits). Unset, empty or any other value: the widest the CPU
// has.
const KernelsEnv = "EVOPRESS_KERNELS"

func kernelsEnv() string { return os.Getenv(KernelsEnv) }

// hasAsm reports whether this build contains the assembly kernels.
const hasAsm = true

// useAsm selects the AVX2/FMA assembly kernels. It is set once from the CPU
// features; tests flip it to exercise the portable path too.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA && kernelsEnv() != "generic"

// useAVX512 selects, on top of useAsm, the AVX-512 Gemm micro-kernel (6×32
// tile in zmm registers), which gives the same bits as the AVX2 one. Set
// from the CPU features (AVX512F with the OS saving zmm state).
var useAVX512 = useAsm && cpu.X86.HasAVX512F && kernelsEnv() != "avx2"

// Assembly kernels (gemm_amd64.s, vec_amd64.s). Lengths and alignment
// preconditions are stated next to each; the Go wrappers below establish them.

//go:noescape
func sgemmKernel6x16(kc int, a *float32, rsa, csa int, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func sgemmKernel6x32(kc int, a *float32, rsa, csa int, b *float32, bstride int, c *float32, ldc int, alpha, beta float32)

//go:noescape
func fmaPeakAVX(n int, a, b float32) float32 // n ≥ 0

//go:noescape
func fmaPeakAVX512(n int, a, b float32) float32 // n ≥ 0

//go:noescape
func packBT16AVX(dst, b *float32, ldb, kc8 int) // kc8%8 == 0, kc8 > 0

//go:noescape
func dotAVX(x, y []float32) float32

//go:noescape
func axpyAVX(alpha float32, x, y []float32)

//go:noescape
func subMul64AVX(y []float64, a float64, x []float64)

//go:noescape
func scaleAVX(alpha float32, x []float32)

//go:noescape
func maxAVX(x []float32) float32

//go:noescape
func sumExpAVX(x []float32, shift float32) float64 // len(x)%8 == 0

//go:noescape
func expToAVX(dst, x []float32, shift float32) float64 // len(x)%8 == 0, len(dst) ≥ len(x)

//go:noescape
func siluMulAVX(gate, up []float32) // len(gate)%8 == 0, len(up) ≥ len(gate)

//go:noescape
func sumSquares64AVX(x []float32) float64 // len(x)%16 == 0

//go:noescape
func rmsScaleAVX(dst, x, w []float32, r float32) // len(x)%8 == 0, len(dst), len(w) ≥ len(x)

// gemmKernel computes one full mr×nr tile of C (see gemmKernelGo for the
// contract; kc ≥ 1).
func gemmKernel(kc int, a []float32, rs, cs int, b, c []float32, ldc int, alpha, beta float32) {
	if !useAsm {
		gemmKernelGo(kc, a, rs, cs, b, c, ldc, alpha, beta)
		return
	}
	// Bounds the assembly relies on.
	_ = a[(mr-1)*rs+(kc-1)*cs]
	_ = b[kc*nr-1]
	_ = c[(mr-1)*ldc+nr-1]
	sgemmKernel6x16(kc, &a[0], rs, cs, &b[0], &c[0], ldc, alpha, beta)
}

// gemmKernel32 computes one full mr×2nr tile of C from two packed B
// micro-panels (b and b[bstride:]) with the AVX-512 kernel (useAVX512 only);
// the result is that of two gemmKernel calls, one per micro-panel.
func gemmKernel32(kc int, a []float32, rs, cs int, b []float32, bstride int, c []float32, ldc int, alpha, beta float32) {
	_ = a[(mr-1)*rs+(kc-1)*cs]
	_ = b[bstride+kc*nr-1]
	_ = c[(mr-1)*ldc+2*nr-1]
	sgemmKernel6x32(kc, &a[0], rs, cs, &b[0], bstride, &c[0], ldc, alpha, beta)
}

// fmaPeakAsm runs the FMA throughput loop of the widest vector unit in use.
func fmaPeakAsm(n int, a, b float32) float32 {
	if useAVX512 {
		return fmaPeakAVX512(n, a, b)
	}
	return fmaPeakAVX(n, a, b)
}

// packBTrans16 packs the kc×16 micro-panel of op(B) = bᵀ whose columns are
// rows j…j+15 of b (from column p0 on) and reports whether it did; the
// portable loop in packB is used when it did not.
func packBTrans16(d, b []float32, ldb, j, p0, kc int) bool {
	if !useAsm {
		return false
	}
	_ = d[kc*nr-1]
	kc8 := kc &^ 7
	if kc8 > 0 {
		_ = b[(j+nr-1)*ldb+p0+kc8-1]
		packBT16AVX(&d[0], &b[j*ldb+p0], ldb, kc8)
	}
	for c := 0; c < nr; c++ {
		row := b[(j+c)*ldb+p0 : (j+c)*ldb+p0+kc]
		for p := kc8; p < kc; p++ {
			d[p*nr+c] = row[p]
		}
	}
	return true
}

func dot(x, y []float32) float32 {
	if !useAsm {
		return dotGo(x, y)
	}
	return dotAVX(x, y[:len(x)])
}

func axpy(alpha float32, x, y []float32) {
	if !useAsm {
		axpyGo(alpha, x, y)
		return
	}
	axpyAVX(alpha, x, y[:len(x)])
}

func subMul64(y []float64, a float64, x []float64) {
	if !useAsm {
		subMul64Go(y, a, x)
		return
	}
	subMul64AVX(y[:len(x)], a, x)
}

func scale(alpha float32, x []float32) {
	if !useAsm {
		scaleGo(alpha, x)
		return
	}
	scaleAVX(alpha, x)
}

func maxf(x []float32) float32 {
	if !useAsm {
		return maxGo(x)
	}
	return maxAVX(x)
}

func sumExp(x []float32, shift float32) float64 {
	if !useAsm {
		return sumExpGo(x, shift)
	}
	n := len(x) &^ 7
	var s float64
	if n > 0 {
		s = sumExpAVX(x[:n], shift)
	}
	if n < len(x) {
		// The tail goes through the same vector code on a padded copy.
		var in, out [8]float32
		rest := copy(in[:], x[n:])
		expToAVX(out[:], in[:], shift)
		for _, v := range out[:rest] {
			s += float64(v)
		}
	}
	return s
}

func expTo(dst, x []float32, shift float32) float64 {
	if !useAsm {
		return expToGo(dst, x, shift)
	}
	n := len(x) &^ 7
	var s float64
	if n > 0 {
		s = expToAVX(dst[:n], x[:n], shift)
	}
	if n < len(x) {
		var in, out [8]float32
		rest := copy(in[:], x[n:])
		expToAVX(out[:], in[:], shift)
		copy(dst[n:], out[:rest])
		for _, v := range out[:rest] {
			s += float64(v)
		}
	}
	return s
}

func siluMul(gate, up []float32) {
	if !useAsm {
		siluMulGo(gate, up)
		return
	}
	up = up[:len(gate)]
	n := len(gate) &^ 7
	if n > 0 {
		siluMulAVX(gate[:n], up[:n])
	}
	if n < len(gate) {
		var g, u [8]float32
		rest := copy(g[:], gate[n:])
		copy(u[:], up[n:])
		siluMulAVX(g[:], u[:])
		copy(gate[n:], g[:rest])
	}
}

func sumSquares64(x []float32) float64 {
	if !useAsm {
		return sumSquares64Go(x)
	}
	n := len(x) &^ 15
	var s float64
	if n > 0 {
		s = sumSquares64AVX(x[:n])
	}
	for _, v := range x[n:] {
		s += float64(v) * float64(v)
	}
	return s
}

func rmsScale(dst, x, w []float32, r float32) {
	if !useAsm {
		rmsScaleGo(dst, x, w, r)
		return
	}
	n := len(x) &^ 7
	if n > 0 {
		rmsScaleAVX(dst[:n], x[:n], w[:n], r)
	}
	rmsScaleGo(dst[n:], x[n:], w[n:], r)
}

// hasF16C reports the F16C extension (VCVTPH2PS), which the binary16 packing
// needs besides AVX2.
var hasF16C = cpuidF16C()

func cpuidF16C() bool

//go:noescape
func packBT16BF16AVX(dst *float32, b *uint16, ldb, kc8 int) // kc8%8 == 0, kc8 > 0

//go:noescape
func packBT16F16AVX(dst *float32, b *uint16, ldb, kc8 int) // kc8%8 == 0, kc8 > 0; F16C

//go:noescape
func cvtBF16AVX(dst *float32, src *uint16, n int) // n%8 == 0, n > 0

//go:noescape
func cvtF16AVX(dst *float32, src *uint16, n int) // n%8 == 0, n > 0; F16C

// packBTrans16H is packBTrans16 for a 16-bit b (BF16 or F16); it reports
// false when the portable loop in packB16 must do the work.
func packBTrans16H(d []float32, b Weights, ldb, j, p0, kc int) bool {
	f16 := b.DType == F16
	if !useAsm || (f16 && !hasF16C) {
		return false
	}
	bits := b.Bits
	_ = d[kc*nr-1]
	kc8 := kc &^ 7
	if kc8 > 0 {
		_ = bits[(j+nr-1)*ldb+p0+kc8-1]
		if f16 {
			packBT16F16AVX(&d[0], &bits[j*ldb+p0], ldb, kc8)
		} else {
			packBT16BF16AVX(&d[0], &bits[j*ldb+p0], ldb, kc8)
		}
	}
	if kc8 < kc {
		var tail [8]float32
		for c := 0; c < nr; c++ {
			row := bits[(j+c)*ldb+p0+kc8 : (j+c)*ldb+p0+kc]
			t := tail[:len(row)]
			if f16 {
				convertF16Go(t, row)
			} else {
				convertBF16Go(t, row)
			}
			for i, v := range t {
				d[(kc8+i)*nr+c] = v
			}
		}
	}
	return true
}

// convertBF16 writes float32(src[i]) to dst[i] for i < len(dst).
func convertBF16(dst []float32, src []uint16) {
	n := len(dst) &^ 7
	if !useAsm || n == 0 {
		convertBF16Go(dst, src)
		return
	}
	_ = src[len(dst)-1]
	cvtBF16AVX(&dst[0], &src[0], n)
	convertBF16Go(dst[n:], src[n:])
}

// convertF16 writes float32(src[i]) to dst[i] for i < len(dst).
func convertF16(dst []float32, src []uint16) {
	n := len(dst) &^ 7
	if !useAsm || !hasF16C || n == 0 {
		convertF16Go(dst, src)
		return
	}
	_ = src[len(dst)-1]
	cvtF16AVX(&dst[0], &src[0], n)
	convertF16Go(dst[n:], src[n:])
}

// hasBF16 reports AVX512_BF16 (VDPBF16PS, VCVTNE2PS2BF16), which ComputeBF16 needs, on top of
// the AVX-512 kernels.
var hasBF16 = useAVX512 && cpu.X86.HasAVX512BF16

//go:noescape
func sbgemmKernel6x32(k2 int, a *uint16, rsa int, b *uint16, bstride int, c *float32, ldc int, alpha, beta float32)

//go:noescape
func cvtBF16AVX512(dst *uint16, src *float32, n int) // n%32 == 0, n > 0

// sbgemmKernel computes the 6×32 tile of C from bfloat16 pairs (see sbgemmKernel6x32; k2 ≥ 1).
func sbgemmKernel(k2 int, a []uint16, rsa int, b []uint16, bstride int, c []float32, ldc int, alpha, beta float32) {
	_ = a[(mr-1)*rsa+2*k2-1]
	_ = b[bstride+2*k2*nr-1]
	_ = c[(mr-1)*ldc+nrBF16-1]
	sbgemmKernel6x32(k2, &a[0], rsa, &b[0], bstride, &c[0], ldc, alpha, beta)
}

// cvtBF16 rounds len(dst) (a multiple of 32) values of src to bfloat16.
func cvtBF16(dst []uint16, src []float32) {
	_ = src[len(dst)-1]
	cvtBF16AVX512(&dst[0], &src[0], len(dst))
}
