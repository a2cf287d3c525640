package ggml

import (
	"fmt"
	"strings"
)

// Type is a ggml tensor type: the value of ggml.h's enum ggml_type, which is also the type id
// GGUF files store for each tensor.
type Type uint32

// The ggml tensor types (ggml.h, enum ggml_type). Ids 4, 5 and 31–33, 36–38 are types ggml has
// removed; they are not valid.
const (
	F32     Type = 0
	F16     Type = 1
	Q4_0    Type = 2
	Q4_1    Type = 3
	Q5_0    Type = 6
	Q5_1    Type = 7
	Q8_0    Type = 8
	Q8_1    Type = 9
	Q2_K    Type = 10
	Q3_K    Type = 11
	Q4_K    Type = 12
	Q5_K    Type = 13
	Q6_K    Type = 14
	Q8_K    Type = 15
	IQ2_XXS Type = 16
	IQ2_XS  Type = 17
	IQ3_XXS Type = 18
	IQ1_S   Type = 19
	IQ4_NL  Type = 20
	IQ3_S   Type = 21
	IQ2_S   Type = 22
	IQ4_XS  Type = 23
	I8      Type = 24
	I16     Type = 25
	I32     Type = 26
	I64     Type = 27
	F64     Type = 28
	IQ1_M   Type = 29
	BF16    Type = 30
	TQ1_0   Type = 34
	TQ2_0   Type = 35
	MXFP4   Type = 39
	NVFP4   Type = 40
	Q1_0    Type = 41
	Q2_0    Type = 42
)

// QK_K is the number of weights in one super-block of the K-quant and IQ types.
const QK_K = 256

// traits is one row of ggml's type_traits table (ggml.c): name, elements per block, bytes per
// block, and whether this package encodes and decodes the type.
type traits struct {
	name  string
	block int
	bytes int
	codec bool
}

var table = map[Type]traits{
	F32:     {"f32", 1, 4, true},
	F16:     {"f16", 1, 2, true},
	BF16:    {"bf16", 1, 2, true},
	Q4_0:    {"q4_0", 32, 18, true},
	Q4_1:    {"q4_1", 32, 20, true},
	Q5_0:    {"q5_0", 32, 22, true},
	Q5_1:    {"q5_1", 32, 24, true},
	Q8_0:    {"q8_0", 32, 34, true},
	Q8_1:    {"q8_1", 32, 36, false},
	Q2_K:    {"q2_K", QK_K, 84, true},
	Q3_K:    {"q3_K", QK_K, 110, true},
	Q4_K:    {"q4_K", QK_K, 144, true},
	Q5_K:    {"q5_K", QK_K, 176, true},
	Q6_K:    {"q6_K", QK_K, 210, true},
	Q8_K:    {"q8_K", QK_K, 292, false},
	IQ2_XXS: {"iq2_xxs", QK_K, 66, false},
	IQ2_XS:  {"iq2_xs", QK_K, 74, false},
	IQ3_XXS: {"iq3_xxs", QK_K, 98, false},
	IQ1_S:   {"iq1_s", QK_K, 50, false},
	IQ4_NL:  {"iq4_nl", 32, 18, true},
	IQ3_S:   {"iq3_s", QK_K, 110, false},
	IQ2_S:   {"iq2_s", QK_K, 82, false},
	IQ4_XS:  {"iq4_xs", QK_K, 136, true},
	I8:      {"i8", 1, 1, false},
	I16:     {"i16", 1, 2, false},
	I32:     {"i32", 1, 4, false},
	I64:     {"i64", 1, 8, false},
	F64:     {"f64", 1, 8, false},
	IQ1_M:   {"iq1_m", QK_K, 56, false},
	TQ1_0:   {"tq1_0", QK_K, 54, false},
	TQ2_0:   {"tq2_0", QK_K, 66, false},
	MXFP4:   {"mxfp4", 32, 17, false},
	NVFP4:   {"nvfp4", 64, 36, false},
	Q1_0:    {"q1_0", 128, 18, false},
	Q2_0:    {"q2_0", 64, 18, false},
}

