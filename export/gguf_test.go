package export

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	gguf "github.com/gpustack/gguf-parser-go"

	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/tokenizer"
)

// refHalf decodes an IEEE binary16 value from its definition (independent of package hf).
func refHalf(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	switch e {
	case 0:
		return sign * math.Ldexp(m, -24)
	case 31:
		if m == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1024+m, e-25)
}

// refDecode decodes n values of GGML type typ from b: F32, F16 and Q8_0 (blocks of a float16
// scale d and 32 int8 codes q, value q·d).
func refDecode(t *testing.T, typ gguf.GGMLType, b []byte, n int) []float64 {
	t.Helper()
	out := make([]float64, n)
	switch typ {
	case gguf.GGMLTypeF32:
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case gguf.GGMLTypeF16:
		for i := range out {
			out[i] = refHalf(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case gguf.GGMLTypeQ8_0:
		for blk := 0; blk < n/32; blk++ {
			p := b[34*blk:]
			d := refHalf(binary.LittleEndian.Uint16(p))
			for j := 0; j < 32; j++ {
				out[32*blk+j] = float64(int8(p[2+j])) * d
			}
		}
	default:
		t.Fatalf("unexpected tensor type %v", typ)
	}
	return out
}

// checkQ8_0 checks Q8_0 blocks against the format's definition: per 32 values, d = max|x|/127
// rounded to float16, codes round(x/d) (one off at most where x/d sits at a rounding tie in
// float32), the largest |x| coded ±127.
func checkQ8_0(t *testing.T, name string, b []byte, x []float32) {
	t.Helper()
	for blk := 0; blk < len(x)/32; blk++ {
		p := b[34*blk:]
		xs := x[32*blk : 32*blk+32]
		var amax float64
		arg := 0
		for j, v := range xs {
			if a := math.Abs(float64(v)); a > amax {
				amax, arg = a, j
			}
		}
		dRef := amax / 127
		d := refHalf(binary.LittleEndian.Uint16(p))
		if math.Abs(d-dRef) > dRef*math.Ldexp(1, -11)+math.Ldexp(1, -25) {
			t.Fatalf("%s block %d: scale %v, want float16(%v)", name, blk, d, dRef)
		}
		if amax == 0 {
			for j := 0; j < 32; j++ {
				if p[2+j] != 0 {
					t.Fatalf("%s block %d: zero block with non-zero code", name, blk)
				}
			}
			continue
		}
		for j, v := range xs {
			q := float64(int8(p[2+j]))
			if want := math.Round(float64(v) / dRef); math.Abs(q-want) > 1 {
				t.Fatalf("%s block %d value %d: code %v, want round(%v/%v) = %v", name, blk, j, q, v, dRef, want)
			}
		}
		if q := int8(p[2+arg]); q != 127 && q != -127 {
			t.Fatalf("%s block %d: largest value coded %d, want ±127", name, blk, q)
		}
	}
}

// refUnpermute undoes llama.cpp's q/k row permutation: GGUF row h·hd + 2i + s holds Hugging Face
// row h·hd + s·hd/2 + i (reshape(n_head, 2, hd/2, in).swapaxes(1, 2)).
func refUnpermute(w []float64, heads, in int) []float64 {
	out := make([]float64, len(w))
	hd := len(w) / in / heads
	for r := 0; r < len(w)/in; r++ {
		h, rest := r/hd, r%hd
		i, s := rest/2, rest%2
		src := h*hd + s*(hd/2) + i
		copy(out[src*in:(src+1)*in], w[r*in:(r+1)*in])
	}
	return out
}

func kvUint(t *testing.T, gf *gguf.GGUFFile, key string) uint64 {
	t.Helper()
	kv, ok := gf.Header.MetadataKV.Get(key)
	if !ok {
		t.Fatalf("metadata %s missing", key)
	}
	if kv.ValueType != gguf.GGUFMetadataValueTypeUint32 {
		t.Fatalf("metadata %s has type %v, want uint32", key, kv.ValueType)
	}
	return uint64(kv.ValueUint32())
}

func kvString(t *testing.T, gf *gguf.GGUFFile, key string) string {
	t.Helper()
	kv, ok := gf.Header.MetadataKV.Get(key)
	if !ok || kv.ValueType != gguf.GGUFMetadataValueTypeString {
		t.Fatalf("metadata %s missing or not a string", key)
	}
	return kv.ValueString()
}

func kvFloat(t *testing.T, gf *gguf.GGUFFile, key string) float32 {
	t.Helper()
	kv, ok := gf.Header.MetadataKV.Get(key)
	if !ok || kv.ValueType != gguf.GGUFMetadataValueTypeFloat32 {
		t.Fatalf("metadata %s missing or not a float32", key)
	}
	return kv.ValueFloat32()
}

func kvBool(t *testing.T, gf *gguf.GGUFFile, key string) bool {
	t.Helper()
	kv, ok := gf.Header.MetadataKV.Get(key)
	if !ok || kv.ValueType != gguf.GGUFMetadataValueTypeBool {
		t.Fatalf("metadata %s missing or not a bool", key)
	}
	return kv.ValueBool()
}

func kvArray(t *testing.T, gf *gguf.GGUFFile, key string) gguf.GGUFMetadataKVArrayValue {
	t.Helper()
	kv, ok := gf.Header.MetadataKV.Get(key)
	if !ok || kv.ValueType != gguf.GGUFMetadataValueTypeArray {
		t.Fatalf("metadata %s missing or not an array", key)
	}
	return kv.ValueArray()
}

func TestExportGGUF(t *testing.T) {
	dir := modelDir(t, "llama-pd-11m")
	dense, fp, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := dropProfile(fp)
	tmp := t.TempDir()
	hfDir := filepath.Join(tmp, "hf")
	if _, err := Run(Options{ModelDir: dir, Profile: p, Format: FormatHF, Out: hfDir}); err != nil {
		t.Fatal(err)
	}
	hfm, _, err := model.Load(hfDir) // the exported Hugging Face weights, 11 blocks
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ      string
		mat      gguf.GGMLType
		fileType uint64
	}{
		{"F32", gguf.GGMLTypeF32, 0},
		{"f16", gguf.GGMLTypeF16, 1},
		{"Q8_0", gguf.GGMLTypeQ8_0, 7},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			out := filepath.Join(tmp, tc.typ+".gguf")
			if _, err := Run(Options{ModelDir: dir, Profile: p, Format: FormatGGUF, Type: tc.typ, Out: out}); err != nil {
				t.Fatal(err)
			}
			gf, err := gguf.ParseGGUFFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if gf.Header.Version != gguf.GGUFVersionV3 || gf.Header.Magic != gguf.GGUFMagicGGUFLe {
				t.Errorf("header %v %v", gf.Header.Magic, gf.Header.Version)
			}
			if a := kvString(t, gf, "general.architecture"); a != "llama" {
				t.Errorf("architecture %q", a)
			}
			for key, want := range map[string]uint64{
				"llama.block_count": 11, "llama.context_length": 1024, "llama.embedding_length": 256,
				"llama.feed_forward_length": 704, "llama.attention.head_count": 4,
				"llama.attention.head_count_kv": 2, "llama.rope.dimension_count": 64,
				"general.file_type": tc.fileType, "general.alignment": 32,
				"tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
				"tokenizer.ggml.unknown_token_id": 0,
			} {
				if got := kvUint(t, gf, key); got != want {
					t.Errorf("%s = %d, want %d", key, got, want)
				}
			}
			if got := kvFloat(t, gf, "llama.rope.freq_base"); got != 10000 {
				t.Errorf("rope.freq_base %v", got)
			}
			if got := kvFloat(t, gf, "llama.attention.layer_norm_rms_epsilon"); got != float32(1e-5) {
				t.Errorf("rms epsilon %v", got)
			}
			if kvString(t, gf, "tokenizer.ggml.model") != "llama" || !kvBool(t, gf, "tokenizer.ggml.add_bos_token") || kvBool(t, gf, "tokenizer.ggml.add_eos_token") {
				t.Errorf("tokenizer model / add_bos / add_eos wrong")
			}
			toks := kvArray(t, gf, "tokenizer.ggml.tokens").ValuesString()
			if !slices.Equal(toks, tok.Vocab()) {
				t.Errorf("tokens differ from tokenizer.json's vocabulary")
			}
			// tokenizer.model of llama-pd-11m (inspected with a protobuf dump): <unk>, <s>, </s>
			// and the 256 byte pieces score 0, then the normal pieces -0, -1, -2, …
			scores := kvArray(t, gf, "tokenizer.ggml.scores").ValuesFloat32()
			types := kvArray(t, gf, "tokenizer.ggml.token_type").ValuesInt32()
			if len(scores) != 4096 || len(types) != 4096 {
				t.Fatalf("%d scores, %d token types", len(scores), len(types))
			}
			for id := range 4096 {
				wantScore, wantType := float32(0), int32(1)
				switch {
				case id == 0:
					wantType = 2
				case id <= 2:
					wantType = 3
				case id < 259:
					wantType = 6
				default:
					wantScore = -float32(id - 259)
				}
				if scores[id] != wantScore || types[id] != wantType {
					t.Fatalf("token %d %q: score %v type %d, want %v %d", id, toks[id], scores[id], types[id], wantScore, wantType)
				}
			}

			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(gf.TensorInfos) != 1+11*9+2 {
				t.Errorf("%d tensors, want %d", len(gf.TensorInfos), 1+11*9+2)
			}
			type want struct {
				vals       []float32
				ne0, ne1   int
				permHeads  int
				oneDim     bool
				mustBeZero bool
			}
			exp := map[string]want{
				"token_embd.weight":  {vals: hfm.Embed, ne0: 256, ne1: 4096},
				"output_norm.weight": {vals: hfm.Norm, ne0: 256, oneDim: true},
				"output.weight":      {vals: hfm.Head, ne0: 256, ne1: 4096},
			}
			for i := range hfm.Blocks {
				b := &hfm.Blocks[i]
				pfx := fmt.Sprintf("blk.%d.", i)
				exp[pfx+"attn_norm.weight"] = want{vals: b.AttnNorm, ne0: 256, oneDim: true}
				exp[pfx+"ffn_norm.weight"] = want{vals: b.MLPNorm, ne0: 256, oneDim: true}
				exp[pfx+"attn_q.weight"] = want{vals: b.Q.W, ne0: 256, ne1: 256, permHeads: 4}
				exp[pfx+"attn_k.weight"] = want{vals: b.K.W, ne0: 256, ne1: 128, permHeads: 2}
				exp[pfx+"attn_v.weight"] = want{vals: b.V.W, ne0: 256, ne1: 128}
				exp[pfx+"attn_output.weight"] = want{vals: b.O.W, ne0: 256, ne1: 256, mustBeZero: i == 8}
				exp[pfx+"ffn_gate.weight"] = want{vals: b.Gate.W, ne0: 256, ne1: 704}
				exp[pfx+"ffn_up.weight"] = want{vals: b.Up.W, ne0: 256, ne1: 704}
				exp[pfx+"ffn_down.weight"] = want{vals: b.Down.W, ne0: 704, ne1: 256, mustBeZero: i == 6}
			}
			// The source block 4 became blk.3: its weights are the dense model's block 4.
			if !slices.Equal(exp["blk.3.attn_v.weight"].vals, dense.Blocks[4].V.W) {
				t.Fatalf("exported HF block 3 is not the source block 4")
			}
			for _, ti := range gf.TensorInfos {
				w, ok := exp[ti.Name]
				if !ok {
					t.Errorf("unexpected tensor %s", ti.Name)
					continue
				}
				delete(exp, ti.Name)
				wantDims := []uint64{uint64(w.ne0)}
				wantType := gguf.GGMLTypeF32
				if !w.oneDim {
					wantDims = append(wantDims, uint64(w.ne1))
					wantType = tc.mat
				}
				if !slices.Equal(ti.Dimensions, wantDims) || ti.Type != wantType {
					t.Errorf("%s: dims %v type %v, want %v %v", ti.Name, ti.Dimensions, ti.Type, wantDims, wantType)
					continue
				}
				start := gf.TensorDataStartOffset + int64(ti.Offset)
				if start%32 != 0 {
					t.Errorf("%s: data at %d, not 32-byte aligned", ti.Name, start)
				}
				raw := data[start : start+int64(ti.Bytes())]
				got := refDecode(t, ti.Type, raw, len(w.vals))
				// Q8_0 error bound per value: half a step of the block's scale d, plus 127 times the
				// float16 rounding of d (codes are computed with the float32 d, decoded with the
				// stored float16 one).
				qtol := make([]float64, len(w.vals))
				if ti.Type == gguf.GGMLTypeQ8_0 {
					for i := range qtol {
						qtol[i] = refHalf(binary.LittleEndian.Uint16(raw[34*(i/32):]))*(0.5+127*math.Ldexp(1, -10)) + 1e-9
					}
				}
				if w.permHeads > 0 {
					got = refUnpermute(got, w.permHeads, w.ne0)
					qtol = refUnpermute(qtol, w.permHeads, w.ne0)
				}
				if ti.Type == gguf.GGMLTypeQ8_0 {
					src := w.vals
					if w.permHeads > 0 {
						src = PermuteQK(w.vals, w.permHeads, w.ne0)
					}
					checkQ8_0(t, ti.Name, raw, src)
				}
				for i, x := range w.vals {
					g := got[i]
					var tol float64
					switch ti.Type {
					case gguf.GGMLTypeF16:
						tol = math.Abs(float64(x))*math.Ldexp(1, -11) + math.Ldexp(1, -25)
					case gguf.GGMLTypeQ8_0:
						tol = qtol[i]
					}
					if w.mustBeZero && x != 0 {
						t.Fatalf("%s should be zeroed", ti.Name)
					}
					if math.Abs(g-float64(x)) > tol {
						t.Fatalf("%s[%d] = %v, want %v (type %v)", ti.Name, i, g, x, ti.Type)
					}
				}
			}
			for name := range exp {
				t.Errorf("tensor %s missing", name)
			}
		})
	}
}

