package compress

import (
	"fmt"
	"math"
	"testing"
)

func TestSparseGPTExactCounts(t *testing.T) {
	levels := []float64{0, 0.1, 0.25, 1.0 / 3, 0.5, 0.7, 0.9, 0.999, 1}
	cases := []struct {
		name       string
		rows, cols int
		bs         int
		dead       []int
	}{
		{"one-block", 16, 96, 128, nil},
		{"blocks-divide", 24, 256, 64, nil},
		{"ragged-last-block", 33, 200, 64, nil},
		{"tiny-blocks", 7, 50, 3, nil},
		{"dead-inputs", 24, 200, 64, []int{0, 5, 64, 65, 199}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLayer(11, tc.rows, tc.cols, 2*tc.cols, tc.dead...)
			out, err := SparseGPT(l.W, l.rows, l.cols, l.H, levels, SparseGPTOptions{BlockSize: tc.bs, PercDamp: 0.01})
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(levels) {
				t.Fatalf("%d levels returned, want %d", len(out), len(levels))
			}
			for i, s := range levels {
				want := int(math.Floor(s*float64(l.rows*l.cols) + 0.5))
				if got := countZeros(out[i]); got != want {
					t.Errorf("sparsity %.3f: %d zeros, want exactly %d", s, got, want)
				}
				if hasNonFinite(out[i]) {
					t.Errorf("sparsity %.3f: non-finite output", s)
				}
			}
		})
	}
}

// Independent check of the blocking and the lazy updates: an unblocked,
// eager implementation with a textbook inverse and Cholesky must give the
// same masks and (up to rounding) the same values.
func TestSparseGPTMatchesEagerReference(t *testing.T) {
	for _, bs := range []int{128, 64, 37} {
		for _, s := range []float64{0.3, 0.6} {
			t.Run(fmt.Sprintf("bs%d/s%.1f", bs, s), func(t *testing.T) {
				l := newTestLayer(3, 20, 200, 400)
				out, err := SparseGPT(l.W, l.rows, l.cols, l.H, []float64{s}, SparseGPTOptions{BlockSize: bs, PercDamp: 0.01})
				if err != nil {
					t.Fatal(err)
				}
				ref := naiveSparseGPT(t, l.W, l.rows, l.cols, l.H, s, bs, 0.01)
				var maxDiff, maxAbs float64
				for i := range ref {
					if (ref[i] == 0) != (out[0][i] == 0) {
						t.Fatalf("mask differs at %d: got %g, reference %g", i, out[0][i], ref[i])
					}
					maxDiff = math.Max(maxDiff, math.Abs(float64(ref[i]-out[0][i])))
					maxAbs = math.Max(maxAbs, math.Abs(float64(ref[i])))
				}
				if maxDiff > 1e-5*maxAbs {
					t.Errorf("max |difference| %g vs max |w| %g", maxDiff, maxAbs)
				}
			})
		}
	}
}

// Brute-force check of the OBS update on one row of 8 weights with one
// weight pruned. With the pruned weight at column p, SparseGPT keeps the
// columns before p, zeroes p and must choose the later columns F as the
// least-squares optimum min (w'−w)·H·(w'−w)ᵀ given w'_p = 0 and the earlier
// columns fixed: δ_F = −H_FF⁻¹·H_Fp·δ_p with δ_p = −w_p (H damped as the
// algorithm does). For p = 0 this is the classic OBS formula
// w' = w − w_p/[H⁻¹]_pp·H⁻¹[:, p], checked as well.
func TestSparseGPTOBSBruteForce(t *testing.T) {
	const n = 8
	cases := []struct {
		p, bs int
	}{{0, 128}, {3, 128}, {7, 128}, {3, 2}, {3, 1}}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("p%d/bs%d", tc.p, tc.bs), func(t *testing.T) {
			rng := newRNG(uint64(100 + tc.p))
			X := makeX(rng, 40, n)
			H64 := exactHessian(X, 40, n)
			H := make([]float32, n*n)
			for i, v := range H64 {
				H[i] = float32(v)
			}
			w := make([]float32, n)
			for j := range w {
				w[j] = float32(1 + rng.Float64())
				if rng.IntN(2) == 0 {
					w[j] = -w[j]
				}
			}
			w[tc.p] = 0.001 // least saliency by far
			out, err := SparseGPT(w, 1, n, H, []float64{1.0 / n}, SparseGPTOptions{BlockSize: tc.bs, PercDamp: 0.01})
			if err != nil {
				t.Fatal(err)
			}
			got := out[0]

			hd := dampedHessian(H, n, 0.01) // what the algorithm minimises
			want := make([]float64, n)
			for j := range want {
				want[j] = float64(w[j])
			}
			want[tc.p] = 0
			var F []int
			for j := tc.p + 1; j < n; j++ {
				F = append(F, j)
			}
			if len(F) > 0 {
				hff := make([]float64, len(F)*len(F))
				for a, i := range F {
					for b, j := range F {
						hff[a*len(F)+b] = hd[i*n+j]
					}
				}
				inv := invert(hff, len(F))
				dp := -float64(w[tc.p])
				for a, i := range F {
					var d float64
					for b, j := range F {
						d -= inv[a*len(F)+b] * hd[j*n+tc.p] * dp
					}
					want[i] += d
				}
			}
			if tc.p == 0 {
				hinv := invert(hd, n)
				for j := range want {
					obs := float64(w[j]) - float64(w[0])/hinv[0]*hinv[j*n]
					if math.Abs(obs-want[j]) > 1e-9 {
						t.Fatalf("test's two closed forms disagree at %d: %g vs %g", j, obs, want[j])
					}
				}
			}
			for j := range want {
				if math.Abs(float64(got[j])-want[j]) > 2e-6*(1+math.Abs(want[j])) {
					t.Errorf("w'[%d] = %.7g, least-squares optimum %.7g", j, got[j], want[j])
				}
			}
			if got[tc.p] != 0 {
				t.Errorf("pruned weight = %g", got[tc.p])
			}
		})
	}
}

