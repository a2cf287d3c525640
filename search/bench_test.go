package search_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
	"github.com/evopress/evopress/search/quant"
)

// BenchmarkGeneration measures the engine's own cost per generation (offspring, batches,
// ranking, bookkeeping) with a trivial evaluator, at the modes' default λ and stages.
func BenchmarkGeneration(b *testing.B) {
	dmode, _ := drop.NewK(32, 8, drop.Options{})
	var layers []quant.Layer
	for i, name := range search.LinearUnitNames(32) {
		layers = append(layers, quant.Layer{Name: name, Numel: int64(1 << (20 + i%3)), Bits: []int{2, 3, 4, 5, 6, 7, 8}})
	}
	qmode, err := quant.New(quant.Config{Layers: layers, Target: 3})
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range []struct {
		mode search.Mode
		s    search.Settings
	}{{dmode, dmode.Defaults()}, {qmode, qmode.Defaults()}} {
		b.Run(fmt.Sprintf("%s-%dunits-lambda%d", m.mode.Name(), len(m.mode.Units()), m.s.Offspring), func(b *testing.B) {
			cfg := search.NewConfig(m.s, 0, 8192, 64)
			cfg.Generations = b.N
			ev := search.EvaluatorFunc(func(_ context.Context, _ search.Levels, c []search.Levels, _ search.Batch) ([]float64, error) {
				out := make([]float64, len(c))
				for i, p := range c {
					out[i] = float64(p[i%len(p)])
				}
				return out, nil
			})
			b.ReportAllocs()
			b.ResetTimer()
			if _, err := search.Run(context.Background(), cfg, m.mode, ev); err != nil {
				b.Fatal(err)
			}
		})
	}
}
