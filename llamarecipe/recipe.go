// Package llamarecipe reproduces llama.cpp's choice of a tensor type for every tensor of a
// model: what llama-quantize writes for a file type (a "mix" such as Q4_K_M) or, with --pure,
// for one type everywhere. The rules are llama_tensor_get_type and its helpers in llama.cpp's
// src/llama-quant.cpp (the version of node-llama-cpp 3.21.1), transcribed as they are:
//
//   - Which tensors are quantized (tensor_allows_quantization): tensors of two or more
//     dimensions whose name ends in "weight", except norms, expert gating, positional and
//     token-type embeddings and the other small tensors llama.cpp lists; the others keep their
//     type.
//   - --token-embedding-type and --output-tensor-type (Options) win for token_embd.weight and
//     output.weight, with no fallback.
//   - Otherwise the file type's base type (FileType.BaseType), moved by the mix's rules unless
//     Options.Pure: output.weight — and token_embd.weight when the embeddings are tied (no
//     output.weight in the list) — to Q6_K (Q8_0 when the rows do not fit the base type's
//     blocks, Q5_K for the IQ1/IQ2 mixes); attn_v to Q3_K…Q6_K by the mix, by the grouped-query
//     factor n_head/n_head_kv (≥ 4 promotes it), by the 70B model type and by its position: the
//     counter i_attention_wv numbers the attn_v tensors in llama.cpp's tensor order, and
//     use_more_bits(i, n) — i < n/8, i ≥ 7n/8, or (i − n/8) mod 3 = 2 — picks the layers that get
//     Q6_K in Q4_K_M and Q5_K_M; ffn_down likewise by its layer (i_ffn_down, n_layer: Q3_K_M gives
//     Q5_K to the first n/16 layers and Q4_K to the others, Q4_K_M and Q5_K_M Q6_K where
//     use_more_bits); attn_output and the fused attn_qkv by the mix; the 8-expert rules.
//   - Finally the fallback for rows that do not fit the chosen type's blocks
//     (tensor_type_fallback, ggml.Fallback): llama-pd-11m's ffn_down (704 columns) gets Q5_0 where
//     Q4_K was chosen, babyllama-1m (128 and 352 columns) only 32-weight block types.
//
// llama.cpp walks the tensors ordered by block number (tensors outside blocks first), then by
// name — the order of its weights_map — and its counters count in that order; Types takes the
// tensors in any order and returns their types in the same order.
//
// Not reproduced: --tensor-type overrides (regular expressions), --prune-layers and
// --keep-split. The model type matters only as "70B" (Is70B), as in llama.cpp's
// llama_quant_model_from_metadata.
package llamarecipe

import (
	"fmt"
	"slices"
	"strings"

	"github.com/evopress/evopress/ggml"
)

// Model is what llama.cpp's rules read of a model's hyper-parameters (llama_hparams), from
// its GGUF metadata ("{arch}.block_count" …; see FromGGUF).
type Model struct {
	// Arch is general.architecture: "llama", "qwen2", "falcon", … (falcon has rules of its own).
	Arch string
	// Layers is the number of blocks (n_layer: "{arch}.block_count").
	Layers int
	// Heads and KVHeads are the attention heads and key/value heads of the first block
	// ("{arch}.attention.head_count", "…head_count_kv"); KVHeads 0 means Heads, as llama.cpp
	// reads a missing head_count_kv. Their ratio is the grouped-query factor n_gqa.
	Heads, KVHeads int
	// Experts is the number of experts of a mixture-of-experts model ("{arch}.expert_count";
	// 0 for a dense model).
	Experts int
	// Is70B marks llama.cpp's model type LLM_TYPE_70B, which gives attn_v more bits; see Is70B.
	Is70B bool
}

