package gguf

import (
	"bytes"
	"strings"
	"testing"

	"github.com/evopress/evopress/ggml"
)

// TestLayout checks KVSize, TensorInfoSize and FileSize against a written file: the metadata
// pairs as parsed encode to exactly the bytes written, and the file's size is the header, the
// pairs, the descriptions, and the data with every tensor padded to the alignment.
func TestLayout(t *testing.T) {
	data, _, _ := sample(t)
	f, err := Parse(bytes.NewReader(data), int64(len(data)), "s")
	if err != nil {
		t.Fatal(err)
	}
	var kv, infos int64
	for _, p := range f.KV {
		n, err := KVSize(p)
		if err != nil {
			t.Fatal(err)
		}
		kv += n
	}
	for _, tn := range f.Tensors {
		infos += TensorInfoSize(tn)
	}
	// sample's metadata section is rebuilt here to know its exact length.
	var b builder
	sampleKVs(&b)
	if kv != int64(len(b.kv)) {
		t.Fatalf("Σ KVSize = %d, the pairs take %d bytes", kv, len(b.kv))
	}
	if end := HeaderSize + kv + infos; (end+63)/64*64 != f.DataOffset {
		t.Fatalf("header, pairs and descriptions end at %d, the data starts at %d", end, f.DataOffset)
	}
	size, err := FileSize(kv, f.Tensors, f.Alignment)
	if err != nil {
		t.Fatal(err)
	}
	// The sample's writer does not pad its last tensor (288 bytes of Q4_K): llama.cpp's does.
	if want := int64((len(data) + 63) / 64 * 64); size != want || want == int64(len(data)) {
		t.Fatalf("FileSize = %d, want %d (file of %d bytes)", size, want, len(data))
	}
	for _, tc := range []struct {
		kv   KV
		size int64
	}{
		{KV{"a", TypeUint32, uint32(1)}, 8 + 1 + 4 + 4},
		{KV{"abc", TypeString, "hello"}, 8 + 3 + 4 + 8 + 5},
		{KV{"x", TypeArray, []float32{1, 2, 3}}, 8 + 1 + 4 + 4 + 8 + 12},
		{KV{"x", TypeArray, []string{"ab", ""}}, 8 + 1 + 4 + 4 + 8 + 10 + 8},
		{KV{"x", TypeBool, true}, 8 + 1 + 4 + 1},
	} {
		if n, err := KVSize(tc.kv); err != nil || n != tc.size {
			t.Errorf("KVSize(%+v) = %d, %v; want %d", tc.kv, n, err, tc.size)
		}
	}
	for _, bad := range []KV{{"s", TypeString, 3}, {"a", TypeArray, [][]int{}}, {"t", ValueType(99), 1}} {
		if _, err := KVSize(bad); err == nil || !strings.Contains(err.Error(), bad.Key) {
			t.Errorf("KVSize(%+v): %v", bad, err)
		}
	}
	if _, err := FileSize(0, []Tensor{{Name: "w", Dims: []uint64{100, 2}, Type: ggml.Q4_K}}, 32); err == nil {
		t.Error("FileSize of rows that do not fit the type's blocks")
	}
	if _, err := FileSize(0, nil, 48); err == nil {
		t.Error("FileSize with an alignment of 48")
	}
}
