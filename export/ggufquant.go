package export

import (
	"fmt"
	"strings"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/imatrix"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/llamarecipe"
	"github.com/evopress/evopress/model"
)

// LayerBlocks supplies linear layers already encoded as ggml blocks, such as the levels a GGUF
// level database stores, for a GGUF export (Options.Encoded). For linear layer kind of source
// block (the model's block number, before any block is removed), it returns the blocks' type
// and a function returning their bytes — the layer's out rows of in weights in Hugging Face row
// order, each t.RowBytes(in) bytes, exactly what ggml.Quantize returns for the Hugging Face
// weight; the export applies llama.cpp's q/k row permutation itself — or ok = false to have the
// layer's float32 weights encoded as the other tensors are. data is called only when the layer
// is written, one layer at a time.
type LayerBlocks func(block int, kind arch.LinearKind) (t ggml.Type, data func() ([]byte, error), ok bool)

// ggufSpec is a GGUF export's resolved tensor-type request.
type ggufSpec struct {
	name        string               // Result.Type: the ggml type or llama.cpp file type asked for
	fileType    llamarecipe.FileType // general.file_type
	pure        bool                 // one type everywhere (llama-quantize --pure)
	tokEmb, out *ggml.Type           // --token-embedding-type, --output-tensor-type
	imatrix     *imatrix.Matrix
	imatrixPath string
	encoded     LayerBlocks
	// fileTypeKey, when set, is written as general.file_type instead of fileType (a GGUF
	// database profile's).
	fileTypeKey *llamarecipe.FileType
}

// codecTypes lists the types package ggml encodes, for messages.
func codecTypes() string {
	var names []string
	for _, t := range ggml.Types() {
		if t.Codec() {
			names = append(names, strings.ToLower(t.String()))
		}
	}
	return strings.Join(names, ", ")
}

// parseTensorType reads the type option field (Type, TokenEmbeddingType, OutputTensorType).
func parseTensorType(field, s string) (ggml.Type, error) {
	t, err := ggml.ParseType(s)
	if err != nil || !t.Codec() {
		return 0, optionError(field, "{} %q: want a type evopress encodes (%s)", s, codecTypes())
	}
	return t, nil
}

// parseGGUFSpec reads the GGUF options of o: Type or FileType (default f16), the two tensor
// overrides and the importance matrix.
func parseGGUFSpec(o Options) (*ggufSpec, error) {
	s := &ggufSpec{encoded: o.Encoded}
	switch {
	case o.FileType != "" && o.Type != "":
		return nil, optionError("FileType", "{} %s and the single weight type %s exclude each other: give one", o.FileType, o.Type)
	case o.FileType != "":
		ft, err := llamarecipe.ParseFileType(o.FileType)
		if err != nil {
			return nil, optionError("FileType", "{} %q: not one of llama-quantize's file types (Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, Q4_0, Q8_0, IQ4_XS, F16, …)", o.FileType)
		}
		s.fileType, s.name = ft, ft.String()
	default:
		t := ggml.F16
		if o.Type != "" {
			var err error
			if t, err = parseTensorType("Type", o.Type); err != nil {
				return nil, err
			}
		}
		ft, ok := llamarecipe.FileTypeOf(t)
		if !ok {
			return nil, optionError("Type", "{} %s: llama.cpp has no file type of this base type", t)
		}
		s.fileType, s.pure, s.name = ft, true, strings.ToLower(t.String())
	}
	for _, ov := range []struct {
		field, val string
		dst        **ggml.Type
	}{{"TokenEmbeddingType", o.TokenEmbeddingType, &s.tokEmb}, {"OutputTensorType", o.OutputTensorType, &s.out}} {
		if ov.val == "" {
			continue
		}
		t, err := parseTensorType(ov.field, ov.val)
		if err != nil {
			return nil, err
		}
		*ov.dst = &t
	}
	if o.Imatrix != "" {
		m, _, err := imatrix.Read(o.Imatrix)
		if err != nil {
			return nil, optionError("Imatrix", "{} %s: %v", o.Imatrix, err)
		}
		s.imatrix, s.imatrixPath = m, o.Imatrix
	}
	return s, nil
}

// checkModel checks the importance matrix against the model it will quantize.
func (s *ggufSpec) checkModel(m *model.Model) error {
	if s == nil || s.imatrix == nil {
		return nil
	}
	if err := s.imatrix.Validate(m); err != nil {
		return optionError("Imatrix", "{} %s does not fit the model: %v", s.imatrixPath, err)
	}
	return nil
}

// addImatrixKeys adds the metadata llama-quantize records about its importance matrix.
func (s *ggufSpec) addImatrixKeys(f *ggufFile) {
	if s.imatrix == nil {
		return
	}
	f.addString("quantize.imatrix.file", s.imatrixPath)
	if len(s.imatrix.Datasets) > 0 {
		f.addString("quantize.imatrix.dataset", s.imatrix.Datasets[0])
	}
	f.addUint32("quantize.imatrix.entries_count", len(s.imatrix.Entries))
	if s.imatrix.ChunkCount > 0 {
		f.addUint32("quantize.imatrix.chunks_count", s.imatrix.ChunkCount)
	}
}

