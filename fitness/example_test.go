package fitness_test

import (
	"context"
	"fmt"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
	"github.com/evopress/evopress/tokenizer"
)

// NewEvaluator scores depth-pruning profiles of the embedded model by their KL divergence to
// the dense model (the Teacher's cached distributions) on calibration chunks of the embedded
// text: the dense profile scores 0, and dropping sub-blocks costs more the more are dropped.
func ExampleNewEvaluator() {
	m, _, err := model.LoadFS(assets.FS(), assets.ModelDir)
	if err != nil {
		panic(err)
	}
	tj, _ := assets.ReadFile(assets.ModelDir + "/tokenizer.json")
	tc, _ := assets.ReadFile(assets.ModelDir + "/tokenizer_config.json")
	tok, err := tokenizer.Parse(tj, tc, "llama-pd-11m")
	if err != nil {
		panic(err)
	}
	text, _ := assets.ReadFile(assets.CalibText)
	pool, err := data.CalibrationPool(tok.Encode(string(text[:8000]), false), 64, 8*64)
	if err != nil {
		panic(err)
	}

	teacher, err := fitness.NewTeacher(m, pool, fitness.Options{})
	if err != nil {
		panic(err)
	}
	units := drop.UnitNames(len(m.Blocks))
	build, err := candidate.DropBuilder(m, units)
	if err != nil {
		panic(err)
	}
	ev, err := fitness.NewEvaluator(teacher, units, build, fitness.KL)
	if err != nil {
		panic(err)
	}

	dense := make(search.Levels, len(units))
	one := dense.Clone()
	one[2*5] = 1 // block 5's attention
	two := one.Clone()
	two[2*7+1] = 1 // and block 7's MLP
	kl, err := ev.Evaluate(context.Background(), nil, []search.Levels{dense, one, two},
		search.Batch{Chunks: []int{0, 3, 6}, Tokens: 3 * 64})
	if err != nil {
		panic(err)
	}
	fmt.Printf("dense %.4f\n", kl[0])
	fmt.Println("one dropped > dense:", kl[1] > kl[0])
	fmt.Println("two dropped > one dropped:", kl[2] > kl[1])
	// Output:
	// dense 0.0000
	// one dropped > dense: true
	// two dropped > one dropped: true
}
