package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestZZHess(t *testing.T) {
	for _, s := range [][3]int{{256, 256, 1024}, {704, 704, 256}, {128, 128, 2048}} {
		m, n, k := s[0], s[1], s[2]
		rng := rand.New(rand.NewPCG(1, 1))
		x := randSlice(rng, m*k)
		c := make([]float32, m*n)
		d := minTime(func() { GemmSerial(true, false, m, n, k, 1, x, m, x, n, 1, c, n) }, 200)
		fmt.Printf("hess %v %.1f GFLOP/s\n", s, 2*float64(m*n*k)/d.Seconds()/1e9)
	}
}
