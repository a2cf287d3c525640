package memcheck

import (
	"fmt"
	"io/fs"
	"math"
	"sort"
	"strings"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/internal/modelspec"
	"github.com/evopress/evopress/profile"
)

// Shape is what an estimate needs to know of a model: its configuration and the size of its
// weights as a loaded model holds them, read from config.json and the safetensors headers
// without reading any weight.
type Shape struct {
	Config *hf.Config
	// WeightBytes is the memory of the weights as package model holds them with 16-bit weights
	// kept (model.LoadOptions.KeepDType, as every command loads them): 2 bytes per weight of a
	// BF16 or F16 matrix (embeddings, linear layers, output head), 4 per weight of a matrix of
	// another dtype (converted to float32), 4 per norm and bias value; a tied head counted once.
	WeightBytes int64
	// Float32Bytes is the same weights all in float32 (model.New).
	Float32Bytes int64
	// Bytes16 is the part of WeightBytes in BF16 and F16 matrices: what a load with
	// model.LoadOptions.Mmap maps from the checkpoint files instead of reading into the Go heap.
	Bytes16 int64
	// DTypes lists the matrices' stored dtypes ("BF16", or "BF16, F32").
	DTypes string
	// LinearWeights is the number of weights of the linear layers (a level database's layers).
	LinearWeights int64
	// MaxLinear is the number of weights of the largest linear layer; MaxIn the widest layer
	// input (the side of the largest Hessian).
	MaxLinear int64
	MaxIn     int
	// Tensors is the number of tensors the model reads.
	Tensors int
}

// Blocks is the number of transformer blocks.
func (s *Shape) Blocks() int { return s.Config.NumHiddenLayers }

// HeadWeights is the number of weights of the embeddings (and of an untied output head).
func (s *Shape) HeadWeights() int64 { return int64(s.Config.VocabSize) * int64(s.Config.HiddenSize) }

// ShapeOf computes the shape of the model the configuration and the checkpoint's tensors
// (info: a tensor's dtype and shape by name, as hf.Checkpoint.Info) describe, reading the
// tensors model.NewWith reads. A missing tensor, or one whose shape is not the configuration's,
// is an error (the load would fail on it).
func ShapeOf(cfg *hf.Config, info func(name string) (hf.TensorInfo, bool)) (*Shape, error) {
	s := &Shape{Config: cfg}
	h, inter := cfg.HiddenSize, cfg.IntermediateSize
	nq, nkv := cfg.NumAttentionHeads*cfg.HeadDim, cfg.NumKeyValueHeads*cfg.HeadDim
	if h <= 0 || inter <= 0 || nq <= 0 || nkv <= 0 || cfg.VocabSize <= 0 {
		return nil, fmt.Errorf("memcheck: config %s: non-positive sizes", cfg.Path)
	}
	dtypes := map[string]bool{}
	var err error
	tensor := func(name string, matrix bool, shape ...int) int64 {
		if err != nil {
			return 0
		}
		t, ok := info(name)
		if !ok {
			err = fmt.Errorf("memcheck: tensor %s: not in the checkpoint", name)
			return 0
		}
		n := int64(1)
		for _, d := range shape {
			n *= int64(d)
		}
		tn := int64(1)
		for _, d := range t.Shape {
			tn *= int64(d)
		}
		if tn != n {
			err = fmt.Errorf("memcheck: tensor %s: shape %v, the configuration's is %v", name, t.Shape, shape)
			return 0
		}
		s.Tensors++
		s.Float32Bytes += 4 * n
		if matrix {
			dtypes[string(t.DType)] = true
			if t.DType == hf.BF16 || t.DType == hf.F16 {
				s.WeightBytes += 2 * n
				s.Bytes16 += 2 * n
				return n
			}
		}
		s.WeightBytes += 4 * n
		return n
	}
	tensor(arch.Embedding().HF(), true, cfg.VocabSize, h)
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		tensor(arch.Norm(i, arch.Attention).HF(), false, h)
		tensor(arch.Norm(i, arch.MLP).HF(), false, h)
		for k := range arch.NumLinearKinds {
			out, in, bias := nq, h, cfg.QKVBias
			switch k {
			case arch.KProj, arch.VProj:
				out = nkv
			case arch.OProj:
				out, in, bias = h, nq, cfg.OutputBias
			case arch.GateProj, arch.UpProj:
				out, bias = inter, cfg.MLPBias
			case arch.DownProj:
				out, in, bias = h, inter, cfg.MLPBias
			}
			n := tensor(arch.Weight(i, k).HF(), true, out, in)
			s.LinearWeights += n
			s.MaxLinear = max(s.MaxLinear, n)
			s.MaxIn = max(s.MaxIn, in)
			if bias {
				tensor(arch.Bias(i, k).HF(), false, out)
			}
		}
	}
	tensor(arch.FinalNorm().HF(), false, h)
	if !cfg.TieWordEmbeddings {
		tensor(arch.LMHead().HF(), true, cfg.VocabSize, h)
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for d := range dtypes {
		names = append(names, d)
	}
	sort.Strings(names)
	s.DTypes = strings.Join(names, ", ")
	return s, nil
}

