package pipeline

import (
	"fmt"
	"path"
	"path/filepath"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/export"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/gguf"
	"github.com/evopress/evopress/internal/memcheck"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/tokenizer"
)

// The types of the tensors a GGUF search does not choose, when not given: llama-quantize's for
// its Q4_K_M mix, the most used one — the token embedding in Q4_K, the output tensor in Q6_K
// (Q8_0 when its rows do not fit 256-weight blocks); a model whose output shares the token
// embedding stores that one tensor as llama-quantize stores the output.
const (
	DefaultTokenEmbeddingType = "q4_K"
	DefaultOutputTensorType   = "q6_K"
)

// GGUFTensorTypes returns the ggml types a GGUF file of lm stores its token embedding and output
// tensor in, as llama-quantize chooses them (src/llama-quant.cpp): an explicit type (the
// --token-embedding-type / --output-tensor-type of llama-quantize and evopress export) is used
// as it is and must fit the rows (hidden-size weights); without one, the output tensor is Q6_K,
// or Q8_0 when the rows are not a multiple of 256, and the token embedding Q4_K, or the type
// llama-quantize falls back to (ggml.Fallback); a tied token embedding (no output tensor) is
// stored as the output would be unless its own type is given. output is 0 (F32) and unused
// for a tied model.
func GGUFTensorTypes(lm *Loaded, tokenEmbedding, output string) (tok, out ggml.Type, err error) {
	hidden := lm.Model.Hidden
	parse := func(field, name string) (ggml.Type, error) {
		t, err := ggml.ParseType(name)
		if err != nil {
			return 0, invalid(field, name, "not a ggml type (e.g. q4_k, q6_k, q8_0, f16)")
		}
		if !t.Codec() {
			return 0, invalid(field, name, "evopress does not encode %s", t)
		}
		if _, err := t.RowBytes(hidden); err != nil {
			return 0, invalid(field, name, "rows of %d weights do not fit %s's blocks of %d", hidden, t, t.BlockSize())
		}
		return t, nil
	}
	outRule := func() ggml.Type {
		if hidden%ggml.QK_K != 0 {
			t, _ := ggml.Fallback(ggml.Q8_0, hidden) // F16 for rows that fit no block
			return t
		}
		return ggml.Q6_K
	}
	if output != "" {
		if out, err = parse("Mode.OutputTensorType", output); err != nil {
			return 0, 0, err
		}
	} else {
		out = outRule()
	}
	switch {
	case tokenEmbedding != "":
		if tok, err = parse("Mode.TokenEmbeddingType", tokenEmbedding); err != nil {
			return 0, 0, err
		}
	case lm.Model.Config.TieWordEmbeddings:
		tok = out
	default:
		def, _ := ggml.ParseType(DefaultTokenEmbeddingType)
		if tok, err = ggml.Fallback(def, hidden); err != nil {
			return 0, 0, err
		}
	}
	if lm.Model.Config.TieWordEmbeddings {
		out = 0
	}
	return tok, out, nil
}

// GGUFSize is a GGUF file's size, estimated before it is written (EstimateGGUF).
type GGUFSize struct {
	// Metadata is the header, the metadata pairs (evopress export's), the tensor descriptions and
	// the padding up to the data section.
	Metadata int64 `json:"metadata_bytes"`
	// Fixed is the data of the tensors a search does not choose — the token embedding and the
	// output tensor at TokenEmbeddingType and OutputTensorType, the norms (and llama3's rotary
	// factors) in F32 — each padded to the alignment.
	Fixed int64 `json:"fixed_bytes"`
	// Layers is the data of the blocks' linear layers at their types, padded (0 when no types
	// were given); Reserve the padding their sizes may need at most (0 when every layer's rows
	// are a multiple of the alignment, as in every Llama).
	Layers  int64 `json:"layer_bytes"`
	Reserve int64 `json:"reserve_bytes"`
	// Total is Metadata + Fixed + Layers: the file's size.
	Total int64 `json:"total_bytes"`
	// TokenEmbeddingType and OutputTensorType are the types assumed ("" for a tied output).
	TokenEmbeddingType string `json:"token_embedding_type"`
	OutputTensorType   string `json:"output_tensor_type,omitempty"`
}

