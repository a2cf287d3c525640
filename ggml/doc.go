// Package ggml encodes and decodes the tensor formats of ggml, the library under llama.cpp and
// ollama: the block-quantized types a GGUF file stores, byte for byte as ggml writes them.
//
// A quantized type splits each row of a weight matrix into blocks of BlockSize weights and
// stores each block in BlockBytes bytes: float16 scales (and mins) plus small integer codes.
//
//   - Q4_0, Q5_0, Q8_0: 32 weights, one float16 scale d, x ≈ d·q (4.5, 5.5, 8.5 bits per weight).
//   - Q4_1, Q5_1: 32 weights, a scale and a min, x ≈ d·q + m (5, 6 bits per weight).
//   - Q2_K … Q6_K, the K-quants: 256-weight super-blocks of 16- or 32-weight sub-blocks whose
//     own scales (and mins) are quantized to 4, 6 or 8 bits against one or two float16
//     super-block scales (2.625, 3.4375, 4.5, 5.5, 6.5625 bits per weight).
//   - IQ4_NL (32 weights, 4.5 bits) and IQ4_XS (256 weights, 4.25 bits): 4-bit indices into a
//     fixed non-linear table of 16 levels, with a float16 scale (IQ4_NL) or 6-bit sub-block
//     scales under a float16 one (IQ4_XS).
//   - F32, F16 and BF16, one weight per "block".
//
// Type is ggml.h's enum ggml_type (the ids GGUF files use) with ggml's names, block sizes and
// block bytes for every type ggml defines; Quantize, QuantizeTo, Dequantize and DequantizeTo
// handle the types whose Codec reports true. The grid-based IQ1–IQ3 types, Q8_1, Q8_K, TQ*,
// MXFP4 and NVFP4 are known by name and size only.
//
// # Byte identity
//
// Quantize returns exactly the bytes ggml_quantize_chunk — the function llama-quantize calls —
// writes for the same float32 rows and importance vector, for every finite input (zeros,
// constants, outliers, tiny and huge values). Without an importance vector that is ggml's
// reference row quantizer (quantize_row_*_ref) for every type but IQ4_NL, whose
// quantize_iq4_nl searches 15 scales where quantize_row_iq4_nl_ref searches none; with one it
// is the importance-weighted quantizer (quantize_row_*_impl, quantize_row_iq4_nl_impl) that
// llama-quantize --imatrix uses; Q8_0 ignores the vector, as ggml does. Rows with NaN or ±Inf
// (which llama-quantize refuses to write) are encoded without panicking, but not promised
// ggml's bytes. Dequantize is ggml's dequantize_row_*, bit for bit; FP32ToFP16 is
// GGML_FP32_TO_FP16 (round to nearest even).
//
// The arithmetic follows ggml-quants.c in float32 operation by operation, rounding where C
// rounds: every product that is then added is converted with float32(), which forbids the Go
// compiler to fuse it into a multiply-add (ggml's reference build has none), so the result does
// not depend on the machine, on GOAMD64 or on GOMAXPROCS (rows are encoded in parallel). Where
// ggml tries candidate scales one after the other (make_qkx2_quants, make_qkx3_quants,
// make_qx_quants), eight candidates are evaluated together — each in its own lane of an AVX2
// register on amd64 (qkx_amd64.s, plain float operations only), in a portable loop elsewhere
// or with -tags noasm — and compared in ggml's order; IQ4's nearest-level search is a table
// lookup proven equal to ggml's bisection. That makes the K-quants about twice as fast as
// llama-quantize.
//
// The tests check all this against fixtures written by ggml itself (testdata/gen: every type,
// with and without importance vectors, edge-case rows, and ggml's decoding of random blocks),
// against straightforward transcriptions of the reordered ggml functions, and, when llama.cpp's
// tools can be built, against llama-quantize --pure on llama-pd-11m with and without an
// importance matrix from llama-imatrix.
//
// Fallback reproduces llama.cpp's choice of a type for a tensor whose rows do not fit the
// requested type's blocks (tensor_type_fallback): llama-pd-11m's down_proj, 704 columns, gets
// Q5_0 when Q4_K is asked for.
package ggml