// ModelShape reads the shape of the Hugging Face model directory dir: config.json and the
// safetensors headers only.
func ModelShape(dir string) (*Shape, error) {
	cfg, err := hf.LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	ck, err := hf.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	return ShapeOf(cfg, ck.Info)
}

// ModelShapeFS is ModelShape for a model directory inside a file system (the embedded model).
func ModelShapeFS(fsys fs.FS, dir string) (*Shape, error) {
	cfg, err := hf.LoadConfigFS(fsys, dir)
	if err != nil {
		return nil, err
	}
	ck, err := hf.OpenCheckpointFS(fsys, dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	return ShapeOf(cfg, ck.Info)
}

// Weights adds the model's weights to e, as held with 16-bit weights kept.
func (e *Estimate) Weights(s *Shape) {
	e.Add("weights", s.WeightBytes, nil, "%d blocks, %s matrices as stored, norms float32", s.Blocks(), s.DTypes)
}

// LinearNumel is the number of weights of a linear layer of the kind.
func (s *Shape) LinearNumel(k arch.LinearKind) int64 {
	c := s.Config
	h, inter := int64(c.HiddenSize), int64(c.IntermediateSize)
	nq, nkv := int64(c.NumAttentionHeads*c.HeadDim), int64(c.NumKeyValueHeads*c.HeadDim)
	switch k {
	case arch.QProj, arch.OProj:
		return h * nq
	case arch.KProj, arch.VProj:
		return h * nkv
	}
	return h * inter
}

// Profile adds what applying the profile p to the model holds besides the model: the level
// database's levels its layers take (sparse and quant profiles), held as their files store them
// (package db): for a quant or gguf profile its values' bits per weight (the scales included;
// float32 for a layer without a value), for a sparse one the bitmask and running counts (1.5
// bits per weight) and the kept weights at 4 bytes (the widest stored value type).
func (e *Estimate) Profile(s *Shape, p *profile.Profile) {
	if p == nil || p.Mode == profile.ModeDrop {
		return
	}
	var bytes float64
	layers := 0
	for name := range p.Levels {
		if u, err := arch.ParseUnit(name); err == nil && u.Block() < s.Blocks() {
			if k, ok := u.Linear(); ok {
				bytes += levelBytes(p, name, float64(s.LinearNumel(k)))
				layers++
			}
		}
	}
	e.Add("levels", int64(math.Ceil(bytes)), nil, "the profile's %d layers from the level database, held as stored", layers)
}

// levelBytes bounds the memory a level of n weights of the profile's layer name holds.
func levelBytes(p *profile.Profile, name string, n float64) float64 {
	v, ok := p.Values[name]
	switch {
	case p.Mode == profile.ModeSparse:
		if !ok || v < 0 || v > 1 {
			v = 0
		}
		return n * (1.5/8 + 4*(1-v))
	case ok && v > 0 && v <= 32:
		return n*v/8 + 512 // the file's header and padding
	}
	return 4 * n
}

// GGUFHeads adds the token embedding and output head of a GGUF profile (one that records their
// types) in float32, as evaluating it holds them (their round trip through those types).
func (e *Estimate) GGUFHeads(s *Shape, p *profile.Profile) {
	if r := p.Search; p.Mode == profile.ModeQuant && r != nil && r.TokenEmbeddingType != "" {
		heads := int64(1)
		if r.OutputTensorType != "" {
			heads = 2
		}
		e.Add("embedding/output", 4*heads*s.HeadWeights(), nil, "the GGUF profile's token embedding and output head, float32")
	}
}

// SpecShape is the shape of a published architecture (package modelspec: its config.json and
// tensors, BF16), for estimates at real sizes without a checkpoint.
func SpecShape(sp modelspec.Spec) (*Shape, error) {
	data, err := sp.ConfigJSON()
	if err != nil {
		return nil, err
	}
	cfg, err := hf.ParseConfig(data, sp.Name+"/config.json")
	if err != nil {
		return nil, err
	}
	infos := map[string]hf.TensorInfo{}
	for _, t := range sp.Tensors() {
		infos[t.Name] = hf.TensorInfo{Name: t.Name, DType: hf.BF16, Shape: t.Shape}
	}
	return ShapeOf(cfg, func(name string) (hf.TensorInfo, bool) { i, ok := infos[name]; return i, ok })
}