// TestPermuteQKRotary checks PermuteQK by what it is for: Hugging Face's rotate-half RoPE on a
// q/k vector, permuted, equals llama.cpp's RoPE (rotating adjacent pairs 2i, 2i+1 by the i-th
// frequency) on the permuted vector.
func TestPermuteQKRotary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const heads, hd, in = 3, 8, 5
	w := make([]float32, heads*hd*in)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	x := make([]float64, in)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	matvec := func(w []float32) []float64 {
		y := make([]float64, heads*hd)
		for r := range y {
			for c := 0; c < in; c++ {
				y[r] += float64(w[r*in+c]) * x[c]
			}
		}
		return y
	}
	pos := 7.0
	theta := func(i int) float64 { return pos * math.Pow(10000, -2*float64(i)/hd) }
	yHF := matvec(w)
	ropeHF := make([]float64, len(yHF))
	for h := 0; h < heads; h++ {
		for i := 0; i < hd/2; i++ {
			a, b := yHF[h*hd+i], yHF[h*hd+i+hd/2]
			c, s := math.Cos(theta(i)), math.Sin(theta(i))
			ropeHF[h*hd+i], ropeHF[h*hd+i+hd/2] = a*c-b*s, b*c+a*s
		}
	}
	yGG := matvec(PermuteQK(w, heads, in))
	for h := 0; h < heads; h++ {
		for i := 0; i < hd/2; i++ {
			a, b := yGG[h*hd+2*i], yGG[h*hd+2*i+1]
			c, s := math.Cos(theta(i)), math.Sin(theta(i))
			yGG[h*hd+2*i], yGG[h*hd+2*i+1] = a*c-b*s, b*c+a*s
		}
	}
	// Permuting the HF result must give the llama.cpp result.
	pr := make([]float32, len(ropeHF))
	for i, v := range ropeHF {
		pr[i] = float32(v)
	}
	want := PermuteQK(pr, heads, 1)
	for i := range want {
		if math.Abs(float64(want[i])-yGG[i]) > 1e-5 {
			t.Fatalf("row %d: %v, want %v", i, yGG[i], want[i])
		}
	}
}

