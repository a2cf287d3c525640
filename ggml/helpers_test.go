package ggml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestBestIndexIQ4 compares the table lookup with ggml's bisection on every float32 within
// 4096 ulps of each midpoint and level, on special values, and on random values.
func TestBestIndexIQ4(t *testing.T) {
	values := &kvaluesIQ4NL
	check := func(x float32) {
		if got, want := bestIndexIQ4(x), refBestIndexInt8(values, x); got != want {
			t.Fatalf("x = %g (%08x): index %d, ggml's %d", x, math.Float32bits(x), got, want)
		}
	}
	for _, x := range []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, -math.MaxFloat32, 1e-45, -1e-45} {
		check(x)
	}
	var centres []float32
	for j := range values {
		centres = append(centres, float32(values[j]))
		if j > 0 {
			centres = append(centres, (float32(values[j-1])+float32(values[j]))/2)
		}
	}
	for _, c := range centres {
		for _, dir := range []float32{float32(math.Inf(1)), float32(math.Inf(-1))} {
			x := c
			for range 4096 {
				check(x)
				x = math.Nextafter32(x, dir)
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1 << 20 {
		check(float32(rng.Float64()*260 - 135))
	}
}

// TestFastHelpersMatchReference: makeQkxQuants, which evaluates trials two at a time, gives
// what the straightforward transcriptions of make_qkx2_quants and make_qkx3_quants give.
func TestFastHelpersMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var b qkxBatch
	for iter := range 20000 {
		n := []int{16, 32}[iter%2]
		nmax := []int32{3, 15, 31}[iter%3]
		x := make([]float32, n)
		w := make([]float32, n)
		scale := math.Pow(10, rng.Float64()*8-6)
		shift := 0.0
		if iter%5 == 0 {
			shift = scale * (rng.Float64()*2 - 1) // one-signed blocks
		}
		for i := range x {
			x[i] = float32(rng.NormFloat64()*scale + shift)
			w[i] = float32(rng.ExpFloat64())
			switch rng.IntN(20) {
			case 0:
				x[i] = 0
			case 1:
				w[i] = 0
			case 2:
				x[i] = x[0] // ties
			}
		}
		if iter%97 == 0 {
			for i := range x {
				x[i] = x[0] // constant
			}
		}
		nstep := rng.IntN(40)
		rmin := float32(-rng.Float64())
		rdelta := float32(rng.Float64() * 0.2)
		useMad := iter%7 == 0
		L1, L2, aux := make([]uint8, n), make([]uint8, n), make([]uint8, n)
		s1, m1 := refMakeQkx2Quants(nmax, x, w, L1, aux, rmin, rdelta, nstep, useMad)
		s2, m2 := makeQkx2Quants(&b, nmax, x, w, L2, rmin, rdelta, nstep, useMad)
		if math.Float32bits(s1) != math.Float32bits(s2) || math.Float32bits(m1) != math.Float32bits(m2) || string(L1) != string(L2) {
			t.Fatalf("qkx2 case %d: (%g, %g, %v), reference (%g, %g, %v)", iter, s2, m2, L2, s1, m1, L1)
		}
		s1, m1 = refMakeQkx3Quants(nmax, x, w, L1, aux, rmin, rdelta, nstep)
		s2, m2 = makeQkx3Quants(&b, nmax, x, w, L2, rmin, rdelta, nstep)
		if math.Float32bits(s1) != math.Float32bits(s2) || math.Float32bits(m1) != math.Float32bits(m2) || string(L1) != string(L2) {
			t.Fatalf("qkx3 case %d: (%g, %g, %v), reference (%g, %g, %v)", iter, s2, m2, L2, s1, m1, L1)
		}
	}
}

// TestFastQxMatchesReference: makeQxQuants, eight candidates at a time, gives what the
// transcription of make_qx_quants gives.
func TestFastQxMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var b qkxBatch
	for iter := range 20000 {
		n := []int{16, 32}[iter%2]
		nmax := []int32{4, 8, 16, 32}[iter%4]
		x := make([]float32, n)
		w := make([]float32, n)
		scale := math.Pow(10, rng.Float64()*8-6)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * scale)
			w[i] = float32(rng.ExpFloat64())
			switch rng.IntN(20) {
			case 0:
				x[i] = 0
			case 1:
				w[i] = 0
			case 2:
				x[i] = -x[0]
			}
		}
		if iter%97 == 0 {
			for i := range x {
				x[i] = x[0]
			}
		}
		L1, L2 := make([]int8, n), make([]int8, n)
		s1 := refMakeQxQuants(nmax, x, w, L1)
		s2 := makeQxQuants(&b, nmax, x, w, L2)
		if math.Float32bits(s1) != math.Float32bits(s2) || fmt.Sprint(L1) != fmt.Sprint(L2) {
			t.Fatalf("case %d: %g %v, reference %g %v", iter, s2, L2, s1, L1)
		}
	}
}