// Is70B reports whether llama.cpp's model loader gives a model of this architecture, number of
// blocks, heads, key/value heads and experts the model type LLM_TYPE_70B (src/models/*.cpp):
// llama with 80 blocks, grouped-query attention and not 8 experts; qwen2, deci and olmo with 80
// blocks; jais2 with 68.
func Is70B(arch string, layers, heads, kvHeads, experts int) bool {
	if kvHeads == 0 {
		kvHeads = heads
	}
	switch arch {
	case "llama":
		return experts != 8 && layers == 80 && heads != kvHeads
	case "qwen2", "deci", "olmo":
		return layers == 80
	case "jais2":
		return layers == 68
	}
	return false
}

// gqa is hparams.n_gqa(): n_head / n_head_kv, 0 without key/value heads.
func (m Model) gqa() int {
	kv := m.KVHeads
	if kv == 0 {
		kv = m.Heads
	}
	if kv <= 0 {
		return 0
	}
	return m.Heads / kv
}

// Tensor is one tensor of the model, as llama-quantize sees it in its input file.
type Tensor struct {
	// Name is the GGUF name ("blk.3.attn_v.weight", "token_embd.weight").
	Name string
	// Dims are the dimensions in GGUF order: Dims[0] (ggml's ne0) is the length of a row; a
	// Hugging Face [out, in] weight has Dims [in, out].
	Dims []int
	// Type is the tensor's type in the input (kept by tensors that are not quantized).
	Type ggml.Type
}

// Options are llama-quantize's options that change the types.
type Options struct {
	// FileType is the file type asked for (llama-quantize's TYPE argument).
	FileType FileType
	// Pure gives every quantized tensor the base type (--pure), after the two overrides below
	// and with the fallback for rows that do not fit.
	Pure bool
	// TokenEmbeddingType and OutputTensorType, when not nil, are the types of token_embd.weight
	// and output.weight (--token-embedding-type, --output-tensor-type).
	TokenEmbeddingType, OutputTensorType *ggml.Type
	// LeaveOutputTensor keeps output.weight in its input type (--leave-output-tensor).
	LeaveOutputTensor bool
	// Imatrix says that an importance matrix is given (--imatrix): some rules (IQ3_XXS, IQ4_NL,
	// IQ4_XS, Q4_0 and Q5_0) differ with one.
	Imatrix bool
}

// category is llama.cpp's tensor_category.
type category int

const (
	catOther category = iota
	catTokenEmbd
	catAttnQ
	catAttnV
	catAttnK
	catAttnQKV
	catAttnKVB
	catAttnOutput
	catFFNUp
	catFFNGate
	catFFNDown
	catOutput
)

// categoryOf is tensor_get_category.
func categoryOf(name string) category {
	switch {
	case name == "output.weight":
		return catOutput
	case name == "token_embd.weight" || name == "per_layer_token_embd.weight":
		return catTokenEmbd
	case strings.Contains(name, "attn_qkv.weight"):
		return catAttnQKV
	case strings.Contains(name, "attn_kv_b.weight"):
		return catAttnKVB
	case strings.Contains(name, "attn_v.weight"):
		return catAttnV
	case strings.Contains(name, "attn_k.weight"):
		return catAttnK
	case strings.Contains(name, "attn_q.weight"):
		return catAttnQ
	case strings.Contains(name, "attn_output.weight"):
		return catAttnOutput
	case strings.Contains(name, "ffn_up"):
		return catFFNUp
	case strings.Contains(name, "ffn_gate"):
		return catFFNGate
	case strings.Contains(name, "ffn_down"):
		return catFFNDown
	}
	return catOther
}

func (c category) attnV() bool { return c == catAttnV || c == catAttnQKV || c == catAttnKVB }

// nDims is ggml_n_dims: the number of dimensions up to the last one above 1 (at least 1).
func nDims(dims []int) int {
	n := 1
	for i, d := range dims {
		if d > 1 {
			n = i + 1
		}
	}
	return n
}

// notQuantized lists the name fragments tensor_allows_quantization excludes.
var notQuantized = []string{
	"_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
	"per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
	"indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
	"time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
	"time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
	"time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
	"time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd",
	"sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
	"mm.a.code_embd",
}