// tensorRef says where a tensor of the file comes from: a linear layer of a source block, or
// (block < 0) a tensor outside the linear layers.
type tensorRef struct {
	block  int
	kind   arch.LinearKind
	zeroed bool
}

// assign gives every tensor of f its type — llama-quantize's for the file type (package
// llamarecipe; one type everywhere when pure), the overrides, the stored blocks of o.encoded —
// its importance vector, and for supplied layers their bytes; it reports how many tensors have
// each type, and warns about weight matrices the importance matrix has no entry for.
func (s *ggufSpec) assign(f *ggufFile, refs []tensorRef, rm llamarecipe.Model, permute func(tensorRef) (rows, heads int), warn func(string, ...any)) (map[string]int, error) {
	rts := make([]llamarecipe.Tensor, len(f.tensors))
	for i, t := range f.tensors {
		rts[i] = llamarecipe.Tensor{Name: t.name, Type: ggml.F32, Dims: make([]int, len(t.dims))}
		for j, d := range t.dims {
			rts[i].Dims[j] = int(d)
		}
	}
	types, err := llamarecipe.Types(rm, rts, llamarecipe.Options{FileType: s.fileType, Pure: s.pure,
		TokenEmbeddingType: s.tokEmb, OutputTensorType: s.out, Imatrix: s.imatrix != nil})
	if err != nil {
		return nil, optionError(s.field(), "{} %s: %v", s.name, err)
	}
	counts := map[string]int{}
	missing := 0
	for i, t := range f.tensors {
		ref, cols := refs[i], int(t.dims[0])
		t.typ = types[i]
		if ref.block >= 0 && !ref.zeroed && s.encoded != nil {
			if typ, data, ok := s.encoded(ref.block, ref.kind); ok {
				if data == nil {
					return nil, fmt.Errorf("export: the stored blocks of %s: no data", arch.Weight(ref.block, ref.kind).HF())
				}
				if _, err := typ.RowBytes(cols); err != nil {
					return nil, fmt.Errorf("export: the stored blocks of %s: %v", arch.Weight(ref.block, ref.kind).HF(), err)
				}
				t.typ, t.weights = typ, kernels.Weights{}
				rows, heads := permute(ref)
				size, _ := t.size()
				t.encoded = func() ([]byte, error) {
					b, err := data()
					if err != nil || heads == 0 || int64(len(b)) != size {
						return b, err // the writer reports a wrong size
					}
					return permuteRowBytes(b, rows, heads)
				}
				counts[t.typ.String()]++
				continue
			}
		}
		if !t.typ.Codec() {
			return nil, optionError(s.field(), "{} %s gives %s the type %s, which evopress does not encode", s.name, t.name, t.typ)
		}
		if _, err := t.typ.RowBytes(cols); err != nil {
			field := s.field()
			switch {
			case s.tokEmb != nil && t.name == arch.Embedding().GGUF():
				field = "TokenEmbeddingType"
			case s.out != nil && t.name == arch.LMHead().GGUF():
				field = "OutputTensorType"
			}
			return nil, optionError(field, "{} %s: %s has rows of %d weights: %v", t.typ, t.name, cols, err)
		}
		if llamarecipe.NeedsImatrix(t.name, t.typ, s.fileType) && s.imatrix == nil {
			return nil, optionError("Imatrix", "%s gives %s the type %s, which llama-quantize writes only with an importance matrix ({})", s.name, t.name, t.typ)
		}
		counts[t.typ.String()]++
		if s.imatrix == nil || !t.typ.Quantized() {
			continue
		}
		var e *imatrix.Entry
		if ref.block >= 0 {
			e = s.imatrix.Linear(ref.block, ref.kind)
			if e == nil {
				missing++
			}
		} else {
			e = s.imatrix.Entries[t.name]
		}
		if e != nil && len(e.Counts) == 1 && e.Cols() == cols { // as llama-quantize, ignore a token_embd entry that does not fit
			t.imatrix = e.Mean()
		}
	}
	if missing > 0 {
		warn("importance matrix %s has no entry for %d of the quantized linear layers; they are quantized without one", s.imatrixPath, missing)
	}
	return counts, nil
}

// field is the option the type request came from.
func (s *ggufSpec) field() string {
	if s.pure {
		return "Type"
	}
	return "FileType"
}

// permuteRowBytes applies PermuteQK's row permutation to rows of encoded bytes (each row's
// blocks are independent, so permuting encoded rows equals encoding permuted rows).
func permuteRowBytes(b []byte, rows, heads int) ([]byte, error) {
	if rows <= 0 || len(b)%rows != 0 || heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 {
		return nil, fmt.Errorf("%d bytes are not %d rows of %d heads", len(b), rows, heads)
	}
	rb := len(b) / rows
	out := make([]byte, len(b))
	hd := rows / heads
	half := hd / 2
	for h := 0; h < heads; h++ {
		for s := 0; s < 2; s++ {
			for i := 0; i < half; i++ {
				src := (h*hd + s*half + i) * rb
				dst := (h*hd + 2*i + s) * rb
				copy(out[dst:dst+rb], b[src:src+rb])
			}
		}
	}
	return out, nil
}
