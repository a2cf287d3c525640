package compress

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func dequantized(t *testing.T, q *Quantized) []float32 {
	t.Helper()
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, q.Rows*q.Cols)
	if err := q.Dequantize(out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGPTQBeatsRTN(t *testing.T) {
	l := newTestLayer(21, 48, 384, 768)
	for _, bits := range []int{2, 3, 4, 8} {
		for _, g := range []int{128, 0} {
			rtn, err := RTN(l.W, l.rows, l.cols, bits, g)
			if err != nil {
				t.Fatal(err)
			}
			eR := quadErr(l.W, dequantized(t, rtn), l.rows, l.cols, l.H64)
			for _, act := range []bool{false, true} {
				opt := DefaultGPTQOptions(bits)
				opt.GroupSize, opt.ActOrder = g, act
				q, err := GPTQ(l.W, l.rows, l.cols, l.H, opt)
				if err != nil {
					t.Fatal(err)
				}
				eG := quadErr(l.W, dequantized(t, q), l.rows, l.cols, l.H64)
				t.Logf("bits %d group %3d act-order %-5v: error GPTQ %.4g, RTN %.4g (ratio %.2f)", bits, g, act, eG, eR, eG/eR)
				if !(eG < eR) {
					t.Errorf("bits %d group %d act-order %v: GPTQ error %.4g not below RTN %.4g", bits, g, act, eG, eR)
				}
			}
		}
	}
}

// Independent check of the blocking, the lazy updates, the group grids
// (computed from fully updated weights, also when groups and blocks do not
// align) and act-order bookkeeping against an unblocked, eager GPTQ.
func TestGPTQMatchesEagerReference(t *testing.T) {
	l := newTestLayer(31, 12, 320, 640)
	for _, act := range []bool{false, true} {
		for _, g := range []int{0, 32, 96, 128, 256} {
			for _, bs := range []int{128, 64} {
				t.Run(fmt.Sprintf("act%v/g%d/bs%d", act, g, bs), func(t *testing.T) {
					q, err := GPTQ(l.W, l.rows, l.cols, l.H, GPTQOptions{Bits: 3, GroupSize: g, BlockSize: bs, PercDamp: 0.01, ActOrder: act})
					if err != nil {
						t.Fatal(err)
					}
					codes, deq := naiveGPTQ(t, l.W, l.rows, l.cols, l.H, 3, g, 0.01, act)
					got := dequantized(t, q)
					for i := range codes {
						if q.Codes[i] != codes[i] {
							t.Fatalf("code %d: %d, reference %d", i, q.Codes[i], codes[i])
						}
						if math.Float32bits(got[i]) != math.Float32bits(deq[i]) {
							t.Fatalf("weight %d: %g, reference %g", i, got[i], deq[i])
						}
					}
				})
			}
		}
	}
}

// With a diagonal H, U is diagonal and the compensation adds nothing across
// columns (it multiplies errors by exact zeros), so GPTQ must equal RTN on
// the same grid, bit for bit, for any grouping.
func TestGPTQDiagonalHessianEqualsRTN(t *testing.T) {
	rng := newRNG(41)
	rows, cols := 16, 300
	W := makeW(rng, rows, cols)
	H := make([]float32, cols*cols)
	for i := 0; i < cols; i++ {
		H[i*cols+i] = float32(0.1 + rng.Float64())
	}
	for _, bits := range []int{2, 4} {
		for _, g := range []int{0, 128, 64} {
			opt := DefaultGPTQOptions(bits)
			opt.GroupSize = g
			q, err := GPTQ(W, rows, cols, H, opt)
			if err != nil {
				t.Fatal(err)
			}
			r, err := RTN(W, rows, cols, bits, g)
			if err != nil {
				t.Fatal(err)
			}
			for i := range q.Codes {
				if q.Codes[i] != r.Codes[i] {
					t.Fatalf("bits %d group %d: code %d differs: GPTQ %d, RTN %d", bits, g, i, q.Codes[i], r.Codes[i])
				}
			}
			for i := range q.Scale {
				if q.Scale[i] != r.Scale[i] || q.Zero[i] != r.Zero[i] {
					t.Fatalf("bits %d group %d: grid %d differs", bits, g, i)
				}
			}
		}
	}
}

// Every dequantized value lies on its group's grid scale·(k − zero) with k
// an integer in [0, 2^bits − 1]; scales are binary16 values; RTN picks the
// nearest grid point.
func TestQuantizedValuesOnGrid(t *testing.T) {
	l := newTestLayer(51, 16, 200, 400)
	for _, bits := range []int{1, 2, 3, 4, 5, 8} {
		for _, g := range []int{0, 64} {
			for _, act := range []bool{false, true} {
				opt := DefaultGPTQOptions(bits)
				opt.GroupSize, opt.ActOrder = g, act
				gq, err := GPTQ(l.W, l.rows, l.cols, l.H, opt)
				if err != nil {
					t.Fatal(err)
				}
				rq, err := RTN(l.W, l.rows, l.cols, bits, g)
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range []*Quantized{gq, rq} {
					deq := dequantized(t, q)
					maxq := float64(int(1)<<bits - 1)
					ng := q.NumGroups()
					for r := 0; r < q.Rows; r++ {
						for j := 0; j < q.Cols; j++ {
							gi := 0
							switch {
							case q.GIdx != nil:
								gi = int(q.GIdx[j])
							case q.GroupSize > 0:
								gi = j / q.GroupSize
							}
							s, z := float64(q.Scale[r*ng+gi]), float64(q.Zero[r*ng+gi])
							if _, ok := Float16Bits(float32(s)); !ok {
								t.Fatalf("scale %g is not a binary16 value", s)
							}
							k := float64(deq[r*q.Cols+j])/s + z
							if math.Abs(k-math.Round(k)) > 1e-3 || math.Round(k) < 0 || math.Round(k) > maxq {
								t.Fatalf("bits %d: value %g at (%d,%d) is off the grid (k = %g)", bits, deq[r*q.Cols+j], r, j, k)
							}
						}
					}
				}
				// RTN: nearest grid point, within half a step (no clipping:
				// the grid covers [min, max] of each group).
				deq := dequantized(t, rq)
				ng := rq.NumGroups()
				gs := l.cols
				if g > 0 {
					gs = g
				}
				for r := 0; r < l.rows; r++ {
					for j := 0; j < l.cols; j++ {
						s := float64(rq.Scale[r*ng+j/gs])
						d := math.Abs(float64(deq[r*l.cols+j]) - float64(l.W[r*l.cols+j]))
						if d > s*(0.5+2e-3) {
							t.Fatalf("RTN bits %d: |w − q| = %g > scale/2 = %g", bits, d, s/2)
						}
					}
				}
			}
		}
	}
}

func TestActOrderGroups(t *testing.T) {
	l := newTestLayer(61, 8, 200, 400)
	opt := DefaultGPTQOptions(4)
	opt.GroupSize, opt.ActOrder = 64, true
	q, err := GPTQ(l.W, l.rows, l.cols, l.H, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.GIdx) != l.cols || q.NumGroups() != 4 {
		t.Fatalf("GIdx of %d, %d groups", len(q.GIdx), q.NumGroups())
	}
	size := make([]int, 4)
	minD := []float64{math.Inf(1), math.Inf(1), math.Inf(1), math.Inf(1)}
	maxD := make([]float64, 4)
	for j, g := range q.GIdx {
		size[g]++
		d := float64(l.H[j*l.cols+j])
		minD[g], maxD[g] = math.Min(minD[g], d), math.Max(maxD[g], d)
	}
	if size[0] != 64 || size[1] != 64 || size[2] != 64 || size[3] != 8 {
		t.Errorf("group sizes %v, want [64 64 64 8]", size)
	}
	for g := 0; g+1 < 4; g++ {
		if minD[g] < maxD[g+1] {
			t.Errorf("group %d holds diag(H) down to %g, below group %d's %g", g, minD[g], g+1, maxD[g+1])
		}
	}
	// One group: no GIdx needed.
	opt.GroupSize = 0
	q1, err := GPTQ(l.W, l.rows, l.cols, l.H, opt)
	if err != nil {
		t.Fatal(err)
	}
	if q1.GIdx != nil || q1.NumGroups() != 1 {
		t.Errorf("single group: GIdx %v, %d groups", q1.GIdx != nil, q1.NumGroups())
	}
}

func TestBitsPerWeight(t *testing.T) {
	cases := []struct {
		q    Quantized
		want float64
	}{
		{Quantized{Rows: 4, Cols: 256, Bits: 4, GroupSize: 128}, 4 + 2*20.0/256},
		{Quantized{Rows: 4, Cols: 256, Bits: 3, GroupSize: 0}, 3 + 19.0/256},
		{Quantized{Rows: 4, Cols: 200, Bits: 2, GroupSize: 128}, 2 + 2*18.0/200},
		{Quantized{Rows: 4, Cols: 256, Bits: 4, GroupSize: 128, GIdx: make([]int32, 256)}, 4 + 2*20.0/256 + 32.0/4},
	}
	for i, tc := range cases {
		if got := tc.q.BitsPerWeight(); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("case %d: %g bits per weight, want %g", i, got, tc.want)
		}
	}
}

