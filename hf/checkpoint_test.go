package hf

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

// expectedShapes lists the tensors a Llama checkpoint must hold, from its config.
func expectedShapes(c *Config) map[string][]int {
	h, i, v := c.HiddenSize, c.IntermediateSize, c.VocabSize
	q, kv := c.QKVSize()
	m := map[string][]int{
		"model.embed_tokens.weight": {v, h},
		"model.norm.weight":         {h},
	}
	if !c.TieWordEmbeddings {
		m["lm_head.weight"] = []int{v, h}
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		m[p+"input_layernorm.weight"] = []int{h}
		m[p+"post_attention_layernorm.weight"] = []int{h}
		m[p+"self_attn.q_proj.weight"] = []int{q, h}
		m[p+"self_attn.k_proj.weight"] = []int{kv, h}
		m[p+"self_attn.v_proj.weight"] = []int{kv, h}
		m[p+"self_attn.o_proj.weight"] = []int{h, q}
		m[p+"mlp.gate_proj.weight"] = []int{i, h}
		m[p+"mlp.up_proj.weight"] = []int{i, h}
		m[p+"mlp.down_proj.weight"] = []int{h, i}
	}
	return m
}

func TestOpenSharedModels(t *testing.T) {
	// Reference values read independently (Python struct over the raw file):
	// first and last element and float64 sum of two tensors.
	type probe struct {
		name        string
		first, last float64
		sum, sumTol float64
	}
	tests := []struct {
		model  string
		dtype  DType
		probes []probe
	}{
		{"babyllama-1m", F32, []probe{
			{"model.norm.weight", 1.4417486190795898, 1.4685293436050415, 187.0669058561325, 1e-9},
			{"model.layers.4.mlp.down_proj.weight", -0.008207496255636215, 0.026076115667819977, 4.073349227830704, 1e-9},
		}},
		{"llama-pd-11m", BF16, []probe{
			{"model.norm.weight", 1.328125, 1.328125, 335.9140625, 1e-9},
			{"model.layers.4.mlp.down_proj.weight", 0.025146484375, -0.026611328125, -4.651314883027226, 1e-9},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			dir := modelDir(t, tc.model)
			cfg, err := LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			ck, err := OpenCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			want := expectedShapes(cfg)
			names := ck.Names()
			if !sort.StringsAreSorted(names) || len(names) != len(want) || ck.Len() != len(want) {
				t.Fatalf("got %d names (sorted %v), want %d", len(names), sort.StringsAreSorted(names), len(want))
			}
			for _, name := range names {
				shape, ok := want[name]
				if !ok {
					t.Errorf("unexpected tensor %s", name)
					continue
				}
				info, _ := ck.Info(name)
				if info.DType != tc.dtype || !reflect.DeepEqual(info.Shape, shape) {
					t.Errorf("%s: %s %v, want %s %v", name, info.DType, info.Shape, tc.dtype, shape)
				}
				vals, err := ck.ReadFloat32(name, shape...)
				if err != nil {
					t.Fatal(err)
				}
				if len(vals) != info.Numel() {
					t.Fatalf("%s: %d values", name, len(vals))
				}
				for _, v := range vals {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("%s: non-finite value", name)
					}
				}
			}
			for _, p := range tc.probes {
				vals, err := ck.ReadFloat32(p.name)
				if err != nil {
					t.Fatal(err)
				}
				var sum float64
				for _, v := range vals {
					sum += float64(v)
				}
				if float64(vals[0]) != p.first || float64(vals[len(vals)-1]) != p.last || math.Abs(sum-p.sum) > p.sumTol {
					t.Errorf("%s: first %v last %v sum %v, want %v %v %v", p.name, vals[0], vals[len(vals)-1], sum, p.first, p.last, p.sum)
				}
			}
			if md := ck.Metadata(ck.Files()[0]); md["format"] != "pt" {
				t.Errorf("metadata %v", md)
			}
			fp, err := ck.Fingerprint()
			if err != nil || len(fp) != 64 {
				t.Errorf("fingerprint %q, %v", fp, err)
			}
			// The fs.FS variant gives the same tensors and fingerprint.
			fck, err := OpenCheckpointFS(os.DirFS(dir), ".")
			if err != nil {
				t.Fatal(err)
			}
			defer fck.Close()
			if got := mustFingerprint(t, fck); got != fp || fck.LegacyFingerprint() != ck.LegacyFingerprint() {
				t.Errorf("fs fingerprint %s (legacy %s), want %s (%s)", got, fck.LegacyFingerprint(), fp, ck.LegacyFingerprint())
			}
			a, _ := ck.ReadFloat32("model.embed_tokens.weight")
			b, err := fck.ReadFloat32("model.embed_tokens.weight")
			if err != nil || !reflect.DeepEqual(a, b) {
				t.Errorf("fs read differs (err %v)", err)
			}
		})
	}
}

