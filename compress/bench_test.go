package compress

import (
	"fmt"
	"testing"
)

var benchShapes = []struct{ rows, cols int }{{704, 256}, {256, 704}}

func BenchmarkSparseGPT5Levels(b *testing.B) {
	levels := []float64{0.3, 0.4, 0.5, 0.6, 0.7}
	for _, sh := range benchShapes {
		b.Run(fmt.Sprintf("%dx%d", sh.rows, sh.cols), func(b *testing.B) {
			l := newTestLayer(77, sh.rows, sh.cols, 2*sh.cols)
			b.ResetTimer()
			for b.Loop() {
				if _, err := SparseGPT(l.W, l.rows, l.cols, l.H, levels, DefaultSparseGPTOptions()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGPTQ(b *testing.B) {
	for _, sh := range benchShapes {
		for _, bits := range []int{3, 4} {
			b.Run(fmt.Sprintf("%dx%d/%dbit", sh.rows, sh.cols, bits), func(b *testing.B) {
				l := newTestLayer(78, sh.rows, sh.cols, 2*sh.cols)
				b.ResetTimer()
				for b.Loop() {
					if _, err := GPTQ(l.W, l.rows, l.cols, l.H, DefaultGPTQOptions(bits)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkHessianAdd(b *testing.B) {
	for _, cols := range []int{256, 704} {
		b.Run(fmt.Sprintf("2048x%d", cols), func(b *testing.B) {
			X := makeX(newRNG(79), 2048, cols)
			h, _ := NewHessian(cols)
			b.ResetTimer()
			for b.Loop() {
				if err := h.Add(X, 2048); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGPTQLevels1B times a level database's work on one layer at Llama-3.2-1B's shapes
// (the Hessian of 2048 correlated inputs, its factor, GPTQ at 2–6 bits with groups of 128):
// down_proj's 2048×8192 and gate_proj's 8192×2048. Seconds per iteration.
func BenchmarkGPTQLevels1B(b *testing.B) {
	for _, sh := range []struct{ rows, cols int }{{2048, 8192}, {8192, 2048}} {
		b.Run(fmt.Sprintf("%dx%d", sh.rows, sh.cols), func(b *testing.B) {
			rng := newRNG(80)
			X := makeX(rng, 2048, sh.cols)
			W := makeW(rng, sh.rows, sh.cols)
			h, err := NewHessian(sh.cols)
			if err != nil {
				b.Fatal(err)
			}
			if err := h.Add(X, 2048); err != nil {
				b.Fatal(err)
			}
			opt := GPTQOptions{GroupSize: 128, BlockSize: 128, PercDamp: 0.01}
			b.ResetTimer()
			for b.Loop() {
				if _, err := GPTQLevels(W, sh.rows, sh.cols, h.H, []int{2, 3, 4, 5, 6}, opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