// EstimateGGUF returns the size of the GGUF file evopress export writes for lm with its linear
// layers at the types layerTypes gives (by unit name; nil: the layers' data left out of Total)
// and the token embedding and output tensor at GGUFTensorTypes(lm, tokenEmbedding, output).
// The layout is exact (gguf.FileSize: llama.cpp's writer, every tensor padded to the alignment)
// and so are the tensors; the metadata is the export's keys and the tokenizer's vocabulary, so
// the estimate is the file's size up to metadata an exporter adds or leaves out (a few bytes per
// key) — an exporter checks its file against it.
func EstimateGGUF(lm *Loaded, layerTypes map[string]ggml.Type, tokenEmbedding, output string) (*GGUFSize, error) {
	tok, out, err := GGUFTensorTypes(lm, tokenEmbedding, output)
	if err != nil {
		return nil, err
	}
	m := lm.Model
	cfg := m.Config
	est := &GGUFSize{TokenEmbeddingType: tok.String()}
	if !cfg.TieWordEmbeddings {
		est.OutputTensorType = out.String()
	}
	const align = 32 // evopress export's general.alignment
	pad := func(n int64) int64 { return (n + align - 1) / align * align }
	var infos []gguf.Tensor
	fixed := func(name string, t ggml.Type, dims ...uint64) error {
		ti := gguf.Tensor{Name: name, Dims: dims, Type: t}
		sz, err := gguf.TensorDataSize(ti)
		if err != nil {
			return err
		}
		infos = append(infos, ti)
		est.Fixed += pad(sz)
		return nil
	}
	h, v := uint64(m.Hidden), uint64(m.Vocab)
	if err := fixed(arch.Embedding().GGUF(), tok, h, v); err != nil {
		return nil, err
	}
	if rs := cfg.RopeScaling; rs != nil && rs.Type == "llama3" {
		if err := fixed(arch.GGUFRopeFreqs, ggml.F32, uint64(cfg.HeadDim/2)); err != nil {
			return nil, err
		}
	}
	for i := range m.Blocks {
		b := &m.Blocks[i]
		if err := fixed(arch.Norm(i, arch.Attention).GGUF(), ggml.F32, h); err != nil {
			return nil, err
		}
		if err := fixed(arch.Norm(i, arch.MLP).GGUF(), ggml.F32, h); err != nil {
			return nil, err
		}
		for _, k := range arch.LinearKinds() {
			l := b.Layer(k)
			ti := gguf.Tensor{Name: arch.Weight(i, k).GGUF(), Dims: []uint64{uint64(l.In), uint64(l.Out)}, Type: ggml.F32}
			infos = append(infos, ti)
			if l.Out%align != 0 {
				est.Reserve += align - 1
			}
			if layerTypes == nil {
				continue
			}
			t, ok := layerTypes[arch.LinearUnit(i, k).String()]
			if !ok {
				return nil, fmt.Errorf("pipeline: EstimateGGUF: no type for %s", arch.LinearUnit(i, k))
			}
			ti.Type = t
			sz, err := gguf.TensorDataSize(ti)
			if err != nil {
				return nil, err
			}
			est.Layers += pad(sz)
		}
	}
	if err := fixed(arch.FinalNorm().GGUF(), ggml.F32, h); err != nil {
		return nil, err
	}
	if !cfg.TieWordEmbeddings {
		if err := fixed(arch.LMHead().GGUF(), out, h, v); err != nil {
			return nil, err
		}
	}
	var kv int64
	for _, p := range exportKVs(lm) {
		n, err := gguf.KVSize(p)
		if err != nil {
			return nil, err
		}
		kv += n
	}
	n := gguf.HeaderSize + kv
	for _, ti := range infos {
		n += gguf.TensorInfoSize(ti)
	}
	est.Metadata = pad(n)
	est.Total = est.Metadata + est.Fixed + est.Layers
	return est, nil
}

