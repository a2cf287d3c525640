package kernels

import (
	"fmt"
	"math"
)

// Dot returns Σ x_i·y_i, accumulated in float32 with several independent
// partial sums. len(x) must equal len(y).
func Dot(x, y []float32) float32 {
	if len(x) != len(y) {
		panic(fmt.Sprintf("kernels: Dot: len(x)=%d != len(y)=%d", len(x), len(y)))
	}
	return dot(x, y)
}

// Axpy computes y += alpha·x. len(x) must equal len(y).
func Axpy(alpha float32, x, y []float32) {
	if len(x) != len(y) {
		panic(fmt.Sprintf("kernels: Axpy: len(x)=%d != len(y)=%d", len(x), len(y)))
	}
	axpy(alpha, x, y)
}

// SubMul64 computes y[i] −= a·x[i] in float64, the product rounded before the
// difference (no fused multiply-add), so every path gives exactly the bits of
// the plain Go loop. len(x) must equal len(y). It is the column update of
// GPTQ and SparseGPT within a block.
func SubMul64(y []float64, a float64, x []float64) {
	if len(x) != len(y) {
		panic(fmt.Sprintf("kernels: SubMul64: len(x)=%d != len(y)=%d", len(x), len(y)))
	}
	subMul64(y, a, x)
}

// Scale computes x *= alpha.
func Scale(alpha float32, x []float32) { scale(alpha, x) }

// Max returns the largest element of x, which must not be empty. NaN elements
// are ignored (a slice of only NaNs gives −Inf).
func Max(x []float32) float32 {
	if len(x) == 0 {
		panic("kernels: Max: empty slice")
	}
	return maxf(x)
}

// SumExp returns Σ exp(x_i − shift). Each exponential is a vectorised float32
// Cephes-style polynomial accurate to about 2 ulp (≈2.4e-7 relative) over the
// float32 range (0 below −103.3, +Inf above 88.72); the sum is accumulated in
// float64 and rounded to float32 at the end.
func SumExp(x []float32, shift float32) float32 {
	return float32(sumExp(x, shift))
}

// ExpTo stores dst_i = exp(x_i − shift) (see SumExp for the accuracy) and
// returns Σ dst_i, accumulated in float64. len(dst) must equal len(x).
// dst may be x itself.
func ExpTo(dst, x []float32, shift float32) float32 {
	if len(dst) != len(x) {
		panic(fmt.Sprintf("kernels: ExpTo: len(dst)=%d != len(x)=%d", len(dst), len(x)))
	}
	return float32(expTo(dst, x, shift))
}

// SiLUMul computes gate_i = gate_i·sigmoid(gate_i)·up_i (the SwiGLU gate).
// With e = exp(−|gate_i|), sigmoid is 1/(1+e) for gate_i ≥ 0 and e/(1+e)
// otherwise, so the result is finite and accurate (≈1e-6 relative, tiny or
// −0 for very negative gate, gate·up for very positive gate) for any finite
// gate; NaN propagates.
// len(gate) must equal len(up).
func SiLUMul(gate, up []float32) {
	if len(gate) != len(up) {
		panic(fmt.Sprintf("kernels: SiLUMul: len(gate)=%d != len(up)=%d", len(gate), len(up)))
	}
	siluMul(gate, up)
}

// RMSNorm computes dst_i = x_i / sqrt(mean(x²)+eps) · weight_i, the Llama
// RMSNorm. The mean of squares is accumulated in float64 (so it is at least as
// accurate as PyTorch's float32 reduction); the inverse root is rounded to
// float32 and then, as in Hugging Face's LlamaRMSNorm, dst_i =
// weight_i·(x_i·r) in float32. dst may be x itself. All three slices must
// have the same length; an empty x is a no-op.
func RMSNorm(dst, x, weight []float32, eps float32) {
	if len(dst) != len(x) || len(weight) != len(x) {
		panic(fmt.Sprintf("kernels: RMSNorm: len(dst)=%d, len(x)=%d, len(weight)=%d differ", len(dst), len(x), len(weight)))
	}
	if len(x) == 0 {
		return
	}
	ms := sumSquares64(x) / float64(len(x))
	r := float32(1 / math.Sqrt(ms+float64(eps)))
	rmsScale(dst, x, weight, r)
}
