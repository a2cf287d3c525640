package ggml

import (
	"math/rand/v2"
	"testing"
)

// benchRows are 64 rows of 4096 Gaussian weights (1 MiB of float32) and an importance vector.
func benchRows() ([]float32, []float32, int) {
	const rows, cols = 64, 4096
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 0.02)
	}
	im := make([]float32, cols)
	for i := range im {
		im[i] = float32(rng.ExpFloat64())
	}
	return x, im, cols
}

// reportCPU adds the speed per CPU second (MB of float32 per second of user+system CPU time
// over all threads), which a busy machine disturbs much less than the wall-clock MB/s.
func reportCPU(b *testing.B, c0 float64, bytes int) {
	if c := cpuSeconds() - c0; c > 0 {
		b.ReportMetric(float64(bytes)*float64(b.N)/c/1e6, "MB/cpu-s")
	}
}

// BenchmarkQuantize reports each type's encoding speed in MB/s of float32 input, on GOMAXPROCS
// goroutines (-cpu 1,2 to compare), without and with an importance vector.
func BenchmarkQuantize(b *testing.B) {
	x, im, cols := benchRows()
	for _, t := range Types() {
		if !t.Codec() || !t.Quantized() {
			continue
		}
		for _, withIm := range []bool{false, true} {
			name := t.String()
			var qw []float32
			if withIm {
				name += "+imatrix"
				qw = im
			}
			b.Run(name, func(b *testing.B) {
				dst := make([]byte, len(x)/t.BlockSize()*t.BlockBytes())
				b.SetBytes(int64(4 * len(x)))
				c0 := cpuSeconds()
				for b.Loop() {
					if err := QuantizeTo(dst, t, x, cols, qw); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, c0, 4*len(x))
			})
		}
	}
}

// BenchmarkDequantize reports each type's decoding speed in MB/s of float32 output.
func BenchmarkDequantize(b *testing.B) {
	x, _, cols := benchRows()
	for _, t := range Types() {
		if !t.Codec() || !t.Quantized() {
			continue
		}
		b.Run(t.String(), func(b *testing.B) {
			q, err := Quantize(t, x, cols, nil)
			if err != nil {
				b.Fatal(err)
			}
			y := make([]float32, len(x))
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				if err := DequantizeTo(y, t, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