// TestRewriteBF16Identical checks the BF16 writer against real PyTorch-written
// bytes: converting llama-pd-11m's tensors to float32 and writing them back as
// BF16 reproduces every tensor's bytes exactly.
func TestRewriteBF16Identical(t *testing.T) {
	dir := modelDir(t, "llama-pd-11m")
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var tensors []TensorData
	for _, name := range ck.Names() {
		info, _ := ck.Info(name)
		v, err := ck.ReadFloat32(name)
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, TensorData{Name: name, DType: BF16, Shape: info.Shape, F32: v})
	}
	out := filepath.Join(t.TempDir(), "model.safetensors")
	if err := WriteSafetensors(out, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	ck2, err := OpenCheckpoint(filepath.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	defer ck2.Close()
	for _, name := range ck.Names() {
		a, _ := ck.ReadRaw(name)
		b, err := ck2.ReadRaw(name)
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s: rewritten bytes differ (err %v)", name, err)
		}
	}
	// The original file's total size matches (same layout up to header text).
	st1, _ := os.Stat(filepath.Join(dir, "model.safetensors"))
	st2, _ := os.Stat(out)
	d1 := st1.Size() - 8 - int64(headerLen(t, filepath.Join(dir, "model.safetensors")))
	d2 := st2.Size() - 8 - int64(headerLen(t, out))
	if d1 != d2 {
		t.Errorf("data sections differ in size: %d vs %d", d1, d2)
	}
}

func headerLen(t *testing.T, path string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[:])
}

func randomValues(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.Intn(7)-4)))
	}
	return v
}

func TestWriteReadRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for _, dt := range []DType{F32, F16, BF16} {
		t.Run(string(dt), func(t *testing.T) {
			dir := t.TempDir()
			in := []TensorData{
				{Name: "z.weight", DType: dt, Shape: []int{3, 5}, F32: randomValues(rng, 15)},
				{Name: "a.bias", DType: dt, Shape: []int{7}, F32: randomValues(rng, 7)},
				{Name: "m.scalar", DType: dt, Shape: []int{}, F32: []float32{1.5}},
				{Name: "m.empty", DType: dt, Shape: []int{0, 4}, F32: nil},
				{Name: "big", DType: dt, Shape: []int{300, 1000}, F32: randomValues(rng, 300000)}, // spans several read chunks
				{Name: "raw.ids", DType: I64, Shape: []int{2}, Raw: []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}},
			}
			in[0].F32[0] = -65504                      // the largest float16 (infinities are refused: TestReadFloat32RefusesNonFinite)
			in[0].F32[1] = float32(math.Ldexp(1, -20)) // half subnormal
			path := filepath.Join(dir, "model.safetensors")
			meta := map[string]string{"format": "pt", "note": `quote " and <tag>`}
			if err := WriteSafetensors(path, in, meta); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(path)
			n := binary.LittleEndian.Uint64(raw)
			if (8+n)%8 != 0 {
				t.Errorf("data section starts at %d, not 8-aligned", 8+n)
			}
			// Deterministic: writing again gives identical bytes.
			if err := WriteSafetensors(path, in, meta); err != nil {
				t.Fatal(err)
			}
			raw2, _ := os.ReadFile(path)
			if !bytes.Equal(raw, raw2) {
				t.Error("output not deterministic")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("temporary files left: %v", ents)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
				t.Errorf("mode %v", st.Mode())
			}
			ck, err := OpenCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			if !reflect.DeepEqual(ck.Metadata(path), meta) {
				t.Errorf("metadata %v", ck.Metadata(path))
			}
			// Tensors laid out in name order.
			var prevEnd int64
			for _, name := range ck.Names() {
				info, _ := ck.Info(name)
				if info.Begin != prevEnd {
					t.Errorf("%s begins at %d, want %d", name, info.Begin, prevEnd)
				}
				prevEnd = info.End
			}
			for _, td := range in {
				info, ok := ck.Info(td.Name)
				if !ok || info.DType != td.DType || !reflect.DeepEqual(info.Shape, td.Shape) {
					t.Fatalf("%s: info %+v", td.Name, info)
				}
				if td.Raw != nil {
					got, err := ck.ReadRaw(td.Name)
					if err != nil || !bytes.Equal(got, td.Raw) {
						t.Errorf("%s: raw %v (err %v)", td.Name, got, err)
					}
					if _, err := ck.ReadFloat32(td.Name); err == nil || !strings.Contains(err.Error(), "I64") {
						t.Errorf("reading I64 as float32: err = %v", err)
					}
					continue
				}
				got, err := ck.ReadFloat32(td.Name, td.Shape...)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(td.F32) {
					t.Fatalf("%s: %d values, want %d", td.Name, len(got), len(td.F32))
				}
				for i, v := range td.F32 {
					want := v
					switch dt {
					case F16:
						want = Float16ToFloat32(Float32ToFloat16(v))
					case BF16:
						want = BFloat16ToFloat32(Float32ToBFloat16(v))
					}
					if math.Float32bits(got[i]) != math.Float32bits(want) {
						t.Fatalf("%s[%d] = %v, want %v", td.Name, i, got[i], want)
					}
				}
			}
		})
	}
}

func TestWriteSafetensorsErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.safetensors")
	tests := []struct {
		name    string
		tensors []TensorData
		want    string
	}{
		{"duplicate", []TensorData{{Name: "a", DType: F32, Shape: []int{1}, F32: []float32{1}}, {Name: "a", DType: F32, Shape: []int{1}, F32: []float32{1}}}, `tensor "a": given twice`},
		{"count mismatch", []TensorData{{Name: "a", DType: F16, Shape: []int{2, 2}, F32: []float32{1}}}, `tensor "a": shape [2 2] has 4 elements`},
		{"negative dim", []TensorData{{Name: "a", DType: F32, Shape: []int{-1}}}, `tensor "a": invalid shape`},
		{"unsupported dtype", []TensorData{{Name: "a", DType: I32, Shape: []int{1}, F32: []float32{1}}}, `tensor "a": dtype "I32"`},
		{"raw size", []TensorData{{Name: "a", DType: I64, Shape: []int{2}, Raw: []byte{1}}}, `tensor "a": shape [2] of I64 needs 16 bytes`},
		{"metadata name", []TensorData{{Name: "__metadata__", DType: F32, Shape: []int{1}, F32: []float32{1}}}, `invalid tensor name`},
		{"bits count", []TensorData{{Name: "a", DType: BF16, Shape: []int{3}, Bits: []uint16{1, 2}}}, `tensor "a": shape [3] has 3 elements, got 2 values`},
		{"bits dtype", []TensorData{{Name: "a", DType: F32, Shape: []int{1}, Bits: []uint16{1}}}, `tensor "a": dtype "F32": 16-bit values`},
		{"bits and floats", []TensorData{{Name: "a", DType: F16, Shape: []int{1}, Bits: []uint16{1}, F32: []float32{1}}}, `both F32 and Bits`},
	}
	for _, tc := range tests {
		err := WriteSafetensors(path, tc.tensors, nil)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to name %s and %q", tc.name, err, path, tc.want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left behind: %v", ents)
	}
	if err := WriteSafetensors(filepath.Join(dir, "no/such/dir/x.safetensors"), nil, nil); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

