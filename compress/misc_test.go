package compress

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"testing"
)

func TestSelectSmallest(t *testing.T) {
	rng := newRNG(1)
	for _, n := range []int{0, 1, 2, 3, 5, 17, 64, 257, 1000} {
		for _, ties := range []int{0, 3} { // 0: continuous keys; 3: only 3 distinct keys
			keys := make([]float64, n)
			for i := range keys {
				if ties > 0 {
					keys[i] = float64(rng.IntN(ties))
				} else {
					keys[i] = rng.NormFloat64()
				}
			}
			order := make([]int32, n)
			for i := range order {
				order[i] = int32(i)
			}
			slices.SortStableFunc(order, func(a, b int32) int {
				switch {
				case keys[a] < keys[b]:
					return -1
				case keys[a] > keys[b]:
					return 1
				}
				return 0
			})
			for _, k := range []int{0, 1, n / 3, n / 2, n - 1, n} {
				if k < 0 || k > n {
					continue
				}
				idx := make([]int32, n)
				for i := range idx {
					idx[i] = int32(n - 1 - i) // scrambled start
				}
				selectSmallest(keys, idx, k)
				got := slices.Clone(idx[:k])
				slices.Sort(got)
				want := slices.Clone(order[:k])
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("n %d ties %d k %d: selected %v, want %v", n, ties, k, got, want)
				}
				rest := slices.Clone(idx)
				slices.Sort(rest)
				for i := range rest {
					if rest[i] != int32(i) {
						t.Fatalf("n %d k %d: idx is not a permutation", n, k)
					}
				}
			}
		}
	}
}

func TestCumShare(t *testing.T) {
	for total := 0; total <= 40; total += 7 {
		for whole := 1; whole <= 30; whole += 3 {
			sum := 0
			prev := 0
			for part := 0; part <= whole; part++ {
				got := cumShare(total, part, whole)
				r := new(big.Rat).SetFrac64(int64(2*total*part+whole), int64(2*whole))
				want := new(big.Int).Quo(r.Num(), r.Denom()).Int64() // floor, all positive
				if int64(got) != want {
					t.Fatalf("cumShare(%d,%d,%d) = %d, want %d", total, part, whole, got, want)
				}
				sum += got - prev
				prev = got
			}
			if sum != total {
				t.Fatalf("pieces add to %d, want %d", sum, total)
			}
		}
	}
	// Large values do not overflow.
	if got := cumShare(1<<40, 1<<39, 1<<41); got != 1<<38 {
		t.Fatalf("large cumShare = %d", got)
	}
}

func TestFloat16(t *testing.T) {
	known := []struct {
		f    float32
		bits uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {0.5, 0x3800},
		{1.0 / (1 << 14), 0x0400}, {1.0 / (1 << 24), 0x0001}, {1023.0 / (1 << 24), 0x03ff},
		{float32(math.Inf(1)), 0x7c00}, {0, 0}, {float32(math.Copysign(0, -1)), 0x8000},
		{0.333251953125, 0x3555},
	}
	for _, k := range known {
		b, ok := Float16Bits(k.f)
		if !ok || b != k.bits {
			t.Errorf("Float16Bits(%g) = %#04x, %v; want %#04x", k.f, b, ok, k.bits)
		}
		if v := Float16Value(k.bits); math.Float32bits(v) != math.Float32bits(k.f) {
			t.Errorf("Float16Value(%#04x) = %g, want %g", k.bits, v, k.f)
		}
	}
	for _, f := range []float32{0.1, 65520, 1.0 / (1 << 25), 1 + 1.0/2048, float32(math.NaN())} {
		if _, ok := Float16Bits(f); ok {
			t.Errorf("Float16Bits(%g) claims exact", f)
		}
	}
	// Every non-NaN encoding round-trips.
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue
		}
		v := Float16Value(uint16(h))
		b, ok := Float16Bits(v)
		if !ok || b != uint16(h) {
			t.Fatalf("%#04x → %g → %#04x, %v", h, v, b, ok)
		}
	}
	// ceilFloat16 gives the least binary16 value ≥ x.
	rng := newRNG(2)
	for i := 0; i < 20000; i++ {
		x := math.Exp(rng.Float64()*40 - 30)
		r := ceilFloat16(x)
		b, ok := Float16Bits(float32(r))
		if !ok || float64(float32(r)) != r {
			t.Fatalf("ceilFloat16(%g) = %g is not a binary16 value", x, r)
		}
		if x <= 65504 && x >= 1.0/(1<<24) {
			if r < x {
				t.Fatalf("ceilFloat16(%g) = %g < x", x, r)
			}
			if below := float64(Float16Value(b - 1)); b > 1 && below >= x {
				t.Fatalf("ceilFloat16(%g) = %g, but %g is closer", x, r, below)
			}
		}
	}
	if ceilFloat16(1e-30) != 1.0/(1<<24) || ceilFloat16(1e9) != 65504 {
		t.Error("ceilFloat16 floor/ceiling")
	}
}