// Quantized reports whether llama-quantize quantizes the tensor at all
// (tensor_allows_quantization): two or more dimensions, a name ending in "weight", not a norm
// nor one of the small tensors llama.cpp keeps (expert gating, positional and token-type
// embeddings, …), and not output.weight with leaveOutput (--leave-output-tensor).
func Quantized(name string, dims []int, leaveOutput bool) bool {
	if nDims(dims) < 2 || !strings.HasSuffix(name, "weight") {
		return false
	}
	if leaveOutput && name == "output.weight" {
		return false
	}
	// position_embd.weight and token_types.weight are the names LLM_TN gives the positional
	// and token-type embeddings of every architecture.
	if name == "position_embd.weight" || name == "token_types.weight" {
		return false
	}
	for _, s := range notQuantized {
		if strings.Contains(name, s) {
			return false
		}
	}
	return true
}

// layerOf parses name as sscanf(name, "blk.%d.", &layer) does; ok is false when no number
// follows "blk.".
func layerOf(name string) (layer int, ok bool) {
	rest, found := strings.CutPrefix(name, "blk.")
	if !found {
		return 0, false
	}
	rest = strings.TrimLeft(rest, " \t\n\v\f\r")
	neg := false
	if rest != "" && (rest[0] == '+' || rest[0] == '-') {
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	n, digits := 0, 0
	for ; digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9'; digits++ {
		if n < 1<<30 {
			n = 10*n + int(rest[digits]-'0')
		}
	}
	if digits == 0 {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// order is llama.cpp's tensor order (llama_model_loader::weight_name_comparer): by block
// number, tensors outside blocks (block -1) first, then by name.
func order(tensors []Tensor) []int {
	idx := make([]int, len(tensors))
	layer := make([]int, len(tensors))
	for i, t := range tensors {
		idx[i] = i
		layer[i] = -1
		if l, ok := layerOf(t.Name); ok {
			layer[i] = l
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if layer[a] != layer[b] {
			if layer[a] < layer[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(tensors[a].Name, tensors[b].Name)
	})
	return idx
}

// state is quantize_state_impl: the counters the rules read.
type state struct {
	m                            Model
	o                            Options
	nAttnV, nFFN                 int
	iAttnV, iFFNDown, iGate, iUp int
	tied                         bool
}

// Types returns the type llama-quantize gives each tensor (in the order of tensors) when it
// quantizes a model described by m with the options o: every tensor of the model must be in
// the list, since the counters and the tied-embedding test depend on all of them. Tensors that
// are not quantized (Quantized) keep their Type. It fails for a file type llama-quantize cannot
// write, for a chosen type whose rows do not fit and that has no fallback (as llama-quantize
// fails), and for an expert tensor whose block number cannot be read.
func Types(m Model, tensors []Tensor, o Options) ([]ggml.Type, error) {
	base, ok := o.FileType.BaseType()
	if !ok {
		return nil, fmt.Errorf("llamarecipe: file type %s has no base tensor type: llama-quantize cannot write it", o.FileType)
	}
	if m.Layers <= 0 {
		return nil, fmt.Errorf("llamarecipe: the model has %d blocks", m.Layers)
	}
	qs := &state{m: m, o: o, nFFN: m.Layers, tied: true}
	for _, t := range tensors {
		c := categoryOf(t.Name)
		if c.attnV() {
			qs.nAttnV++
		}
		if c == catOutput {
			qs.tied = false
		}
	}
	out := make([]ggml.Type, len(tensors))
	for _, i := range order(tensors) {
		t := tensors[i]
		if len(t.Dims) == 0 {
			return nil, fmt.Errorf("llamarecipe: tensor %s has no dimensions", t.Name)
		}
		typ, err := qs.tensorType(t, base)
		if err != nil {
			return nil, err
		}
		out[i] = typ
	}
	return out, nil
}

// tensorType is llama_tensor_get_type.
func (qs *state) tensorType(t Tensor, base ggml.Type) (ggml.Type, error) {
	if !Quantized(t.Name, t.Dims, qs.o.LeaveOutputTensor) {
		return t.Type, nil
	}
	c := categoryOf(t.Name)
	if qs.o.TokenEmbeddingType != nil && c == catTokenEmbd {
		return *qs.o.TokenEmbeddingType, nil
	}
	if qs.o.OutputTensorType != nil && c == catOutput {
		return *qs.o.OutputTensorType, nil
	}
	typ := base
	if !base.Quantized() {
		return typ, nil
	}
	if !qs.o.Pure {
		var err error
		if typ, err = qs.mix(typ, t, c); err != nil {
			return 0, err
		}
	}
	fb, err := ggml.Fallback(typ, t.Dims[0])
	if err != nil {
		return 0, fmt.Errorf("llamarecipe: %s: %w", t.Name, err)
	}
	return fb, nil
}

// useMoreBits is llama.cpp's use_more_bits: the first and last eighth of the layers and every
// third layer in between.
func useMoreBits(i, n int) bool {
	return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2
}

// layerInfo is llama.cpp's layer_info: the counter for a dense model, the block number read
// from the name for a mixture of experts.
func (qs *state) layerInfo(counter int, name string) (int, int, error) {
	n := qs.nFFN
	if max(1, qs.m.Experts) > 1 {
		l, ok := layerOf(name)
		if !ok {
			return 0, 0, fmt.Errorf("llamarecipe: failed to determine the block of tensor %s", name)
		}
		if l < 0 || l >= n {
			return 0, 0, fmt.Errorf("llamarecipe: bad block %d for tensor %s: must be in [0, %d)", l, name, n)
		}
		return l, n, nil
	}
	return counter, n, nil
}

// mix is llama_tensor_get_type_impl: the file type's rules for one tensor of category c.
func (qs *state) mix(typ ggml.Type, t Tensor, c category) (ggml.Type, error) {
	ft, m, o := qs.o.FileType, qs.m, qs.o
	falcon := m.Arch == "falcon"
	gqa := m.gqa()
	is := func(fs ...FileType) bool { return slices.Contains(fs, ft) }
	iq12 := is(MostlyIQ2_XXS, MostlyIQ2_XS, MostlyIQ1_S, MostlyIQ2_S, MostlyIQ2_M, MostlyIQ1_M)

	switch {
	case c == catOutput || (qs.tied && c == catTokenEmbd):
		if o.OutputTensorType != nil {
			return *o.OutputTensorType, nil
		}
		switch {
		case ft == MostlyMXFP4:
			typ = ggml.Q8_0
		case falcon || t.Dims[0]%typ.BlockSize() != 0:
			typ = ggml.Q8_0
		case is(MostlyIQ2_XXS, MostlyIQ2_XS, MostlyIQ3_XXS, MostlyIQ1_S, MostlyIQ2_S, MostlyIQ2_M, MostlyIQ1_M):
			typ = ggml.Q5_K
		case typ != ggml.Q8_0:
			typ = ggml.Q6_K
		}
	case ft == MostlyMXFP4:
		// Expert tensors (3-D) get MXFP4, the others Q8_0; bailingmoe3's 3-D MLA
		// projections are not experts.
		if len(t.Dims) > 2 && t.Dims[2] > 1 && (m.Arch != "bailingmoe3" || c == catFFNUp || c == catFFNGate || c == catFFNDown) {
			typ = ggml.MXFP4
		} else {
			typ = ggml.Q8_0
		}
	case c == catTokenEmbd:
		if o.TokenEmbeddingType != nil {
			return *o.TokenEmbeddingType, nil
		}
		switch {
		case is(MostlyIQ2_XXS, MostlyIQ2_XS, MostlyIQ1_S, MostlyIQ1_M):
			typ = ggml.Q2_K
		case is(MostlyIQ2_S, MostlyIQ2_M, MostlyIQ3_XXS):
			typ = ggml.IQ3_S
		case is(MostlyTQ1_0, MostlyTQ2_0, MostlyQ2_0):
			typ = ggml.Q4_K
		}
	case iq12:
		switch {
		case c.attnV():
			switch {
			case gqa >= 4 || m.Experts >= 4:
				typ = ggml.Q4_K
			case is(MostlyIQ2_S, MostlyIQ2_M):
				typ = ggml.IQ3_S
			default:
				typ = ggml.Q2_K
			}
			qs.iAttnV++
		case m.Experts == 8 && c == catAttnK:
			typ = ggml.Q4_K
		case c == catFFNDown:
			if qs.iFFNDown < qs.nFFN/8 {
				typ = ggml.Q2_K
				if is(MostlyIQ2_S, MostlyIQ2_M) {
					typ = ggml.IQ3_S
				}
			}
			qs.iFFNDown++
		case c == catAttnOutput:
			switch {
			case m.Experts == 8:
				typ = ggml.Q5_K
			case is(MostlyIQ1_S, MostlyIQ1_M):
				typ = ggml.IQ2_XXS
			case is(MostlyIQ2_S, MostlyIQ2_M):
				typ = ggml.IQ3_S
			}
		}
	case c.attnV():
		switch {
		case ft == MostlyQ2_K:
			typ = ggml.Q3_K
			if gqa >= 4 {
				typ = ggml.Q4_K
			}
		case ft == MostlyQ2_K_S && gqa >= 4:
			typ = ggml.Q4_K
		case ft == MostlyIQ3_XXS:
			switch {
			case gqa >= 4:
				typ = ggml.Q4_K
			case !o.Imatrix:
				typ = ggml.IQ3_S
			default:
				typ = ggml.IQ3_XXS
			}
		case is(MostlyIQ3_XS, MostlyIQ3_S) && gqa >= 4:
			typ = ggml.Q4_K
		case ft == MostlyIQ3_M:
			typ = ggml.Q4_K
		case ft == MostlyQ3_K_M:
			typ = ggml.Q4_K
			if qs.iAttnV < 2 {
				typ = ggml.Q5_K
			}
		case ft == MostlyQ3_K_L:
			typ = ggml.Q5_K
		case is(MostlyIQ4_NL, MostlyIQ4_XS) && gqa >= 4:
			typ = ggml.Q5_K
		case is(MostlyQ4_K_M, MostlyQ5_K_M) && useMoreBits(qs.iAttnV, qs.nAttnV):
			typ = ggml.Q6_K
		case ft == MostlyQ4_K_S && qs.iAttnV < 4:
			typ = ggml.Q5_K
		}
		if m.Is70B && (typ == ggml.Q3_K || typ == ggml.Q4_K) {
			// 70B: eight heads share attn_v, which is 8× smaller than attn_q.
			typ = ggml.Q5_K
		}
		if m.Experts == 8 {
			typ = ggml.Q8_0
		}
		qs.iAttnV++
	case c == catAttnK:
		switch {
		case m.Experts == 8:
			typ = ggml.Q8_0
		case ft == MostlyIQ3_XS:
			typ = ggml.IQ3_XXS
		case ft == MostlyIQ3_XXS:
			typ = ggml.IQ2_S
		}
	case c == catAttnQ:
		switch ft {
		case MostlyIQ3_XS:
			typ = ggml.IQ3_XXS
		case MostlyIQ3_XXS:
			typ = ggml.IQ2_S
		}
	case c == catFFNDown:
		i, n, err := qs.layerInfo(qs.iFFNDown, t.Name)
		if err != nil {
			return 0, err
		}
		switch {
		case ft == MostlyQ2_K:
			typ = ggml.Q3_K
		case ft == MostlyQ2_K_S:
			if i < n/8 {
				typ = ggml.Q4_K
			}
		case ft == MostlyIQ3_XXS && !o.Imatrix:
			typ = ggml.Q3_K
			if i < n/8 {
				typ = ggml.Q4_K
			}
		case ft == MostlyQ3_K_M:
			switch {
			case i < n/16:
				typ = ggml.Q5_K
			case !falcon || useMoreBits(i, n):
				typ = ggml.Q4_K
			default:
				typ = ggml.Q3_K
			}
		case ft == MostlyIQ3_M && (i < n/8 || (m.Experts == 8 && useMoreBits(i, n))):
			typ = ggml.Q4_K
		case ft == MostlyQ3_K_L:
			typ = ggml.Q5_K
			if falcon {
				typ = ggml.Q4_K
			}
		case ft == MostlyQ4_K_M:
			switch {
			case falcon && i < n/16:
				typ = ggml.Q6_K
			case falcon && useMoreBits(i, n):
				typ = ggml.Q5_K
			case falcon:
				typ = ggml.Q4_K
			case useMoreBits(i, n):
				typ = ggml.Q6_K
			}
		case i < n/8 && is(MostlyIQ4_NL, MostlyIQ4_XS) && !o.Imatrix:
			typ = ggml.Q5_K
		case ft == MostlyQ5_K_M && useMoreBits(i, n):
			typ = ggml.Q6_K
		case ft == MostlyQ4_K_S && !falcon && i < n/8:
			typ = ggml.Q5_K
		case is(MostlyQ4_0, MostlyQ5_0) && o.Imatrix && i < n/8:
			// Guards the first ffn_down layers of Q4_0/Q5_0 when an importance matrix is given.
			typ = ggml.Q4_1
			if ft == MostlyQ5_0 {
				typ = ggml.Q5_1
			}
		}
		qs.iFFNDown++
	case c == catAttnOutput:
		if !falcon {
			if m.Experts == 8 {
				if is(MostlyQ2_K, MostlyIQ3_XS, MostlyIQ3_XXS, MostlyQ3_K_S, MostlyQ3_K_M, MostlyIQ4_NL,
					MostlyQ4_K_S, MostlyQ4_K_M, MostlyIQ3_S, MostlyIQ3_M, MostlyIQ4_XS) {
					typ = ggml.Q5_K
				}
			} else {
				switch ft {
				case MostlyQ2_K:
					typ = ggml.Q3_K
				case MostlyIQ3_XXS:
					typ = ggml.IQ3_S
				case MostlyQ3_K_M, MostlyIQ3_M:
					typ = ggml.Q4_K
				case MostlyQ3_K_L:
					typ = ggml.Q5_K
				}
			}
		} else if ft == MostlyQ3_K_L {
			typ = ggml.Q4_K
		}
	case c == catAttnQKV:
		switch ft {
		case MostlyQ3_K_M, MostlyQ3_K_L, MostlyIQ3_M:
			typ = ggml.Q4_K
		case MostlyQ4_K_M:
			typ = ggml.Q5_K
		case MostlyQ5_K_M:
			typ = ggml.Q6_K
		}
	case c == catFFNGate, c == catFFNUp:
		counter := &qs.iGate
		if c == catFFNUp {
			counter = &qs.iUp
		}
		i, n, err := qs.layerInfo(*counter, t.Name)
		if err != nil {
			return 0, err
		}
		if ft == MostlyIQ3_XS && i >= n/8 && i < 7*n/8 {
			typ = ggml.IQ3_XXS
		}
		*counter++
	}
	return typ, nil
}

// NeedsImatrix reports whether llama-quantize refuses to write the tensor called name as type t
// in a file of type f without an importance matrix (tensor_requires_imatrix): the IQ1, IQ2 and
// IQ3_XXS types, and Q2_K in a Q2_K_S file, except for token_embd.weight and output.weight.
func NeedsImatrix(name string, t ggml.Type, f FileType) bool {
	if categoryOf(name) == catTokenEmbd || name == "output.weight" {
		return false
	}
	switch t {
	case ggml.IQ3_XXS, ggml.IQ2_XXS, ggml.IQ2_XS, ggml.IQ2_S, ggml.IQ1_M, ggml.IQ1_S:
		return true
	case ggml.Q2_K:
		return f == MostlyQ2_K_S
	}
	return false
}
