package export

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/llamarecipe"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/tokenizer"
)

// GGUF constants (ggml/docs/gguf.md, ggml.h).
const (
	ggufMagic     = 0x46554747 // "GGUF" little-endian
	ggufVersion   = 3
	ggufAlignment = 32

	// Metadata value types.
	ggufUint32  = 4
	ggufInt32   = 5
	ggufFloat32 = 6
	ggufBool    = 7
	ggufString  = 8
	ggufArray   = 9

	// Tensor types (enum ggml_type; package ggml has them all).
	GGMLTypeF32  = 0
	GGMLTypeF16  = 1
	GGMLTypeQ8_0 = 8

	// Q8_0Block is the number of values in one Q8_0 block: a float16 scale and 32 int8 codes.
	Q8_0Block = 32
	// Q8_0BlockBytes is the size of one Q8_0 block.
	Q8_0BlockBytes = 2 + Q8_0Block
)

// ggufKV is a metadata key with its encoded type and value.
type ggufKV struct {
	key string
	typ uint32
	val []byte
}

// ggufTensor is a tensor to write: dims in GGUF order (ne0, the row length, first), its type,
// and where its data comes from, asked for only when its turn comes so that one tensor at a
// time is held encoded: either weights, rows of dims[0] values as the model holds them (16-bit
// weights converted to float32 a chunk of rows at a time; with heads > 0 the rows in
// llama.cpp's q/k order, PermuteQK's) encoded as typ (ggml.QuantizeTo, with the importance
// vector imatrix when not nil), or encoded, the bytes already encoded as typ.
type ggufTensor struct {
	name    string
	dims    []uint64
	typ     ggml.Type
	weights kernels.Weights
	heads   int
	imatrix []float32
	encoded func() ([]byte, error)
}

// srcRow is the row of a q/k projection of heads heads and rows rows that PermuteQK moves to
// row r.
func srcRow(r, rows, heads int) int {
	hd := rows / heads
	h, j := r/hd, r%hd
	return h*hd + (j%2)*(hd/2) + j/2
}

func (t *ggufTensor) numel() int {
	n := 1
	for _, d := range t.dims {
		n *= int(d)
	}
	return n
}

// size is the tensor's size in the file: rows of dims[0] values in typ's blocks.
func (t *ggufTensor) size() (int64, error) {
	rb, err := t.typ.RowBytes(int(t.dims[0]))
	if err != nil {
		return 0, fmt.Errorf("export: tensor %s: %v", t.name, err)
	}
	return int64(t.numel()/int(t.dims[0])) * int64(rb), nil
}

// ggufFile accumulates metadata and tensors.
type ggufFile struct {
	kvs     []ggufKV
	tensors []*ggufTensor
}

func str(s string) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(s)))
	return append(b, s...)
}

func (f *ggufFile) addString(k, v string) { f.kvs = append(f.kvs, ggufKV{k, ggufString, str(v)}) }
func (f *ggufFile) addUint32(k string, v int) {
	f.kvs = append(f.kvs, ggufKV{k, ggufUint32, binary.LittleEndian.AppendUint32(nil, uint32(v))})
}
func (f *ggufFile) addFloat32(k string, v float64) {
	f.kvs = append(f.kvs, ggufKV{k, ggufFloat32, binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(v)))})
}
func (f *ggufFile) addBool(k string, v bool) {
	b := byte(0)
	if v {
		b = 1
	}
	f.kvs = append(f.kvs, ggufKV{k, ggufBool, []byte{b}})
}

// addArray adds an array of n elements of type elem, each appended by put.
func (f *ggufFile) addArray(k string, elem uint32, n int, put func(b []byte, i int) []byte) {
	b := binary.LittleEndian.AppendUint32(nil, elem)
	b = binary.LittleEndian.AppendUint64(b, uint64(n))
	for i := 0; i < n; i++ {
		b = put(b, i)
	}
	f.kvs = append(f.kvs, ggufKV{k, ggufArray, b})
}

// encodeChunk is the number of float32 values encoded at a time (whole rows; at least one).
const encodeChunk = 1 << 20

