package ggml

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
)

func TestTypeTable(t *testing.T) {
	for _, c := range []struct {
		typ          Type
		name         string
		block, bytes int
		bpw          float64
	}{
		{Q4_0, "q4_0", 32, 18, 4.5}, {Q4_1, "q4_1", 32, 20, 5}, {Q5_0, "q5_0", 32, 22, 5.5},
		{Q5_1, "q5_1", 32, 24, 6}, {Q8_0, "q8_0", 32, 34, 8.5}, {Q2_K, "q2_K", 256, 84, 2.625},
		{Q3_K, "q3_K", 256, 110, 3.4375}, {Q4_K, "q4_K", 256, 144, 4.5}, {Q5_K, "q5_K", 256, 176, 5.5},
		{Q6_K, "q6_K", 256, 210, 6.5625}, {IQ4_NL, "iq4_nl", 32, 18, 4.5}, {IQ4_XS, "iq4_xs", 256, 136, 4.25},
		{F32, "f32", 1, 4, 32}, {F16, "f16", 1, 2, 16}, {BF16, "bf16", 1, 2, 16},
	} {
		if c.typ.String() != c.name || c.typ.BlockSize() != c.block || c.typ.BlockBytes() != c.bytes || c.typ.BitsPerWeight() != c.bpw || !c.typ.Codec() {
			t.Errorf("%d: %s %d %d %g codec %v, want %s %d %d %g", c.typ, c.typ, c.typ.BlockSize(), c.typ.BlockBytes(), c.typ.BitsPerWeight(), c.typ.Codec(), c.name, c.block, c.bytes, c.bpw)
		}
		for _, s := range []string{c.name, strings.ToUpper(c.name), strings.ToLower(c.name)} {
			if p, err := ParseType(s); err != nil || p != c.typ {
				t.Errorf("ParseType(%q) = %v, %v", s, p, err)
			}
		}
	}
	for _, typ := range Types() {
		if p, err := ParseType(typ.String()); err != nil || p != typ {
			t.Errorf("ParseType(%s) = %v, %v", typ, p, err)
		}
	}
	if len(Types()) != 35 {
		t.Errorf("%d types, ggml has 35", len(Types()))
	}
	for _, bad := range []Type{4, 5, 31, 36, 43, 1000} {
		if bad.Valid() || bad.BlockSize() != 0 || bad.BitsPerWeight() != 0 || !strings.HasPrefix(bad.String(), "type(") {
			t.Errorf("type %d counts as valid", bad)
		}
	}
	if _, err := ParseType("q4_k_m"); err == nil {
		t.Error("ParseType accepted q4_k_m, a file type")
	}
	if n, err := Q4_K.RowBytes(512); err != nil || n != 288 {
		t.Errorf("Q4_K.RowBytes(512) = %d, %v", n, err)
	}
	for _, cols := range []int{0, -256, 100} {
		if _, err := Q4_K.RowBytes(cols); err == nil {
			t.Errorf("Q4_K.RowBytes(%d) did not fail", cols)
		}
	}
}

func TestFallback(t *testing.T) {
	for _, c := range []struct {
		typ  Type
		cols int
		want Type
		err  string
	}{
		{Q4_K, 256, Q4_K, ""}, {Q4_K, 704, Q5_0, ""}, {Q2_K, 704, Q4_0, ""}, {Q3_K, 704, Q4_0, ""},
		{Q5_K, 704, Q5_1, ""}, {Q6_K, 704, Q8_0, ""}, {IQ4_XS, 704, IQ4_NL, ""}, {IQ2_XXS, 352, IQ4_NL, ""},
		{TQ2_0, 128, Q4_0, ""}, {Q2_0, 96, Q4_0, ""},
		{Q4_K, 100, F16, ""}, {Q8_0, 100, F16, ""}, {Q8_0, 704, Q8_0, ""}, {IQ4_NL, 48, F16, ""},
		{F32, 7, F32, ""}, {F16, 7, F16, ""},
		{Q1_0, 96, 0, "no fallback"}, {NVFP4, 96, 0, "no fallback"}, {Q8_K, 128, 0, "no fallback"},
		{Type(4), 32, 0, "unknown"},
	} {
		got, err := Fallback(c.typ, c.cols)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Fallback(%s, %d): error %v, want %q", c.typ, c.cols, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Fallback(%s, %d) = %s, %v, want %s", c.typ, c.cols, got, err, c.want)
		}
	}
}