func TestQuantizedValidate(t *testing.T) {
	good := func() *Quantized {
		return &Quantized{Rows: 2, Cols: 3, Bits: 2, GroupSize: 2,
			Codes: []uint8{0, 1, 2, 3, 0, 1},
			Scale: []float32{0.5, 0.25, 1, 2},
			Zero:  []float32{1, 0, 3, 2}}
	}
	q := good()
	dst := make([]float32, 6)
	if err := q.Dequantize(dst); err != nil {
		t.Fatal(err)
	}
	want := []float32{-0.5, 0, 0.5, 0, -3, -2}
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("Dequantize = %v, want %v", dst, want)
		}
	}
	q.GIdx = []int32{1, 0, 1}
	if err := q.Dequantize(dst); err != nil {
		t.Fatal(err)
	}
	want = []float32{0, 0, 0.5, 2, -3, -2}
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("Dequantize with GIdx = %v, want %v", dst, want)
		}
	}
	bad := []func(q *Quantized){
		func(q *Quantized) { q.Codes[2] = 4 },
		func(q *Quantized) { q.Zero[0] = 0.5 },
		func(q *Quantized) { q.Zero[0] = 4 },
		func(q *Quantized) { q.Scale[1] = 0 },
		func(q *Quantized) { q.Scale[1] = 0.1 }, // not a binary16 value
		func(q *Quantized) { q.Scale = q.Scale[:3] },
		func(q *Quantized) { q.Bits = 9 },
		func(q *Quantized) { q.GIdx = []int32{0, 2, 0} },
		func(q *Quantized) { q.GIdx = []int32{0} },
		func(q *Quantized) { q.Codes = q.Codes[:5] },
	}
	for i, f := range bad {
		q := good()
		f(q)
		if err := q.Dequantize(dst); err == nil {
			t.Errorf("bad case %d accepted", i)
		}
	}
	if err := good().Dequantize(make([]float32, 5)); err == nil {
		t.Error("short dst accepted")
	}
}

