//go:build amd64 && !noasm

package db

import "github.com/evopress/evopress/internal/kernels"

// useAVX512 selects the AVX-512 decoders of decode_amd64.s for sparse levels of float32 and
// bfloat16 values and 4-bit quant levels where the kernels use AVX-512 (kernels.AsmAVX512: the
// CPU has it and EVOPRESS_KERNELS allows it); tests flip it to exercise the portable loops too.
var useAVX512 = kernels.AsmAVX512()

// sparseExpandF32 writes n16 chunks of 16 weights of a sparse level with float32 values from
// their mask bytes (2 per chunk) and the values from vals on, and returns how many it took.
//
//go:noescape
func sparseExpandF32(dst *float32, n16 int, mask, vals *byte) int

// sparseExpandBF16 is sparseExpandF32 for bfloat16 values (32 bytes readable from each chunk's
// first value).
//
//go:noescape
func sparseExpandBF16(dst *float32, n16 int, mask, vals *byte) int

// quant4AVX512 writes sg·(float32(code) − zg) for n16 chunks of sixteen 4-bit codes.
//
//go:noescape
func quant4AVX512(dst *float32, n16 int, codes *byte, sg, zg float32)

// quantNAVX512 writes sg·(float32(code) − zg) for n8 chunks of eight w-bit codes (w bytes each,
// eight readable from each chunk's first); shifts holds 0, w, …, 7w.
//
//go:noescape
func quantNAVX512(dst *float32, n8 int, codes *byte, shifts *[8]uint64, w int, sg, zg float32)

// quantGIdxAVX512 is quantNAVX512 for a row with g_idx: weight j of the n8 chunks takes scale
// sgs[gidx[j]] and zero point zgs[gidx[j]].
//
//go:noescape
func quantGIdxAVX512(dst *float32, n8 int, codes *byte, shifts *[8]uint64, w int, gidx *int32, sgs, zgs *float32)
