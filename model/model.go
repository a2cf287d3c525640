// Package model is a Llama-family decoder (Llama, Mistral, Qwen2) in float32.
//
// A Model is a plain struct of blocks, each block an attention and an MLP sub-block built from Linear
// layers, in the spirit of llama2.c and ollama's model/models/llama: the whole forward reads in one
// sitting (forward.go). The structure is what the compression search needs:
//
//   - a sub-block is skipped by setting Block.SkipAttn or Block.SkipMLP (depth pruning);
//   - a linear layer's weights are substituted by pointing Linear.W at another slice, or
//     Linear.Stored at a database level held compactly (sparsity and quantization levels, expanded
//     inside the matrix multiply); Model.Clone makes a cheap shallow copy for such a candidate;
//   - weights may stay in the checkpoint's 16-bit dtype (LoadOptions.KeepDType: Linear.Stored,
//     Model.EmbedStored, Model.HeadStored), converted to float32 exactly inside the matrix multiply,
//     so the results are the same bits as with float32 weights;
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
	"github.com/evopress/evopress/internal/kernels"
)

// Linear is y = x·Wᵀ + B with W stored [Out×In] row-major, as in Hugging Face checkpoints.
//
// The weights are W when it is set, else Stored (read-only: the checkpoint's BF16 or F16 bits,
// or a level database's level held as its file stores it, kernels.Decoded): substituting a
// layer's weights is setting W (which takes precedence) or, for a database level, setting W to
// nil and Stored to the level (db.DB.Apply). Code that needs the float32 values reads them
// through Float32, not W.
type Linear struct {
	W       []float32       // Out×In, or nil when the weights are Stored
	Stored  kernels.Weights // Out×In in the stored dtype (or Decoded); used when W is nil
	B       []float32       // Out, or nil
	Out, In int
}

// Numel is the number of weights (bias excluded).
func (l *Linear) Numel() int { return l.Out * l.In }

// Weights returns the layer's weights as the matrix multiply takes them: W when set, else Stored.
func (l *Linear) Weights() kernels.Weights {
	if l.W != nil || l.Stored.IsZero() {
		return kernels.F32Weights(l.W)
	}
	return l.Stored
}

// Float32 returns the weights as float32: W itself when set (not a copy), else a new float32
// copy of Stored.
func (l *Linear) Float32() []float32 {
	if l.W != nil || l.Stored.IsZero() {
		return l.W
	}
	return l.Stored.Float32()
}

// weightCount is the number of weights the layer holds (W's or Stored's).
func (l *Linear) weightCount() int { return l.Weights().Len() }

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

	Embed  []float32 // Vocab×Hidden, or nil when held in EmbedStored
	Blocks []Block
	Norm   []float32 // final RMSNorm
	Head   []float32 // Vocab×Hidden, or nil when held in HeadStored; shares Embed's memory when embeddings are tied

	// EmbedStored and HeadStored hold the embeddings and the output head in the checkpoint's
	// 16-bit dtype when Embed and Head are nil (LoadOptions.KeepDType); HeadStored shares
	// EmbedStored's memory when embeddings are tied. Read them through EmbedWeights and
	// HeadWeights (or EmbedFloat32 and HeadFloat32).
	EmbedStored, HeadStored kernels.Weights

	invFreq []float32 // HeadDim/2 rotary inverse frequencies
}

// TensorSource reads a named tensor as float32, checking its shape. *hf.Checkpoint implements it.
type TensorSource interface {
	ReadFloat32(name string, shape ...int) ([]float32, error)
}

// StoredSource is a TensorSource that also reads BF16 and F16 tensors without converting them
// (hf.Checkpoint.ReadUint16) and tells a tensor's dtype. *hf.Checkpoint implements it.
type StoredSource interface {
	TensorSource
	Info(name string) (hf.TensorInfo, bool)
	ReadUint16(name string, shape ...int) ([]uint16, hf.DType, error)
}

// LoadOptions choose how a model holds its weights.
type LoadOptions struct {
	// KeepDType keeps the linear layers' weights, the embeddings and the output head in the
	// checkpoint's dtype when it is BF16 or F16 (half the memory of float32): they are converted
	// to float32 inside the matrix multiplies, exactly, so every result is the same bits. It
	// needs a StoredSource; norms and biases are always float32.
	KeepDType bool
	// Mmap (with KeepDType) takes the 16-bit weights as read-only views of the memory-mapped
	// checkpoint where the source allows (MappedSource; hf.Checkpoint.MapUint16) instead of
	// reading them into memory of their own: loading costs no copy, and the weights' pages are
	// the page cache's, which the kernel may drop and re-read. The files must not change while
	// the model is in use.
	Mmap bool
}

