package model

import (
	"runtime"

	"github.com/evopress/evopress/hf"
)

// ActivationBytes is the memory one forward of B sequences of T tokens holds for a model of the
// configuration's sizes: Embedding's residual stream [B·T × Hidden] and Forward's workspace (the
// normed input, q, k, v, the attention output, gate and up per token row; one T×T score buffer
// per GOMAXPROCS attention worker; the rotary tables), all float32. Memory estimates count it
// (internal/memcheck); it follows workspace, which a test checks.
func ActivationBytes(c *hf.Config, B, T int) int64 {
	rows := int64(B) * int64(T)
	nq, nkv := int64(c.NumAttentionHeads*c.HeadDim), int64(c.NumKeyValueHeads*c.HeadDim)
	h, inter := int64(c.HiddenSize), int64(c.IntermediateSize)
	perRow := h + h + 2*nq + 2*nkv + 2*inter // residual stream, then xn, q, att, k, v, gate, up
	tt := int64(T) * int64(T)
	return 4 * (rows*perRow + int64(runtime.GOMAXPROCS(0))*tt + int64(T)*int64(c.HeadDim))
}

// HeadBytes is the memory the output head holds while it computes logits (ForEachLogits,
// ForLogitsAt): the normed rows and the logits of HeadChunk rows, float32.
func HeadBytes(c *hf.Config) int64 {
	return 4 * HeadChunk * int64(c.HiddenSize+c.VocabSize)
}

// bytes is the memory the workspace's buffers hold.
func (ws *workspace) bytes() int64 {
	n := cap(ws.xn) + cap(ws.q) + cap(ws.k) + cap(ws.v) + cap(ws.att) + cap(ws.gate) + cap(ws.up) + cap(ws.cos) + cap(ws.sin)
	for _, s := range ws.scores {
		n += cap(s)
	}
	return 4 * int64(n)
}