func TestMagnitude(t *testing.T) {
	rng := newRNG(3)
	rows, cols := 13, 37
	W := makeW(rng, rows, cols)
	W[5], W[77] = 0, float32(math.Copysign(0, -1))
	for _, s := range []float64{0, 0.01, 0.3, 0.5, 0.77, 1} {
		out, err := Magnitude(W, rows, cols, s)
		if err != nil {
			t.Fatal(err)
		}
		want := int(math.Floor(s*float64(rows*cols) + 0.5))
		if got := countZeros(out); got != max(want, 2) {
			t.Errorf("sparsity %g: %d zeros, want %d", s, got, max(want, 2))
		}
		// Brute force: every pruned |w| ≤ every kept |w|, kept ones unchanged.
		maxPruned, minKept := 0.0, math.Inf(1)
		pruned := 0
		for i := range W {
			a := math.Abs(float64(W[i]))
			if out[i] == 0 && W[i] != 0 {
				maxPruned = math.Max(maxPruned, a)
				pruned++
			} else if out[i] != 0 {
				if out[i] != W[i] {
					t.Fatal("kept weight changed")
				}
				minKept = math.Min(minKept, a)
			}
		}
		if maxPruned > minKept {
			t.Errorf("sparsity %g: pruned |w| %g > kept |w| %g", s, maxPruned, minKept)
		}
	}
}

func TestWanda(t *testing.T) {
	l := newTestLayer(4, 9, 50, 100, 7)
	for _, s := range []float64{0.1, 0.33, 0.5, 0.9} {
		out, err := Wanda(l.W, l.rows, l.cols, l.H, s)
		if err != nil {
			t.Fatal(err)
		}
		want := int(math.Floor(s*float64(l.rows*l.cols) + 0.5))
		if got := countZeros(out); got != want {
			t.Errorf("sparsity %g: %d zeros, want %d", s, got, want)
		}
		for r := 0; r < l.rows; r++ {
			z := countZeros(out[r*l.cols : (r+1)*l.cols])
			lo := int(math.Floor(s * float64(l.cols)))
			if z < lo || z > lo+1 {
				t.Errorf("sparsity %g row %d: %d zeros, want %d or %d", s, r, z, lo, lo+1)
			}
			// Brute force within the row with the true ‖x_j‖ from X.
			maxPruned, minKept := 0.0, math.Inf(1)
			for j := 0; j < l.cols; j++ {
				var nx float64
				for k := 0; k < l.n; k++ {
					x := float64(l.X[k*l.cols+j])
					nx += x * x
				}
				score := math.Abs(float64(l.W[r*l.cols+j])) * math.Sqrt(nx)
				if out[r*l.cols+j] == 0 {
					maxPruned = math.Max(maxPruned, score)
				} else {
					minKept = math.Min(minKept, score)
				}
			}
			if maxPruned > minKept*(1+1e-5) {
				t.Errorf("sparsity %g row %d: pruned score %g > kept %g", s, r, maxPruned, minKept)
			}
		}
	}
}

