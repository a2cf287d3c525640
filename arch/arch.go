// Package arch is the naming table of the Llama-family architecture (Llama, Mistral and Qwen2 share
// it): the one place where the names of a model's parts are printed and parsed, in the spirit of
// llama.cpp's LLM_TENSOR_NAMES (llama-arch.cpp) and ollama's converters.
//
// A model is a stack of blocks; each block has two sub-blocks, attention and MLP, each a pre-norm
// followed by linear layers. The names of block N's units (Hugging Face modules) and tensors:
//
//	unit                              tensor (Hugging Face)                            GGUF
//	model.layers.N                    (the whole block: both sub-blocks)
//	model.layers.N.self_attn          model.layers.N.input_layernorm.weight            blk.N.attn_norm.weight
//	model.layers.N.self_attn.q_proj   model.layers.N.self_attn.q_proj.weight           blk.N.attn_q.weight
//	model.layers.N.self_attn.k_proj   model.layers.N.self_attn.k_proj.weight           blk.N.attn_k.weight
//	model.layers.N.self_attn.v_proj   model.layers.N.self_attn.v_proj.weight           blk.N.attn_v.weight
//	model.layers.N.self_attn.o_proj   model.layers.N.self_attn.o_proj.weight           blk.N.attn_output.weight
//	model.layers.N.mlp                model.layers.N.post_attention_layernorm.weight   blk.N.ffn_norm.weight
//	model.layers.N.mlp.gate_proj      model.layers.N.mlp.gate_proj.weight              blk.N.ffn_gate.weight
//	model.layers.N.mlp.up_proj        model.layers.N.mlp.up_proj.weight                blk.N.ffn_up.weight
//	model.layers.N.mlp.down_proj      model.layers.N.mlp.down_proj.weight              blk.N.ffn_down.weight
//
// and the global tensors model.embed_tokens.weight (GGUF token_embd.weight), model.norm.weight
// (output_norm.weight) and lm_head.weight (output.weight, absent with tied embeddings).
// Linear layers may also have a bias (".bias" in both namings).
//
// The compression search works on units (Unit): a whole block, a sub-block (depth pruning drops
// them) or a linear layer (sparsity and quantization levels). A unit's name is its Hugging Face
// module name; ParseUnit reads exactly the names Unit.String prints, nothing else. Tensors
// (Tensor) are the weights of a checkpoint, with their Hugging Face and GGUF names.
package arch

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// LayersPrefix is the start of the module name of every block: block i is LayersPrefix + "i".
const LayersPrefix = "model.layers."

// MaxBlocks bounds the block index of a name: ParseUnit, ParseLinear, ParseTensor and
// SplitLayers read indices 0 ≤ i < MaxBlocks.
const MaxBlocks = 1 << 20

// SubBlock is one of the two sub-blocks of a block.
type SubBlock int

// The two sub-blocks of a block, in forward order.
const (
	Attention SubBlock = iota // self-attention: "self_attn"
	MLP                       // the SwiGLU feed-forward network: "mlp"
	NumSubBlocks
)

// LinearKind names one of the seven linear layers of a block.
type LinearKind int

// The seven linear layers of a block, in Hugging Face (and unit) order.
const (
	QProj LinearKind = iota
	KProj
	VProj
	OProj
	GateProj
	UpProj
	DownProj
	NumLinearKinds
)

// subTable names the sub-blocks and their pre-norms.
var subTable = [NumSubBlocks]struct {
	hf       string // module name inside a block
	norm     string // Hugging Face name of the pre-norm inside a block
	ggufNorm string // GGUF name of the pre-norm inside a block
}{
	Attention: {"self_attn", "input_layernorm", "attn_norm"},
	MLP:       {"mlp", "post_attention_layernorm", "ffn_norm"},
}

// linearTable names the linear layers.
var linearTable = [NumLinearKinds]struct {
	sub   SubBlock
	short string // module name inside the sub-block
	gguf  string // GGUF name inside a block
}{
	QProj:    {Attention, "q_proj", "attn_q"},
	KProj:    {Attention, "k_proj", "attn_k"},
	VProj:    {Attention, "v_proj", "attn_v"},
	OProj:    {Attention, "o_proj", "attn_output"},
	GateProj: {MLP, "gate_proj", "ffn_gate"},
	UpProj:   {MLP, "up_proj", "ffn_up"},
	DownProj: {MLP, "down_proj", "ffn_down"},
}

