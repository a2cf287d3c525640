package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/evopress/evopress/ggml"
)

// tensor is one tensor of a hand-made GGUF file: name, dims (GGUF order) and type.
type tensor struct {
	name string
	dims []uint64
	typ  ggml.Type
}

// writeGGUF writes a GGUF v3 file with general.file_type = fileType (when ≥ 0) and the
// tensors, their data zero, each padded to 32 bytes; it returns the file's size.
func writeGGUF(t *testing.T, path string, fileType int, ts []tensor) int64 {
	t.Helper()
	var b bytes.Buffer
	le := binary.LittleEndian
	str := func(s string) {
		binary.Write(&b, le, uint64(len(s)))
		b.WriteString(s)
	}
	b.WriteString("GGUF")
	binary.Write(&b, le, uint32(3))
	binary.Write(&b, le, uint64(len(ts)))
	nkv := uint64(0)
	if fileType >= 0 {
		nkv = 1
	}
	binary.Write(&b, le, nkv)
	if fileType >= 0 {
		str("general.file_type")
		binary.Write(&b, le, uint32(4)) // GGUF uint32
		binary.Write(&b, le, uint32(fileType))
	}
	var off uint64
	sizes := make([]uint64, len(ts))
	for i, tn := range ts {
		str(tn.name)
		binary.Write(&b, le, uint32(len(tn.dims)))
		n := uint64(1)
		for _, d := range tn.dims {
			binary.Write(&b, le, d)
			n *= d
		}
		binary.Write(&b, le, uint32(tn.typ))
		binary.Write(&b, le, off)
		sizes[i] = n / uint64(tn.typ.BlockSize()) * uint64(tn.typ.BlockBytes())
		off += (sizes[i] + 31) / 32 * 32
	}
	for b.Len()%32 != 0 {
		b.WriteByte(0)
	}
	b.Write(make([]byte, off))
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return int64(b.Len())
}

func TestStat(t *testing.T) {
	dir := t.TempDir()
	untied := []tensor{
		{"token_embd.weight", []uint64{32, 4}, ggml.Q4_0},
		{"blk.0.attn_norm.weight", []uint64{32}, ggml.F32},
		{"blk.0.attn_q.weight", []uint64{32, 2}, ggml.Q4_0},   // 2 blocks of 18 bytes
		{"blk.0.ffn_down.weight", []uint64{64, 1}, ggml.Q8_0}, // 2 blocks of 34 bytes
		{"blk.1.attn_output.weight", []uint64{256, 1}, ggml.Q6_K},
		{"output_norm.weight", []uint64{32}, ggml.F32},
		{"output.weight", []uint64{32, 4}, ggml.Q8_0},
	}
	tied := []tensor{
		{"token_embd.weight", []uint64{32, 4}, ggml.Q8_0},
		{"blk.0.ffn_up.weight", []uint64{32, 2}, ggml.IQ4_NL},
	}
	cases := []struct {
		name     string
		fileType int
		ts       []tensor
		want     Stat
	}{
		{"untied", 15, untied, Stat{FileType: 15, TokenEmbeddingType: "q4_0", OutputTensorType: "q8_0",
			LinearWeights: 64 + 64 + 256, LinearBytes: 36 + 68 + 210,
			Types:  map[string]int{"q4_0": 1, "q8_0": 1, "q6_K": 1},
			Layers: map[string]string{"blk.0.attn_q.weight": "q4_0", "blk.0.ffn_down.weight": "q8_0", "blk.1.attn_output.weight": "q6_K"}}},
		{"tied, no file type", -1, tied, Stat{FileType: -1, TokenEmbeddingType: "q8_0",
			LinearWeights: 64, LinearBytes: 36, Types: map[string]int{"iq4_nl": 1},
			Layers: map[string]string{"blk.0.ffn_up.weight": "iq4_nl"}}},
	}
	for i, c := range cases {
		path := filepath.Join(dir, c.name+".gguf")
		size := writeGGUF(t, path, c.fileType, c.ts)
		got, err := stat(path, true)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := c.want
		want.File, want.Bytes = path, size
		want.LinearBPW = float64(want.LinearBytes) * 8 / float64(want.LinearWeights)
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("case %d (%s):\n got %+v\nwant %+v", i, c.name, *got, want)
		}
		plain, err := stat(path, false)
		if err != nil || plain.Layers != nil {
			t.Errorf("%s: without -layers: layers %v, err %v", c.name, plain.Layers, err)
		}
	}
}

func TestStatRefuses(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		ts   []tensor
	}{
		{"no embedding", []tensor{{"blk.0.attn_q.weight", []uint64{32, 1}, ggml.Q8_0}}},
		{"no linear layers", []tensor{{"token_embd.weight", []uint64{32, 1}, ggml.Q8_0}}},
	}
	for _, c := range cases {
		path := filepath.Join(dir, c.name+".gguf")
		writeGGUF(t, path, 1, c.ts)
		if s, err := stat(path, false); err == nil {
			t.Errorf("%s: accepted: %+v", c.name, s)
		}
	}
	if _, err := stat(filepath.Join(dir, "missing.gguf"), false); err == nil {
		t.Error("a missing file was accepted")
	}
}
