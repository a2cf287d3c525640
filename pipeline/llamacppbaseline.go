package pipeline

import (
	"fmt"
	"strings"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/llamarecipe"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
)

// ggufRecipe is the llamacpp baseline over a gguf database: the level of every linear layer,
// the token embedding and output types and the linear layers' cost in bits that llama-quantize's
// rules for a file type give.
type ggufRecipe struct {
	fileType    llamarecipe.FileType
	levels      map[string]int
	bits        int64
	tokEmb, out string // ggml names; out "" for a tied output
}

// GGUFRecipeTensors lists the tensors of lm's GGUF file (evopress export's names and
// dimensions, all F32 as llama-quantize's input) with the model's hyper-parameters as
// llama.cpp's rules read them (package llamarecipe).
func GGUFRecipeTensors(lm *Loaded) (llamarecipe.Model, []llamarecipe.Tensor) {
	m, cfg := lm.Model, lm.Model.Config
	rm := llamarecipe.Model{Arch: "llama", Layers: len(m.Blocks), Heads: cfg.NumAttentionHeads, KVHeads: cfg.NumKeyValueHeads}
	rm.Is70B = llamarecipe.Is70B(rm.Arch, rm.Layers, rm.Heads, rm.KVHeads, 0)
	var ts []llamarecipe.Tensor
	add := func(name string, dims ...int) {
		ts = append(ts, llamarecipe.Tensor{Name: name, Dims: dims, Type: ggml.F32})
	}
	add(arch.Embedding().GGUF(), m.Hidden, m.Vocab)
	if rs := cfg.RopeScaling; rs != nil && rs.Type == "llama3" {
		add(arch.GGUFRopeFreqs, cfg.HeadDim/2)
	}
	for i := range m.Blocks {
		add(arch.Norm(i, arch.Attention).GGUF(), m.Hidden)
		add(arch.Norm(i, arch.MLP).GGUF(), m.Hidden)
		for _, k := range arch.LinearKinds() {
			l := m.Blocks[i].Layer(k)
			add(arch.Weight(i, k).GGUF(), l.In, l.Out)
		}
	}
	add(arch.FinalNorm().GGUF(), m.Hidden)
	if !cfg.TieWordEmbeddings {
		add(arch.LMHead().GGUF(), m.Hidden, m.Vocab)
	}
	return rm, ts
}

// llamacppRecipe returns the types llama-quantize's rules for file type ftype give lm's tensors
// (with the database's importance matrix, as llama-quantize --imatrix would have it, and the
// token embedding and output types when given), mapped to the levels of the gguf database d.
func llamacppRecipe(lm *Loaded, d *db.DB, ftype, tokEmb, output string) (*ggufRecipe, error) {
	ft, err := llamarecipe.ParseFileType(ftype)
	if err != nil {
		return nil, invalid("FileType", ftype, "not one of llama-quantize's file types (Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, …)")
	}
	man := d.Manifest()
	opt := llamarecipe.Options{FileType: ft, Imatrix: man.GGUF != nil && man.GGUF.Imatrix.Source != db.ImatrixNone}
	for _, ov := range []struct {
		field, val string
		dst        **ggml.Type
	}{{"Mode.TokenEmbeddingType", tokEmb, &opt.TokenEmbeddingType}, {"Mode.OutputTensorType", output, &opt.OutputTensorType}} {
		if ov.val == "" {
			continue
		}
		t, err := ggml.ParseType(ov.val)
		if err != nil || !t.Codec() {
			return nil, invalid(ov.field, ov.val, "not a ggml type evopress encodes (e.g. q4_k, q6_k, q8_0, f16)")
		}
		*ov.dst = &t
	}
	rm, ts := GGUFRecipeTensors(lm)
	types, err := llamarecipe.Types(rm, ts, opt)
	if err != nil {
		return nil, invalid("FileType", ftype, "%v", err)
	}
	layers := map[string]*db.LayerInfo{}
	for i := range man.Layers {
		layers[man.Layers[i].Name] = &man.Layers[i]
	}
	r := &ggufRecipe{fileType: ft, levels: map[string]int{}}
	k := 0
	for i := range lm.Model.Blocks {
		for _, kind := range arch.LinearKinds() {
			name := arch.Weight(i, kind).GGUF()
			for ts[k].Name != name {
				k++
			}
			t, unit := types[k], arch.LinearUnit(i, kind).String()
			l := layers[unit]
			if l == nil {
				return nil, fmt.Errorf("database %s has no layer %s", d.Dir(), unit)
			}
			found := false
			for _, v := range l.Levels {
				if v.Level == int(t) {
					r.levels[unit], r.bits, found = v.Level, r.bits+8*v.TensorBytes, true
					break
				}
			}
			if !found {
				return nil, invalid("FileType", ftype, "llama-quantize gives %s (%s) the type %s, which database %s does not hold: rebuild it with --types including %s",
					unit, name, t, d.Dir(), strings.ToLower(t.String()))
			}
		}
	}
	for i, t := range ts {
		switch t.Name {
		case arch.Embedding().GGUF():
			r.tokEmb = types[i].String()
		case arch.LMHead().GGUF():
			r.out = types[i].String()
		}
	}
	return r, nil
}