// Valid reports whether t is a type ggml defines (and a GGUF file may hold).
func (t Type) Valid() bool {
	_, ok := table[t]
	return ok
}

// String returns ggml's name of the type ("q4_K", "iq4_xs", "f16"), or "type(N)" for an
// unknown id.
func (t Type) String() string {
	if tr, ok := table[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize is the number of weights one block encodes (1 for the float and integer types; 0
// for an unknown type). A row's length must be a multiple of it.
func (t Type) BlockSize() int { return table[t].block }

// BlockBytes is the size in bytes of one block (0 for an unknown type).
func (t Type) BlockBytes() int { return table[t].bytes }

// BitsPerWeight is the storage cost of one weight, block scales included: 8·BlockBytes/BlockSize
// (4.5 for Q4_K, 8.5 for Q8_0; 0 for an unknown type).
func (t Type) BitsPerWeight() float64 {
	tr := table[t]
	if tr.block == 0 {
		return 0
	}
	return 8 * float64(tr.bytes) / float64(tr.block)
}

// Quantized reports whether t is a block-quantized type (ggml's is_quantized: every type but
// the float and integer ones).
func (t Type) Quantized() bool { return table[t].block > 1 }

// Codec reports whether this package encodes and decodes t: F32, F16, BF16, Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0, Q2_K … Q6_K, IQ4_NL and IQ4_XS.
func (t Type) Codec() bool { return table[t].codec }

// RowBytes is the size in bytes of a row of cols weights, ggml_row_size. It fails when t is
// unknown or cols is not a positive multiple of the block size.
func (t Type) RowBytes(cols int) (int, error) {
	tr, ok := table[t]
	if !ok {
		return 0, fmt.Errorf("ggml: unknown tensor type %d", uint32(t))
	}
	if cols <= 0 || cols%tr.block != 0 {
		return 0, fmt.Errorf("ggml: a %s row of %d weights: the row length must be a positive multiple of %d", t, cols, tr.block)
	}
	return cols / tr.block * tr.bytes, nil
}

// Types lists every valid type in id order.
func Types() []Type {
	var ts []Type
	for t := Type(0); t < 64; t++ {
		if t.Valid() {
			ts = append(ts, t)
		}
	}
	return ts
}

// ParseType returns the type named s, case-insensitively: ggml's names ("q4_K", "Q4_K",
// "q4_k", "iq4_xs", "f16").
func ParseType(s string) (Type, error) {
	for t, tr := range table {
		if strings.EqualFold(tr.name, s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("ggml: unknown tensor type %q", s)
}

// Fallback is the type llama-quantize writes for a tensor with rows of cols weights when t was
// asked for (llama.cpp's tensor_type_fallback in src/llama-quant.cpp): t itself when cols is a
// multiple of t's block size; otherwise Q2_K, Q3_K, Q2_0, TQ1_0 and TQ2_0 fall back to Q4_0, Q4_K
// to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0, IQ4_XS and the IQ1–IQ3 types to IQ4_NL, and a 32-element
// block type stays itself; when that type does not fit cols either, F16. Float and integer types
// (not quantized) are returned unchanged. It fails, as llama-quantize does, for a type with a
// block larger than 32 and no fallback (Q1_0, NVFP4, Q8_K), and for an unknown type.
func Fallback(t Type, cols int) (Type, error) {
	tr, ok := table[t]
	if !ok {
		return 0, fmt.Errorf("ggml: unknown tensor type %d", uint32(t))
	}
	if !t.Quantized() || cols%tr.block == 0 {
		return t, nil
	}
	var r Type
	switch t {
	case IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_XS:
		r = IQ4_NL
	case Q2_0, Q2_K, Q3_K, TQ1_0, TQ2_0:
		r = Q4_0
	case Q4_K:
		r = Q5_0
	case Q5_K:
		r = Q5_1
	case Q6_K:
		r = Q8_0
	default:
		if tr.block > 32 {
			return 0, fmt.Errorf("ggml: rows of %d weights do not fit %s's %d-weight blocks and llama.cpp defines no fallback type for it", cols, t, tr.block)
		}
		r = t
	}
	if cols%r.BlockSize() != 0 {
		r = F16
	}
	return r, nil
}
