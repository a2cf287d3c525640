package compress

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// testLayer is a random linear layer with calibration inputs whose features
// are correlated (shared latent factors) and unevenly scaled (a few outlier
// features), as in LLM activations.
type testLayer struct {
	rows, cols, n int
	W             []float32
	X             []float32 // n×cols
	H             []float32 // 2XᵀX/n rounded to float32
	H64           []float64 // 2XᵀX/n in float64
}

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// makeX draws n×cols correlated inputs; columns listed in dead are all zero.
func makeX(rng *rand.Rand, n, cols int, dead ...int) []float32 {
	const factors = 6
	load := make([]float64, factors*cols)
	for i := range load {
		load[i] = rng.NormFloat64()
	}
	scale := make([]float64, cols)
	for j := range scale {
		scale[j] = math.Exp(0.5 * rng.NormFloat64())
		if rng.IntN(50) == 0 {
			scale[j] *= 8 // outlier feature
		}
	}
	X := make([]float32, n*cols)
	f := make([]float64, factors)
	for t := 0; t < n; t++ {
		for k := range f {
			f[k] = rng.NormFloat64()
		}
		for j := 0; j < cols; j++ {
			v := rng.NormFloat64()
			for k := range f {
				v += 0.6 * f[k] * load[k*cols+j]
			}
			X[t*cols+j] = float32(scale[j] * v)
		}
	}
	for _, j := range dead {
		for t := 0; t < n; t++ {
			X[t*cols+j] = 0
		}
	}
	return X
}

func makeW(rng *rand.Rand, rows, cols int) []float32 {
	W := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		s := 0.02 * math.Exp(0.3*rng.NormFloat64())
		for j := 0; j < cols; j++ {
			W[r*cols+j] = float32(s * rng.NormFloat64())
		}
	}
	return W
}

// exactHessian is 2XᵀX/n in float64, straight from the definition.
func exactHessian(X []float32, n, cols int) []float64 {
	H := make([]float64, cols*cols)
	for t := 0; t < n; t++ {
		x := X[t*cols : (t+1)*cols]
		for i, xi := range x {
			if xi == 0 {
				continue
			}
			for j, xj := range x {
				H[i*cols+j] += float64(xi) * float64(xj)
			}
		}
	}
	for i := range H {
		H[i] *= 2 / float64(n)
	}
	return H
}

func newTestLayer(seed uint64, rows, cols, n int, dead ...int) *testLayer {
	rng := newRNG(seed)
	l := &testLayer{rows: rows, cols: cols, n: n}
	l.X = makeX(rng, n, cols, dead...)
	l.W = makeW(rng, rows, cols)
	l.H64 = exactHessian(l.X, n, cols)
	l.H = make([]float32, cols*cols)
	for i, v := range l.H64 {
		l.H[i] = float32(v)
	}
	return l
}

// quadErr is tr(ΔW H ΔWᵀ) by direct summation in float64.
func quadErr(W, Wc []float32, rows, cols int, H []float64) float64 {
	var s float64
	d := make([]float64, cols)
	for r := 0; r < rows; r++ {
		for j := range d {
			d[j] = float64(Wc[r*cols+j]) - float64(W[r*cols+j])
		}
		for i, di := range d {
			if di == 0 {
				continue
			}
			var t float64
			for j, dj := range d {
				t += H[i*cols+j] * dj
			}
			s += di * t
		}
	}
	return s
}

func countZeros(x []float32) int {
	n := 0
	for _, v := range x {
		if v == 0 {
			n++
		}
	}
	return n
}

func hasNonFinite(x []float32) bool { return firstNonFinite(x) >= 0 }

// dampedHessian prepares H like the reference (test-side, independent):
// dead inputs get H_ii = 1, then H += percdamp·mean(diag)·I.
func dampedHessian(H []float32, n int, percdamp float64) []float64 {
	h := make([]float64, n*n)
	for i, v := range H {
		h[i] = float64(v)
	}
	for i := 0; i < n; i++ {
		if h[i*n+i] == 0 {
			h[i*n+i] = 1
		}
	}
	var mean float64
	for i := 0; i < n; i++ {
		mean += h[i*n+i]
	}
	mean /= float64(n)
	for i := 0; i < n; i++ {
		h[i*n+i] += percdamp * mean
	}
	return h
}

// invert returns A⁻¹ by Gauss–Jordan elimination with partial pivoting.
func invert(A []float64, n int) []float64 {
	a := slices.Clone(A)
	inv := make([]float64, n*n)
	for i := 0; i < n; i++ {
		inv[i*n+i] = 1
	}
	for c := 0; c < n; c++ {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(a[r*n+c]) > math.Abs(a[p*n+c]) {
				p = r
			}
		}
		for j := 0; j < n; j++ {
			a[c*n+j], a[p*n+j] = a[p*n+j], a[c*n+j]
			inv[c*n+j], inv[p*n+j] = inv[p*n+j], inv[c*n+j]
		}
		d := a[c*n+c]
		for j := 0; j < n; j++ {
			a[c*n+j] /= d
			inv[c*n+j] /= d
		}
		for r := 0; r < n; r++ {
			if r == c || a[r*n+c] == 0 {
				continue
			}
			m := a[r*n+c]
			for j := 0; j < n; j++ {
				a[r*n+j] -= m * a[c*n+j]
				inv[r*n+j] -= m * inv[c*n+j]
			}
		}
	}
	return inv
}

