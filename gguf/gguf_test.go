package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/evopress/evopress/ggml"
)

// builder writes GGUF files for the tests.
type builder struct {
	kv      []byte
	nkv     int
	tensors []byte
	nt      int
	data    []byte
	align   int
}

var lef = binary.LittleEndian

func appendStr(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

func (b *builder) addKV(key string, t ValueType, val []byte) {
	b.kv = appendStr(b.kv, key)
	b.kv = binary.LittleEndian.AppendUint32(b.kv, uint32(t))
	b.kv = append(b.kv, val...)
	b.nkv++
}

func (b *builder) addTensor(name string, typ ggml.Type, data []byte, dims ...uint64) {
	if b.align == 0 {
		b.align = DefaultAlignment
	}
	for len(b.data)%b.align != 0 {
		b.data = append(b.data, 0)
	}
	b.tensors = appendStr(b.tensors, name)
	b.tensors = binary.LittleEndian.AppendUint32(b.tensors, uint32(len(dims)))
	for _, d := range dims {
		b.tensors = binary.LittleEndian.AppendUint64(b.tensors, d)
	}
	b.tensors = binary.LittleEndian.AppendUint32(b.tensors, uint32(typ))
	b.tensors = binary.LittleEndian.AppendUint64(b.tensors, uint64(len(b.data)))
	b.data = append(b.data, data...)
	b.nt++
}

func (b *builder) bytes() []byte {
	if b.align == 0 {
		b.align = DefaultAlignment
	}
	out := binary.LittleEndian.AppendUint32(nil, Magic)
	out = binary.LittleEndian.AppendUint32(out, 3)
	out = binary.LittleEndian.AppendUint64(out, uint64(b.nt))
	out = binary.LittleEndian.AppendUint64(out, uint64(b.nkv))
	out = append(out, b.kv...)
	out = append(out, b.tensors...)
	for len(out)%b.align != 0 {
		out = append(out, 0)
	}
	return append(out, b.data...)
}

// sampleKVs adds sample's metadata pairs (general.alignment 64).
func sampleKVs(b *builder) {
	b.addKV("general.architecture", TypeString, appendStr(nil, "llama"))
	b.addKV("general.alignment", TypeUint32, lef.AppendUint32(nil, 64))
	b.addKV("u8", TypeUint8, []byte{7})
	b.addKV("i16", TypeInt16, lef.AppendUint16(nil, uint16(0xFFFE)))
	b.addKV("f32", TypeFloat32, lef.AppendUint32(nil, math.Float32bits(1.5)))
	b.addKV("bool", TypeBool, []byte{1})
	b.addKV("u64", TypeUint64, lef.AppendUint64(nil, 1<<40))
	b.addKV("f64", TypeFloat64, lef.AppendUint64(nil, math.Float64bits(-2.25)))
	arr := lef.AppendUint32(nil, uint32(TypeString))
	arr = lef.AppendUint64(arr, 2)
	arr = appendStr(appendStr(arr, "a"), "bc")
	b.addKV("tokens", TypeArray, arr)
	arr = lef.AppendUint32(nil, uint32(TypeInt32))
	arr = lef.AppendUint64(arr, 3)
	for _, v := range []int32{1, -2, 3} {
		arr = lef.AppendUint32(arr, uint32(v))
	}
	b.addKV("types", TypeArray, arr)
}

// sample is a small valid file: metadata of every kind and an F32, a Q8_0 and a Q4_K tensor.
func sample(t testing.TB) ([]byte, []float32, []byte) {
	var b builder
	sampleKVs(&b)
	b.align = 64

	vals := make([]float32, 512)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i))) / 10
	}
	f32 := make([]byte, 0, 4*64)
	for _, v := range vals[:64] {
		f32 = lef.AppendUint32(f32, math.Float32bits(v))
	}
	b.addTensor("norm.weight", ggml.F32, f32, 64)
	q8, err := ggml.Quantize(ggml.Q8_0, vals[:128], 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.addTensor("q8", ggml.Q8_0, q8, 64, 2)
	q4, err := ggml.Quantize(ggml.Q4_K, vals, 256, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.addTensor("blk.0.attn_q.weight", ggml.Q4_K, q4, 256, 2)
	return b.bytes(), vals, q4
}

func TestParseSample(t *testing.T) {
	data, vals, q4 := sample(t)
	path := filepath.Join(t.TempDir(), "s.gguf")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Version != 3 || f.Alignment != 64 || len(f.KV) != 10 || len(f.Tensors) != 3 {
		t.Fatalf("version %d alignment %d, %d pairs, %d tensors", f.Version, f.Alignment, len(f.KV), len(f.Tensors))
	}
	want := map[string]any{
		"general.architecture": "llama", "general.alignment": uint32(64), "u8": uint8(7), "i16": int16(-2),
		"f32": float32(1.5), "bool": true, "u64": uint64(1 << 40), "f64": -2.25,
		"tokens": []string{"a", "bc"}, "types": []int32{1, -2, 3},
	}
	for k, w := range want {
		if v, ok := f.Lookup(k); !ok || !reflect.DeepEqual(v, w) {
			t.Errorf("%s = %#v, want %#v", k, v, w)
		}
	}
	if f.KV[0].Key != "general.architecture" || f.KV[9].Key != "types" {
		t.Errorf("metadata not in file order: %s … %s", f.KV[0].Key, f.KV[9].Key)
	}
	tq, ok := f.Tensor("blk.0.attn_q.weight")
	if !ok || tq.Type != ggml.Q4_K || !reflect.DeepEqual(tq.Dims, []uint64{256, 2}) || tq.Size != 288 || tq.Elements() != 512 {
		t.Fatalf("q4_K tensor: %+v", tq)
	}
	got, err := f.ReadTensor(tq)
	if err != nil || !bytes.Equal(got, q4) {
		t.Fatalf("ReadTensor: %v", err)
	}
	tn, _ := f.Tensor("norm.weight")
	fv, err := f.ReadFloat32(tn)
	if err != nil || !reflect.DeepEqual(fv, vals[:64]) {
		t.Fatalf("ReadFloat32 of the F32 tensor: %v", err)
	}
	if _, ok := f.Tensor("missing"); ok {
		t.Fatal("found a missing tensor")
	}
}

// TestParseEmptyTensor: a dimension of 0 (an empty tensor, which ggml allows) reads as 0 bytes.
func TestParseEmptyTensor(t *testing.T) {
	var b builder
	b.addTensor("empty", ggml.Q4_K, nil, 256, 0)
	b.addTensor("one", ggml.F32, make([]byte, 4), 1)
	data := b.bytes()
	f, err := Parse(bytes.NewReader(data), int64(len(data)), "e.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := f.Tensor("empty"); e.Size != 0 || e.Elements() != 0 {
		t.Fatalf("empty tensor: %+v", e)
	}
}

func TestParseRejects(t *testing.T) {
	good, _, _ := sample(t)
	cases := []struct {
		name string
		edit func() []byte
		want string
	}{
		{"magic", func() []byte { b := bytes.Clone(good); b[0] = 'X'; return b }, "not a GGUF file"},
		{"version", func() []byte { b := bytes.Clone(good); b[4] = 1; return b }, "version 1"},
		{"truncated header", func() []byte { return good[:20] }, "header"},
		{"truncated data", func() []byte { return good[:len(good)-1] }, "past the end"},
		{"huge kv count", func() []byte {
			b := bytes.Clone(good)
			lef.PutUint64(b[16:], 1<<60)
			return b
		}, "metadata pairs cannot fit"},
		{"huge tensor count", func() []byte {
			b := bytes.Clone(good)
			lef.PutUint64(b[8:], 1<<60)
			return b
		}, "tensors cannot fit"},
		{"huge string", func() []byte {
			b := bytes.Clone(good)
			lef.PutUint64(b[24:], 1<<50) // the first key's length
			return b
		}, "string of"},
		{"unknown tensor type", func() []byte {
			var b builder
			b.addTensor("t", ggml.Type(4), make([]byte, 18), 32)
			return b.bytes()
		}, "unknown ggml type 4"},
		{"row not whole blocks", func() []byte {
			var b builder
			b.addTensor("t", ggml.Q4_K, make([]byte, 144), 128, 2)
			return b.bytes()
		}, "do not fit"},
		{"overflowing dimensions", func() []byte {
			var b builder
			b.addTensor("t", ggml.F32, nil, 1<<40, 1<<40)
			return b.bytes()
		}, "more than 2^63"},
		{"duplicate tensor", func() []byte {
			var b builder
			b.addTensor("t", ggml.F32, make([]byte, 4), 1)
			b.addTensor("t", ggml.F32, make([]byte, 4), 1)
			return b.bytes()
		}, "appears twice"},
		{"bad alignment", func() []byte {
			var b builder
			b.addKV("general.alignment", TypeUint32, lef.AppendUint32(nil, 48))
			return b.bytes()
		}, "general.alignment"},
		{"array of arrays", func() []byte {
			var b builder
			arr := lef.AppendUint32(nil, uint32(TypeArray))
			arr = lef.AppendUint64(arr, 1)
			b.addKV("a", TypeArray, arr)
			return b.bytes()
		}, "element type 9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := c.edit()
			_, err := Parse(bytes.NewReader(data), int64(len(data)), "x.gguf")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "x.gguf") {
				t.Fatalf("error %v, want one naming x.gguf with %q", err, c.want)
			}
		})
	}
}

// FuzzParse: any input parses or fails cleanly, and what parses has every tensor inside the
// file.
func FuzzParse(f *testing.F) {
	good, _, _ := sample(f)
	f.Add(good)
	f.Add(good[:100])
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse(bytes.NewReader(data), int64(len(data)), "fuzz")
		if err != nil {
			return
		}
		for i := range g.Tensors {
			tt := &g.Tensors[i]
			if g.DataOffset+int64(tt.Offset)+tt.Size > int64(len(data)) {
				t.Fatalf("tensor %s past the end", tt.Name)
			}
			if _, err := g.ReadTensor(tt); err != nil {
				t.Fatal(err)
			}
			if tt.Type.Codec() {
				if _, err := g.ReadFloat32(tt); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
