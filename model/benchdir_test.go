//go:build unix

package model

import (
	"math/rand/v2"
	"os"
	"runtime"
	"syscall"
	"testing"
)

// BenchmarkForwardDir measures the forward + NLL of 4 sequences × 256 tokens on the model in
// $EVOPRESS_BENCH_MODEL (e.g. a checkpoint of bench/mkcheckpoint), with its weights converted to
// float32 and kept in their stored dtype, reporting tokens per second and per CPU-second (the
// latter robust to other processes on the machine). Skipped when the variable is unset.
func BenchmarkForwardDir(b *testing.B) {
	dir := os.Getenv("EVOPRESS_BENCH_MODEL")
	if dir == "" {
		b.Skip("EVOPRESS_BENCH_MODEL is unset")
	}
	for _, tc := range []struct {
		name string
		keep bool
	}{{"f32", false}, {"kept", true}} {
		b.Run(tc.name, func(b *testing.B) {
			m, _, err := LoadIdentifiedWith(dir, LoadOptions{KeepDType: tc.keep})
			if err != nil {
				b.Fatal(err)
			}
			defer runtime.GC()
			rng := rand.New(rand.NewPCG(1, 2))
			tokens := make([][]int, 4)
			for i := range tokens {
				tokens[i] = make([]int, 256)
				for j := range tokens[i] {
					tokens[i][j] = rng.IntN(m.Vocab)
				}
			}
			b.ResetTimer()
			cpu0 := cpuSeconds()
			for b.Loop() {
				if _, _, err := m.SequenceNLL(tokens); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuSeconds() - cpu0
			b.ReportMetric(float64(4*256*b.N)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(float64(4*256*b.N)/cpu, "tokens/cpu-s")
		})
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