// exportKVs are the metadata pairs evopress export writes for lm (export/gguf.go), with the
// values' sizes right (the tokenizer's scores are zeros here).
func exportKVs(lm *Loaded) []gguf.KV {
	cfg, m, tk := lm.Model.Config, lm.Model, lm.Tokenizer
	var kvs []gguf.KV
	add := func(key string, t gguf.ValueType, v any) { kvs = append(kvs, gguf.KV{Key: key, Type: t, Value: v}) }
	u32 := func(key string, v int) { add(key, gguf.TypeUint32, uint32(v)) }
	f32 := func(key string, v float64) { add(key, gguf.TypeFloat32, float32(v)) }
	add("general.architecture", gguf.TypeString, "llama")
	name := filepath.Base(filepath.Clean(lm.Name))
	if lm.embedded { // exported from assets.FS(): named by its directory there
		name = path.Base(assets.ModelDir)
	}
	add("general.name", gguf.TypeString, name)
	add(export.GGUFMarkerKey, gguf.TypeString, export.ExportFormat)
	u32("general.file_type", 0)
	u32("general.quantization_version", 2)
	u32("general.alignment", 32)
	u32("llama.block_count", len(m.Blocks))
	u32("llama.context_length", cfg.MaxPositionEmbeddings)
	u32("llama.embedding_length", cfg.HiddenSize)
	u32("llama.feed_forward_length", cfg.IntermediateSize)
	u32("llama.attention.head_count", cfg.NumAttentionHeads)
	u32("llama.attention.head_count_kv", cfg.NumKeyValueHeads)
	f32("llama.rope.freq_base", cfg.RopeTheta)
	f32("llama.attention.layer_norm_rms_epsilon", cfg.RMSNormEps)
	u32("llama.rope.dimension_count", cfg.HeadDim)
	u32("llama.vocab_size", m.Vocab)
	if cfg.HeadDim*cfg.NumAttentionHeads != cfg.HiddenSize {
		u32("llama.attention.key_length", cfg.HeadDim)
		u32("llama.attention.value_length", cfg.HeadDim)
	}
	if rs := cfg.RopeScaling; rs != nil && rs.Type == "linear" {
		add("llama.rope.scaling.type", gguf.TypeString, "linear")
		f32("llama.rope.scaling.factor", rs.Factor)
	}
	vocab := m.Vocab
	tokens := make([]string, vocab)
	for id := range tokens {
		s := tk.Token(id)
		if id >= tk.VocabSize() || (s == "" && tk.TokenType(id) == tokenizer.TokenUnused) {
			s = fmt.Sprintf("[PAD%d]", id)
		}
		tokens[id] = s
	}
	byteLevel := tk.Kind() == tokenizer.KindByteLevel
	if byteLevel {
		add("tokenizer.ggml.model", gguf.TypeString, "gpt2")
		pre := "default"
		switch cfg.ModelType {
		case "llama":
			pre = "llama-bpe"
		case "qwen2":
			pre = "qwen2"
		}
		add("tokenizer.ggml.pre", gguf.TypeString, pre)
	} else {
		add("tokenizer.ggml.model", gguf.TypeString, "llama")
		add("tokenizer.ggml.pre", gguf.TypeString, "default")
	}
	add("tokenizer.ggml.tokens", gguf.TypeArray, tokens)
	if !byteLevel {
		add("tokenizer.ggml.scores", gguf.TypeArray, make([]float32, vocab))
	}
	add("tokenizer.ggml.token_type", gguf.TypeArray, make([]int32, vocab))
	if byteLevel {
		add("tokenizer.ggml.merges", gguf.TypeArray, tk.Merges())
	}
	bos, eos, unk := tk.BOS(), tk.EOS(), tk.UNK()
	if bos < 0 && len(cfg.BOSTokenID) > 0 {
		bos = cfg.BOSTokenID[0]
	}
	if eos < 0 && len(cfg.EOSTokenID) > 0 {
		eos = cfg.EOSTokenID[0]
	}
	for _, id := range []struct {
		key string
		v   int
	}{{"tokenizer.ggml.bos_token_id", bos}, {"tokenizer.ggml.eos_token_id", eos}, {"tokenizer.ggml.unknown_token_id", unk}} {
		if id.v >= 0 {
			u32(id.key, id.v)
		}
	}
	add("tokenizer.ggml.add_bos_token", gguf.TypeBool, true)
	add("tokenizer.ggml.add_eos_token", gguf.TypeBool, false)
	return kvs
}

