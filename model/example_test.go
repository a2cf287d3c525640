package model_test

import (
	"context"
	"fmt"
	"math"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/eval"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/tokenizer"
)

// LoadFS loads a model from any file system; here the one package assets embeds. The example
// tokenizes a sentence, runs the forward pass and reports the model's perplexity on it, then on
// a copy with two sub-blocks skipped.
func ExampleLoadFS() {
	m, _, err := model.LoadFS(assets.FS(), assets.ModelDir)
	if err != nil {
		panic(err)
	}
	fmt.Println("blocks:", len(m.Blocks), "hidden:", m.Hidden, "vocab:", m.Vocab)

	tj, _ := assets.ReadFile(assets.ModelDir + "/tokenizer.json")
	tc, _ := assets.ReadFile(assets.ModelDir + "/tokenizer_config.json")
	tok, err := tokenizer.Parse(tj, tc, "llama-pd-11m")
	if err != nil {
		panic(err)
	}
	ids := tok.Encode("It was the best of times, it was the worst of times, it was the age of wisdom.", true)

	nll, n, err := m.SequenceNLL([][]int{ids})
	if err != nil {
		panic(err)
	}
	dense := math.Exp(nll / float64(n))

	pruned := m.Clone()
	pruned.Blocks[3].SkipAttn = true
	pruned.Blocks[5].SkipMLP = true
	res, err := eval.Perplexity(context.Background(), pruned, [][]int{ids}, 1, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("predicted tokens:", n)
	fmt.Printf("perplexity: %.1f dense, %.1f pruned\n", dense, res.PPL)
	fmt.Println("skipping sub-blocks raises the perplexity:", res.PPL > dense)
	// Output:
	// blocks: 12 hidden: 256 vocab: 4096
	// predicted tokens: 23
	// perplexity: 35.8 dense, 37.2 pruned
	// skipping sub-blocks raises the perplexity: true
}
