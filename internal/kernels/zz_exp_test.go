package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)


func minTime(f func(), n int) time.Duration {
	best := time.Duration(1 << 62)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		f()
		best = min(best, time.Since(t0))
	}
	return best
}

func TestZZCompare(t *testing.T) {
	for _, s := range [][5]int{{384, 256, 1024, 0, 1}, {384, 256, 4096, 0, 1}, {384, 256, 512, 0, 1}, {384, 1024, 2048, 0, 0}} {
		m, n, k := s[0], s[1], s[2]
		tA, tB := s[3] == 1, s[4] == 1
		rng := rand.New(rand.NewPCG(1, 1))
		a := randSlice(rng, m*k)
		bm := randSlice(rng, k*n)
		c := make([]float32, m*n)
		lda, ldb := k, n
		if tA {
			lda = m
		}
		if tB {
			ldb = k
		}
		var best [2]time.Duration
		for v := 0; v < 2; v++ {
			forcePackA = v == 1
			best[v] = minTime(func() { GemmSerial(tA, tB, m, n, k, 1, a, lda, bm, ldb, 0, c, n) }, 300)
		}
		forcePackA = false
		g := func(d time.Duration) float64 { return 2 * float64(m*n*k) / d.Seconds() / 1e9 }
		fmt.Printf("%v direct %.1f packed %.1f GFLOP/s\n", s, g(best[0]), g(best[1]))
	}
}