// ggufFixedTensors returns m with its token embedding and output head as a GGUF profile's file
// stores them (fileTensors with the types its record holds); m itself is unchanged, and
// profiles of other kinds return m.
func ggufFixedTensors(m *model.Model, p *profile.Profile) (*model.Model, error) {
	r := p.Search
	if p.Mode != profile.ModeQuant || r == nil || r.TokenEmbeddingType == "" {
		return m, nil
	}
	c, err := fileTensors(m, r.TokenEmbeddingType, r.OutputTensorType)
	if err != nil {
		return nil, fmt.Errorf("profile search.token_embedding_type %q, output_tensor_type %q: %w", r.TokenEmbeddingType, r.OutputTensorType, err)
	}
	return c, nil
}

// fileTensors returns a shallow copy of m whose token embedding and output head are encoded in
// the ggml types tokEmb and output (the output tied to the embedding when output is "")
// without an importance matrix, as evopress export writes them, and decoded: the model as a
// GGUF file of those types holds it outside its searched layers. Blocks are shared with m.
// Rows are encoded independently, so the round trip goes roundTripRows rows at a time through
// the float32 result itself: it holds no other full-size copy (at 1B shapes the embedding is
// 1002 MiB in float32).
func fileTensors(m *model.Model, tokEmb, output string) (*model.Model, error) {
	roundTrip := func(name string, w kernels.Weights) ([]float32, error) {
		t, err := ggml.ParseType(name)
		if err != nil {
			return nil, fmt.Errorf("token embedding or output type %q: %v", name, err)
		}
		out := make([]float32, w.Len())
		w.ToFloat32(out, 0)
		var blocks []byte
		for lo := 0; lo < len(out); lo += roundTripRows * m.Hidden {
			rows := out[lo:min(lo+roundTripRows*m.Hidden, len(out))]
			if blocks, err = ggml.Quantize(t, rows, m.Hidden, nil); err != nil {
				return nil, fmt.Errorf("the token embedding or output in %s: %v", t, err)
			}
			if err := ggml.DequantizeTo(rows, t, blocks); err != nil {
				return nil, fmt.Errorf("the token embedding or output in %s: %v", t, err)
			}
		}
		return out, nil
	}
	c := *m
	var err error
	if c.Embed, err = roundTrip(tokEmb, m.EmbedWeights()); err != nil {
		return nil, err
	}
	if output == "" {
		c.Head = c.Embed
	} else if c.Head, err = roundTrip(output, m.HeadWeights()); err != nil {
		return nil, err
	}
	c.EmbedStored, c.HeadStored = kernels.Weights{}, kernels.Weights{}
	return &c, nil
}

// roundTripRows is how many rows fileTensors encodes and decodes at a time (a variable for the
// tests).
var roundTripRows = 4096
