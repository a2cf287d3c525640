package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// vecLens covers empty input, every tail length of the 8- and 32-wide loops,
// and longer vectors.
var vecLens = []int{0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 257, 4096, 4099}

// expTestPoints returns a dense grid over [-110, 100] plus special values.
func expTestPoints() []float32 {
	var xs []float32
	for x := -110.0; x <= 100; x += 0.0137 {
		xs = append(xs, float32(x))
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1e-8, -1e-8,
		88.72, 88.7228, 88.72284, 88.723, 89, 1000, -87.3, -87.34, -100, -103, -103.28, -103.3, -104, -1000,
		float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, -math.MaxFloat32)
	return xs
}

// checkExp compares got to exp(x) computed in float64.
func checkExp(t *testing.T, what string, x, got float32) {
	t.Helper()
	want := math.Exp(float64(x))
	w32 := float32(want)
	switch {
	case math.IsInf(float64(w32), 1):
		if !math.IsInf(float64(got), 1) {
			t.Errorf("%s: exp(%g) = %g, want +Inf", what, x, got)
		}
	case want < 0x1p-126: // denormal or zero result: absolute error
		if math.Abs(float64(got)-want) > 0x1p-148 || got < 0 {
			t.Errorf("%s: exp(%g) = %g, want %g", what, x, got, want)
		}
	default:
		if rel := math.Abs(float64(got)-want) / want; !(rel <= 3e-7) {
			t.Errorf("%s: exp(%g) = %g, want %g (rel %g)", what, x, got, want, rel)
		}
	}
}

func TestExpAccuracy(t *testing.T) {
	xs := expTestPoints()
	for _, asm := range paths() {
		withPath(t, asm, func() {
			dst := make([]float32, len(xs))
			sum := ExpTo(dst, xs, 0)
			var want float64
			for i, x := range xs {
				checkExp(t, pathName(asm), x, dst[i])
				want += float64(dst[i])
			}
			if math.IsInf(float64(sum), 1) != math.IsInf(want, 1) {
				t.Errorf("%s: ExpTo sum %g want %g", pathName(asm), sum, want)
			}
			// Scalar twin.
			for _, x := range xs {
				checkExp(t, "expf", x, expf(x))
			}
			// NaN in, NaN out.
			nan := []float32{float32(math.NaN()), 1, 2, 3, 4, 5, 6, 7, 8}
			ExpTo(nan, nan, 0)
			if !math.IsNaN(float64(nan[0])) {
				t.Errorf("%s: exp(NaN) = %g", pathName(asm), nan[0])
			}
		})
	}
}

func TestSumExpExpTo(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, asm := range paths() {
		withPath(t, asm, func() {
			for _, n := range vecLens {
				x := randSlice(rng, n)
				for i := range x {
					x[i] *= 5
				}
				shift := float32(0)
				if n > 0 {
					shift = Max(x)
				}
				var want float64
				for _, v := range x {
					want += math.Exp(float64(v) - float64(shift))
				}
				got := SumExp(x, shift)
				if math.Abs(float64(got)-want) > 1e-6*want+1e-30 {
					t.Errorf("%s n=%d: SumExp=%g want %g", pathName(asm), n, got, want)
				}
				dst := make([]float32, n)
				got2 := ExpTo(dst, x, shift)
				if math.Abs(float64(got2)-want) > 1e-6*want+1e-30 {
					t.Errorf("%s n=%d: ExpTo sum=%g want %g", pathName(asm), n, got2, want)
				}
				for i, v := range x {
					checkExp(t, pathName(asm), v-shift, dst[i])
				}
				// In place.
				y := append([]float32(nil), x...)
				ExpTo(y, y, shift)
				for i := range y {
					if y[i] != dst[i] {
						t.Errorf("%s n=%d: in-place ExpTo differs at %d", pathName(asm), n, i)
						break
					}
				}
			}
		})
	}
}