// MappedSource is a StoredSource that can also map 16-bit tensors read-only instead of reading
// them (hf.Checkpoint.MapUint16). *hf.Checkpoint implements it.
type MappedSource interface {
	StoredSource
	MapUint16(name string, shape ...int) ([]uint16, hf.DType, error)
}

// New builds a model from a configuration and its tensors, all converted to float32.
func New(cfg *hf.Config, src TensorSource) (*Model, error) {
	return NewWith(cfg, src, LoadOptions{})
}

// NewWith is New with options.
func NewWith(cfg *hf.Config, src TensorSource, opts LoadOptions) (*Model, error) {
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
	stored, _ := src.(StoredSource)
	if !opts.KeepDType {
		stored = nil
	}
	read16 := func(name string, shape ...int) ([]uint16, hf.DType, error) { return stored.ReadUint16(name, shape...) }
	if mapped, ok := src.(MappedSource); ok && opts.Mmap {
		read16 = mapped.MapUint16
	}
	// matrix reads a weight matrix: 16-bit bits when kept, else float32.
	matrix := func(name string, shape ...int) ([]float32, kernels.Weights) {
		if err != nil {
			return nil, kernels.Weights{}
		}
		if stored != nil {
			if t, ok := stored.Info(name); ok && (t.DType == hf.BF16 || t.DType == hf.F16) {
				bits, dt, e := read16(name, shape...)
				if e != nil {
					err = e
					return nil, kernels.Weights{}
				}
				kd := kernels.BF16
				if dt == hf.F16 {
					kd = kernels.F16
				}
				return nil, kernels.Weights{DType: kd, Bits: bits}
			}
		}
		return read(name, shape...), kernels.Weights{}
	}
	linear := func(i int, k arch.LinearKind, out, in int, bias bool) Linear {
		l := Linear{Out: out, In: in}
		l.W, l.Stored = matrix(arch.Weight(i, k).HF(), out, in)
		if bias {
			l.B = read(arch.Bias(i, k).HF(), out)
		}
		return l
	}
	m.Embed, m.EmbedStored = matrix(arch.Embedding().HF(), m.Vocab, h)
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
		m.Head, m.HeadStored = m.Embed, m.EmbedStored
	} else {
		m.Head, m.HeadStored = matrix(arch.LMHead().HF(), m.Vocab, h)
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
	n := m.EmbedWeights().Len() + len(m.Norm)
	if !m.tied() {
		n += m.HeadWeights().Len()
	}
	for i := range m.Blocks {
		b := &m.Blocks[i]
		n += len(b.AttnNorm) + len(b.MLPNorm)
		for k := range arch.NumLinearKinds {
			l := b.Layer(k)
			n += l.weightCount() + len(l.B)
		}
	}
	return n
}

func (m *Model) tied() bool {
	if len(m.Head) > 0 && len(m.Embed) > 0 {
		return &m.Head[0] == &m.Embed[0]
	}
	return m.Head == nil && m.Embed == nil && len(m.HeadStored.Bits) > 0 && len(m.EmbedStored.Bits) > 0 &&
		&m.HeadStored.Bits[0] == &m.EmbedStored.Bits[0]
}

// EmbedWeights returns the embeddings [Vocab×Hidden] as held: Embed, else EmbedStored.
func (m *Model) EmbedWeights() kernels.Weights {
	if m.Embed != nil || m.EmbedStored.IsZero() {
		return kernels.F32Weights(m.Embed)
	}
	return m.EmbedStored
}

// HeadWeights returns the output head [Vocab×Hidden] as held: Head, else HeadStored.
func (m *Model) HeadWeights() kernels.Weights {
	if m.Head != nil || m.HeadStored.IsZero() {
		return kernels.F32Weights(m.Head)
	}
	return m.HeadStored
}

// EmbedFloat32 returns the embeddings as float32: Embed itself when set, else a converted copy.
func (m *Model) EmbedFloat32() []float32 {
	if m.Embed != nil || m.EmbedStored.IsZero() {
		return m.Embed
	}
	return m.EmbedStored.Float32()
}

// HeadFloat32 returns the output head as float32: Head itself when set, else a converted copy.
func (m *Model) HeadFloat32() []float32 {
	if m.Head != nil || m.HeadStored.IsZero() {
		return m.Head
	}
	return m.HeadStored.Float32()
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
	return f + 2*float64(m.HeadWeights().Len())
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
