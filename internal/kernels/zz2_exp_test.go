package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

var directTransA bool // unused now

func TestZZHess(t *testing.T) {
	for _, s := range [][3]int{{1024, 1024, 256}, {2048, 256, 256}} {
		m, n, k := s[0], s[1], s[2]
		rng := rand.New(rand.NewPCG(1, 1))
		x := randSlice(rng, m*k)
		c := make([]float32, m*n)
		for _, dt := range []bool{false, true, false, true} {
			directTransA = dt
			d := minTime(func() { GemmSerial(true, false, m, n, k, 1, x, m, x, n, 1, c, n) }, 200)
			fmt.Printf("hess %v direct=%v %.1f GFLOP/s\n", s, dt, 2*float64(m*n*k)/d.Seconds()/1e9)
		}
		directTransA = false
	}
}