// writeSharded writes tensors split over two shards with an index, plus a
// config.json, into dir.
func writeSharded(t *testing.T, dir string, tensors []TensorData, config []byte) {
	t.Helper()
	weightMap := map[string]string{}
	var s1, s2 []TensorData
	for i, td := range tensors {
		if i%2 == 0 {
			s1 = append(s1, td)
			weightMap[td.Name] = "model-00001-of-00002.safetensors"
		} else {
			s2 = append(s2, td)
			weightMap[td.Name] = "model-00002-of-00002.safetensors"
		}
	}
	if err := WriteSafetensors(filepath.Join(dir, "model-00001-of-00002.safetensors"), s1, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	if err := WriteSafetensors(filepath.Join(dir, "model-00002-of-00002.safetensors"), s2, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 123}, "weight_map": weightMap})
	if err := os.WriteFile(filepath.Join(dir, IndexFileName), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFileName), config, 0o644); err != nil {
		t.Fatal(err)
	}
}

func syntheticTensors(rng *rand.Rand) []TensorData {
	var out []TensorData
	for i := 0; i < 6; i++ {
		shape := []int{rng.Intn(5) + 1, rng.Intn(5) + 1}
		out = append(out, TensorData{Name: fmt.Sprintf("model.layers.%d.w", i), DType: []DType{F32, F16, BF16}[i%3], Shape: shape, F32: randomValues(rng, shape[0]*shape[1])})
	}
	return out
}

func TestShardedCheckpoint(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	tensors := syntheticTensors(rng)
	config := configJSON(t, nil)
	sharded := t.TempDir()
	writeSharded(t, sharded, tensors, config)
	single := t.TempDir()
	if err := WriteSafetensors(filepath.Join(single, SafetensorsFileName), tensors, nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(single, ConfigFileName), config, 0o644)

	ck, err := OpenCheckpoint(sharded)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	ref, err := OpenCheckpoint(single)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if got := len(ck.Files()); got != 2 {
		t.Errorf("%d files, want 2", got)
	}
	if !reflect.DeepEqual(ck.Names(), ref.Names()) {
		t.Fatalf("names %v, want %v", ck.Names(), ref.Names())
	}
	if mustFingerprint(t, ck) != mustFingerprint(t, ref) || ck.LegacyFingerprint() != ref.LegacyFingerprint() {
		t.Error("sharding changed the fingerprint")
	}
	// Concurrent reads agree with the single-file checkpoint.
	var wg sync.WaitGroup
	errs := make(chan error, len(tensors))
	for _, td := range tensors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := ck.ReadFloat32(td.Name, td.Shape...)
			if err != nil {
				errs <- err
				return
			}
			b, _ := ref.ReadFloat32(td.Name)
			if !reflect.DeepEqual(a, b) {
				errs <- fmt.Errorf("%s differs", td.Name)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The same checkpoint from an in-memory fs.FS.
	mfs := fstest.MapFS{}
	ents, _ := os.ReadDir(sharded)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(sharded, e.Name()))
		mfs["m/"+e.Name()] = &fstest.MapFile{Data: b}
	}
	fck, err := OpenCheckpointFS(mfs, "m")
	if err != nil {
		t.Fatal(err)
	}
	defer fck.Close()
	if mustFingerprint(t, fck) != mustFingerprint(t, ref) {
		t.Error("fs.FS fingerprint differs")
	}
	a, err := fck.ReadFloat32(tensors[1].Name)
	b, _ := ref.ReadFloat32(tensors[1].Name)
	if err != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("fs.FS read differs (err %v)", err)
	}
}