func TestSiLUMul(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 100, -100, 1000, -1000, 88, -88, 89, -89, 1e-20, -1e-20,
		math.MaxFloat32, -math.MaxFloat32, 20, -20, 0.5, -0.5}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, asm := range paths() {
		withPath(t, asm, func() {
			check := func(gate, up, got []float32) {
				t.Helper()
				for i, g := range gate {
					gg := float64(g)
					want := gg / (1 + math.Exp(-gg)) * float64(up[i])
					if math.IsInf(gg, 0) || math.Abs(gg) > 1e30 {
						want = float64(float32(want))
					}
					w := float64(float32(want))
					if math.IsNaN(float64(got[i])) || math.IsInf(float64(got[i]), 0) != math.IsInf(w, 0) {
						t.Errorf("%s: silu(%g)·%g = %g want %g", pathName(asm), g, up[i], got[i], want)
						continue
					}
					if math.IsInf(w, 0) {
						continue
					}
					if d := math.Abs(float64(got[i]) - want); d > 1e-6*math.Abs(want)+1e-40 {
						t.Errorf("%s: silu(%g)·%g = %g want %g", pathName(asm), g, up[i], got[i], want)
					}
				}
			}
			// Wide range −100..100 (times up = 1 and random up).
			var gate []float32
			for x := -100.0; x <= 100; x += 0.01 {
				gate = append(gate, float32(x))
			}
			gate = append(gate, special...)
			up := make([]float32, len(gate))
			for i := range up {
				up[i] = 1
				if i%2 == 1 {
					up[i] = float32(rng.NormFloat64())
				}
			}
			got := append([]float32(nil), gate...)
			SiLUMul(got, up)
			check(gate, up, got)
			for _, n := range vecLens {
				g := randSlice(rng, n)
				u := randSlice(rng, n)
				for i := range g {
					g[i] *= 4
				}
				got := append([]float32(nil), g...)
				SiLUMul(got, u)
				check(g, u, got)
			}
		})
	}
}

func TestDotAxpyScaleMax(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, asm := range paths() {
		withPath(t, asm, func() {
			name := pathName(asm)
			for _, n := range vecLens {
				x := randSlice(rng, n)
				y := randSlice(rng, n)
				var want, mag float64
				for i := range x {
					want += float64(x[i]) * float64(y[i])
					mag += math.Abs(float64(x[i]) * float64(y[i]))
				}
				if got := Dot(x, y); math.Abs(float64(got)-want) > 1e-6*mag+1e-7 {
					t.Errorf("%s n=%d: Dot=%g want %g", name, n, got, want)
				}
				const alpha = -1.75
				yy := append([]float32(nil), y...)
				Axpy(alpha, x, yy)
				for i := range yy {
					if w := float32(float64(y[i]) + alpha*float64(x[i])); math.Abs(float64(yy[i]-w)) > 1e-6*(math.Abs(float64(w))+math.Abs(float64(y[i]))) {
						t.Errorf("%s n=%d: Axpy[%d]=%g want %g", name, n, i, yy[i], w)
						break
					}
				}
				xx := append([]float32(nil), x...)
				Scale(alpha, xx)
				for i := range xx {
					if xx[i] != alpha*x[i] {
						t.Errorf("%s n=%d: Scale[%d]=%g want %g", name, n, i, xx[i], alpha*x[i])
						break
					}
				}
				if n > 0 {
					wm := x[0]
					for _, v := range x {
						wm = max(wm, v)
					}
					// Put the maximum at each position class once.
					if got := Max(x); got != wm {
						t.Errorf("%s n=%d: Max=%g want %g", name, n, got, wm)
					}
					x[n-1] = 1e6
					if got := Max(x); got != 1e6 {
						t.Errorf("%s n=%d: Max with last=1e6 got %g", name, n, got)
					}
					x[0] = 2e6
					if got := Max(x); got != 2e6 {
						t.Errorf("%s n=%d: Max with first=2e6 got %g", name, n, got)
					}
					neg := []float32{-5, -3, -4}
					if got := Max(neg); got != -3 {
						t.Errorf("%s: Max(neg)=%g", name, got)
					}
				}
			}
		})
	}
}

func TestRMSNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, asm := range paths() {
		withPath(t, asm, func() {
			for _, n := range []int{1, 7, 16, 128, 256, 4096, 4099} {
				x := randSlice(rng, n)
				w := randSlice(rng, n)
				for i := range x {
					x[i] = x[i]*3 + 0.5
				}
				const eps = 1e-5
				var ss float64
				for _, v := range x {
					ss += float64(v) * float64(v)
				}
				r := 1 / math.Sqrt(ss/float64(n)+eps)
				dst := make([]float32, n)
				RMSNorm(dst, x, w, eps)
				for i := range x {
					want := float64(x[i]) * r * float64(w[i])
					if math.Abs(float64(dst[i])-want) > 1e-6*math.Abs(want)+1e-12 {
						t.Errorf("%s n=%d: RMSNorm[%d]=%g want %g", pathName(asm), n, i, dst[i], want)
						break
					}
				}
				RMSNorm(x, x, w, eps) // in place
				for i := range x {
					if x[i] != dst[i] {
						t.Errorf("%s n=%d: in-place RMSNorm differs", pathName(asm), n)
						break
					}
				}
			}
			RMSNorm(nil, nil, nil, 1e-5) // empty is a no-op
		})
	}
}

func TestVecPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Dot", func() { Dot(make([]float32, 2), make([]float32, 3)) }},
		{"Axpy", func() { Axpy(1, make([]float32, 2), make([]float32, 3)) }},
		{"SubMul64", func() { SubMul64(make([]float64, 2), 1, make([]float64, 3)) }},
		{"Max", func() { Max(nil) }},
		{"ExpTo", func() { ExpTo(make([]float32, 2), make([]float32, 3), 0) }},
		{"SiLUMul", func() { SiLUMul(make([]float32, 2), make([]float32, 3)) }},
		{"RMSNorm", func() { RMSNorm(make([]float32, 2), make([]float32, 2), make([]float32, 3), 0) }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tc.name)
				}
			}()
			tc.f()
		}()
	}
}

func TestNaNSemantics(t *testing.T) {
	nan := float32(math.NaN())
	for _, asm := range paths() {
		withPath(t, asm, func() {
			name := pathName(asm)
			for _, n := range []int{1, 5, 8, 13, 40} {
				x := make([]float32, n)
				for i := range x {
					x[i] = nan
				}
				if got := Max(x); !math.IsInf(float64(got), -1) {
					t.Errorf("%s n=%d: Max(all NaN) = %g, want -Inf", name, n, got)
				}
				x[n/2] = 3
				if got := Max(x); got != 3 {
					t.Errorf("%s n=%d: Max(NaNs and 3) = %g, want 3", name, n, got)
				}
				g := make([]float32, n)
				u := make([]float32, n)
				for i := range g {
					g[i], u[i] = 1, 1
				}
				g[n-1] = nan
				SiLUMul(g, u)
				if !math.IsNaN(float64(g[n-1])) {
					t.Errorf("%s n=%d: SiLU(NaN) = %g, want NaN", name, n, g[n-1])
				}
				if want := float32(1 / (1 + math.Exp(-1))); n > 1 && math.Abs(float64(g[0]-want)) > 1e-6 {
					t.Errorf("%s n=%d: SiLU(1) = %g, want %g", name, n, g[0], want)
				}
			}
		})
	}
}

// SubMul64 has the bits of the plain Go loop y[i] -= a*x[i] on every path (the product rounded
// before the difference), also for products that a fused multiply-add would keep exactly.
func TestSubMul64(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, p := range paths() {
		withPath(t, p, func() {
			for _, n := range append(vecLens, 1000, 1027) {
				x, y := make([]float64, n), make([]float64, n)
				for i := range x {
					x[i], y[i] = rng.NormFloat64(), rng.NormFloat64()
				}
				if n > 2 { // (1+2⁻³⁰)² − 1: the unfused result loses the 2⁻⁶⁰ term
					x[1], y[1] = 1+0x1p-30, 1
				}
				a := 1 + 0x1p-30
				want := append([]float64(nil), y...)
				for i, v := range x {
					want[i] -= a * v
				}
				SubMul64(y, a, x)
				for i := range y {
					if math.Float64bits(y[i]) != math.Float64bits(want[i]) {
						t.Fatalf("%s n=%d: y[%d] = %g, want %g", pathName(p), n, i, y[i], want[i])
					}
				}
			}
		})
	}
}
