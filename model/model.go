// Package model is a Llama-family decoder (Llama, Mistral, Qwen2) in float32.
//
// A Model is a plain struct of blocks, each block an attention and an MLP sub-block built from Linear
// layers, in the spirit of llama2.c and ollama's model/models/llama: the whole forward reads in one
// sitting (forward.go). The structure is what the compression search needs:
//
//   - a sub-block is skipped by setting Block.SkipAttn or Block.SkipMLP (depth pruning);
//   - a linear layer's weights are substituted by pointing Linear.W at another slice (sparsity and
//     quantization levels); Model.Clone makes a cheap shallow copy for such a candidate;
//   - a Hook sees the input of every linear layer (calibration statistics);
//   - the forward runs over any range of blocks on saved hidden states (Activations), so a candidate
//     that differs from its parent only from block i on starts from the parent's state at block i.
//
// All arithmetic is float32, with the matrix multiplies in package internal/kernels.
package model

import (
	"fmt"
	"math"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/hf"
)

// Linear is y = x·Wᵀ + B with W stored [Out×In] row-major, as in Hugging Face checkpoints.
type Linear struct {
	W       []float32 // Out×In
	B       []float32 // Out, or nil
	Out, In int
}

// Numel is the number of weights (bias excluded).
func (l *Linear) Numel() int { return l.Out * l.In }

// Block is one transformer block: pre-norm attention and pre-norm SwiGLU MLP, each added to the
// residual stream.
type Block struct {
	AttnNorm []float32 // input_layernorm
	Q, K, V  Linear
	O        Linear
	MLPNorm  []float32 // post_attention_layernorm
	Gate, Up Linear
	Down     Linear

	// SkipAttn and SkipMLP drop the sub-block: it adds nothing to the residual stream.
	SkipAttn, SkipMLP bool
}

// Layer returns a pointer to the block's linear layer of the given kind.
func (b *Block) Layer(k arch.LinearKind) *Linear {
	switch k {
	case arch.QProj:
		return &b.Q
	case arch.KProj:
		return &b.K
	case arch.VProj:
		return &b.V
	case arch.OProj:
		return &b.O
	case arch.GateProj:
		return &b.Gate
	case arch.UpProj:
		return &b.Up
	case arch.DownProj:
		return &b.Down
	}
	panic(fmt.Sprintf("model: bad layer kind %d", int(k)))
}

// Model is a Llama-family causal language model.
type Model struct {
	Config *hf.Config

	Hidden, Heads, KVHeads, HeadDim, Intermediate, Vocab int
	Eps                                                  float32

	Embed  []float32 // Vocab×Hidden
	Blocks []Block
	Norm   []float32 // final RMSNorm
	Head   []float32 // Vocab×Hidden; shares Embed's memory when embeddings are tied

	invFreq []float32 // HeadDim/2 rotary inverse frequencies
}

// TensorSource reads a named tensor as float32, checking its shape. *hf.Checkpoint implements it.
type TensorSource interface {
	ReadFloat32(name string, shape ...int) ([]float32, error)
}