// linearNames holds LinearKind.String: "self_attn.q_proj", ...
var linearNames = func() (n [NumLinearKinds]string) {
	for k, l := range linearTable {
		n[k] = subTable[l.sub].hf + "." + l.short
	}
	return n
}()

// Global tensor names: Hugging Face and GGUF.
const (
	hfEmbed, ggufEmbed         = "model.embed_tokens.weight", "token_embd.weight"
	hfFinalNorm, ggufFinalNorm = "model.norm.weight", "output_norm.weight"
	hfHead, ggufHead           = "lm_head.weight", "output.weight"
	ggufBlockPrefix            = "blk."
)

// GGUFRopeFreqs is the GGUF tensor of rotary frequency factors (llama3 rope scaling),
// computed from the configuration: it has no Hugging Face counterpart.
const GGUFRopeFreqs = "rope_freqs.weight"

// String returns the sub-block's module name inside a block: "self_attn" or "mlp".
func (s SubBlock) String() string {
	if s < 0 || s >= NumSubBlocks {
		return "SubBlock(" + strconv.Itoa(int(s)) + ")"
	}
	return subTable[s].hf
}

// Linear returns the linear layers of the sub-block, in order (q, k, v, o or gate, up, down).
func (s SubBlock) Linear() []LinearKind {
	var out []LinearKind
	for k := range NumLinearKinds {
		if linearTable[k].sub == s {
			out = append(out, k)
		}
	}
	return out
}

// LinearKinds returns the seven linear layers of a block in order, QProj to DownProj.
func LinearKinds() []LinearKind {
	out := make([]LinearKind, NumLinearKinds)
	for k := range out {
		out[k] = LinearKind(k)
	}
	return out
}

func (k LinearKind) valid() bool { return k >= 0 && k < NumLinearKinds }

// String returns the layer's module path inside a block, e.g. "self_attn.q_proj".
func (k LinearKind) String() string {
	if !k.valid() {
		return "LinearKind(" + strconv.Itoa(int(k)) + ")"
	}
	return linearNames[k]
}

// Short returns the layer's module name inside its sub-block, e.g. "q_proj".
func (k LinearKind) Short() string {
	if !k.valid() {
		return k.String()
	}
	return linearTable[k].short
}

// Sub returns the sub-block the layer belongs to.
func (k LinearKind) Sub() SubBlock {
	checkKind(k)
	return linearTable[k].sub
}

// GGUF returns the layer's GGUF name inside a block, e.g. "attn_q" or "ffn_down".
func (k LinearKind) GGUF() string {
	if !k.valid() {
		return k.String()
	}
	return linearTable[k].gguf
}