func TestHessianMatchesDefinition(t *testing.T) {
	rng := newRNG(6)
	cols := 150
	X := makeX(rng, 300, cols, 4)
	h, err := NewHessian(cols)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for _, rows := range []int{7, 0, 130, 1, 100, 62} {
		if err := h.Add(X[off*cols:(off+rows)*cols], rows); err != nil {
			t.Fatal(err)
		}
		off += rows
	}
	if h.N != 300 || off != 300 {
		t.Fatalf("N = %d", h.N)
	}
	want := exactHessian(X, 300, cols)
	var maxDiff, maxAbs float64
	for i := 0; i < cols; i++ {
		for j := 0; j < cols; j++ {
			if h.H[i*cols+j] != h.H[j*cols+i] {
				t.Fatalf("H not symmetric at (%d,%d)", i, j)
			}
			maxDiff = math.Max(maxDiff, math.Abs(float64(h.H[i*cols+j])-want[i*cols+j]))
			maxAbs = math.Max(maxAbs, math.Abs(want[i*cols+j]))
		}
	}
	if maxDiff > 1e-5*maxAbs {
		t.Errorf("max |H − 2XᵀX/N| = %g (max |H| %g)", maxDiff, maxAbs)
	}
	if h.H[4*cols+4] != 0 {
		t.Errorf("dead column has H_ii = %g", h.H[4*cols+4])
	}
	if err := h.Add(X[:10], 1); err == nil {
		t.Error("wrong length accepted")
	}
	bad := make([]float32, cols)
	bad[3] = float32(math.NaN())
	if err := h.Add(bad, 1); err == nil {
		t.Error("NaN accepted")
	}
	if _, err := NewHessian(0); err == nil {
		t.Error("NewHessian(0) accepted")
	}
	var zero Hessian
	if err := zero.Add(X[:cols], 1); err == nil {
		t.Error("uninitialised Hessian accepted")
	}
}

func TestLayerError(t *testing.T) {
	l := newTestLayer(8, 10, 60, 200)
	rng := newRNG(9)
	Wc := make([]float32, len(l.W))
	for i, v := range l.W {
		Wc[i] = v + float32(0.003*rng.NormFloat64())
	}
	abs, norm, err := LayerError(l.W, Wc, l.rows, l.cols, l.H)
	if err != nil {
		t.Fatal(err)
	}
	// (2/N)·‖X·ΔWᵀ‖² and (2/N)·‖X·Wᵀ‖² straight from X.
	var num, den float64
	for k := 0; k < l.n; k++ {
		for r := 0; r < l.rows; r++ {
			var yd, y float64
			for j := 0; j < l.cols; j++ {
				x := float64(l.X[k*l.cols+j])
				yd += x * (float64(Wc[r*l.cols+j]) - float64(l.W[r*l.cols+j]))
				y += x * float64(l.W[r*l.cols+j])
			}
			num += yd * yd
			den += y * y
		}
	}
	num *= 2 / float64(l.n)
	den *= 2 / float64(l.n)
	if math.Abs(abs-num) > 1e-5*num || math.Abs(norm-num/den) > 1e-5*num/den {
		t.Errorf("LayerError = %g, %g; want %g, %g", abs, norm, num, num/den)
	}
	if a, n, err := LayerError(l.W, l.W, l.rows, l.cols, l.H); err != nil || a != 0 || n != 0 {
		t.Errorf("identical layers: %g %g %v", a, n, err)
	}
	zero := make([]float32, len(l.W))
	if _, n, err := LayerError(zero, l.W, l.rows, l.cols, l.H); err != nil || !math.IsInf(n, 1) {
		t.Errorf("zero reference: normalised %g, %v", n, err)
	}
}

