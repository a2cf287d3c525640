package export

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	gguf "github.com/gpustack/gguf-parser-go"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
)

// tinyModel writes a random 2-block F32 Llama model (hidden 64, MLP 96, 4 heads of 16, 2 kv
// heads) with llama-pd-11m's tokenizer (vocabulary 4096) and returns its directory, the loaded
// model and its fingerprint.
func tinyModel(t *testing.T) (string, *model.Model, string) {
	t.Helper()
	tokDir := modelDir(t, "llama-pd-11m")
	dir := t.TempDir()
	const hidden, inter, blocks, heads, kv, vocab = 64, 96, 2, 4, 2, 4096
	cfg := fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":%d,"intermediate_size":%d,"num_hidden_layers":%d,
"num_attention_heads":%d,"num_key_value_heads":%d,"vocab_size":%d,"rms_norm_eps":1e-5,"tie_word_embeddings":false,"torch_dtype":"float32","bos_token_id":1,"eos_token_id":2}`,
		hidden, inter, blocks, heads, kv, vocab)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		if err := copyFile(&source{dir: tokDir}, f, filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var ts []hf.TensorData
	add := func(name string, std, mean float64, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(mean + std*rng.NormFloat64())
		}
		ts = append(ts, hf.TensorData{Name: name, DType: hf.F32, Shape: shape, F32: v})
	}
	add("model.embed_tokens.weight", 1, 0, vocab, hidden)
	for b := 0; b < blocks; b++ {
		p := fmt.Sprintf("model.layers.%d.", b)
		add(p+"input_layernorm.weight", 0.1, 1, hidden)
		add(p+"post_attention_layernorm.weight", 0.1, 1, hidden)
		add(p+"self_attn.q_proj.weight", 0.1, 0, hidden, hidden)
		add(p+"self_attn.k_proj.weight", 0.1, 0, kv*16, hidden)
		add(p+"self_attn.v_proj.weight", 0.1, 0, kv*16, hidden)
		add(p+"self_attn.o_proj.weight", 0.1, 0, hidden, hidden)
		add(p+"mlp.gate_proj.weight", 0.1, 0, inter, hidden)
		add(p+"mlp.up_proj.weight", 0.1, 0, inter, hidden)
		add(p+"mlp.down_proj.weight", 0.1, 0, hidden, inter)
	}
	add("model.norm.weight", 0.1, 1, hidden)
	add("lm_head.weight", 0.1, 0, vocab, hidden)
	if err := hf.WriteSafetensors(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	m, fp, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m, fp
}

// buildDB builds a level database of the tiny model.
func buildDB(t *testing.T, dir string, m *model.Model, fp, mode string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), mode+"-db")
	cfg := db.BuildConfig{
		Out: out, Model: m, ModelInfo: db.ModelInfo{Path: dir, Fingerprint: fp},
		Calib:       testSeqs(m.Vocab, 16, 32),
		Calibration: db.CalibInfo{Source: "test", SHA256: strings.Repeat("cd", 32), Seed: 1},
		Batch:       4,
	}
	if mode == db.ModeSparse {
		cfg.Mode, cfg.Method = db.ModeSparse, db.MethodSparseGPT
		cfg.Sparse = db.DefaultSparseParams(0.5)
	} else {
		cfg.Mode, cfg.Method = db.ModeQuant, db.MethodGPTQ
		cfg.Quant = db.DefaultQuantParams()
		cfg.Quant.Bits = []int{2, 3, 4, 5, 8}
		cfg.Quant.GroupSize = 32
	}
	if _, err := db.Build(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return out
}

// mixedProfile assigns the levels in turn to the 14 layers of the tiny model.
func mixedProfile(mode, fp string, levels ...int) *profile.Profile {
	p := profile.New(mode)
	p.Model = &profile.Ref{Fingerprint: fp}
	i := 0
	for b := 0; b < 2; b++ {
		for k := range arch.NumLinearKinds {
			p.Levels[arch.LinearUnit(b, k).String()] = levels[i%len(levels)]
			i++
		}
	}
	return p
}

func TestExportSparseAndQuant(t *testing.T) {
	dir, dense, fp := tinyModel(t)
	seqs := testSeqs(dense.Vocab, 3, 24)
	for _, tc := range []struct {
		mode   string
		levels []int
	}{
		{db.ModeSparse, []int{0, 1, -1, 2}},
		{db.ModeQuant, []int{2, 3, 4, 8, 5}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			dbDir := buildDB(t, dir, dense, fp, tc.mode)
			d, err := db.Open(dbDir)
			if err != nil {
				t.Fatal(err)
			}
			p := mixedProfile(tc.mode, fp, tc.levels...)
			want, _, err := db.ApplyProfile(dense, fp, p, d)
			if err != nil {
				t.Fatal(err)
			}
			tmp := t.TempDir()
			out := filepath.Join(tmp, "hf")
			if _, err := Run(Options{ModelDir: dir, Profile: p, DBDir: dbDir, Format: FormatHF, Out: out}); err != nil {
				t.Fatal(err)
			}
			got, _, err := model.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			for b := range got.Blocks {
				for k := range arch.NumLinearKinds {
					gw, ww := got.Blocks[b].Layer(k).Float32(), want.Blocks[b].Layer(k).Float32()
					for i := range gw {
						if math.Float32bits(gw[i]) != math.Float32bits(ww[i]) {
							t.Fatalf("%s[%d] = %v, want the database's %v", arch.LinearUnit(b, k).String(), i, gw[i], ww[i])
						}
					}
				}
			}
			sameFunction(t, want, got, seqs, 1e-9)

			// GGUF F32 of the same profile holds the same weights.
			gpath := filepath.Join(tmp, "m.gguf")
			if _, err := Run(Options{ModelDir: dir, Profile: p, DBDir: dbDir, Format: FormatGGUF, Type: "f32", Out: gpath}); err != nil {
				t.Fatal(err)
			}
			gf, err := gguf.ParseGGUFFile(gpath)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(gpath)
			ti, ok := gf.TensorInfos.Get("blk.1.ffn_down.weight")
			if !ok {
				t.Fatal("blk.1.ffn_down.weight missing")
			}
			vals := refDecode(t, ti.Type, data[gf.TensorDataStartOffset+int64(ti.Offset):], 64*96)
			wantDown := want.Blocks[1].Down.Float32()
			for i, v := range vals {
				if float32(v) != wantDown[i] {
					t.Fatalf("GGUF blk.1.ffn_down[%d] = %v, want %v", i, v, wantDown[i])
				}
			}
		})
	}
}

// refPackAutoGPTQ packs codes [in × out] (column j of the output is a run along the input) as
// AutoGPTQ's QuantLinear.pack does, written out case by case.
func refPackAutoGPTQ(intweight [][]uint32, bits int) [][]uint32 { // intweight[in][out]
	in, out := len(intweight), len(intweight[0])
	q := make([][]uint32, in/32*bits)
	for r := range q {
		q[r] = make([]uint32, out)
	}
	for c := 0; c < out; c++ {
		i, row := 0, 0
		for row < len(q) {
			switch bits {
			case 2, 4, 8:
				for j := i; j < i+32/bits; j++ {
					q[row][c] |= intweight[j][c] << (bits * (j - i))
				}
				i += 32 / bits
				row++
			case 3:
				for j := i; j < i+10; j++ {
					q[row][c] |= intweight[j][c] << (3 * (j - i))
				}
				i += 10
				q[row][c] |= intweight[i][c] << 30
				row++
				q[row][c] |= (intweight[i][c] >> 2) & 1
				i++
				for j := i; j < i+10; j++ {
					q[row][c] |= intweight[j][c] << (3*(j-i) + 1)
				}
				i += 10
				q[row][c] |= intweight[i][c] << 31
				row++
				q[row][c] |= (intweight[i][c] >> 1) & 3
				i++
				for j := i; j < i+10; j++ {
					q[row][c] |= intweight[j][c] << (3*(j-i) + 2)
				}
				i += 10
				row++
			}
		}
	}
	return q
}

func TestPackGPTQMatchesAutoGPTQ(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, bits := range []int{2, 3, 4, 8} {
		rows, cols := 64, 96
		q := &compress.Quantized{Rows: rows, Cols: cols, Bits: bits, GroupSize: 32,
			Codes: make([]uint8, rows*cols), Scale: make([]float32, rows*3), Zero: make([]float32, rows*3)}
		for i := range q.Codes {
			q.Codes[i] = uint8(rng.IntN(1 << bits))
		}
		for i := range q.Scale {
			q.Scale[i] = 0.125
			q.Zero[i] = float32(rng.IntN(1 << bits))
		}
		qweight, qzeros, _, gidx := packGPTQ(q, 32, true)
		iw := make([][]uint32, cols)
		for j := range iw {
			iw[j] = make([]uint32, rows)
			for r := 0; r < rows; r++ {
				iw[j][r] = uint32(q.Codes[r*cols+j])
			}
		}
		ref := refPackAutoGPTQ(iw, bits)
		for r := range ref {
			for c := range ref[r] {
				if uint32(qweight[r*rows+c]) != ref[r][c] {
					t.Fatalf("%d bits: qweight[%d][%d] = %#x, want %#x", bits, r, c, uint32(qweight[r*rows+c]), ref[r][c])
				}
			}
		}
		// qzeros: AutoGPTQ packs zeros−1 along the output dimension, the same way.
		zw := make([][]uint32, rows)
		for r := range zw {
			zw[r] = make([]uint32, 3)
			for g := 0; g < 3; g++ {
				zw[r][g] = (uint32(q.Zero[r*3+g]) - 1) & (1<<bits - 1)
			}
		}
		zref := refPackAutoGPTQ(zw, bits) // [rows/32·bits][3]
		for r := range zref {
			for g := range zref[r] {
				if uint32(qzeros[g*len(zref)+r]) != zref[r][g] {
					t.Fatalf("%d bits: qzeros[%d][%d] = %#x, want %#x", bits, g, r, uint32(qzeros[g*len(zref)+r]), zref[r][g])
				}
			}
		}
		for j, g := range gidx {
			if int(g) != j/32 {
				t.Fatalf("g_idx[%d] = %d", j, g)
			}
		}
		if got := unpackBits([]uint32{uint32(qweight[0]), uint32(qweight[rows])}, bits, 64/bits); int(got[1]) != int(q.Codes[1]) {
			t.Fatalf("unpackBits: %v", got)
		}
	}
}

func TestExportPackedGPTQ(t *testing.T) {
	dir, dense, fp := tinyModel(t)
	dbDir := buildDB(t, dir, dense, fp, db.ModeQuant)
	d, err := db.Open(dbDir)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()

	bad := mixedProfile(db.ModeQuant, fp, 4, 5)
	if _, err := Run(Options{ModelDir: dir, Profile: bad, DBDir: dbDir, Format: FormatHF, Packed: true, Out: filepath.Join(tmp, "bad")}); err == nil || !strings.Contains(err.Error(), "5 bits") {
		t.Errorf("5-bit packed export: err = %v, want a refusal", err)
	}

	p := mixedProfile(db.ModeQuant, fp, 4, 2, 3, 4, 8)
	delete(p.Levels, "model.layers.1.mlp.up_proj") // left dense
	out := filepath.Join(tmp, "gptq")
	if _, err := Run(Options{ModelDir: dir, Profile: p, DBDir: dbDir, Format: FormatHF, Packed: true, Out: out}); err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		N  int            `json:"num_hidden_layers"`
		QC map[string]any `json:"quantization_config"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "config.json"))
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	qc := cfg.QC
	if qc["quant_method"] != "gptq" || qc["bits"] != float64(4) || qc["group_size"] != float64(32) || qc["sym"] != false {
		t.Fatalf("quantization_config %v", qc)
	}
	format := qc["checkpoint_format"].(string)
	dyn, _ := qc["dynamic"].(map[string]any)
	ck, err := hf.OpenCheckpoint(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	i32s := func(name string) []uint32 {
		raw, err := ck.ReadRaw(name)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]uint32, len(raw)/4)
		for i := range out {
			out[i] = binary.LittleEndian.Uint32(raw[4*i:])
		}
		return out
	}
	for layer, bits := range p.Levels {
		// The module's bit-width from quantization_config, as GPTQModel resolves it.
		cfgBits := 4
		for pat, v := range dyn {
			if strings.HasPrefix(pat, "+:") && regexp.MustCompile(pat[2:]).MatchString(layer) {
				cfgBits = int(v.(map[string]any)["bits"].(float64))
			}
		}
		if cfgBits != bits {
			t.Errorf("%s: quantization_config gives %d bits, want %d", layer, cfgBits, bits)
		}
		info, _ := ck.Info(layer + ".qweight")
		rows, cols := info.Shape[1], info.Shape[0]*32/bits
		qw, qz := i32s(layer+".qweight"), i32s(layer+".qzeros")
		sraw, _ := ck.ReadRaw(layer + ".scales")
		gidx := i32s(layer + ".g_idx")
		cw, err := d.Weights(layer, bits)
		if err != nil {
			t.Fatal(err)
		}
		wantW := cw.Float32()
		mask := uint32(1)<<bits - 1
		zpr := rows * bits / 32
		for r := 0; r < rows; r++ {
			// Unpack column r of qweight bit by bit (an independent reading of the stream).
			for j := 0; j < cols; j++ {
				var code uint32
				for k := 0; k < bits; k++ {
					bit := j*bits + k
					code |= (qw[(bit/32)*rows+r] >> (bit % 32) & 1) << k
				}
				g := int(gidx[j])
				var z uint32
				for k := 0; k < bits; k++ {
					bit := r*bits + k
					z |= (qz[g*zpr+bit/32] >> (bit % 32) & 1) << k
				}
				if format == gptqFormatV1 {
					z = (z + 1) & mask
				}
				scale := float32(refHalf(binary.LittleEndian.Uint16(sraw[2*(g*rows+r):])))
				w := scale * (float32(code) - float32(z))
				if w != wantW[r*cols+j] {
					t.Fatalf("%s[%d,%d]: packed %v, want %v", layer, r, j, w, wantW[r*cols+j])
				}
			}
		}
	}
	if _, ok := dyn[`-:model\.layers\.1\.mlp\.up_proj$`]; !ok {
		t.Errorf("dense layer not excluded in dynamic: %v", dyn)
	}
	if _, err := ck.ReadFloat32("model.layers.1.mlp.up_proj.weight", 96, 64); err != nil {
		t.Errorf("dense layer: %v", err)
	}
}

