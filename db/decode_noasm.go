//go:build !amd64 || noasm

package db

// useAVX512 is always false in this build: the portable decoders run.
var useAVX512 = false

// The AVX-512 decoders are never called in this build.

func sparseExpandF32(dst *float32, n16 int, mask, vals *byte) int {
	panic("db: AVX-512 decoder in a portable build")
}

func sparseExpandBF16(dst *float32, n16 int, mask, vals *byte) int {
	panic("db: AVX-512 decoder in a portable build")
}

func quant4AVX512(dst *float32, n16 int, codes *byte, sg, zg float32) {
	panic("db: AVX-512 decoder in a portable build")
}

func quantNAVX512(dst *float32, n8 int, codes *byte, shifts *[8]uint64, w int, sg, zg float32) {
	panic("db: AVX-512 decoder in a portable build")
}

func quantGIdxAVX512(dst *float32, n8 int, codes *byte, shifts *[8]uint64, w int, gidx *int32, sgs, zgs *float32) {
	panic("db: AVX-512 decoder in a portable build")
}