func TestQuantizeRejects(t *testing.T) {
	x := make([]float32, 512)
	for _, c := range []struct {
		name string
		err  func() error
		want string
	}{
		{"no codec", func() error { _, err := Quantize(IQ2_XXS, x, 256, nil); return err }, "no encoder"},
		{"row not whole blocks", func() error { _, err := Quantize(Q4_K, x, 128, nil); return err }, "multiple of 256"},
		{"zero cols", func() error { _, err := Quantize(Q8_0, x, 0, nil); return err }, "positive multiple"},
		{"not whole rows", func() error { _, err := Quantize(Q8_0, x[:500], 64, nil); return err }, "not whole rows"},
		{"imatrix length", func() error { _, err := Quantize(Q4_K, x, 256, make([]float32, 255)); return err }, "importance vector"},
		{"destination", func() error { return QuantizeTo(make([]byte, 10), Q4_K, x, 256, nil) }, "destination"},
		{"partial block", func() error { _, err := Dequantize(Q4_K, make([]byte, 145)); return err }, "whole"},
		{"decoder", func() error { _, err := Dequantize(IQ3_S, make([]byte, 110)); return err }, "no decoder"},
		{"decode destination", func() error { return DequantizeTo(make([]float32, 10), Q4_K, make([]byte, 144)) }, "destination"},
	} {
		if err := c.err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

// TestQuantizeParallelDeterministic: the parallel path gives the bytes of the serial one.
func TestQuantizeParallelDeterministic(t *testing.T) {
	x, im, cols := benchRows()
	x = x[:16*cols]
	for _, typ := range []Type{Q4_K, Q6_K, IQ4_XS, Q4_0} {
		prev := runtime.GOMAXPROCS(1)
		serial, err := Quantize(typ, x, cols, im)
		runtime.GOMAXPROCS(4)
		parallel, err2 := Quantize(typ, x, cols, im)
		runtime.GOMAXPROCS(prev)
		if err != nil || err2 != nil || string(serial) != string(parallel) {
			t.Fatalf("%s: parallel encoding differs from serial (%v, %v)", typ, err, err2)
		}
	}
}

// TestPortableKernels runs the fixtures with the portable trial kernels when the AVX2 ones are
// in use (the other build, -tags noasm, runs them with the portable ones anyway).
func TestPortableKernels(t *testing.T) {
	if !useAVX2 {
		t.Skip("the portable kernels are the ones in use")
	}
	useAVX2 = false
	defer func() { useAVX2 = true }()
	TestEncodersMatchGGML(t)
	TestFastHelpersMatchReference(t)
	TestFastQxMatchesReference(t)
}

// FuzzQuantize: any float32 values (NaN, Inf, huge, subnormal) and importance vector encode
// without panicking to the right size for every type, and decode back.
func FuzzQuantize(f *testing.F) {
	f.Add(make([]byte, 1024), false)
	seed := make([]byte, 1024+1024)
	for i := 0; i < len(seed); i += 4 {
		binary.LittleEndian.PutUint32(seed[i:], math.Float32bits(float32(math.Sin(float64(i)))))
	}
	binary.LittleEndian.PutUint32(seed[8:], 0x7fc00000)  // NaN
	binary.LittleEndian.PutUint32(seed[12:], 0x7f800000) // +Inf
	binary.LittleEndian.PutUint32(seed[16:], 0x00000001) // subnormal
	f.Add(seed, true)
	f.Fuzz(func(t *testing.T, data []byte, withIm bool) {
		const cols = 256
		if len(data) < 4*cols {
			return
		}
		x := make([]float32, cols)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		var im []float32
		if withIm {
			im = make([]float32, cols)
			rest := data[4*cols:]
			for i := range im {
				if 4*i+4 <= len(rest) {
					im[i] = math.Float32frombits(binary.LittleEndian.Uint32(rest[4*i:]))
				}
			}
		}
		for _, typ := range Types() {
			if !typ.Codec() {
				continue
			}
			q, err := Quantize(typ, x, cols, im)
			if err != nil {
				t.Fatal(err)
			}
			if rb, _ := typ.RowBytes(cols); len(q) != rb {
				t.Fatalf("%s: %d bytes, want %d", typ, len(q), rb)
			}
			if _, err := Dequantize(typ, q); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestDequantizeRange checks that every range of every decoded type's values — starting and
// ending inside blocks, crossing rows — decodes to exactly Dequantize's values, and that a range
// outside the data panics.
func TestDequantizeRange(t *testing.T) {
	x, im, cols := benchRows()
	x = x[:4*cols]
	for _, typ := range Types() {
		if !typ.Codec() {
			continue
		}
		data, err := Quantize(typ, x, cols, im)
		if err != nil {
			t.Fatal(err)
		}
		all, err := Dequantize(typ, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range [][2]int{{0, len(all)}, {0, 1}, {5, 235}, {31, 2}, {250, 300}, {cols - 3, 7}, {len(all) - 17, 17}, {cols, 0}} {
			got := make([]float32, r[1])
			DequantizeRange(got, typ, data, r[0])
			for i, v := range got {
				if math.Float32bits(v) != math.Float32bits(all[r[0]+i]) {
					t.Fatalf("%s: value %d of range %v: %v, Dequantize %v", typ, r[0]+i, r, v, all[r[0]+i])
				}
			}
		}
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "outside") {
					t.Errorf("%s: range past the end: panic %v", typ, r)
				}
			}()
			DequantizeRange(make([]float32, 2), typ, data, len(all)-1)
		}()
	}
}