// write writes the file: header, metadata, tensor infos, aligned tensor data. Tensors are
// encoded one at a time, in chunks of rows, straight into the file.
func (f *ggufFile) write(path string) (err error) {
	sizes := make([]int64, len(f.tensors))
	for i, t := range f.tensors {
		if sizes[i], err = t.size(); err != nil {
			return err
		}
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("export: %v", err)
	}
	defer func() {
		if cerr := fh.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("export: %v", cerr)
		}
	}()
	w := bufio.NewWriterSize(fh, 1<<20)
	var n int64
	put := func(b []byte) {
		w.Write(b)
		n += int64(len(b))
	}
	le := binary.LittleEndian
	put(le.AppendUint32(nil, ggufMagic))
	put(le.AppendUint32(nil, ggufVersion))
	put(le.AppendUint64(nil, uint64(len(f.tensors))))
	put(le.AppendUint64(nil, uint64(len(f.kvs))))
	for _, kv := range f.kvs {
		put(str(kv.key))
		put(le.AppendUint32(nil, kv.typ))
		put(kv.val)
	}
	var off int64
	offsets := make([]int64, len(f.tensors))
	for i, t := range f.tensors {
		put(str(t.name))
		put(le.AppendUint32(nil, uint32(len(t.dims))))
		for _, d := range t.dims {
			put(le.AppendUint64(nil, d))
		}
		put(le.AppendUint32(nil, uint32(t.typ)))
		put(le.AppendUint64(nil, uint64(off)))
		offsets[i] = off
		off = alignUp(off+sizes[i], ggufAlignment)
	}
	pad := func(to int64) {
		if to > n {
			put(make([]byte, to-n))
		}
	}
	pad(alignUp(n, ggufAlignment))
	start := n
	var buf []byte
	var rowsBuf []float32 // one chunk of rows converted to float32
	for i, t := range f.tensors {
		pad(start + offsets[i])
		if t.encoded != nil {
			data, err := t.encoded()
			if err != nil {
				return fmt.Errorf("export: tensor %s: %w", t.name, err)
			}
			if int64(len(data)) != sizes[i] {
				return fmt.Errorf("export: tensor %s: %d bytes of %s given, its %v values take %d", t.name, len(data), t.typ, t.dims, sizes[i])
			}
			put(data)
			continue
		}
		count := t.weights.Len()
		if count != t.numel() {
			return fmt.Errorf("export: tensor %s: %d values, its dimensions %v hold %d", t.name, count, t.dims, t.numel())
		}
		cols := int(t.dims[0])
		total := count / cols
		rb, _ := t.typ.RowBytes(cols)
		rows := max(1, encodeChunk/cols)
		for lo := 0; lo < count; lo += rows * cols {
			var chunk []float32
			if t.weights.DType == kernels.F32 && t.heads == 0 {
				chunk = t.weights.F32[lo:min(lo+rows*cols, count)]
			} else {
				if cap(rowsBuf) < rows*cols {
					rowsBuf = make([]float32, rows*cols)
				}
				chunk = rowsBuf[:min(rows*cols, count-lo)]
				for k := 0; k < len(chunk)/cols; k++ {
					r := lo/cols + k
					if t.heads > 0 {
						r = srcRow(r, total, t.heads)
					}
					t.weights.ToFloat32(chunk[k*cols:(k+1)*cols], r*cols)
				}
			}
			need := len(chunk) / cols * rb
			if cap(buf) < need {
				buf = make([]byte, need)
			}
			if err := ggml.QuantizeTo(buf[:need], t.typ, chunk, cols, t.imatrix); err != nil {
				return fmt.Errorf("export: tensor %s: %v", t.name, err)
			}
			put(buf[:need])
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("export: writing %s: %v", path, err)
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("export: %s: sync: %v", path, err)
	}
	return nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// AppendQ8_0Block appends the Q8_0 encoding of 32 values to b, as ggml's quantize_row_q8_0_ref
// computes it (ggml.Quantize): d = max|x|/127 (float32), stored as float16; q = round(x·(1/d))
// with halves rounded away from zero (roundf), as int8; all-zero blocks store d = 0 and zero
// codes.
func AppendQ8_0Block(b []byte, x []float32) []byte {
	n := len(b)
	b = append(b, make([]byte, Q8_0BlockBytes)...)
	if err := ggml.QuantizeTo(b[n:], ggml.Q8_0, x[:Q8_0Block], Q8_0Block, nil); err != nil {
		panic(err) // unreachable: 32 values are one Q8_0 row
	}
	return b
}

// PermuteQK reorders the rows of a q_proj or k_proj weight [heads·headDim × in] (or a bias,
// in = 1) from Hugging Face's rotate-half layout to llama.cpp's interleaved one, as
// convert_hf_to_gguf.py's LlamaModel.permute does: within each head, row s·headDim/2 + i moves
// to row 2i + s.
func PermuteQK(w []float32, heads, in int) []float32 {
	out := make([]float32, len(w))
	hd := len(w) / in / heads
	half := hd / 2
	for h := 0; h < heads; h++ {
		for s := 0; s < 2; s++ {
			for i := 0; i < half; i++ {
				src := (h*hd + s*half + i) * in
				dst := (h*hd + 2*i + s) * in
				copy(out[dst:dst+in], w[src:src+in])
			}
		}
	}
	return out
}

// writeGGUF writes pl as a GGUF file at path with the tensor types of spec, and records the
// number of tensors of each type in res.
func writeGGUF(path string, pl *plan, spec *ggufSpec, res *Result) error {
	cfg := pl.src.cfg
	if cfg.ModelType == "qwen2" {
		return fmt.Errorf("export: GGUF export writes the llama architecture; %s is a qwen2 model (export in the hf format instead)", cfg.Path)
	}
	if cfg.QKVBias || cfg.OutputBias || cfg.MLPBias {
		return fmt.Errorf("export: %s: llama.cpp's llama architecture has no biases on the linear layers (attention_bias or mlp_bias is set); export in the hf format instead", cfg.Path)
	}
	m := pl.m
	var f ggufFile
	name := filepath.Base(filepath.Clean(pl.src.dir))
	f.addString("general.architecture", "llama")
	f.addString("general.name", name)
	f.addString(GGUFMarkerKey, ExportFormat) // what Options.Force may replace
	fileType := spec.fileType
	if spec.fileTypeKey != nil {
		fileType = *spec.fileTypeKey
	}
	f.addUint32("general.file_type", int(fileType))
	f.addUint32("general.quantization_version", 2)
	f.addUint32("general.alignment", ggufAlignment)
	f.addUint32("llama.block_count", len(pl.blocks))
	f.addUint32("llama.context_length", cfg.MaxPositionEmbeddings)
	f.addUint32("llama.embedding_length", cfg.HiddenSize)
	f.addUint32("llama.feed_forward_length", cfg.IntermediateSize)
	f.addUint32("llama.attention.head_count", cfg.NumAttentionHeads)
	f.addUint32("llama.attention.head_count_kv", cfg.NumKeyValueHeads)
	f.addFloat32("llama.rope.freq_base", cfg.RopeTheta)
	f.addFloat32("llama.attention.layer_norm_rms_epsilon", cfg.RMSNormEps)
	f.addUint32("llama.rope.dimension_count", cfg.HeadDim)
	f.addUint32("llama.vocab_size", m.Vocab)
	if cfg.HeadDim*cfg.NumAttentionHeads != cfg.HiddenSize {
		f.addUint32("llama.attention.key_length", cfg.HeadDim)
		f.addUint32("llama.attention.value_length", cfg.HeadDim)
	}
	var ropeFreqs []float32
	if rs := cfg.RopeScaling; rs != nil {
		switch rs.Type {
		case "linear":
			f.addString("llama.rope.scaling.type", "linear")
			f.addFloat32("llama.rope.scaling.factor", rs.Factor)
		case "llama3":
			// llama.cpp divides the base frequencies by rope_freqs (convert_hf_to_gguf.py
			// generate_extra_tensors): factor_i = base_inv_freq_i / scaled_inv_freq_i.
			scaled := cfg.RopeInvFreq()
			ropeFreqs = make([]float32, len(scaled))
			for i, s := range scaled {
				base := 1 / math.Pow(cfg.RopeTheta, float64(2*i)/float64(cfg.HeadDim))
				ropeFreqs[i] = float32(base / s)
			}
		default:
			return fmt.Errorf("export: %s: field rope_scaling: type %q is not supported by the GGUF export", cfg.Path, rs.Type)
		}
	}
	if err := addTokenizer(&f, pl.src, m.Vocab, pl.warn); err != nil {
		return err
	}
	spec.addImatrixKeys(&f)

	var refs []tensorRef
	// addWeights adds a tensor as the model holds it, converted a chunk of rows at a time.
	addWeights := func(name string, w kernels.Weights, dims ...int) *ggufTensor {
		t := &ggufTensor{name: name, weights: w}
		for _, d := range dims {
			t.dims = append(t.dims, uint64(d))
		}
		f.tensors = append(f.tensors, t)
		refs = append(refs, tensorRef{block: -1})
		return t
	}
	add := func(name string, vals []float32, dims ...int) *ggufTensor {
		return addWeights(name, kernels.F32Weights(vals), dims...)
	}
	addWeights(arch.Embedding().GGUF(), m.EmbedWeights(), m.Hidden, m.Vocab)
	if ropeFreqs != nil {
		add(arch.GGUFRopeFreqs, ropeFreqs, len(ropeFreqs))
	}
	for i, b := range pl.blocks {
		sb := &m.Blocks[b.src]
		add(arch.Norm(i, arch.Attention).GGUF(), sb.AttnNorm, m.Hidden)
		for k := range arch.NumLinearKinds {
			l := sb.Layer(k)
			w, _ := pl.layerWeights(b, k)
			t := addWeights(arch.Weight(i, k).GGUF(), w, l.In, l.Out)
			t.heads = qkHeads(m, k)
			refs[len(refs)-1] = tensorRef{block: b.src, kind: k, zeroed: b.zeroed(k)}
			if k == arch.OProj {
				add(arch.Norm(i, arch.MLP).GGUF(), sb.MLPNorm, m.Hidden)
			}
		}
	}
	add(arch.FinalNorm().GGUF(), m.Norm, m.Hidden)
	if !cfg.TieWordEmbeddings {
		addWeights(arch.LMHead().GGUF(), m.HeadWeights(), m.Hidden, m.Vocab)
	}
	rm := llamarecipe.Model{Arch: "llama", Layers: len(pl.blocks), Heads: cfg.NumAttentionHeads, KVHeads: cfg.NumKeyValueHeads}
	rm.Is70B = llamarecipe.Is70B(rm.Arch, rm.Layers, rm.Heads, rm.KVHeads, 0)
	permute := func(r tensorRef) (rows, heads int) {
		return m.Blocks[r.block].Layer(r.kind).Out, qkHeads(m, r.kind)
	}
	counts, err := spec.assign(&f, refs, rm, permute, pl.warn)
	if err != nil {
		return err
	}
	res.TensorTypes = counts
	return f.write(path)
}

// qkHeads is the number of heads whose rows llama.cpp's rotary permutation reorders in layer k
// (q_proj: the attention heads, k_proj: the key/value heads), 0 for the other layers.
func qkHeads(m *model.Model, k arch.LinearKind) int {
	switch k {
	case arch.QProj:
		return m.Heads
	case arch.KProj:
		return m.KVHeads
	}
	return 0
}

// addTokenizer writes the tokenizer metadata: "llama" (SentencePiece-style, with scores) or
// "gpt2" (byte-level, with merges), padded with unused "[PADi]" tokens up to the model's
// vocabulary size as llama.cpp's converter does.
func addTokenizer(f *ggufFile, src *source, vocab int, warn func(string, ...any)) error {
	tok := src.tok
	if tok.VocabSize() > vocab {
		return fmt.Errorf("export: %s: the tokenizer has %d tokens but config.json vocab_size is %d", src.dir, tok.VocabSize(), vocab)
	}
	tokens := make([]string, vocab)
	types := make([]int32, vocab)
	for id := range tokens {
		s := tok.Token(id)
		tt := tok.TokenType(id)
		if id >= tok.VocabSize() || (s == "" && tt == tokenizer.TokenUnused) {
			s, tt = fmt.Sprintf("[PAD%d]", id), tokenizer.TokenUnused
		}
		tokens[id], types[id] = s, int32(tt)
	}
	if tok.Kind() == tokenizer.KindByteLevel {
		f.addString("tokenizer.ggml.model", "gpt2")
		pre := "default"
		switch src.cfg.ModelType {
		case "llama":
			pre = "llama-bpe"
		case "qwen2":
			pre = "qwen2"
		}
		f.addString("tokenizer.ggml.pre", pre)
	} else {
		f.addString("tokenizer.ggml.model", "llama")
		f.addString("tokenizer.ggml.pre", "default")
	}
	f.addArray("tokenizer.ggml.tokens", ggufString, vocab, func(b []byte, i int) []byte { return append(b, str(tokens[i])...) })
	if tok.Kind() != tokenizer.KindByteLevel {
		scores, note := tokenScores(src, tok, vocab)
		if note != "" {
			warn("%s", note)
		}
		f.addArray("tokenizer.ggml.scores", ggufFloat32, vocab, func(b []byte, i int) []byte {
			return binary.LittleEndian.AppendUint32(b, math.Float32bits(scores[i]))
		})
	}
	f.addArray("tokenizer.ggml.token_type", ggufInt32, vocab, func(b []byte, i int) []byte {
		return binary.LittleEndian.AppendUint32(b, uint32(types[i]))
	})
	if tok.Kind() == tokenizer.KindByteLevel {
		merges := tok.Merges()
		f.addArray("tokenizer.ggml.merges", ggufString, len(merges), func(b []byte, i int) []byte { return append(b, str(merges[i])...) })
	}
	bos, eos, unk := tok.BOS(), tok.EOS(), tok.UNK()
	if bos < 0 && len(src.cfg.BOSTokenID) > 0 {
		bos = src.cfg.BOSTokenID[0]
	}
	if eos < 0 && len(src.cfg.EOSTokenID) > 0 {
		eos = src.cfg.EOSTokenID[0]
	}
	if bos >= 0 {
		f.addUint32("tokenizer.ggml.bos_token_id", bos)
	}
	if eos >= 0 {
		f.addUint32("tokenizer.ggml.eos_token_id", eos)
	}
	if unk >= 0 {
		f.addUint32("tokenizer.ggml.unknown_token_id", unk)
	}
	prefix, suffix := tok.SpecialIDs()
	f.addBool("tokenizer.ggml.add_bos_token", bos >= 0 && len(prefix) > 0 && prefix[0] == bos)
	f.addBool("tokenizer.ggml.add_eos_token", eos >= 0 && len(suffix) > 0 && suffix[len(suffix)-1] == eos)
	return nil
}

// tokenScores returns the SentencePiece scores of the vocabulary: those of tokenizer.model when
// the directory has one that matches the vocabulary (what llama.cpp's converter reads), else the
// scores a SentencePiece BPE model assigns, minus the rank among the normal tokens (0 for the
// others), which orders merges as tokenizer.json's vocabulary does. Padding ids get -1000, as
// in the converter. The note says which source was used when it was not tokenizer.model.
func tokenScores(src *source, tok *tokenizer.Tokenizer, vocab int) ([]float32, string) {
	scores := make([]float32, vocab)
	for i := tok.VocabSize(); i < vocab; i++ {
		scores[i] = -1000
	}
	note := ""
	data, spm, err := src.readFile("tokenizer.model")
	if err == nil {
		pieces, err := ParseSentencePieceModel(data)
		switch {
		case err != nil:
			note = fmt.Sprintf("%s: %v; token scores derived from tokenizer.json", spm, err)
		case len(pieces) > tok.VocabSize():
			note = fmt.Sprintf("%s has %d pieces, the tokenizer %d tokens; token scores derived from tokenizer.json", spm, len(pieces), tok.VocabSize())
		default:
			ok := true
			for id, p := range pieces {
				if p.Piece != tok.Token(id) {
					note = fmt.Sprintf("%s: piece %d is %q, tokenizer.json's token %q; token scores derived from tokenizer.json", spm, id, p.Piece, tok.Token(id))
					ok = false
					break
				}
			}
			if ok {
				for id, p := range pieces {
					scores[id] = p.Score
				}
				return scores, ""
			}
		}
	}
	rank := 0
	for id := 0; id < tok.VocabSize(); id++ {
		if tok.TokenType(id) == tokenizer.TokenNormal {
			scores[id] = -float32(rank)
			rank++
		}
	}
	return scores, strings.TrimSpace(note)
}
