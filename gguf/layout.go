package gguf

import (
	"fmt"
	"math"
)

// This file is the layout arithmetic of a GGUF file (version 3), so that a file's size can be
// known before it is written — a search for a file size needs it — and checked after.

// HeaderSize is the size of a GGUF file's fixed header: magic, version, tensor count and
// metadata count.
const HeaderSize = 4 + 4 + 8 + 8

// KVSize returns the encoded size of one metadata pair: the key (a uint64 length and its
// bytes), the uint32 value type and the value, an array's element type, uint64 count and
// elements included. The value must be one a File holds (see KV.Value).
func KVSize(kv KV) (int64, error) {
	n := 8 + int64(len(kv.Key)) + 4
	if kv.Type == TypeArray {
		size, err := arraySize(kv.Value)
		if err != nil {
			return 0, fmt.Errorf("gguf: metadata %q: %w", kv.Key, err)
		}
		return n + 4 + 8 + size, nil
	}
	if kv.Type == TypeString {
		s, ok := kv.Value.(string)
		if !ok {
			return 0, fmt.Errorf("gguf: metadata %q: a string value is %T", kv.Key, kv.Value)
		}
		return n + 8 + int64(len(s)), nil
	}
	if sz := kv.Type.scalarSize(); sz > 0 {
		return n + int64(sz), nil
	}
	return 0, fmt.Errorf("gguf: metadata %q: unknown value type %d", kv.Key, kv.Type)
}

// arraySize is the encoded size of an array's elements.
func arraySize(v any) (int64, error) {
	switch a := v.(type) {
	case []string:
		var n int64
		for _, s := range a {
			n += 8 + int64(len(s))
		}
		return n, nil
	case []uint8, []int8, []bool:
		return int64(lenOf(a)), nil
	case []uint16, []int16:
		return 2 * int64(lenOf(a)), nil
	case []uint32, []int32, []float32:
		return 4 * int64(lenOf(a)), nil
	case []uint64, []int64, []float64:
		return 8 * int64(lenOf(a)), nil
	}
	return 0, fmt.Errorf("an array value is %T", v)
}

func lenOf(v any) int {
	switch a := v.(type) {
	case []uint8:
		return len(a)
	case []int8:
		return len(a)
	case []bool:
		return len(a)
	case []uint16:
		return len(a)
	case []int16:
		return len(a)
	case []uint32:
		return len(a)
	case []int32:
		return len(a)
	case []float32:
		return len(a)
	case []uint64:
		return len(a)
	case []int64:
		return len(a)
	case []float64:
		return len(a)
	}
	return 0
}

// TensorInfoSize returns the encoded size of a tensor's description: its name, dimension count,
// dimensions, type and offset.
func TensorInfoSize(t Tensor) int64 {
	return 8 + int64(len(t.Name)) + 4 + 8*int64(len(t.Dims)) + 4 + 8
}

// TensorDataSize returns the bytes of a tensor's data (its blocks), or an error when its rows
// (Dims[0]) do not fit its type's blocks.
func TensorDataSize(t Tensor) (int64, error) {
	if len(t.Dims) == 0 {
		return 0, fmt.Errorf("gguf: tensor %s has no dimensions", t.Name)
	}
	rb, err := t.Type.RowBytes(int(t.Dims[0]))
	if err != nil {
		return 0, fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
	}
	rows := int64(1)
	for _, d := range t.Dims[1:] {
		if d > 0 && rows > math.MaxInt64/int64(d)/int64(rb) {
			return 0, fmt.Errorf("gguf: tensor %s is too large", t.Name)
		}
		rows *= int64(d)
	}
	return rows * int64(rb), nil
}

// FileSize returns the size of the GGUF file (version 3) holding metadata whose pairs encode to
// kvBytes bytes (Σ KVSize) and the given tensors, laid out as llama.cpp's gguf writer does:
// the header, the metadata, the tensor descriptions, padding to alignment, then every tensor's
// data padded to alignment (the last one's too).
func FileSize(kvBytes int64, tensors []Tensor, alignment int) (int64, error) {
	if alignment <= 0 || alignment&(alignment-1) != 0 {
		return 0, fmt.Errorf("gguf: alignment %d is not a power of two", alignment)
	}
	a := int64(alignment)
	n := HeaderSize + kvBytes
	var data int64
	for _, t := range tensors {
		n += TensorInfoSize(t)
		sz, err := TensorDataSize(t)
		if err != nil {
			return 0, err
		}
		data += (sz + a - 1) / a * a
	}
	return (n+a-1)/a*a + data, nil
}
