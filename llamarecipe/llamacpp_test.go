package llamarecipe_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/evopress/evopress/export"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/gguf"
	"github.com/evopress/evopress/imatrix"
	"github.com/evopress/evopress/internal/llamacpptest"
	"github.com/evopress/evopress/llamarecipe"
)

// kv is a metadata pair of a synthetic GGUF file: a uint32, float32 or string value.
type kv struct {
	key string
	val any
}

// tensor is a tensor of a synthetic GGUF file (F32, small random values).
type tensor struct {
	name string
	dims []int
}

// writeGGUF writes a GGUF v3 file of F32 tensors: enough of a model for llama-quantize, which
// reads the hyper-parameters and the tensors but not the vocabulary.
func writeGGUF(t *testing.T, path string, kvs []kv, ts []tensor) {
	t.Helper()
	le := binary.LittleEndian
	str := func(b []byte, s string) []byte { return append(le.AppendUint64(b, uint64(len(s))), s...) }
	b := le.AppendUint32(nil, gguf.Magic)
	b = le.AppendUint32(b, 3)
	b = le.AppendUint64(b, uint64(len(ts)))
	b = le.AppendUint64(b, uint64(len(kvs)))
	for _, p := range kvs {
		b = str(b, p.key)
		switch v := p.val.(type) {
		case int:
			b = le.AppendUint32(le.AppendUint32(b, uint32(gguf.TypeUint32)), uint32(v))
		case float32:
			b = le.AppendUint32(le.AppendUint32(b, uint32(gguf.TypeFloat32)), math.Float32bits(v))
		case string:
			b = str(le.AppendUint32(b, uint32(gguf.TypeString)), v)
		default:
			t.Fatalf("metadata %s: %T", p.key, v)
		}
	}
	var off uint64
	for _, x := range ts {
		b = str(b, x.name)
		b = le.AppendUint32(b, uint32(len(x.dims)))
		n := uint64(1)
		for _, d := range x.dims {
			b = le.AppendUint64(b, uint64(d))
			n *= uint64(d)
		}
		b = le.AppendUint32(b, uint32(ggml.F32))
		b = le.AppendUint64(b, off)
		off += (4*n + 31) / 32 * 32
	}
	for len(b)%32 != 0 {
		b = append(b, 0)
	}
	seed := uint32(1)
	for _, x := range ts {
		n := 1
		for _, d := range x.dims {
			n *= d
		}
		for range n {
			seed = seed*1664525 + 1013904223
			b = le.AppendUint32(b, math.Float32bits(float32(int32(seed))/(1<<31)))
		}
		for len(b)%32 != 0 {
			b = append(b, 0)
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// synthetic describes a model for llama-quantize with tiny tensors (two rows each) and the
// shapes that matter to the rules: the grouped-query factor, the 70B type, experts, falcon's
// fused attention, rows that do not fit 256-weight blocks.
type synthetic struct {
	name                                string
	arch                                string
	layers, heads, kvHeads, experts, ff int
	tied                                bool
}

func (s synthetic) write(t *testing.T, path string) {
	t.Helper()
	a := s.arch
	kvs := []kv{{"general.architecture", a}, {"general.name", s.name},
		{a + ".block_count", s.layers}, {a + ".context_length", 256}, {a + ".embedding_length", 256},
		{a + ".feed_forward_length", s.ff}, {a + ".attention.head_count", s.heads},
		{a + ".attention.head_count_kv", s.kvHeads}, {a + ".rope.dimension_count", 256 / s.heads}}
	if a == "falcon" {
		kvs = append(kvs, kv{a + ".attention.layer_norm_epsilon", float32(1e-5)})
	} else {
		kvs = append(kvs, kv{a + ".attention.layer_norm_rms_epsilon", float32(1e-5)})
	}
	if s.experts > 0 {
		kvs = append(kvs, kv{a + ".expert_count", s.experts}, kv{a + ".expert_used_count", 2})
	}
	ts := []tensor{{"token_embd.weight", []int{256, 4}}, {"output_norm.weight", []int{256}}}
	if !s.tied {
		ts = append(ts, tensor{"output.weight", []int{256, 4}})
	}
	for i := range s.layers {
		p := fmt.Sprintf("blk.%d.", i)
		ts = append(ts, tensor{p + "attn_norm.weight", []int{256}})
		if a == "falcon" {
			ts = append(ts, tensor{p + "attn_qkv.weight", []int{256, 2}})
		} else {
			ts = append(ts, tensor{p + "attn_q.weight", []int{256, 2}}, tensor{p + "attn_k.weight", []int{256, 2}},
				tensor{p + "attn_v.weight", []int{256, 2}}, tensor{p + "ffn_norm.weight", []int{256}})
		}
		ts = append(ts, tensor{p + "attn_output.weight", []int{256, 2}})
		switch {
		case s.experts > 0:
			ts = append(ts, tensor{p + "ffn_gate_inp.weight", []int{256, s.experts}},
				tensor{p + "ffn_gate_exps.weight", []int{256, 2, s.experts}}, tensor{p + "ffn_up_exps.weight", []int{256, 2, s.experts}},
				tensor{p + "ffn_down_exps.weight", []int{s.ff, 2, s.experts}})
		case a == "falcon":
			ts = append(ts, tensor{p + "ffn_up.weight", []int{256, 2}}, tensor{p + "ffn_down.weight", []int{s.ff, 2}})
		default:
			ts = append(ts, tensor{p + "ffn_gate.weight", []int{256, 2}}, tensor{p + "ffn_up.weight", []int{256, 2}},
				tensor{p + "ffn_down.weight", []int{s.ff, 2}})
		}
	}
	writeGGUF(t, path, kvs, ts)
}

// onesImatrix writes an importance matrix of ones for every quantized block tensor of the GGUF
// model at src (one row per expert for expert tensors).
func onesImatrix(t *testing.T, src, path string) {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := imatrix.New()
	m.Datasets, m.ChunkCount, m.ChunkSize = []string{"ones"}, 1, 16
	for _, x := range f.Tensors {
		dims := make([]int, len(x.Dims))
		for i, d := range x.Dims {
			dims[i] = int(d)
		}
		if !strings.HasPrefix(x.Name, "blk.") || !llamarecipe.Quantized(x.Name, dims, false) {
			continue
		}
		experts := 1
		if len(dims) > 2 {
			experts = dims[2]
		}
		e := &imatrix.Entry{Sums: make([]float32, dims[0]*experts), Counts: make([]int64, experts)}
		for i := range e.Sums {
			e.Sums[i] = 16
		}
		for i := range e.Counts {
			e.Counts[i] = 16
		}
		m.Entries[x.Name] = e
	}
	if err := imatrix.Write(path, m, imatrix.FormatGGUF); err != nil {
		t.Fatal(err)
	}
}

// dryLine is the line llama-quantize --dry-run prints for each tensor (src/llama-quant.cpp):
// "[  12/ 163] blk.0.attn_q.weight - [  256,     2,     1,     1], type =    f32, size =
// 0.002 MiB -> 0.000 MiB (q4_K)", without the parenthesis when the type is kept.
var dryLine = regexp.MustCompile(`(?m)^\[\s*\d+/\s*\d+\]\s+(\S+)\s+- \[[^\]]*\], type =\s*(\S+), size =[^(\n]*(?:\((\S+)\))?$`)

// checkTypes runs llama-quantize (not --pure) on src for file type ft, with the importance
// matrix im when not empty, and compares every tensor's type in its output with Types. With
// dry, it runs llama-quantize --dry-run and reads the types from its log instead of a file
// (the IQ1–IQ3 quantizers take seconds to initialise their grids even for tiny tensors).
func checkTypes(t *testing.T, bin, src, im string, ft llamarecipe.FileType, dry bool) {
	t.Helper()
	in, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	m, ts, err := llamarecipe.FromGGUF(in)
	if err != nil {
		t.Fatal(err)
	}
	want, typesErr := llamarecipe.Types(m, ts, llamarecipe.Options{FileType: ft, Imatrix: im != ""})
	out := filepath.Join(t.TempDir(), "q.gguf")
	args := []string{}
	if dry {
		args = append(args, "--dry-run")
	}
	if im != "" {
		args = append(args, "--imatrix", im)
	}
	args = append(args, src, out, ft.String(), "2")
	b, err := exec.Command(filepath.Join(bin, "llama-quantize"), args...).CombinedOutput()
	switch {
	case err != nil && typesErr != nil:
		return // both refuse (a type with no fallback for rows that do not fit)
	case err != nil:
		t.Fatalf("llama-quantize %s: %v\n%s", strings.Join(args, " "), err, tail(b))
	case typesErr != nil:
		t.Fatalf("Types: %v, but llama-quantize wrote the file", typesErr)
	}
	got := map[string]ggml.Type{}
	if dry {
		for _, m := range dryLine.FindAllStringSubmatch(string(b), -1) {
			name := m[3]
			if name == "" {
				name = m[2]
			}
			typ, err := ggml.ParseType(name)
			if err != nil {
				t.Fatalf("llama-quantize --dry-run: %s: %v", m[0], err)
			}
			got[m[1]] = typ
		}
		if len(got) != len(ts) {
			t.Fatalf("llama-quantize --dry-run listed %d tensors of %d:\n%s", len(got), len(ts), tail(b))
		}
	} else {
		got = readTypes(t, out, ft, len(ts))
	}
	bad := 0
	for i, x := range ts {
		typ, ok := got[x.Name]
		if !ok {
			t.Fatalf("%s missing from llama-quantize's output", x.Name)
		}
		if typ != want[i] {
			if bad++; bad <= 8 {
				t.Errorf("%s %v: llama-quantize wrote %v, Types gives %v", x.Name, x.Dims, typ, want[i])
			}
		}
	}
	if bad > 8 {
		t.Errorf("… %d tensors differ in all", bad)
	}
}

// readTypes reads the tensor types of the GGUF file at path, checking its general.file_type
// and number of tensors.
func readTypes(t *testing.T, path string, ft llamarecipe.FileType, n int) map[string]ggml.Type {
	t.Helper()
	q, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if v, _ := q.Lookup("general.file_type"); v != uint32(ft) {
		t.Errorf("general.file_type = %v, want %d", v, ft)
	}
	if len(q.Tensors) != n {
		t.Fatalf("llama-quantize wrote %d tensors of %d", len(q.Tensors), n)
	}
	got := map[string]ggml.Type{}
	for _, x := range q.Tensors {
		got[x.Name] = x.Type
	}
	return got
}

func tail(b []byte) string {
	if len(b) > 3000 {
		return "…" + string(b[len(b)-3000:])
	}
	return string(b)
}

// imatrixMatters are the file types whose rules depend on whether an importance matrix is
// given; needsImatrix those llama-quantize refuses to write without one.
var (
	imatrixMatters = map[llamarecipe.FileType]bool{llamarecipe.MostlyIQ3_XXS: true, llamarecipe.MostlyIQ4_NL: true,
		llamarecipe.MostlyIQ4_XS: true, llamarecipe.MostlyQ4_0: true, llamarecipe.MostlyQ5_0: true}
	needsImatrix = map[llamarecipe.FileType]bool{llamarecipe.MostlyQ2_K_S: true, llamarecipe.MostlyIQ2_XXS: true,
		llamarecipe.MostlyIQ2_XS: true, llamarecipe.MostlyIQ2_S: true, llamarecipe.MostlyIQ2_M: true,
		llamarecipe.MostlyIQ1_S: true, llamarecipe.MostlyIQ1_M: true, llamarecipe.MostlyIQ3_XXS: true,
		llamarecipe.MostlyIQ3_XS: true}
)

// runs says whether file type ft is checked with (withIm) or without an importance matrix:
// without unless llama-quantize needs one, with where it needs one or changes the rules.
func runs(ft llamarecipe.FileType, withIm bool) bool {
	if withIm {
		return needsImatrix[ft] || imatrixMatters[ft]
	}
	return !needsImatrix[ft]
}

// TestLlamaQuantizeModels: for llama-pd-11m and babyllama-1m, exported to F32 GGUF by evopress,
// every tensor of llama-quantize's output for each K-quant mix (and the 32-weight types, with
// and without an importance matrix where that changes the rules) has the type Types gives.
func TestLlamaQuantizeModels(t *testing.T) {
	if testing.Short() {
		t.Skip("runs llama-quantize (-short)")
	}
	bin := llamacpptest.Bin(t)
	for _, name := range []string{"llama-pd-11m", "babyllama-1m"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "..", "shared", "models", name)
			if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
				t.Skipf("%s not found at %s", name, dir)
			}
			tmp := t.TempDir()
			src := filepath.Join(tmp, "f32.gguf")
			if _, err := export.Run(export.Options{ModelDir: dir, Format: export.FormatGGUF, Type: "f32", Out: src}); err != nil {
				t.Fatal(err)
			}
			im := filepath.Join(tmp, "ones.imatrix.gguf")
			onesImatrix(t, src, im)
			for _, ft := range []llamarecipe.FileType{llamarecipe.MostlyQ2_K, llamarecipe.MostlyQ3_K_S, llamarecipe.MostlyQ3_K_M,
				llamarecipe.MostlyQ3_K_L, llamarecipe.MostlyQ4_K_S, llamarecipe.MostlyQ4_K_M, llamarecipe.MostlyQ5_K_S,
				llamarecipe.MostlyQ5_K_M, llamarecipe.MostlyQ6_K, llamarecipe.MostlyQ4_0, llamarecipe.MostlyQ5_1,
				llamarecipe.MostlyQ8_0, llamarecipe.MostlyIQ4_XS, llamarecipe.MostlyQ2_K_S, llamarecipe.MostlyF16} {
				for _, withIm := range []bool{false, true} {
					if !runs(ft, withIm) {
						continue
					}
					label := ft.String()
					imPath := ""
					if withIm {
						label, imPath = label+"+imatrix", im
					}
					t.Run(label, func(t *testing.T) { checkTypes(t, bin, src, imPath, ft, false) })
				}
			}
		})
	}
}