// ParseLinearKind is the inverse of LinearKind.String; it also accepts the short name ("q_proj").
func ParseLinearKind(s string) (LinearKind, error) {
	for k := range NumLinearKinds {
		if s == linearNames[k] || s == linearTable[k].short {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown linear layer %q (want one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)", s)
}

// Level is how much of a block a unit covers.
type Level int

// The three unit levels.
const (
	BlockLevel    Level = iota // a whole block: "model.layers.N"
	SubBlockLevel              // a sub-block: "model.layers.N.self_attn", "model.layers.N.mlp"
	LinearLevel                // a linear layer: "model.layers.N.self_attn.q_proj", ...
)

// String returns "block", "sub-block" or "linear layer".
func (l Level) String() string {
	switch l {
	case BlockLevel:
		return "block"
	case SubBlockLevel:
		return "sub-block"
	case LinearLevel:
		return "linear layer"
	}
	return "Level(" + strconv.Itoa(int(l)) + ")"
}

// part is what of a block a unit covers: the whole block, a sub-block (partSub+SubBlock) or a
// linear layer (partLinear+LinearKind).
type part uint8

const (
	partBlock  part = 0
	partSub    part = 1
	partLinear part = partSub + part(NumSubBlocks)
	numParts   part = partLinear + part(NumLinearKinds)
)

// partSuffix is each part's module name suffix after "model.layers.N".
var partSuffix = func() (s [numParts]string) {
	for sb := range NumSubBlocks {
		s[partSub+part(sb)] = "." + subTable[sb].hf
	}
	for k := range NumLinearKinds {
		s[partLinear+part(k)] = "." + linearNames[k]
	}
	return s
}()

// Unit is a compressible unit of a model: a whole block, one of its sub-blocks or one of its
// linear layers. Units are comparable; the zero Unit is block 0. Make them with Block, SubUnit,
// LinearUnit or ParseUnit.
type Unit struct {
	block int
	part  part
}

func checkBlock(i int) {
	if i < 0 || i >= MaxBlocks {
		panic(fmt.Sprintf("arch: block index %d outside [0, %d)", i, MaxBlocks))
	}
}

func checkSub(s SubBlock) {
	if s < 0 || s >= NumSubBlocks {
		panic("arch: invalid " + s.String())
	}
}

func checkKind(k LinearKind) {
	if !k.valid() {
		panic("arch: invalid " + k.String())
	}
}

// Block returns the unit of block i, "model.layers.i". It panics unless 0 ≤ i < MaxBlocks.
func Block(i int) Unit {
	checkBlock(i)
	return Unit{block: i}
}

// SubUnit returns the unit of sub-block s of block i, e.g. "model.layers.3.mlp". It panics on an
// invalid sub-block or unless 0 ≤ i < MaxBlocks.
func SubUnit(i int, s SubBlock) Unit {
	checkBlock(i)
	checkSub(s)
	return Unit{block: i, part: partSub + part(s)}
}

// LinearUnit returns the unit of linear layer k of block i, e.g. "model.layers.3.mlp.down_proj".
// It panics on an invalid kind or unless 0 ≤ i < MaxBlocks.
func LinearUnit(i int, k LinearKind) Unit {
	checkBlock(i)
	checkKind(k)
	return Unit{block: i, part: partLinear + part(k)}
}

// Block returns the index of the block the unit is or lies in.
func (u Unit) Block() int { return u.block }

// Level returns how much of its block the unit covers.
func (u Unit) Level() Level {
	switch {
	case u.part == partBlock:
		return BlockLevel
	case u.part < partLinear:
		return SubBlockLevel
	}
	return LinearLevel
}

// Sub returns the sub-block the unit is or lies in; ok is false for a whole block.
func (u Unit) Sub() (s SubBlock, ok bool) {
	switch u.Level() {
	case SubBlockLevel:
		return SubBlock(u.part - partSub), true
	case LinearLevel:
		return linearTable[u.part-partLinear].sub, true
	}
	return 0, false
}

// Linear returns the linear layer the unit is; ok is false for a block or a sub-block.
func (u Unit) Linear() (k LinearKind, ok bool) {
	if u.Level() != LinearLevel {
		return 0, false
	}
	return LinearKind(u.part - partLinear), true
}

// String returns the unit's Hugging Face module name, e.g. "model.layers.3.self_attn.q_proj".
func (u Unit) String() string {
	return LayersPrefix + strconv.Itoa(u.block) + partSuffix[u.part]
}

// parseIndex reads a block index: decimal digits without sign or leading zeros, below MaxBlocks.
func parseIndex(s string) (int, error) {
	if s == "" {
		return 0, errors.New("no block index")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("block index %q has a leading zero", s)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("block index %q is not a decimal number", s)
		}
		n = n*10 + int(c-'0')
		if n >= MaxBlocks {
			return 0, fmt.Errorf("block index %s is not below %d", s, MaxBlocks)
		}
	}
	return n, nil
}

// ParseUnit parses a unit name as Unit.String prints it: "model.layers.N",
// "model.layers.N.self_attn", "model.layers.N.mlp" or "model.layers.N.<sub-block>.<layer>" (one
// of the seven long LinearKind names), N a decimal block index below MaxBlocks without sign or
// leading zeros. Anything else is an error: no spaces, no other prefix or suffix, no short
// layer names.
func ParseUnit(name string) (Unit, error) {
	u, why := parseUnit(name)
	if why != "" {
		return Unit{}, fmt.Errorf("%q is not a unit name (%s; want %sN, %sN.self_attn, %sN.mlp or a linear layer %sN.self_attn.q_proj … %sN.mlp.down_proj)",
			name, why, LayersPrefix, LayersPrefix, LayersPrefix, LayersPrefix, LayersPrefix)
	}
	return u, nil
}

// ParseLinear parses a linear layer's module name ("model.layers.3.mlp.down_proj") into its block
// and kind; any other name, unit or not, is an error.
func ParseLinear(name string) (block int, kind LinearKind, err error) {
	u, why := parseUnit(name)
	k, ok := u.Linear()
	if why == "" && !ok {
		why = "it names a " + u.Level().String()
	}
	if why != "" {
		return 0, 0, fmt.Errorf("%q is not a linear layer name (%s; want %sN.self_attn.q_proj … %sN.mlp.down_proj)", name, why, LayersPrefix, LayersPrefix)
	}
	return u.block, k, nil
}

// parseUnit is ParseUnit with the reason of a failure (empty on success).
func parseUnit(name string) (Unit, string) {
	rest, ok := strings.CutPrefix(name, LayersPrefix)
	if !ok {
		return Unit{}, "no " + LayersPrefix + " prefix"
	}
	idx, suffix := rest, ""
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		idx, suffix = rest[:i], rest[i:]
	}
	b, err := parseIndex(idx)
	if err != nil {
		return Unit{}, err.Error()
	}
	for p, s := range partSuffix {
		if suffix == s {
			return Unit{block: b, part: part(p)}, ""
		}
	}
	return Unit{}, fmt.Sprintf("unknown part %q of block %d", suffix[1:], b)
}

