package llamarecipe

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/evopress/evopress/ggml"
)

// FileType is llama.cpp's enum llama_ftype (include/llama.h): the quantization "mix" a file was
// made with, stored as general.file_type. It names a base tensor type (BaseType) and, for the
// K-quant and IQ mixes, the rules that move some tensors to other types (Types).
type FileType uint32

// The file types (llama_ftype). Ids 4–6 and 33–35 are removed ones.
const (
	AllF32        FileType = 0
	MostlyF16     FileType = 1
	MostlyQ4_0    FileType = 2
	MostlyQ4_1    FileType = 3
	MostlyQ8_0    FileType = 7
	MostlyQ5_0    FileType = 8
	MostlyQ5_1    FileType = 9
	MostlyQ2_K    FileType = 10
	MostlyQ3_K_S  FileType = 11
	MostlyQ3_K_M  FileType = 12
	MostlyQ3_K_L  FileType = 13
	MostlyQ4_K_S  FileType = 14
	MostlyQ4_K_M  FileType = 15
	MostlyQ5_K_S  FileType = 16
	MostlyQ5_K_M  FileType = 17
	MostlyQ6_K    FileType = 18
	MostlyIQ2_XXS FileType = 19
	MostlyIQ2_XS  FileType = 20
	MostlyQ2_K_S  FileType = 21
	MostlyIQ3_XS  FileType = 22
	MostlyIQ3_XXS FileType = 23
	MostlyIQ1_S   FileType = 24
	MostlyIQ4_NL  FileType = 25
	MostlyIQ3_S   FileType = 26
	MostlyIQ3_M   FileType = 27
	MostlyIQ2_S   FileType = 28
	MostlyIQ2_M   FileType = 29
	MostlyIQ4_XS  FileType = 30
	MostlyIQ1_M   FileType = 31
	MostlyBF16    FileType = 32
	MostlyTQ1_0   FileType = 36
	MostlyTQ2_0   FileType = 37
	MostlyMXFP4   FileType = 38 // MXFP4_MOE
	MostlyNVFP4   FileType = 39
	MostlyQ1_0    FileType = 40
	MostlyQ2_0    FileType = 41
)

// fileTypes lists the file types with llama-quantize's names (tools/quantize/quantize.cpp
// QUANT_OPTIONS) and base tensor types (llama_ftype_get_default_type), in the order FileTypeOf
// prefers them: for Q3_K, Q4_K and Q5_K the _M mix, which llama-quantize's aliases "Q3_K",
// "Q4_K" and "Q5_K" name. NVFP4 has no llama-quantize name and no base type.
var fileTypes = []struct {
	ft   FileType
	name string
	base ggml.Type
}{
	{AllF32, "F32", ggml.F32},
	{MostlyF16, "F16", ggml.F16},
	{MostlyBF16, "BF16", ggml.BF16},
	{MostlyQ4_0, "Q4_0", ggml.Q4_0},
	{MostlyQ4_1, "Q4_1", ggml.Q4_1},
	{MostlyQ5_0, "Q5_0", ggml.Q5_0},
	{MostlyQ5_1, "Q5_1", ggml.Q5_1},
	{MostlyQ8_0, "Q8_0", ggml.Q8_0},
	{MostlyQ2_K, "Q2_K", ggml.Q2_K},
	{MostlyQ2_K_S, "Q2_K_S", ggml.Q2_K},
	{MostlyQ3_K_M, "Q3_K_M", ggml.Q3_K},
	{MostlyQ3_K_S, "Q3_K_S", ggml.Q3_K},
	{MostlyQ3_K_L, "Q3_K_L", ggml.Q3_K},
	{MostlyQ4_K_M, "Q4_K_M", ggml.Q4_K},
	{MostlyQ4_K_S, "Q4_K_S", ggml.Q4_K},
	{MostlyQ5_K_M, "Q5_K_M", ggml.Q5_K},
	{MostlyQ5_K_S, "Q5_K_S", ggml.Q5_K},
	{MostlyQ6_K, "Q6_K", ggml.Q6_K},
	{MostlyIQ4_NL, "IQ4_NL", ggml.IQ4_NL},
	{MostlyIQ4_XS, "IQ4_XS", ggml.IQ4_XS},
	{MostlyIQ3_S, "IQ3_S", ggml.IQ3_S},
	{MostlyIQ3_XS, "IQ3_XS", ggml.IQ3_S},
	{MostlyIQ3_M, "IQ3_M", ggml.IQ3_S},
	{MostlyIQ3_XXS, "IQ3_XXS", ggml.IQ3_XXS},
	{MostlyIQ2_XXS, "IQ2_XXS", ggml.IQ2_XXS},
	{MostlyIQ2_XS, "IQ2_XS", ggml.IQ2_XS},
	{MostlyIQ2_S, "IQ2_S", ggml.IQ2_XS},
	{MostlyIQ2_M, "IQ2_M", ggml.IQ2_S},
	{MostlyIQ1_S, "IQ1_S", ggml.IQ1_S},
	{MostlyIQ1_M, "IQ1_M", ggml.IQ1_M},
	{MostlyTQ1_0, "TQ1_0", ggml.TQ1_0},
	{MostlyTQ2_0, "TQ2_0", ggml.TQ2_0},
	{MostlyMXFP4, "MXFP4_MOE", ggml.MXFP4},
	{MostlyQ1_0, "Q1_0", ggml.Q1_0},
	{MostlyQ2_0, "Q2_0", ggml.Q2_0},
}

// aliases are llama-quantize's other names for file types.
var aliases = map[string]FileType{"Q3_K": MostlyQ3_K_M, "Q4_K": MostlyQ4_K_M, "Q5_K": MostlyQ5_K_M}

// String returns llama-quantize's name of the file type ("Q4_K_M", "F16"), or "ftype(N)".
func (f FileType) String() string {
	for _, e := range fileTypes {
		if e.ft == f {
			return e.name
		}
	}
	if f == MostlyNVFP4 {
		return "NVFP4"
	}
	return fmt.Sprintf("ftype(%d)", uint32(f))
}

// BaseType is the tensor type the file type quantizes weights to before its rules
// (llama_ftype_get_default_type); ok is false for a file type llama-quantize cannot write.
func (f FileType) BaseType() (t ggml.Type, ok bool) {
	for _, e := range fileTypes {
		if e.ft == f {
			return e.base, true
		}
	}
	return 0, false
}

// ParseFileType reads a file type as llama-quantize's command line does: one of its names,
// case-insensitively ("Q4_K_M", "q3_k_s", "IQ4_XS", "F16", and the aliases "Q3_K", "Q4_K",
// "Q5_K" for the _M mixes), or the number of one.
func ParseFileType(s string) (FileType, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	for _, e := range fileTypes {
		if e.name == u {
			return e.ft, nil
		}
	}
	if f, ok := aliases[u]; ok {
		return f, nil
	}
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		if _, ok := FileType(n).BaseType(); ok {
			return FileType(n), nil
		}
	}
	return 0, fmt.Errorf("llamarecipe: unknown file type %q (want one of llama-quantize's: Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, Q4_0, Q8_0, IQ4_XS, F16, …)", s)
}

// FileTypeOf is the file type whose base type is t, the one llama-quantize is given when asked
// for t by name ("llama-quantize --pure IN OUT Q4_K" writes MostlyQ4_K_M): what general.file_type
// says of a file whose weights are all t. ok is false for a type no file type has as its base.
func FileTypeOf(t ggml.Type) (f FileType, ok bool) {
	for _, e := range fileTypes {
		if e.base == t {
			return e.ft, true
		}
	}
	return 0, false
}