// upperCholInv returns U upper triangular with UᵀU = A⁻¹ (textbook loops).
func upperCholInv(A []float64, n int) []float64 {
	b := invert(A, n)
	for i := 0; i < n; i++ { // symmetrise rounding noise
		for j := i + 1; j < n; j++ {
			m := (b[i*n+j] + b[j*n+i]) / 2
			b[i*n+j], b[j*n+i] = m, m
		}
	}
	u := make([]float64, n*n)
	for i := 0; i < n; i++ {
		s := b[i*n+i]
		for k := 0; k < i; k++ {
			s -= u[k*n+i] * u[k*n+i]
		}
		u[i*n+i] = math.Sqrt(s)
		for j := i + 1; j < n; j++ {
			t := b[i*n+j]
			for k := 0; k < i; k++ {
				t -= u[k*n+i] * u[k*n+j]
			}
			u[i*n+j] = t / u[i*n+i]
		}
	}
	return u
}

// naiveSparseGPT is an unblocked, eager SparseGPT for layers without dead
// inputs: the mask of each block of bs columns is chosen at the block's
// start (least w²/U_cc², exact cumulative-rounded counts), and every pruned
// weight's error updates all later columns of its row immediately.
func naiveSparseGPT(t *testing.T, W []float32, rows, cols int, H []float32, s float64, bs int, percdamp float64) []float32 {
	t.Helper()
	u := upperCholInv(dampedHessian(H, cols, percdamp), cols)
	w := make([]float64, len(W))
	for i, v := range W {
		w[i] = float64(v)
	}
	N := rows * cols
	Z := math.Floor(s*float64(N) + 0.5)
	prev := 0
	for i1 := 0; i1 < cols; i1 += bs {
		i2 := min(i1+bs, cols)
		upto := int(math.Floor(Z*float64(rows*i2)/float64(N) + 0.5))
		k := upto - prev
		prev = upto
		type cand struct {
			sal float64
			pos int
		}
		var cs []cand
		for r := 0; r < rows; r++ {
			for c := i1; c < i2; c++ {
				v := w[r*cols+c] / u[c*cols+c]
				cs = append(cs, cand{v * v, r*(i2-i1) + c - i1})
			}
		}
		slices.SortFunc(cs, func(a, b cand) int {
			if a.sal != b.sal {
				if a.sal < b.sal {
					return -1
				}
				return 1
			}
			return a.pos - b.pos
		})
		mask := make([]bool, rows*(i2-i1))
		for _, c := range cs[:k] {
			mask[c.pos] = true
		}
		for c := i1; c < i2; c++ {
			for r := 0; r < rows; r++ {
				if !mask[r*(i2-i1)+c-i1] {
					continue
				}
				e := w[r*cols+c] / u[c*cols+c]
				w[r*cols+c] = 0
				for j := c + 1; j < cols; j++ {
					w[r*cols+j] -= e * u[c*cols+j]
				}
			}
		}
	}
	out := make([]float32, len(w))
	for i, v := range w {
		out[i] = float32(v)
	}
	return out
}

// naiveGPTQ is an unblocked, eager GPTQ: columns in order (or by decreasing
// diag H), each group's min–max grid computed from the current (fully
// updated) weights at its first column, every error applied to all later
// columns immediately. It returns codes and dequantized weights in the
// original column order.
func naiveGPTQ(t *testing.T, W []float32, rows, cols int, H []float32, bits, g int, percdamp float64, actOrder bool) ([]uint8, []float32) {
	t.Helper()
	if g == 0 || g > cols {
		g = cols
	}
	hd := dampedHessian(H, cols, percdamp)
	perm := make([]int, cols)
	for i := range perm {
		perm[i] = i
	}
	if actOrder {
		slices.SortStableFunc(perm, func(a, b int) int {
			// dampedHessian adds the same damping to every diagonal entry
			da, db := hd[a*cols+a], hd[b*cols+b]
			if da > db {
				return -1
			}
			if da < db {
				return 1
			}
			return 0
		})
	}
	hp := make([]float64, cols*cols)
	for i, pi := range perm {
		for j, pj := range perm {
			hp[i*cols+j] = hd[pi*cols+pj]
		}
	}
	u := upperCholInv(hp, cols)
	maxq := float64(int(1)<<bits - 1)
	codes := make([]uint8, rows*cols)
	deq := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		w := make([]float64, cols)
		for k, c := range perm {
			w[k] = float64(W[r*cols+c])
		}
		var scale float32
		var zero float64
		for k := 0; k < cols; k++ {
			if k%g == 0 {
				lo, hi := 0.0, 0.0
				for _, v := range w[k:min(k+g, cols)] {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
				if lo == 0 && hi == 0 {
					lo, hi = -1, 1
				}
				scale = float32(ceilFloat16((hi - lo) / maxq))
				zero = math.Min(math.Max(math.RoundToEven(-lo/float64(scale)), 0), maxq)
			}
			c := math.Min(math.Max(math.RoundToEven(w[k]/float64(scale))+zero, 0), maxq)
			q := scale * float32(c-zero)
			codes[r*cols+perm[k]] = uint8(c)
			deq[r*cols+perm[k]] = q
			e := (w[k] - float64(q)) / u[k*cols+k]
			for j := k + 1; j < cols; j++ {
				w[j] -= e * u[k*cols+j]
			}
		}
	}
	return codes, deq
}