// SplitLayers splits the module name of any architecture that numbers its blocks after a
// "layers." component, "<prefix>layers.N.<rest>" (e.g. "model.layers.3.mlp.up_proj", or another
// model's "model.decoder.layers.3.fc1"), at the first "layers." it contains. prefix ends with
// "layers."; N is a decimal block index as ParseUnit reads it; rest is not empty. It is for
// displaying names of unknown architectures; ParseUnit reads the Llama-family names.
func SplitLayers(name string) (prefix string, block int, rest string, ok bool) {
	const layers = "layers."
	i := strings.Index(name, layers)
	if i < 0 {
		return "", 0, "", false
	}
	prefix, s := name[:i+len(layers)], name[i+len(layers):]
	j := strings.IndexByte(s, '.')
	if j < 0 || j == len(s)-1 {
		return "", 0, "", false
	}
	b, err := parseIndex(s[:j])
	if err != nil {
		return "", 0, "", false
	}
	return prefix, b, s[j+1:], true
}

// tensorID is what a Tensor names: a global tensor, a sub-block's pre-norm (tNorm+SubBlock), or a
// linear layer's weight (tWeight+LinearKind) or bias (tBias+LinearKind).
type tensorID uint8

const (
	tEmbed tensorID = iota
	tFinalNorm
	tHead
	tNorm
	tWeight = tNorm + tensorID(NumSubBlocks)
	tBias   = tWeight + tensorID(NumLinearKinds)
)

const (
	noBlock = -1 // Tensor.block of a global tensor
	suffixW = ".weight"
	suffixB = ".bias"
)

// Tensor names a weight tensor of a Llama-family checkpoint. Tensors are comparable. Make them
// with Embedding, FinalNorm, LMHead, Norm, Weight, Bias or ParseTensor.
type Tensor struct {
	block int // noBlock for a global tensor
	id    tensorID
}

// Embedding is the token embedding matrix, "model.embed_tokens.weight" (GGUF "token_embd.weight").
func Embedding() Tensor { return Tensor{noBlock, tEmbed} }

// FinalNorm is the norm after the last block, "model.norm.weight" (GGUF "output_norm.weight").
func FinalNorm() Tensor { return Tensor{noBlock, tFinalNorm} }

// LMHead is the output projection, "lm_head.weight" (GGUF "output.weight"); checkpoints with tied
// embeddings have none.
func LMHead() Tensor { return Tensor{noBlock, tHead} }

