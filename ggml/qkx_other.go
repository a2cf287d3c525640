//go:build !amd64 || noasm

package ggml

// useAVX2 is always false in this build: the portable trial kernels run.
var useAVX2 = false

func (b *qkxBatch) sums(x, w []float32, nmax int32) { b.sumsGo(x, w, nmax) }

func (b *qkxBatch) fitErr(x, w []float32, sumW, sumX float32, useMad bool) uint8 {
	return b.fitErrGo(x, w, sumW, sumX, useMad)
}

func (b *qkxBatch) qxSums(x, w []float32, nmax int32) { b.qxSumsGo(x, w, nmax) }

// dequantQ4KAVX2 and dequantQ6KAVX2 are never called in this build (useAVX2 is false).
func dequantQ4KAVX2(y *float32, q *byte, dm *[16]float32) {
	panic("ggml: AVX2 decoder in a portable build")
}
func dequantQ6KAVX2(y *float32, b *byte, ds *[16]float32) {
	panic("ggml: AVX2 decoder in a portable build")
}

func dequantQ5KAVX2(y *float32, b *byte, dm *[16]float32) {
	panic("ggml: AVX2 decoder in a portable build")
}

func dequantQ2KAVX2(y *float32, b *byte, dm *[32]float32) {
	panic("ggml: AVX2 decoder in a portable build")
}

func dequantQ3KAVX2(y *float32, b *byte, dl *[16]float32) {
	panic("ggml: AVX2 decoder in a portable build")
}

func dequantQ8_0AVX2(y *float32, b *byte, d float32) { panic("ggml: AVX2 decoder in a portable build") }
