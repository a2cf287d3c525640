package export

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/ggml"
	evgguf "github.com/evopress/evopress/gguf"
	"github.com/evopress/evopress/imatrix"
	"github.com/evopress/evopress/llamarecipe"
	"github.com/evopress/evopress/model"
)

// readGGUF opens a GGUF file written by a test, closed at the test's end.
func readGGUF(t *testing.T, path string) *evgguf.File {
	t.Helper()
	f, err := evgguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// tensorBytes returns a tensor's type and stored bytes.
func tensorBytes(t *testing.T, f *evgguf.File, name string) (ggml.Type, []byte) {
	t.Helper()
	ts, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("no tensor %s", name)
	}
	b, err := f.ReadTensor(ts)
	if err != nil {
		t.Fatal(err)
	}
	return ts.Type, b
}

// quantized is ggml.Quantize of a Hugging Face weight as the GGUF file stores it (q/k rows
// permuted).
func quantized(t *testing.T, typ ggml.Type, m *model.Model, block int, k arch.LinearKind, im []float32) []byte {
	t.Helper()
	l := m.Blocks[block].Layer(k)
	w := l.W
	if h := qkHeads(m, k); h > 0 {
		w = PermuteQK(w, h, l.In)
	}
	b, err := ggml.Quantize(typ, w, l.In, im)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExportGGUFTypes exports the dense llama-pd-11m (no profile) with one type, with a
// llama.cpp file type, and with an importance matrix, and checks every tensor's type against
// ggml.Fallback and llamarecipe, general.file_type, and the bytes of some tensors against
// ggml.Quantize of the model's weights (llama-quantize's bytes themselves are checked in
// TestLlamaQuantizeIdentical when llama.cpp's tools are present).
func TestExportGGUFTypes(t *testing.T) {
	dir := modelDir(t, "llama-pd-11m")
	dense, _, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()

	// One type: Q4_K everywhere, down_proj's 704 columns falling back to Q5_0.
	out := filepath.Join(tmp, "q4k.gguf")
	res, err := Run(Options{ModelDir: dir, Format: FormatGGUF, Type: "Q4_K", Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != "q4_k" || res.FileType != "Q4_K_M" || res.Blocks != 12 || res.TensorTypes["q4_K"] != 12*6+2 || res.TensorTypes["q5_0"] != 12 || res.TensorTypes["f32"] != 25 {
		t.Errorf("result: type %s, file type %s, %d blocks, tensor types %v", res.Type, res.FileType, res.Blocks, res.TensorTypes)
	}
	f := readGGUF(t, out)
	if v, _ := f.Lookup("general.file_type"); v != uint32(llamarecipe.MostlyQ4_K_M) {
		t.Errorf("general.file_type %v", v)
	}
	for _, x := range f.Tensors {
		want := ggml.F32
		if len(x.Dims) == 2 {
			want, _ = ggml.Fallback(ggml.Q4_K, int(x.Dims[0]))
		}
		if x.Type != want {
			t.Errorf("%s %v: %v, want %v", x.Name, x.Dims, x.Type, want)
		}
	}
	for _, tc := range []struct {
		block int
		k     arch.LinearKind
		typ   ggml.Type
	}{{0, arch.QProj, ggml.Q4_K}, {3, arch.KProj, ggml.Q4_K}, {11, arch.DownProj, ggml.Q5_0}, {5, arch.VProj, ggml.Q4_K}} {
		typ, b := tensorBytes(t, f, arch.Weight(tc.block, tc.k).GGUF())
		if typ != tc.typ || !bytes.Equal(b, quantized(t, tc.typ, dense, tc.block, tc.k, nil)) {
			t.Errorf("%s: %v, bytes differ from ggml.Quantize's", arch.Weight(tc.block, tc.k).GGUF(), typ)
		}
	}

	// A file type: the types llamarecipe gives, with overrides.
	out = filepath.Join(tmp, "q3km.gguf")
	if _, err := Run(Options{ModelDir: dir, Format: FormatGGUF, FileType: "q3_k_m", OutputTensorType: "Q8_0", Out: out}); err != nil {
		t.Fatal(err)
	}
	f = readGGUF(t, out)
	rm, rts, err := llamarecipe.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rts {
		rts[i].Type = ggml.F32
	}
	q8 := ggml.Q8_0
	want, err := llamarecipe.Types(rm, rts, llamarecipe.Options{FileType: llamarecipe.MostlyQ3_K_M, OutputTensorType: &q8})
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range f.Tensors {
		if x.Type != want[i] {
			t.Errorf("Q3_K_M: %s is %v, llamarecipe gives %v", x.Name, x.Type, want[i])
		}
	}
	if typ, _ := tensorBytes(t, f, "blk.0.attn_v.weight"); typ != ggml.Q5_K {
		t.Errorf("Q3_K_M blk.0.attn_v: %v, want q5_K", typ)
	}
	if typ, _ := tensorBytes(t, f, "output.weight"); typ != ggml.Q8_0 {
		t.Errorf("output override: %v", typ)
	}
	if v, _ := f.Lookup("general.file_type"); v != uint32(llamarecipe.MostlyQ3_K_M) {
		t.Errorf("general.file_type %v", v)
	}

	// An importance matrix (random; legacy format): each block layer quantized with its entry's
	// mean. Entries are looked up by source block: with block 1 removed, blk.1 is block 2.
	m := imatrix.New()
	m.Datasets, m.ChunkCount, m.ChunkSize = []string{"random"}, 2, 64
	rng := rand.New(rand.NewPCG(1, 2))
	for b := range dense.Blocks {
		for _, k := range arch.LinearKinds() {
			e := &imatrix.Entry{Sums: make([]float32, dense.Blocks[b].Layer(k).In), Counts: []int64{128}}
			for j := range e.Sums {
				e.Sums[j] = float32(128 * rng.ExpFloat64())
			}
			m.Entries[arch.Weight(b, k).GGUF()] = e
		}
	}
	imPath := filepath.Join(tmp, "m.imatrix")
	if err := imatrix.Write(imPath, m, imatrix.FormatDat); err != nil {
		t.Fatal(err)
	}
	read, _, err := imatrix.Read(imPath)
	if err != nil {
		t.Fatal(err)
	}
	p := dropProfile("")
	p.Levels["model.layers.1.self_attn"], p.Levels["model.layers.1.mlp"] = 1, 1
	p.Levels["model.layers.3.self_attn"], p.Levels["model.layers.3.mlp"] = 0, 0
	out = filepath.Join(tmp, "q2k-im.gguf")
	if _, err := Run(Options{ModelDir: dir, Profile: p, Format: FormatGGUF, Type: "q2_k", Imatrix: imPath, Out: out}); err != nil {
		t.Fatal(err)
	}
	f = readGGUF(t, out)
	if v, _ := f.Lookup("quantize.imatrix.entries_count"); v != uint32(84) {
		t.Errorf("quantize.imatrix.entries_count %v", v)
	}
	for _, tc := range []struct{ out, src int }{{0, 0}, {1, 2}, {2, 3}} {
		for _, k := range []arch.LinearKind{arch.QProj, arch.UpProj} {
			typ, b := tensorBytes(t, f, arch.Weight(tc.out, k).GGUF())
			want := quantized(t, ggml.Q2_K, dense, tc.src, k, read.Linear(tc.src, k).Mean())
			if typ != ggml.Q2_K || !bytes.Equal(b, want) {
				t.Errorf("%s (source block %d) with the importance matrix: %v, bytes differ", arch.Weight(tc.out, k).GGUF(), tc.src, typ)
			}
			if bytes.Equal(b, quantized(t, ggml.Q2_K, dense, tc.src, k, nil)) {
				t.Errorf("%s: the importance matrix changed nothing", arch.Weight(tc.out, k).GGUF())
			}
		}
	}

	// An importance matrix that does not fit the model is refused.
	m.Entries[arch.Weight(0, arch.QProj).GGUF()].Sums = make([]float32, 100)
	bad := filepath.Join(tmp, "bad.imatrix")
	if err := imatrix.Write(bad, m, imatrix.FormatGGUF); err != nil {
		t.Fatal(err)
	}
	_, err = Run(Options{ModelDir: dir, Format: FormatGGUF, Type: "q4_k", Imatrix: bad, Out: filepath.Join(tmp, "x.gguf")})
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Option() != "Imatrix" || !strings.Contains(err.Error(), "does not fit the model") {
		t.Errorf("misfit importance matrix: %v", err)
	}
}

// TestExportGGUFEncoded supplies pre-encoded blocks for some layers (as a GGUF level database
// would) and checks that they are written as given, permuted like the float weights for q/k,
// that the other layers keep the requested type, and that wrong sizes and failing readers are
// errors naming the tensor.
func TestExportGGUFEncoded(t *testing.T) {
	dir := modelDir(t, "llama-pd-11m")
	dense, _, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	// Hugging Face row order: what ggml.Quantize gives for the Hugging Face weight.
	hfBlocks := func(typ ggml.Type, block int, k arch.LinearKind) []byte {
		l := dense.Blocks[block].Layer(k)
		b, err := ggml.Quantize(typ, l.W, l.In, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	calls := 0
	given := map[string]ggml.Type{"0/q": ggml.Q8_0, "0/k": ggml.Q6_K, "2/down": ggml.Q4_0, "5/up": ggml.IQ4_XS}
	enc := func(block int, k arch.LinearKind) (ggml.Type, func() ([]byte, error), bool) {
		key := fmt.Sprintf("%d/%s", block, map[arch.LinearKind]string{arch.QProj: "q", arch.KProj: "k", arch.DownProj: "down", arch.UpProj: "up"}[k])
		typ, ok := given[key]
		if !ok {
			return 0, nil, false
		}
		return typ, func() ([]byte, error) { calls++; return hfBlocks(typ, block, k), nil }, true
	}
	out := filepath.Join(tmp, "mixed.gguf")
	res, err := Run(Options{ModelDir: dir, Format: FormatGGUF, Type: "q5_k", Encoded: enc, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if calls != len(given) {
		t.Errorf("%d layers read, want %d", calls, len(given))
	}
	if res.TensorTypes["q8_0"] != 1 || res.TensorTypes["iq4_xs"] != 1 {
		t.Errorf("tensor types %v", res.TensorTypes)
	}
	f := readGGUF(t, out)
	for _, tc := range []struct {
		block int
		k     arch.LinearKind
		typ   ggml.Type
	}{{0, arch.QProj, ggml.Q8_0}, {0, arch.KProj, ggml.Q6_K}, {2, arch.DownProj, ggml.Q4_0}, {5, arch.UpProj, ggml.IQ4_XS},
		{1, arch.QProj, ggml.Q5_K}, {2, arch.UpProj, ggml.Q5_K}, {1, arch.DownProj, ggml.Q5_1}} {
		typ, b := tensorBytes(t, f, arch.Weight(tc.block, tc.k).GGUF())
		if typ != tc.typ || !bytes.Equal(b, quantized(t, tc.typ, dense, tc.block, tc.k, nil)) {
			t.Errorf("%s: %v (want %v), or bytes differ", arch.Weight(tc.block, tc.k).GGUF(), typ, tc.typ)
		}
	}
	// Errors: blocks of the wrong size, a type whose blocks do not fit, a failing reader.
	for _, tc := range []struct {
		typ  ggml.Type
		data func() ([]byte, error)
		want string
	}{
		{ggml.Q8_0, func() ([]byte, error) { return make([]byte, 10), nil }, "blk.0.attn_q.weight: 10 bytes of q8_0 given"},
		{ggml.Q4_K, func() ([]byte, error) { return nil, nil }, "model.layers.0.mlp.down_proj.weight: ggml: a q4_K row of 704 weights"},
		{ggml.Q8_0, func() ([]byte, error) { return nil, errors.New("disk on fire") }, "disk on fire"},
	} {
		enc := func(block int, k arch.LinearKind) (ggml.Type, func() ([]byte, error), bool) {
			if block != 0 || (k != arch.QProj && k != arch.DownProj) {
				return 0, nil, false
			}
			if tc.typ == ggml.Q4_K && k == arch.QProj {
				return 0, nil, false
			}
			return tc.typ, tc.data, true
		}
		_, err := Run(Options{ModelDir: dir, Format: FormatGGUF, Encoded: enc, Out: filepath.Join(tmp, "bad.gguf")})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}
