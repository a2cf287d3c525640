package ggml

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"testing"
)

// fixtureCase is one case of testdata/fixtures.bin.gz (see testdata/gen/README.md).
type fixtureCase struct {
	name       string
	rows, cols int
	x, imatrix []float32
	encodings  []fixtureEncoding
}

type fixtureEncoding struct {
	typ   Type
	data  []byte
	hash  uint64 // FNV-1a 64 of ggml's decoding of data
	cased *fixtureCase
}

type fixtureDecoding struct {
	typ  Type
	data []byte
	want []float32
}

type fixtureReader struct {
	r   io.Reader
	err error
}

func (f *fixtureReader) bytes(n int) []byte {
	b := make([]byte, n)
	if f.err == nil {
		_, f.err = io.ReadFull(f.r, b)
	}
	return b
}

func (f *fixtureReader) u32() uint32 { return binary.LittleEndian.Uint32(f.bytes(4)) }
func (f *fixtureReader) u64() uint64 { return binary.LittleEndian.Uint64(f.bytes(8)) }

func (f *fixtureReader) floats(n int) []float32 {
	b := f.bytes(4 * n)
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func loadFixtures(t *testing.T) ([]*fixtureCase, []fixtureDecoding) {
	t.Helper()
	raw, err := os.ReadFile("testdata/fixtures.bin.gz")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixtureReader{r: zr}
	if string(f.bytes(8)) != "GGMLFIX1" {
		t.Fatal("testdata/fixtures.bin.gz: bad magic")
	}
	var cases []*fixtureCase
	for range f.u32() {
		c := &fixtureCase{}
		c.name = string(f.bytes(int(f.u32())))
		c.rows, c.cols = int(f.u32()), int(f.u32())
		if same := f.u32(); same == 0xFFFFFFFF {
			c.x = f.floats(c.rows * c.cols)
		} else {
			c.x = cases[int(same)].x
		}
		if f.u32() != 0 {
			c.imatrix = f.floats(c.cols)
		}
		for range f.u32() {
			e := fixtureEncoding{typ: Type(f.u32()), cased: c}
			e.data = f.bytes(int(f.u32()))
			e.hash = f.u64()
			c.encodings = append(c.encodings, e)
		}
		cases = append(cases, c)
	}
	var decs []fixtureDecoding
	for range f.u32() {
		d := fixtureDecoding{typ: Type(f.u32())}
		d.data = f.bytes(int(f.u32()))
		d.want = f.floats(len(d.data) / d.typ.BlockBytes() * d.typ.BlockSize())
		decs = append(decs, d)
	}
	if f.err != nil {
		t.Fatalf("testdata/fixtures.bin.gz: %v", f.err)
	}
	return cases, decs
}

func floatHash(v []float32) uint64 {
	h := fnv.New64a()
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	h.Write(b)
	return h.Sum64()
}

// firstDiff describes where got and want differ first, with the block.
func firstDiff(typ Type, got, want []byte) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			bb := typ.BlockBytes()
			blk := i / bb
			return fmt.Sprintf("first difference at byte %d (block %d, offset %d): got % x, want % x", i, blk, i%bb,
				got[blk*bb:min(len(got), (blk+1)*bb)], want[blk*bb:min(len(want), (blk+1)*bb)])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

// TestEncodersMatchGGML: every type's encoder gives ggml_quantize_chunk's bytes on the fixture
// rows, with and without an importance vector, and decoding them gives ggml's floats.
func TestEncodersMatchGGML(t *testing.T) {
	cases, _ := loadFixtures(t)
	covered := map[Type][2]bool{}
	for _, c := range cases {
		for _, e := range c.encodings {
			t.Run(c.name+"/"+e.typ.String(), func(t *testing.T) {
				got, err := Quantize(e.typ, c.x, c.cols, c.imatrix)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, e.data) {
					t.Fatalf("encoding differs from ggml's: %s", firstDiff(e.typ, got, e.data))
				}
				dec, err := Dequantize(e.typ, e.data)
				if err != nil {
					t.Fatal(err)
				}
				if h := floatHash(dec); h != e.hash {
					t.Fatalf("decoding differs from ggml's (hash %x, want %x)", h, e.hash)
				}
			})
			cov := covered[e.typ]
			cov[boolIndex(c.imatrix != nil)] = true
			covered[e.typ] = cov
		}
	}
	for _, typ := range Types() {
		if typ.Codec() && covered[typ] != [2]bool{true, true} && typ.Quantized() {
			t.Errorf("%s: the fixtures lack an encoding with and without an importance vector", typ)
		}
	}
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestDecodersMatchGGML: decoding random blocks (any scale bits, Inf and NaN included) gives
// ggml's values bit for bit (any NaN for NaN).
func TestDecodersMatchGGML(t *testing.T) {
	_, decs := loadFixtures(t)
	if len(decs) < 15 {
		t.Fatalf("%d decoding fixtures, want one per type", len(decs))
	}
	for _, d := range decs {
		t.Run(d.typ.String(), func(t *testing.T) {
			got, err := Dequantize(d.typ, d.data)
			if err != nil {
				t.Fatal(err)
			}
			for i := range d.want {
				g, w := got[i], d.want[i]
				if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
					t.Fatalf("value %d (block %d): got %g (%08x), want %g (%08x)", i, i/d.typ.BlockSize(), g, math.Float32bits(g), w, math.Float32bits(w))
				}
			}
		})
	}
}
