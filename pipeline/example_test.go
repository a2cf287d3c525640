package pipeline_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/evopress/evopress/pipeline"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
)

// A depth-pruning search on the embedded model, small enough for an example: it writes the
// profile, the run folder (checkpoint, log.jsonl, result.json) and the report.
func ExampleRunSearch() {
	dir, err := os.MkdirTemp("", "evopress-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	gens, offspring, init := 2, 4, 64
	out, err := pipeline.RunSearch(context.Background(), pipeline.SearchRequest{
		Data: pipeline.Data{SeqLen: 64, CalibTokens: 2048}, // the embedded model and calibration text
		Mode: pipeline.ModeSpec{Kind: profile.ModeDrop, Target: 0.25},
		Settings: search.Overrides{Generations: &gens, Offspring: &offspring, InitTokens: &init,
			Stages: []search.Stage{{Survivors: 2, Tokens: 64}, {Survivors: 1, Tokens: 128}}},
		Seed: 1,
		Out:  filepath.Join(dir, "drop.json"),
	})
	if err != nil {
		log.Fatal(err)
	}
	dropped := 0
	for _, l := range out.Profile.Levels {
		dropped += l
	}
	fmt.Printf("%d generations; %d of %d sub-blocks dropped\n", out.Result.Generations, dropped, len(out.Profile.Levels))
	_, err = os.Stat(filepath.Join(out.RunDir, "checkpoint.json"))
	fmt.Println("checkpoint written:", err == nil)
	// Output:
	// 2 generations; 6 of 24 sub-blocks dropped
	// checkpoint written: true
}

// ShortGPT's choice of 3 of the embedded model's 12 blocks, as `evopress baseline drop` makes it.
func ExampleRunBaseline() {
	dir, err := os.MkdirTemp("", "evopress-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	out, err := pipeline.RunBaseline(context.Background(), pipeline.BaselineRequest{
		Data:   pipeline.Data{SeqLen: 64, CalibTokens: 1024},
		Mode:   pipeline.ModeSpec{Kind: profile.ModeDrop, Target: 0.25},
		Method: "shortgpt",
		Out:    filepath.Join(dir, "shortgpt.json"),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.Profile.Method, "drops", len(out.Drop.Attn), "attention and", len(out.Drop.MLP), "MLP sub-blocks")
	// Output: shortgpt drops 3 attention and 3 MLP sub-blocks
}

// A missing field is reported with the request field's name; the CLI names its flag instead.
func ExampleRequestError() {
	_, err := pipeline.RunSearch(context.Background(), pipeline.SearchRequest{Mode: pipeline.ModeSpec{Kind: profile.ModeDrop, Target: 0.25}})
	fmt.Println(err)
	// Output: Out is required (the profile file to write)
}