// rawSafetensors builds a file from a header string and a data section size.
func rawSafetensors(header string, dataLen int) []byte {
	b := make([]byte, 8, 8+len(header)+dataLen)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

func TestCheckpointErrors(t *testing.T) {
	good := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	lenOnly := func(n uint64) []byte {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint64(b, n)
		return b
	}
	tests := []struct {
		name string
		file []byte // model.safetensors content
		want string // the field/tensor the message must name (besides the file)
	}{
		{"truncated below 8 bytes", []byte{1, 2, 3}, "too short"},
		{"data truncated", rawSafetensors(good, 4), `tensor "a": data_offsets [0, 8] beyond the data section (4 bytes)`},
		{"header length beyond file", lenOnly(1000), "header length 1000 beyond the end of the file"},
		{"header too large", lenOnly(MaxHead + 1), "header length 100000001 exceeds the limit"},
		{"bad JSON", rawSafetensors(`{"a":{"dtype":"F32",`, 8), "header JSON"},
		{"not an object", rawSafetensors(`[1,2]   `, 0), "header is not a JSON object"},
		{"trailing data", rawSafetensors(good+`{}`, 8), "after the object"},
		{"unknown dtype", rawSafetensors(`{"a":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}}`, 8), `tensor "a": unknown dtype "F12"`},
		{"missing dtype", rawSafetensors(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, 8), `tensor "a": missing or non-string dtype`},
		{"overlapping offsets", rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), `tensor "b": data_offsets [4, 12] overlap tensor "a"`},
		{"out of range offsets", rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, 8), `tensor "a": data_offsets [8, 16] beyond`},
		{"reversed offsets", rawSafetensors(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, 8), `tensor "a": data_offsets [8, 0]: begin after end`},
		{"shape size mismatch", rawSafetensors(`{"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}`, 8), `tensor "a": shape [3] of BF16 needs 6 bytes`},
		{"negative shape", rawSafetensors(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8), `tensor "a": shape`},
		{"three offsets", rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, 8), `tensor "a": data_offsets must have 2 entries`},
		{"overflowing shape", rawSafetensors(`{"a":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,8]}}`, 8), `tensor "a": shape`},
		{"duplicate tensor", rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8), `tensor "a": listed twice`},
		{"bad metadata", rawSafetensors(`{"__metadata__":{"k":1}}`, 0), "__metadata__"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, SafetensorsFileName)
			os.WriteFile(path, tc.file, 0o644)
			ck, err := OpenCheckpoint(dir)
			if err == nil {
				ck.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q should name %s and %q", err, path, tc.want)
			}
		})
	}
}

func TestCheckpointReadErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SafetensorsFileName)
	if err := WriteSafetensors(path, []TensorData{{Name: "model.layers.0.self_attn.q_proj.weight", DType: F32, Shape: []int{4, 2}, F32: make([]float32, 8)}}, nil); err != nil {
		t.Fatal(err)
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ck.ReadFloat32("model.layers.0.self_attn.q_proj.weight", 4, 4)
	want := path + ": tensor model.layers.0.self_attn.q_proj.weight: shape [4 2], want [4 4]"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("shape error %v, want %q", err, want)
	}
	_, err = ck.ReadFloat32("lm_head.weight")
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `no tensor "lm_head.weight"`) {
		t.Errorf("missing tensor error %v", err)
	}
	if _, ok := ck.Info("lm_head.weight"); ok {
		t.Error("Info of a missing tensor")
	}
	if err := ck.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ck.ReadFloat32("model.layers.0.self_attn.q_proj.weight"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("read after close: %v", err)
	}

	// No checkpoint at all.
	empty := t.TempDir()
	if _, err := OpenCheckpoint(empty); err == nil || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), IndexFileName) {
		t.Errorf("empty dir: %v", err)
	}
}