// TestLlamaQuantizeSynthetic checks Types against llama-quantize --dry-run for every file type
// it writes, on synthetic models with the shapes the two small models lack: grouped-query factor
// 8 with 80 blocks (llama.cpp's 70B type), factor 4, eight experts, falcon.
func TestLlamaQuantizeSynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs llama-quantize (-short)")
	}
	bin := llamacpptest.Bin(t)
	var all []llamarecipe.FileType
	for f := range llamarecipe.FileType(64) {
		if _, ok := f.BaseType(); ok {
			all = append(all, f)
		}
	}
	for _, s := range []synthetic{
		{name: "llama-70b", arch: "llama", layers: 80, heads: 64, kvHeads: 8, ff: 288},
		{name: "llama-gqa4", arch: "llama", layers: 16, heads: 16, kvHeads: 4, ff: 512, tied: true},
		{name: "llama-8x", arch: "llama", layers: 8, heads: 4, kvHeads: 4, experts: 8, ff: 256},
		{name: "falcon", arch: "falcon", layers: 32, heads: 4, kvHeads: 1, ff: 288},
	} {
		t.Run(s.name, func(t *testing.T) {
			tmp := t.TempDir()
			src := filepath.Join(tmp, "f32.gguf")
			s.write(t, src)
			im := filepath.Join(tmp, "ones.imatrix.gguf")
			onesImatrix(t, src, im)
			for _, ft := range all {
				for _, withIm := range []bool{false, true} {
					if !runs(ft, withIm) {
						continue
					}
					label := ft.String()
					imPath := ""
					if withIm {
						label, imPath = label+"+imatrix", im
					}
					t.Run(label, func(t *testing.T) { checkTypes(t, bin, src, imPath, ft, true) })
				}
			}
		})
	}
}