func TestSparseGPTBeatsMagnitudeAndWanda(t *testing.T) {
	l := newTestLayer(5, 64, 256, 512)
	var levels []float64
	for s := 1; s <= 9; s++ {
		levels = append(levels, float64(s)/10)
	}
	out, err := SparseGPT(l.W, l.rows, l.cols, l.H, levels, DefaultSparseGPTOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range levels {
		mag, err := Magnitude(l.W, l.rows, l.cols, s)
		if err != nil {
			t.Fatal(err)
		}
		wan, err := Wanda(l.W, l.rows, l.cols, l.H, s)
		if err != nil {
			t.Fatal(err)
		}
		eS := quadErr(l.W, out[i], l.rows, l.cols, l.H64)
		eM := quadErr(l.W, mag, l.rows, l.cols, l.H64)
		eW := quadErr(l.W, wan, l.rows, l.cols, l.H64)
		t.Logf("sparsity %.1f: error SparseGPT %.4g, Wanda %.4g, magnitude %.4g", s, eS, eW, eM)
		if !(eS < eW && eS < eM) {
			t.Errorf("sparsity %.1f: SparseGPT error %.4g not below Wanda %.4g and magnitude %.4g", s, eS, eW, eM)
		}
	}
}

func TestDeadInputs(t *testing.T) {
	dead := []int{2, 40, 41, 130}
	l := newTestLayer(9, 24, 160, 320, dead...)
	deadFrac := float64(len(dead)) / float64(l.cols)
	isDead := func(c int) bool {
		for _, d := range dead {
			if c == d {
				return true
			}
		}
		return false
	}
	for _, c := range dead {
		if l.H[c*l.cols+c] != 0 {
			t.Fatalf("test setup: H[%d,%d] = %g", c, c, l.H[c*l.cols+c])
		}
	}
	levels := []float64{0, deadFrac / 2, deadFrac, 0.5}
	out, err := SparseGPT(l.W, l.rows, l.cols, l.H, levels, DefaultSparseGPTOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range levels {
		if hasNonFinite(out[i]) {
			t.Fatalf("sparsity %g: non-finite output", s)
		}
		want := int(math.Floor(s*float64(l.rows*l.cols) + 0.5))
		if got := countZeros(out[i]); got != want {
			t.Errorf("sparsity %g: %d zeros, want %d", s, got, want)
		}
	}
	// Sparsity 0 returns W bit for bit.
	for i := range l.W {
		if math.Float32bits(out[0][i]) != math.Float32bits(l.W[i]) {
			t.Fatalf("sparsity 0 changed W[%d]: %g → %g", i, l.W[i], out[0][i])
		}
	}
	// Below the dead fraction only dead-input weights are zeroed; live
	// weights are untouched.
	for r := 0; r < l.rows; r++ {
		for c := 0; c < l.cols; c++ {
			v := out[1][r*l.cols+c]
			if !isDead(c) && v != l.W[r*l.cols+c] {
				t.Fatalf("sparsity %g changed live weight (%d,%d)", levels[1], r, c)
			}
		}
	}
	// At or above it, dead-input columns are zero.
	for _, o := range out[2:] {
		for r := 0; r < l.rows; r++ {
			for _, c := range dead {
				if o[r*l.cols+c] != 0 {
					t.Fatalf("dead input %d kept weight %g in row %d", c, o[r*l.cols+c], r)
				}
			}
		}
	}

	q, err := GPTQ(l.W, l.rows, l.cols, l.H, DefaultGPTQOptions(3))
	if err != nil {
		t.Fatal(err)
	}
	deq := make([]float32, len(l.W))
	if err := q.Dequantize(deq); err != nil {
		t.Fatal(err)
	}
	if hasNonFinite(deq) {
		t.Fatal("GPTQ: non-finite output")
	}
	for r := 0; r < l.rows; r++ {
		for _, c := range dead {
			if deq[r*l.cols+c] != 0 {
				t.Fatalf("GPTQ: dead input %d dequantizes to %g in row %d", c, deq[r*l.cols+c], r)
			}
		}
	}
	wan, err := Wanda(l.W, l.rows, l.cols, l.H, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < l.rows; r++ {
		for _, c := range dead {
			if wan[r*l.cols+c] != 0 {
				t.Fatalf("Wanda: dead input %d kept in row %d", c, r)
			}
		}
	}
}