func TestPackCodes(t *testing.T) {
	got, err := PackCodes([]uint8{1, 2, 3}, 3)
	if err != nil || !slices.Equal(got, []byte{0b11_010_001, 0b0}) {
		t.Fatalf("PackCodes known value = %08b, %v", got, err)
	}
	got, _ = PackCodes([]uint8{0xa, 0x5, 0xf}, 4)
	if !slices.Equal(got, []byte{0x5a, 0x0f}) {
		t.Fatalf("4-bit packing = %x", got)
	}
	rng := newRNG(10)
	for bits := 1; bits <= 8; bits++ {
		for n := 0; n <= 67; n++ {
			codes := make([]uint8, n)
			for i := range codes {
				codes[i] = uint8(rng.IntN(1 << bits))
			}
			if n > 0 {
				codes[n-1] = uint8(1<<bits - 1) // the top code, at the padded end
			}
			p, err := PackCodes(codes, bits)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != (n*bits+7)/8 || len(p) != PackedCodesLen(n, bits) {
				t.Fatalf("bits %d n %d: %d bytes", bits, n, len(p))
			}
			back := make([]uint8, n)
			if err := UnpackCodes(back, p, bits); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(back, codes) {
				t.Fatalf("bits %d n %d: round trip %v → %v", bits, n, codes, back)
			}
		}
	}
	if _, err := PackCodes([]uint8{4}, 2); err == nil {
		t.Error("oversized code accepted")
	}
	for _, b := range []int{0, 9} {
		if _, err := PackCodes(nil, b); err == nil {
			t.Errorf("bits %d accepted", b)
		}
		if err := UnpackCodes(nil, nil, b); err == nil {
			t.Errorf("unpack bits %d accepted", b)
		}
	}
	if err := UnpackCodes(make([]uint8, 3), []byte{0}, 3); err == nil {
		t.Error("short packed accepted")
	}
	if err := UnpackCodes(make([]uint8, 3), []byte{0, 0x80}, 3); err == nil {
		t.Error("non-zero padding accepted")
	}
}

func TestPackSparse(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1.5, float32(math.Inf(-1)),
		math.Float32frombits(0x7fc00123), math.Float32frombits(1), 0, 0, 3}
	rng := newRNG(12)
	for n := 0; n <= 40; n++ {
		W := make([]float32, n)
		for i := range W {
			if rng.IntN(3) == 0 {
				W[i] = special[rng.IntN(len(special))]
			} else if rng.IntN(2) == 0 {
				W[i] = float32(rng.NormFloat64())
			}
		}
		mask, vals := PackSparse(W)
		if len(mask) != (n+7)/8 {
			t.Fatalf("mask of %d bytes for %d entries", len(mask), n)
		}
		nz := 0
		for _, v := range W {
			if math.Float32bits(v) != 0 {
				nz++
			}
		}
		if len(vals) != nz {
			t.Fatalf("%d values for %d stored entries", len(vals), nz)
		}
		back := make([]float32, n)
		for i := range back {
			back[i] = 7 // must be overwritten
		}
		if err := UnpackSparse(back, mask, vals); err != nil {
			t.Fatal(err)
		}
		for i := range W {
			if math.Float32bits(back[i]) != math.Float32bits(W[i]) {
				t.Fatalf("n %d: entry %d: %08x → %08x", n, i, math.Float32bits(W[i]), math.Float32bits(back[i]))
			}
		}
	}
	if err := UnpackSparse(make([]float32, 3), []byte{0b11}, []float32{1}); err == nil {
		t.Error("count mismatch accepted")
	}
	if err := UnpackSparse(make([]float32, 3), []byte{0b1000}, []float32{1}); err == nil {
		t.Error("padding bit accepted")
	}
	if err := UnpackSparse(make([]float32, 9), []byte{0}, nil); err == nil {
		t.Error("short mask accepted")
	}
}