func TestShardedErrors(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	tensors := syntheticTensors(rng)
	tests := []struct {
		name   string
		mutate func(dir string)
		want   string
	}{
		{"missing shard", func(dir string) { os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors")) }, `shard "model-00002-of-00002.safetensors", which is missing`},
		{"bad index JSON", func(dir string) { os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map":`), 0o644) }, "invalid index JSON"},
		{"empty weight_map", func(dir string) { os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map":{}}`), 0o644) }, `"weight_map"`},
		{"escaping shard path", func(dir string) {
			os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map":{"x":"../evil.safetensors"}}`), 0o644)
		}, `tensor "x": invalid shard file name "../evil.safetensors"`},
		{"tensor mapped to wrong shard", func(dir string) {
			idx := map[string]any{"weight_map": map[string]string{tensors[0].Name: "model-00002-of-00002.safetensors", tensors[1].Name: "model-00001-of-00002.safetensors"}}
			b, _ := json.Marshal(idx)
			os.WriteFile(filepath.Join(dir, IndexFileName), b, 0o644)
		}, "which does not hold it"},
		{"tensor in two shards", func(dir string) {
			WriteSafetensors(filepath.Join(dir, "model-00002-of-00002.safetensors"), tensors[:2], nil)
		}, "is in two shards"},
		{"corrupt shard", func(dir string) {
			os.WriteFile(filepath.Join(dir, "model-00001-of-00002.safetensors"), []byte("garbage!garbage!"), 0o644)
		}, "model-00001-of-00002.safetensors: header length"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSharded(t, dir, tensors, configJSON(t, nil))
			tc.mutate(dir)
			ck, err := OpenCheckpoint(dir)
			if err == nil {
				ck.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q should name %s and %q", err, dir, tc.want)
			}
		})
	}
	// A missing tensor in a sharded checkpoint names the index file.
	dir := t.TempDir()
	writeSharded(t, dir, tensors, configJSON(t, nil))
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if _, err := ck.ReadFloat32("nope"); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, IndexFileName)) {
		t.Errorf("missing tensor error %v should name the index", err)
	}
}

// noReaderAtFS serves files that implement only fs.File.
type noReaderAtFS struct{ fstest.MapFS }

type plainFile struct{ fs.File }

func (f noReaderAtFS) Open(name string) (fs.File, error) {
	file, err := f.MapFS.Open(name)
	if err != nil {
		return nil, err
	}
	return plainFile{file}, nil
}

func TestOpenCheckpointFSNeedsReaderAt(t *testing.T) {
	dir := t.TempDir()
	WriteSafetensors(filepath.Join(dir, SafetensorsFileName), []TensorData{{Name: "a", DType: F32, Shape: []int{1}, F32: []float32{1}}}, nil)
	b, _ := os.ReadFile(filepath.Join(dir, SafetensorsFileName))
	fsys := noReaderAtFS{fstest.MapFS{"m/model.safetensors": {Data: b}}}
	_, err := OpenCheckpointFS(fsys, "m")
	if err == nil || !strings.Contains(err.Error(), "m/model.safetensors") || !strings.Contains(err.Error(), "io.ReaderAt") {
		t.Errorf("err = %v", err)
	}
}

func FuzzParseSafetensorsHeader(f *testing.F) {
	for _, m := range []string{"babyllama-1m", "llama-pd-11m"} {
		if fh, err := os.Open(filepath.Join(sharedModels, m, SafetensorsFileName)); err == nil {
			st, _ := fh.Stat()
			head := make([]byte, 16<<10)
			n, _ := io.ReadFull(fh, head)
			fh.Close()
			f.Add(head[:n], st.Size())
		}
	}
	for _, h := range []string{
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}`,
		`{"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[],"data_offsets":[8,10]}}`,
		`{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`,
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`,
		`{}       `,
	} {
		f.Add(rawSafetensors(h, 0), int64(8+len(h)+16))
	}
	f.Fuzz(func(t *testing.T, data []byte, fileSize int64) {
		tensors, _, err := ParseSafetensorsHeader(data, fileSize, "fuzz.safetensors")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.safetensors") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		n := int64(binary.LittleEndian.Uint64(data))
		base := 8 + n
		var list []TensorInfo
		for name, ti := range tensors {
			if ti.Name != name || ti.File != "fuzz.safetensors" || !ti.DType.Known() {
				t.Fatalf("bad info %+v", ti)
			}
			if ti.Begin < 0 || ti.Begin > ti.End || ti.Offset != base+ti.Begin || ti.Size != ti.End-ti.Begin || base+ti.End > fileSize {
				t.Fatalf("bad offsets %+v (base %d, file %d)", ti, base, fileSize)
			}
			if int64(ti.Numel())*int64(ti.DType.Size()) != ti.Size {
				t.Fatalf("size mismatch %+v", ti)
			}
			list = append(list, ti)
		}
		// Brute-force pairwise overlap check.
		for i := range list {
			for j := i + 1; j < len(list); j++ {
				a, b := list[i], list[j]
				if a.Size > 0 && b.Size > 0 && a.Begin < b.End && b.Begin < a.End {
					t.Fatalf("overlap accepted: %+v %+v", a, b)
				}
			}
		}
	})
}

func TestReadF64AndRaw(t *testing.T) {
	vals := []float64{1.0 / 3, -2.5e-8, 3e38, 0} // 1e39 overflows float32: TestReadFloat32RefusesNonFinite
	raw := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(v))
	}
	dir := t.TempDir()
	if err := WriteSafetensors(filepath.Join(dir, SafetensorsFileName), []TensorData{{Name: "d", DType: F64, Shape: []int{2, 2}, Raw: raw}}, nil); err != nil {
		t.Fatal(err)
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Dir() != dir {
		t.Errorf("Dir %q", ck.Dir())
	}
	got, err := ck.ReadFloat32("d", 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if got[i] != float32(v) {
			t.Errorf("[%d] = %v, want %v", i, got[i], float32(v))
		}
	}
	if _, err := ck.ReadRaw("d", 4); err == nil || !strings.Contains(err.Error(), "want [4]") {
		t.Errorf("ReadRaw shape check: %v", err)
	}
	b, err := ck.ReadRaw("d")
	if err != nil || !bytes.Equal(b, raw) {
		t.Errorf("ReadRaw: %v", err)
	}
}

// A tensor given as its 16-bit bits is written byte for byte as the same values given as
// float32 (every BF16 and F16 bit pattern but NaNs round-trips through float32), in one chunk
// and across the writer's 64 KiB chunks.
func TestWriteSafetensorsBits(t *testing.T) {
	dir := t.TempDir()
	for _, dt := range []DType{BF16, F16} {
		for _, n := range []int{5, 40000} {
			bits := make([]uint16, n)
			vals := make([]float32, n)
			for i := range bits {
				b := uint16(i*2654435761>>7) & 0xfbff // no NaN (exponent never all ones)
				bits[i] = b
				if dt == BF16 {
					vals[i] = BFloat16ToFloat32(b)
				} else {
					vals[i] = Float16ToFloat32(b)
				}
			}
			a, b := filepath.Join(dir, "bits.safetensors"), filepath.Join(dir, "f32.safetensors")
			if err := WriteSafetensors(a, []TensorData{{Name: "w", DType: dt, Shape: []int{n}, Bits: bits}}, nil); err != nil {
				t.Fatal(err)
			}
			if err := WriteSafetensors(b, []TensorData{{Name: "w", DType: dt, Shape: []int{n}, F32: vals}}, nil); err != nil {
				t.Fatal(err)
			}
			x, _ := os.ReadFile(a)
			y, _ := os.ReadFile(b)
			if !bytes.Equal(x, y) {
				t.Errorf("%s, %d values: the file from bits differs from the file from float32", dt, n)
			}
		}
	}
}
