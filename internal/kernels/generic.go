package kernels

import "math"

// This file holds the portable (pure-Go) implementations. They are compiled
// on every platform: on amd64 they are the fallback selected at run time when
// the CPU lacks AVX2/FMA (or when tests switch the assembly off), and with the
// noasm build tag or on other architectures they are the only path.

// gemmKernelGo is the portable micro-kernel. It computes the full mr×nr tile
//
//	C[i*ldc+j] = alpha·Σ_p A(i,p)·b[p*nr+j] + beta·C[i*ldc+j]
//
// where A(i,p) = a[i*rs+p*cs] (a packed A micro-panel has rs=1, cs=mr; a
// row-major A read in place has rs=lda, cs=1) and b is a packed B micro-panel
// of kc×nr values. beta==0 overwrites C without reading it.
func gemmKernelGo(kc int, a []float32, rs, cs int, b, c []float32, ldc int, alpha, beta float32) {
	b = b[:kc*nr]
	for i := 0; i < mr; i += 2 {
		c0 := c[i*ldc : i*ldc+nr]
		c1 := c[(i+1)*ldc : (i+1)*ldc+nr]
		a0s := a[i*rs : i*rs+(kc-1)*cs+1]
		a1s := a[(i+1)*rs : (i+1)*rs+(kc-1)*cs+1]
		for j := 0; j < nr; j += 4 {
			var s00, s01, s02, s03, s10, s11, s12, s13 float32
			bj := b[j:]
			if cs == 1 {
				// A rows read in place: contiguous, so the loop ranges over them.
				a1u := a1s[:len(a0s)]
				for p, a0 := range a0s {
					a1 := a1u[p]
					bp := bj[p*nr : p*nr+4 : p*nr+4]
					b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
					s00 += a0 * b0
					s01 += a0 * b1
					s02 += a0 * b2
					s03 += a0 * b3
					s10 += a1 * b0
					s11 += a1 * b1
					s12 += a1 * b2
					s13 += a1 * b3
				}
			} else {
				for p := 0; p < kc; p++ {
					a0, a1 := a0s[p*cs], a1s[p*cs]
					bp := bj[p*nr : p*nr+4 : p*nr+4]
					b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
					s00 += a0 * b0
					s01 += a0 * b1
					s02 += a0 * b2
					s03 += a0 * b3
					s10 += a1 * b0
					s11 += a1 * b1
					s12 += a1 * b2
					s13 += a1 * b3
				}
			}
			d0 := c0[j : j+4]
			d1 := c1[j : j+4]
			if beta == 0 {
				d0[0], d0[1], d0[2], d0[3] = alpha*s00, alpha*s01, alpha*s02, alpha*s03
				d1[0], d1[1], d1[2], d1[3] = alpha*s10, alpha*s11, alpha*s12, alpha*s13
			} else {
				d0[0] = alpha*s00 + beta*d0[0]
				d0[1] = alpha*s01 + beta*d0[1]
				d0[2] = alpha*s02 + beta*d0[2]
				d0[3] = alpha*s03 + beta*d0[3]
				d1[0] = alpha*s10 + beta*d1[0]
				d1[1] = alpha*s11 + beta*d1[1]
				d1[2] = alpha*s12 + beta*d1[2]
				d1[3] = alpha*s13 + beta*d1[3]
			}
		}
	}
}

// dotGo returns Σ x_i·y_i accumulated in float32 with 8 independent partial
// sums (the same association as the assembly version, up to rounding).
func dotGo(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(x); i += 8 {
		xs := x[i : i+8 : i+8]
		ys := y[i : i+8 : i+8]
		s0 += xs[0] * ys[0]
		s1 += xs[1] * ys[1]
		s2 += xs[2] * ys[2]
		s3 += xs[3] * ys[3]
		s4 += xs[4] * ys[4]
		s5 += xs[5] * ys[5]
		s6 += xs[6] * ys[6]
		s7 += xs[7] * ys[7]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))
}

// axpyGo computes y += alpha·x.
func axpyGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// subMul64Go computes y[i] −= a·x[i] (product rounded, then the difference).
func subMul64Go(y []float64, a float64, x []float64) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] -= a * v
	}
}