func TestBadInputs(t *testing.T) {
	l := newTestLayer(13, 4, 8, 32)
	nan := slices.Clone(l.W)
	nan[3] = float32(math.NaN())
	hnan := slices.Clone(l.H)
	hnan[9] = float32(math.Inf(1))
	hneg := slices.Clone(l.H)
	hneg[0] = -1
	// Indefinite H with a positive diagonal: [[1, 2], [2, 1]] blocks.
	hind := make([]float32, 64)
	for i := 0; i < 8; i++ {
		hind[i*8+i] = 1
		hind[i*8+(i^1)] = 2
	}
	sg := func(W []float32, rows, cols int, H []float32, s []float64, o SparseGPTOptions) error {
		_, err := SparseGPT(W, rows, cols, H, s, o)
		return err
	}
	gq := func(W []float32, rows, cols int, H []float32, o GPTQOptions) error {
		_, err := GPTQ(W, rows, cols, H, o)
		return err
	}
	d := DefaultSparseGPTOptions()
	g := DefaultGPTQOptions(4)
	cases := []struct {
		name string
		err  error
	}{
		{"sparsegpt rows 0", sg(l.W, 0, 8, l.H, []float64{0.5}, d)},
		{"sparsegpt len W", sg(l.W[:31], 4, 8, l.H, []float64{0.5}, d)},
		{"sparsegpt len H", sg(l.W, 4, 8, l.H[:63], []float64{0.5}, d)},
		{"sparsegpt NaN W", sg(nan, 4, 8, l.H, []float64{0.5}, d)},
		{"sparsegpt Inf H", sg(l.W, 4, 8, hnan, []float64{0.5}, d)},
		{"sparsegpt negative diag", sg(l.W, 4, 8, hneg, []float64{0.5}, d)},
		{"sparsegpt indefinite H", sg(l.W, 4, 8, hind, []float64{0.5}, SparseGPTOptions{PercDamp: 0.01})},
		{"sparsegpt sparsity > 1", sg(l.W, 4, 8, l.H, []float64{0.5, 1.5}, d)},
		{"sparsegpt sparsity NaN", sg(l.W, 4, 8, l.H, []float64{math.NaN()}, d)},
		{"sparsegpt negative damp", sg(l.W, 4, 8, l.H, []float64{0.5}, SparseGPTOptions{PercDamp: -1})},
		{"gptq bits 0", gq(l.W, 4, 8, l.H, GPTQOptions{PercDamp: 0.01})},
		{"gptq bits 9", gq(l.W, 4, 8, l.H, DefaultGPTQOptions(9))},
		{"gptq negative group", gq(l.W, 4, 8, l.H, GPTQOptions{Bits: 4, GroupSize: -1})},
		{"gptq NaN W", gq(nan, 4, 8, l.H, g)},
		{"gptq indefinite H", gq(l.W, 4, 8, hind, g)},
		{"gptq len H", gq(l.W, 4, 8, l.H[:10], g)},
	}
	_, err := RTN(l.W, 4, 8, 0, 0)
	cases = append(cases, struct {
		name string
		err  error
	}{"rtn bits 0", err})
	_, err = Magnitude(l.W, 4, 8, -0.1)
	cases = append(cases, struct {
		name string
		err  error
	}{"magnitude negative sparsity", err})
	_, err = Wanda(l.W, 4, 8, hneg, 0.5)
	cases = append(cases, struct {
		name string
		err  error
	}{"wanda negative diag", err})
	_, _, err = LayerError(l.W, l.W[:5], 4, 8, l.H)
	cases = append(cases, struct {
		name string
		err  error
	}{"layer error length", err})
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		} else if testing.Verbose() {
			fmt.Printf("%-28s %v\n", c.name, c.err)
		}
	}
	// Zero damping on a positive definite H works.
	if err := sg(l.W, 4, 8, l.H, []float64{0.5}, SparseGPTOptions{}); err != nil {
		t.Errorf("zero damping: %v", err)
	}
}