// Norm is the RMSNorm weight before sub-block s of block i: "model.layers.i.input_layernorm.weight"
// (GGUF "blk.i.attn_norm.weight") or "model.layers.i.post_attention_layernorm.weight"
// ("blk.i.ffn_norm.weight"). It panics like SubUnit.
func Norm(i int, s SubBlock) Tensor {
	checkBlock(i)
	checkSub(s)
	return Tensor{i, tNorm + tensorID(s)}
}

// Weight is the weight matrix of linear layer k of block i, e.g.
// "model.layers.3.self_attn.q_proj.weight" (GGUF "blk.3.attn_q.weight"). It panics like LinearUnit.
func Weight(i int, k LinearKind) Tensor {
	checkBlock(i)
	checkKind(k)
	return Tensor{i, tWeight + tensorID(k)}
}

// Bias is the bias vector of linear layer k of block i, e.g. "model.layers.3.self_attn.q_proj.bias"
// (GGUF "blk.3.attn_q.bias"). It panics like LinearUnit.
func Bias(i int, k LinearKind) Tensor {
	checkBlock(i)
	checkKind(k)
	return Tensor{i, tBias + tensorID(k)}
}

// Block returns the index of the block the tensor belongs to; ok is false for a global tensor.
func (t Tensor) Block() (block int, ok bool) { return t.block, t.block != noBlock }

// HF returns the tensor's Hugging Face name, e.g. "model.layers.3.mlp.up_proj.weight".
func (t Tensor) HF() string {
	switch {
	case t.id == tEmbed:
		return hfEmbed
	case t.id == tFinalNorm:
		return hfFinalNorm
	case t.id == tHead:
		return hfHead
	case t.id < tWeight:
		return LayersPrefix + strconv.Itoa(t.block) + "." + subTable[t.id-tNorm].norm + suffixW
	case t.id < tBias:
		return LinearUnit(t.block, LinearKind(t.id-tWeight)).String() + suffixW
	}
	return LinearUnit(t.block, LinearKind(t.id-tBias)).String() + suffixB
}

// String returns the tensor's Hugging Face name (see HF).
func (t Tensor) String() string { return t.HF() }

// GGUF returns the tensor's GGUF name, e.g. "blk.3.ffn_up.weight".
func (t Tensor) GGUF() string {
	blk := func() string { return ggufBlockPrefix + strconv.Itoa(t.block) + "." }
	switch {
	case t.id == tEmbed:
		return ggufEmbed
	case t.id == tFinalNorm:
		return ggufFinalNorm
	case t.id == tHead:
		return ggufHead
	case t.id < tWeight:
		return blk() + subTable[t.id-tNorm].ggufNorm + suffixW
	case t.id < tBias:
		return blk() + linearTable[t.id-tWeight].gguf + suffixW
	}
	return blk() + linearTable[t.id-tBias].gguf + suffixB
}

// ParseTensor parses a Hugging Face tensor name as Tensor.HF prints it; anything else is an error.
func ParseTensor(name string) (Tensor, error) {
	switch name {
	case hfEmbed:
		return Embedding(), nil
	case hfFinalNorm:
		return FinalNorm(), nil
	case hfHead:
		return LMHead(), nil
	}
	bad := func(why string) (Tensor, error) {
		return Tensor{}, fmt.Errorf("%q is not a tensor name of a Llama-family checkpoint (%s)", name, why)
	}
	module, suffix := name, ""
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		module, suffix = name[:i], name[i:]
	}
	if suffix != suffixW && suffix != suffixB {
		return bad("want a .weight or .bias")
	}
	if rest, ok := strings.CutPrefix(module, LayersPrefix); ok && suffix == suffixW {
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			for s := range NumSubBlocks {
				if rest[i+1:] == subTable[s].norm {
					b, err := parseIndex(rest[:i])
					if err != nil {
						return bad(err.Error())
					}
					return Tensor{b, tNorm + tensorID(s)}, nil
				}
			}
		}
	}
	b, k, err := ParseLinear(module)
	if err != nil {
		return bad(err.Error())
	}
	if suffix == suffixB {
		return Tensor{b, tBias + tensorID(k)}, nil
	}
	return Tensor{b, tWeight + tensorID(k)}, nil
}