// ggufMode is the quant mode of a gguf database (the cost form) for m's spec: a target in bits
// per weight, a whole file's size, or a budget in bits. It records the effective target in
// m.Spec.Target (bits per weight of the linear layers).
func (m *Mode) ggufMode(rule search.GroupBy) (*quant.Mode, error) {
	spec, d := &m.Spec, m.DB
	set := 0
	for _, v := range []bool{spec.Target != 0, spec.TargetSize != 0, spec.Budget != 0} {
		if v {
			set++
		}
	}
	if set > 1 {
		return nil, invalid("Mode.TargetSize", spec.TargetSize, "give one budget: a target in bits per weight, a file size or a budget in bits")
	}
	if set == 0 {
		return nil, missing("Mode.Target", "the linear layers' bits per weight, or instead the whole GGUF file's size")
	}
	if _, _, err := GGUFTensorTypes(m.lm, spec.TokenEmbeddingType, spec.OutputTensorType); err != nil {
		return nil, err
	}
	cfg, err := d.Manifest().QuantConfig(spec.Target, rule)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", d.Dir(), err)
	}
	switch {
	case spec.TargetSize < 0:
		return nil, invalid("Mode.TargetSize", spec.TargetSize, "want a size in bytes")
	case spec.Budget < 0:
		return nil, invalid("Mode.Budget", spec.Budget, "want a budget in bits")
	case spec.TargetSize > 0:
		est, err := EstimateGGUF(m.lm, nil, spec.TokenEmbeddingType, spec.OutputTensorType)
		if err != nil {
			return nil, err
		}
		left := spec.TargetSize - est.Metadata - est.Fixed - est.Reserve
		if left <= 0 {
			return nil, invalid("Mode.TargetSize", spec.TargetSize, "the file's metadata and other tensors (token embedding %s, output %s) take %d bytes already",
				est.TokenEmbeddingType, est.OutputTensorType, est.Metadata+est.Fixed+est.Reserve)
		}
		cfg.Target, cfg.Budget = 0, 8*left
	case spec.Budget > 0:
		cfg.Target, cfg.Budget = 0, spec.Budget
	}
	qm, err := quant.New(cfg)
	if err != nil {
		if spec.TargetSize > 0 {
			return nil, invalid("Mode.TargetSize", spec.TargetSize, "%v", err)
		}
		return nil, err
	}
	m.quant = qm
	spec.Target = qm.Target()
	return qm, nil
}

// layerTypes returns the ggml type of every linear layer of a gguf profile's levels.
func (m *Mode) layerTypes(levels search.Levels) map[string]ggml.Type {
	out := map[string]ggml.Type{}
	for i, u := range m.Units() {
		out[u] = ggml.Type(levels[i])
	}
	return out
}

// recordGGUF records in a gguf profile's record what its file needs and takes: the file size
// asked for, the types of the token embedding and output tensor, the estimated file size and
// the linear layers' bits per weight. Nothing for other modes.
func (m *Mode) recordGGUF(rec *profile.Record, levels search.Levels) error {
	if m.quant == nil {
		return nil
	}
	est, err := EstimateGGUF(m.lm, m.layerTypes(levels), m.Spec.TokenEmbeddingType, m.Spec.OutputTensorType)
	if err != nil {
		return err
	}
	rec.TargetBytes = m.Spec.TargetSize
	rec.FileBytes = est.Total
	rec.TokenEmbeddingType, rec.OutputTensorType = est.TokenEmbeddingType, est.OutputTensorType
	rec.BitsPerWeight = float64(m.quant.Cost(levels)) / float64(m.quant.TotalWeights())
	return nil
}

// ParseSize reads a file size: a number of bytes ("123456789"), or a decimal number with a
// unit — kB, MB, GB, TB (powers of 1000; K, M, G and T too) or KiB, MiB, GiB, TiB (powers of
// 1024), any case — rounded down to whole bytes ("5.2MB" is 5200000 exactly).
func ParseSize(s string) (int64, error) { return memcheck.ParseSize(s) }