// scaleGo computes x *= alpha.
func scaleGo(alpha float32, x []float32) {
	for i := range x {
		x[i] *= alpha
	}
}

// maxGo returns the largest element of x; NaNs are skipped, and −Inf is
// returned when there is no other element.
func maxGo(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	return m
}

// Constants of the float32 exponential (Cephes expf, Cody–Waite reduction).
const (
	expHi    = 89.0   // above ln(MaxFloat32)≈88.7228: the result overflows to +Inf
	expLo    = -104.0 // below ln(smallest denormal)≈-103.28: the result is 0
	expLog2e = 1.44269504088896341
	expC1    = 0.693359375    // ln 2 high part (exact in 9 bits)
	expC2    = -2.12194440e-4 // ln 2 − expC1
	expP0    = 1.9875691500e-4
	expP1    = 1.3981999507e-3
	expP2    = 8.3334519073e-3
	expP3    = 4.1665795894e-2
	expP4    = 1.6666665459e-1
	expP5    = 5.0000001201e-1
)

// expf is the scalar twin of the vectorised exponential: exp(x) for float32,
// within about 2 ulp of the correctly rounded value over the normal range,
// gradual underflow to 0 below about −103.3, +Inf above about 88.72, NaN for NaN.
func expf(x float32) float32 {
	if x != x {
		return x
	}
	if x > expHi {
		x = expHi
	}
	if x < expLo {
		x = expLo
	}
	n := int32(math.RoundToEven(float64(x * expLog2e)))
	fn := float32(n)
	r := x - fn*expC1
	r -= fn * expC2
	// P(r) by Estrin's scheme, in the same order as the assembly.
	r2 := r * r
	p := (expP0*r+expP1)*r2 + (expP2*r + expP3)
	p = p*r2 + (expP4*r + expP5)
	y := p*r2 + r + 1
	// Scale by 2^n in two steps so that n in [-150, 129] never leaves the
	// exponent range of the intermediate factors.
	n1 := n >> 1
	n2 := n - n1
	y *= math.Float32frombits(uint32(n1+127) << 23)
	return y * math.Float32frombits(uint32(n2+127)<<23)
}

// sumExpGo returns Σ exp(x_i − shift), accumulated in float64.
func sumExpGo(x []float32, shift float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(expf(v - shift))
	}
	return s
}

// expToGo stores dst_i = exp(x_i − shift) and returns Σ dst_i (float64 sum).
func expToGo(dst, x []float32, shift float32) float64 {
	dst = dst[:len(x)]
	var s float64
	for i, v := range x {
		e := expf(v - shift)
		dst[i] = e
		s += float64(e)
	}
	return s
}

// siluMulGo computes gate_i = gate_i·sigmoid(gate_i)·up_i with
// e = exp(−|g|) and sigmoid(g) = 1/(1+e) for g ≥ 0, e/(1+e) for g < 0, which
// stays accurate (no overflow, no cancellation) for any finite g.
func siluMulGo(gate, up []float32) {
	up = up[:len(gate)]
	for i, g := range gate {
		e := expf(-abs32(g))
		num := float32(1)
		if math.Signbit(float64(g)) {
			num = e
		}
		gate[i] = g * (num / (1 + e)) * up[i]
	}
}

func abs32(x float32) float32 {
	return math.Float32frombits(math.Float32bits(x) &^ (1 << 31))
}

// sumSquares64Go returns Σ x_i² accumulated in float64.
func sumSquares64Go(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		xs := x[i : i+4 : i+4]
		a, b, c, d := float64(xs[0]), float64(xs[1]), float64(xs[2]), float64(xs[3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		v := float64(x[i])
		s0 += v * v
	}
	return (s0 + s1) + (s2 + s3)
}

// rmsScaleGo computes dst_i = w_i·(x_i·r) (len(dst), len(w) ≥ len(x)).
func rmsScaleGo(dst, x, w []float32, r float32) {
	dst = dst[:len(x)]
	w = w[:len(x)]
	for i, v := range x {
		dst[i] = w[i] * (v * r)
	}
}
