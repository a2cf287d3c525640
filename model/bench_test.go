package model

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkForward measures the forward + NLL throughput on llama-pd-11m, 32 sequences × 256 tokens
// (the speed target's setting), reporting input tokens per second.
func BenchmarkForward(b *testing.B) {
	m := embedded(b)
	rng := rand.New(rand.NewPCG(1, 2))
	tokens := make([][]int, 32)
	for i := range tokens {
		tokens[i] = make([]int, 256)
		for j := range tokens[i] {
			tokens[i][j] = rng.IntN(m.Vocab)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := m.SequenceNLL(tokens); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(32*256*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