func TestQ8_0Block(t *testing.T) {
	for _, tc := range []struct {
		name string
		x    func(j int) float32
	}{
		{"ramp", func(j int) float32 { return float32(j-16) / 4 }},
		{"zeros", func(int) float32 { return 0 }},
		{"tiny", func(j int) float32 { return float32(j) * 1e-9 }},
		{"mixed", func(j int) float32 { return float32(math.Sin(float64(j))) * 3 }},
	} {
		x := make([]float32, 32)
		for j := range x {
			x[j] = tc.x(j)
		}
		b := AppendQ8_0Block(nil, x)
		if len(b) != Q8_0BlockBytes {
			t.Fatalf("%s: %d bytes", tc.name, len(b))
		}
		checkQ8_0(t, tc.name, b, x)
	}
	// ramp: max|x| = 4 → d = 4/127; x = -4 → q = -127, x = 0.25 → round(8.0) = 8.
	x := make([]float32, 32)
	for j := range x {
		x[j] = float32(j-16) / 4
	}
	b := AppendQ8_0Block(nil, x)
	if int8(b[2]) != -127 || int8(b[2+17]) != 8 || int8(b[2+16]) != 0 {
		t.Errorf("ramp codes %d %d %d, want -127 8 0", int8(b[2]), int8(b[19]), int8(b[18]))
	}
	if d := refHalf(binary.LittleEndian.Uint16(b)); math.Abs(d-4.0/127) > 4.0/127/1024 {
		t.Errorf("ramp scale %v", d)
	}
}