func TestTokenScoresFallback(t *testing.T) {
	dir := modelDir(t, "llama-pd-11m")
	src, err := loadSource(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.ck.Close()
	fromModel, note := tokenScores(src, src.tok, 4100)
	if note != "" {
		t.Fatalf("tokenizer.model not used: %s", note)
	}
	fromJSON, note := tokenScores(&source{dir: t.TempDir()}, src.tok, 4100)
	if note != "" {
		t.Fatalf("unexpected note %s", note)
	}
	for i := range fromModel {
		if fromModel[i] != fromJSON[i] {
			t.Fatalf("score %d: tokenizer.model %v, derived %v", i, fromModel[i], fromJSON[i])
		}
	}
	if fromModel[4099] != -1000 {
		t.Errorf("padding score %v", fromModel[4099])
	}
}

func TestParseSentencePieceModel(t *testing.T) {
	dir := modelDir(t, "llama-pd-11m")
	data, err := os.ReadFile(filepath.Join(dir, "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	pieces, err := ParseSentencePieceModel(data)
	if err != nil {
		t.Fatal(err)
	}
	// Values from a protobuf dump of the file.
	if len(pieces) != 4096 || pieces[0] != (SentencePiece{"<unk>", 0, 2}) || pieces[1] != (SentencePiece{"<s>", 0, 3}) ||
		pieces[3] != (SentencePiece{"<0x00>", 0, 6}) || pieces[260] != (SentencePiece{"he", -1, 1}) ||
		pieces[4095] != (SentencePiece{"*", -3836, 1}) {
		t.Errorf("pieces %v %v %v %v %v", pieces[0], pieces[1], pieces[3], pieces[260], pieces[4095])
	}
	for _, bad := range [][]byte{
		nil,
		{0x0a, 0x05, 0x0a},             // length past the end
		{0x08},                         // truncated varint
		{0x0b},                         // group wire type
		{0x0d, 1, 2},                   // truncated fixed32
		{0x0a, 0x02, 0x18, 0x09},       // piece type 9
		{0x0a, 0x03, 0x0a, 0x01, 0xff}, // invalid UTF-8
		{0x08, 0x01},                   // field 1 as a varint
	} {
		if _, err := ParseSentencePieceModel(bad); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

func FuzzParseSentencePieceModel(f *testing.F) {
	f.Add([]byte{0x0a, 0x0c, 0x0a, 0x05, '<', 'u', 'n', 'k', '>', 0x15, 0, 0, 0, 0, 0x18, 0x02})
	f.Add([]byte{0x12, 0x00, 0x0a, 0x00})
	if data, err := os.ReadFile(filepath.Join(sharedModels, "babyllama-1m", "tokenizer.model")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pieces, err := ParseSentencePieceModel(data)
		if err != nil {
			return
		}
		if len(pieces) == 0 {
			t.Fatal("no error and no pieces")
		}
		for _, p := range pieces {
			if p.Type < 1 || p.Type > 6 {
				t.Fatalf("type %d", p.Type)
			}
		}
	})
}

// byteLevelAlphabet returns GPT-2's bytes_to_unicode characters in byte order.
func byteLevelAlphabet() []string {
	out := make([]string, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			out[b] = string(rune(b))
		} else {
			out[b] = string(rune(256 + n))
			n++
		}
	}
	return out
}

// TestExportGGUFByteLevel exports a model with a byte-level BPE tokenizer (Llama-3 style,
// 260 tokens for a 4096-row embedding): tokenizer.ggml.model gpt2 with merges, no scores, and
// unused padding tokens up to the vocabulary size.
func TestExportGGUFByteLevel(t *testing.T) {
	dir, _, fp := tinyModel(t)
	alpha := byteLevelAlphabet()
	vocab := map[string]int{}
	for i, s := range alpha {
		vocab[s] = i
	}
	vocab["Ġt"], vocab["he"] = 256, 257
	tj := map[string]any{
		"version": "1.0",
		"model":   map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"Ġ t", "h e"}, "byte_fallback": false, "ignore_merges": true},
		"added_tokens": []any{
			map[string]any{"id": 258, "content": "<|begin_of_text|>", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false},
			map[string]any{"id": 259, "content": "<|end_of_text|>", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false},
		},
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"decoder":       map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
	}
	b, _ := json.Marshal(tj)
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	tc := `{"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_bos_token": true}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(tc), 0o644); err != nil {
		t.Fatal(err)
	}
	p := profile.New(profile.ModeDrop)
	p.Model = &profile.Ref{Fingerprint: fp}
	p.Levels["model.layers.0.mlp"] = 1
	out := filepath.Join(t.TempDir(), "m.gguf")
	if _, err := Run(Options{ModelDir: dir, Profile: p, Format: FormatGGUF, Out: out}); err != nil {
		t.Fatal(err)
	}
	gf, err := gguf.ParseGGUFFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if m, pre := kvString(t, gf, "tokenizer.ggml.model"), kvString(t, gf, "tokenizer.ggml.pre"); m != "gpt2" || pre != "llama-bpe" {
		t.Errorf("tokenizer model %q pre %q", m, pre)
	}
	if _, ok := gf.Header.MetadataKV.Get("tokenizer.ggml.scores"); ok {
		t.Errorf("byte-level tokenizer written with scores")
	}
	if merges := kvArray(t, gf, "tokenizer.ggml.merges").ValuesString(); !slices.Equal(merges, []string{"Ġ t", "h e"}) {
		t.Errorf("merges %q", merges)
	}
	toks := kvArray(t, gf, "tokenizer.ggml.tokens").ValuesString()
	types := kvArray(t, gf, "tokenizer.ggml.token_type").ValuesInt32()
	if len(toks) != 4096 || len(types) != 4096 {
		t.Fatalf("%d tokens, %d types", len(toks), len(types))
	}
	for id, s := range toks {
		want, wantType := "", int32(1)
		switch {
		case id < 256:
			want = alpha[id]
		case id == 256:
			want = "Ġt"
		case id == 257:
			want = "he"
		case id == 258:
			want, wantType = "<|begin_of_text|>", 3
		case id == 259:
			want, wantType = "<|end_of_text|>", 3
		default:
			want, wantType = fmt.Sprintf("[PAD%d]", id), 5
		}
		if s != want || types[id] != wantType {
			t.Fatalf("token %d: %q type %d, want %q %d", id, s, types[id], want, wantType)
		}
	}
	if bos, eos := kvUint(t, gf, "tokenizer.ggml.bos_token_id"), kvUint(t, gf, "tokenizer.ggml.eos_token_id"); bos != 258 || eos != 259 {
		t.Errorf("bos %d eos %d", bos, eos)
	}
	if !kvBool(t, gf, "tokenizer.ggml.add_bos_token") {
		t.Errorf("add_bos_token false")
	}
	if n := kvUint(t, gf, "llama.block_count"); n != 2 {
		t.Errorf("block_count %d", n)
	}
}

// unpackBits is the inverse of packBits (a test helper).
func unpackBits(src []uint32, bits, n int) []uint32 {
	mask := uint32(1)<<bits - 1
	out := make([]uint32, n)
	for k := range out {
		bit := k * bits
		w, off := bit/32, bit%32
		v := src[w] >> off
		if off+bits > 32 {
			v |= src[w+1] << (32 - off)
		}
		out[k] = v & mask
	}
	return out
}
