package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestZZVec(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	n := 4096
	x := randSlice(rng, n)
	y := randSlice(rng, n)
	z := make([]float32, n)
	w := randSlice(rng, n)
	var sink float32
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Dot", func() { sink += Dot(x, y) }},
		{"Axpy", func() { Axpy(1e-9, x, z) }},
		{"Max", func() { sink += Max(x) }},
		{"SumExp", func() { sink += SumExp(x, 0) }},
		{"ExpTo", func() { sink += ExpTo(z, x, 0) }},
		{"SiLUMul", func() { copy(z, x); SiLUMul(z, y) }},
		{"copy", func() { copy(z, x) }},
		{"RMSNorm", func() { RMSNorm(z, x, w, 1e-5) }},
	} {
		d := minTime(tc.f, 3000)
		fmt.Printf("%-8s n=%d %.3f ns/elem (%.2f Gelem/s)\n", tc.name, n, float64(d.Nanoseconds())/float64(n), float64(n)/float64(d.Nanoseconds()))
	}
	_ = sink
}