// New builds a model from a configuration and its tensors.
func New(cfg *hf.Config, src TensorSource) (*Model, error) {
	if cfg.HiddenSize <= 0 || cfg.NumAttentionHeads <= 0 || cfg.NumKeyValueHeads <= 0 || cfg.HeadDim <= 0 {
		return nil, fmt.Errorf("model: config %s: non-positive sizes", cfg.Path)
	}
	if cfg.HeadDim%2 != 0 {
		return nil, fmt.Errorf("model: config %s: head_dim %d must be even for rotary embeddings", cfg.Path, cfg.HeadDim)
	}
	m := &Model{
		Config:       cfg,
		Hidden:       cfg.HiddenSize,
		Heads:        cfg.NumAttentionHeads,
		KVHeads:      cfg.NumKeyValueHeads,
		HeadDim:      cfg.HeadDim,
		Intermediate: cfg.IntermediateSize,
		Vocab:        cfg.VocabSize,
		Eps:          float32(cfg.RMSNormEps),
	}
	h, nq, nkv := m.Hidden, m.Heads*m.HeadDim, m.KVHeads*m.HeadDim
	var err error
	read := func(name string, shape ...int) []float32 {
		if err != nil {
			return nil
		}
		var t []float32
		t, err = src.ReadFloat32(name, shape...)
		return t
	}
	linear := func(i int, k arch.LinearKind, out, in int, bias bool) Linear {
		l := Linear{W: read(arch.Weight(i, k).HF(), out, in), Out: out, In: in}
		if bias {
			l.B = read(arch.Bias(i, k).HF(), out)
		}
		return l
	}
	m.Embed = read(arch.Embedding().HF(), m.Vocab, h)
	qkvBias := cfg.QKVBias
	for i := 0; i < cfg.NumHiddenLayers && err == nil; i++ {
		b := Block{
			AttnNorm: read(arch.Norm(i, arch.Attention).HF(), h),
			Q:        linear(i, arch.QProj, nq, h, qkvBias),
			K:        linear(i, arch.KProj, nkv, h, qkvBias),
			V:        linear(i, arch.VProj, nkv, h, qkvBias),
			O:        linear(i, arch.OProj, h, nq, cfg.OutputBias),
			MLPNorm:  read(arch.Norm(i, arch.MLP).HF(), h),
			Gate:     linear(i, arch.GateProj, m.Intermediate, h, cfg.MLPBias),
			Up:       linear(i, arch.UpProj, m.Intermediate, h, cfg.MLPBias),
			Down:     linear(i, arch.DownProj, h, m.Intermediate, cfg.MLPBias),
		}
		m.Blocks = append(m.Blocks, b)
	}
	m.Norm = read(arch.FinalNorm().HF(), h)
	if cfg.TieWordEmbeddings {
		m.Head = m.Embed
	} else {
		m.Head = read(arch.LMHead().HF(), m.Vocab, h)
	}
	if err != nil {
		return nil, err
	}
	inv := cfg.RopeInvFreq()
	m.invFreq = make([]float32, len(inv))
	for i, f := range inv {
		m.invFreq[i] = float32(f)
	}
	return m, nil
}

// Clone returns a shallow copy whose blocks can be changed (skipped, weights swapped) without
// touching m. Weight slices are shared, not copied.
func (m *Model) Clone() *Model {
	c := *m
	c.Blocks = append([]Block(nil), m.Blocks...)
	return &c
}

// NumParams counts the model's parameters (a tied head counted once).
func (m *Model) NumParams() int {
	n := len(m.Embed) + len(m.Norm)
	if !m.tied() {
		n += len(m.Head)
	}
	for i := range m.Blocks {
		b := &m.Blocks[i]
		n += len(b.AttnNorm) + len(b.MLPNorm)
		for k := range arch.NumLinearKinds {
			l := b.Layer(k)
			n += len(l.W) + len(l.B)
		}
	}
	return n
}

func (m *Model) tied() bool {
	return len(m.Head) > 0 && len(m.Embed) > 0 && &m.Head[0] == &m.Embed[0]
}

// FLOPsPerToken estimates the multiply-add FLOPs (2 per MAC) of the forward per token at context
// length ctx, counting linear layers, attention scores and the output head.
func (m *Model) FLOPsPerToken(ctx int) float64 {
	var f float64
	for i := range m.Blocks {
		b := &m.Blocks[i]
		if !b.SkipAttn {
			f += 2 * float64(b.Q.Numel()+b.K.Numel()+b.V.Numel()+b.O.Numel())
			f += 2 * 2 * float64(m.Heads*m.HeadDim) * float64(ctx) / 2
		}
		if !b.SkipMLP {
			f += 2 * float64(b.Gate.Numel()+b.Up.Numel()+b.Down.Numel())
		}
	}
	return f + 2*float64(len(m.Head))
}

// ropeTable returns cos and sin tables [T × HeadDim/2] computed as Hugging Face does in float32:
// freqs = float32(position)·inv_freq (float32 product), then cos/sin of that float32 value.
func (m *Model) ropeTable(T int) (cos, sin []float32) {
	half := m.HeadDim / 2
	cos = make([]float32, T*half)
	sin = make([]float32, T*half)
	for p := 0; p < T; p++ {
		for i := 0; i < half; i++ {
			f := float32(p) * m.invFreq[i]
			cos[p*half+i] = float32(math.Cos(float64(f)))
			sin[p*half+i] = float32(math.Sin(float64(f)))
		}
	}
	return cos, sin
}
