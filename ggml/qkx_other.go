//go:build !amd64 || noasm

package ggml

// useAVX2 is always false in this build: the portable trial kernels run.
var useAVX2 = false

func (b *qkxBatch) sums(x, w []float32, nmax int32) { b.sumsGo(x, w, nmax) }

func (b *qkxBatch) fitErr(x, w []float32, sumW, sumX float32, useMad bool) uint8 {
	return b.fitErrGo(x, w, sumW, sumX, useMad)
}

func (b *qkxBatch) qxSums(x, w []float32, nmax int32) { b.qxSumsGo(x, w, nmax) }