// GPTQLevels shares one factorisation of H between bit-widths: each result must have the bits of
// a separate GPTQ call, with and without act-order, groups and dead inputs; bad bit-widths are
// refused by name before any work.
func TestGPTQLevelsMatchesGPTQ(t *testing.T) {
	l := newTestLayer(51, 10, 192, 384, 7, 100)
	bits := []int{2, 3, 4, 5, 6, 8}
	for _, tc := range []struct {
		group int
		act   bool
	}{{0, false}, {64, false}, {128, false}, {64, true}, {0, true}} {
		t.Run(fmt.Sprintf("g%d/act%v", tc.group, tc.act), func(t *testing.T) {
			opt := GPTQOptions{Bits: 99, GroupSize: tc.group, BlockSize: 128, PercDamp: 0.01, ActOrder: tc.act}
			qs, err := GPTQLevels(l.W, l.rows, l.cols, l.H, bits, opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(qs) != len(bits) {
				t.Fatalf("%d results for %d bit-widths", len(qs), len(bits))
			}
			for i, b := range bits {
				opt.Bits = b
				want, err := GPTQ(l.W, l.rows, l.cols, l.H, opt)
				if err != nil {
					t.Fatal(err)
				}
				got := qs[i]
				if got.Bits != b || !slices.Equal(got.Codes, want.Codes) || !slices.Equal(got.GIdx, want.GIdx) ||
					!slices.Equal(f32bits(got.Scale), f32bits(want.Scale)) || !slices.Equal(f32bits(got.Zero), f32bits(want.Zero)) {
					t.Fatalf("%d bits: GPTQLevels differs from GPTQ", b)
				}
			}
		})
	}
	for _, tc := range []struct {
		bits []int
		want string
	}{
		{[]int{4, 9}, "compress: GPTQLevels: bits 9 outside 1..8"},
		{[]int{0}, "compress: GPTQLevels: bits 0 outside 1..8"},
	} {
		if _, err := GPTQLevels(l.W, l.rows, l.cols, l.H, tc.bits, DefaultGPTQOptions(4)); err == nil || err.Error() != tc.want {
			t.Errorf("bits %v: error %v, want %q", tc.bits, err, tc.want)
		}
	}
}

func f32bits(x []float32) []uint32 {
	out := make([]uint32, len(x))
	for i, v := range x {
		out[i] = math.Float32bits(v)
	}
	return out
}
