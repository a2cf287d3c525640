package search_test

import (
	"context"
	"fmt"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
)

// Run searches which 2 attention and 2 MLP sub-blocks of a 6-block model to drop. The
// evaluator here is a stand-in for the KL divergence to the dense model: dropping block b
// costs b+1, so the best profile drops the first two blocks.
func ExampleRun() {
	mode, err := drop.NewK(6, 2, drop.Options{})
	if err != nil {
		panic(err)
	}
	eval := search.EvaluatorFunc(func(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
		fit := make([]float64, len(cands))
		for i, c := range cands {
			for u, level := range c {
				fit[i] += float64(level * (u/2 + 1)) // unit u belongs to block u/2
			}
		}
		return fit, nil
	})
	cfg := search.Config{
		Offspring:   8,
		Stages:      []search.Stage{{Survivors: 2, Tokens: 64}, {Survivors: 1, Tokens: 128}},
		Generations: 40,
		InitTokens:  64,
		Seed:        1,
		SeqLen:      32,
		PoolChunks:  16,
	}
	res, err := search.Run(context.Background(), cfg, mode, eval)
	if err != nil {
		panic(err)
	}
	attn, mlp := mode.Dropped(res.Profile)
	fmt.Println("profile:", res.Profile)
	fmt.Println("dropped attention:", attn, "MLP:", mlp)
	fmt.Println("fitness:", res.Fitness, "after", res.Generations, "generations")
	// Output:
	// profile: [1 1 1 1 0 0 0 0 0 0 0 0]
	// dropped attention: [0 1] MLP: [0 1]
	// fitness: 6 after 40 generations
}
