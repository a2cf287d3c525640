package hf

import (
	"math"
	"math/rand"
	"sort"
	"testing"
)

// refHalfValue decodes binary16 bits from the definition, in float64.
func refHalfValue(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return s * math.Ldexp(m, -24)
	case 0x1f:
		if m == 0 {
			return math.Inf(int(s))
		}
		return math.NaN()
	default:
		return s * math.Ldexp(1024+m, e-25)
	}
}

// refBF16Value decodes bfloat16 bits from the definition, in float64.
func refBF16Value(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e := int(h>>7) & 0xff
	m := float64(h & 0x7f)
	switch e {
	case 0:
		return s * math.Ldexp(m, -133)
	case 0xff:
		if m == 0 {
			return math.Inf(int(s))
		}
		return math.NaN()
	default:
		return s * math.Ldexp(128+m, e-134)
	}
}

func TestFloat16ToFloat32AllPatterns(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := Float16ToFloat32(h)
		want := refHalfValue(h)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) || math.Signbit(float64(got)) != (h&0x8000 != 0) {
				t.Fatalf("%#04x: got %v, want NaN with the same sign", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("%#04x: got %v, want %v", h, got, want)
		}
	}
}

func TestBFloat16ToFloat32AllPatterns(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := BFloat16ToFloat32(h)
		want := refBF16Value(h)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: got %v, want NaN", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("%#04x: got %v, want %v", h, got, want)
		}
	}
}

// nearestRef rounds |x| to the nearest of the non-negative finite values
// vals (sorted, indexed by bit pattern) by brute-force search, ties to the
// even bit pattern, with the next pattern after the largest finite one
// (infinity) standing for the value overflow rounds to.
type nearestRef struct {
	vals []float64 // vals[i] is the value of bit pattern i; the last is the "infinity" step
}

func newNearestRef(maxFinite uint16, decode func(uint16) float64, infStep float64) nearestRef {
	vals := make([]float64, int(maxFinite)+2)
	for i := 0; i <= int(maxFinite); i++ {
		vals[i] = decode(uint16(i))
	}
	vals[len(vals)-1] = infStep
	return nearestRef{vals}
}

func (r nearestRef) round(x float64) uint16 {
	var sign uint16
	if math.Signbit(x) {
		sign = 0x8000
		x = -x
	}
	last := len(r.vals) - 1
	if x >= r.vals[last] {
		return sign | uint16(last)
	}
	// Largest i with vals[i] <= x.
	i := sort.Search(len(r.vals), func(k int) bool { return r.vals[k] > x }) - 1
	lo, hi := r.vals[i], r.vals[i+1]
	dlo, dhi := x-lo, hi-x
	switch {
	case dlo < dhi:
		return sign | uint16(i)
	case dhi < dlo:
		return sign | uint16(i+1)
	case i%2 == 0:
		return sign | uint16(i)
	default:
		return sign | uint16(i+1)
	}
}

// conversionInputs returns float32 test inputs: every value of the 16-bit
// format, the midpoints between neighbours and their float32 neighbours,
// and random bit patterns.
func conversionInputs(ref nearestRef, n int) []float32 {
	var in []float32
	for i := 0; i+1 < len(ref.vals); i++ {
		v := float32(ref.vals[i])
		mid := float32((ref.vals[i] + ref.vals[i+1]) / 2)
		in = append(in, v, -v, mid, -mid,
			math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(math.Inf(1))),
			math.Nextafter32(v, 0), math.Nextafter32(v, float32(math.Inf(1))))
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < n; i++ {
		in = append(in, math.Float32frombits(rng.Uint32()))
	}
	in = append(in, 0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32)
	return in
}

func TestFloat32ToFloat16Rounding(t *testing.T) {
	ref := newNearestRef(0x7bff, refHalfValue, 65536)
	for _, x := range conversionInputs(ref, 300000) {
		got := Float32ToFloat16(x)
		if math.IsNaN(float64(x)) {
			if got&0x7c00 != 0x7c00 || got&0x3ff == 0 || (got&0x8000 != 0) != math.Signbit(float64(x)) {
				t.Fatalf("%v (%#08x): got %#04x, want a NaN with the same sign", x, math.Float32bits(x), got)
			}
			continue
		}
		if want := ref.round(float64(x)); got != want {
			t.Fatalf("%v (%#08x): got %#04x, want %#04x", x, math.Float32bits(x), got, want)
		}
	}
}

func TestFloat32ToBFloat16Rounding(t *testing.T) {
	ref := newNearestRef(0x7f7f, refBF16Value, math.Ldexp(1, 128))
	for _, x := range conversionInputs(ref, 300000) {
		got := Float32ToBFloat16(x)
		if math.IsNaN(float64(x)) {
			if got&0x7f80 != 0x7f80 || got&0x7f == 0 || (got&0x8000 != 0) != math.Signbit(float64(x)) {
				t.Fatalf("%v (%#08x): got %#04x, want a NaN with the same sign", x, math.Float32bits(x), got)
			}
			continue
		}
		if want := ref.round(float64(x)); got != want {
			t.Fatalf("%v (%#08x): got %#04x, want %#04x", x, math.Float32bits(x), got, want)
		}
	}
}

func TestHalfKnownValues(t *testing.T) {
	tests := []struct {
		f     float32
		half  uint16
		bf16  uint16
		label string
	}{
		{1, 0x3c00, 0x3f80, "one"},
		{-2, 0xc000, 0xc000, "minus two"},
		{65504, 0x7bff, 0x4780, "largest half"},
		{65520, 0x7c00, 0x4780, "half overflow tie rounds to Inf"},
		{65519.996, 0x7bff, 0x4780, "just below the half overflow tie"},
		{float32(math.Ldexp(1, -24)), 0x0001, 0x3380, "smallest half subnormal"},
		{float32(math.Ldexp(1, -25)), 0x0000, 0x3300, "half of the smallest subnormal ties to zero"},
		{float32(math.Ldexp(3, -26)), 0x0001, 0x3340, "0.75 of the smallest subnormal"},
		{float32(math.Ldexp(1, -14)), 0x0400, 0x3880, "smallest half normal"},
		{0.1, 0x2e66, 0x3dcd, "0.1"},
		{float32(math.Inf(-1)), 0xfc00, 0xff80, "-Inf"},
		{3.3895314e38, 0x7c00, 0x7f7f, "largest bf16"},
		{math.MaxFloat32, 0x7c00, 0x7f80, "max float32 rounds to Inf in bf16"},
	}
	for _, tc := range tests {
		if got := Float32ToFloat16(tc.f); got != tc.half {
			t.Errorf("%s: Float32ToFloat16(%v) = %#04x, want %#04x", tc.label, tc.f, got, tc.half)
		}
		if got := Float32ToBFloat16(tc.f); got != tc.bf16 {
			t.Errorf("%s: Float32ToBFloat16(%v) = %#04x, want %#04x", tc.label, tc.f, got, tc.bf16)
		}
	}
}

func TestHalfRoundTripAllPatterns(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue // NaN: payload may gain the quiet bit
		}
		if got := Float32ToFloat16(Float16ToFloat32(h)); got != h {
			t.Fatalf("half %#04x round-trips to %#04x", h, got)
		}
		if h&0x7f80 == 0x7f80 && h&0x7f != 0 {
			continue
		}
		if got := Float32ToBFloat16(BFloat16ToFloat32(h)); got != h {
			t.Fatalf("bf16 %#04x round-trips to %#04x", h, got)
		}
	}
}
