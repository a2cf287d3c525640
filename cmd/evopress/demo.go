package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/pipeline"
	"github.com/evopress/evopress/search"
)

func newDemoCmd() *cobra.Command {
	var req pipeline.DemoRequest
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the main job on the embedded model and text",
		Long: `demo runs the whole EvoPress pipeline on the embedded default model (llama-pd-11m) and text:
dense perplexity; depth pruning at 25% (EvoPress against ShortGPT, sliding-window cosine and
Shortened-LLaMA); unstructured sparsity at 50% (a SparseGPT level database built on the fly into a
cache folder and reused by the next run; uniform against EvoPress); 3-bit quantization (GPTQ database;
uniform against EvoPress); last, mixed-precision GGUF: a gguf database (llama.cpp's types, with an
importance matrix computed on the calibration text) compares, at the file size of llama.cpp's Q3_K_M
recipe, that recipe (llama-quantize's rules), the largest uniform type not larger, and EvoPress
(search quant --target-size), and writes EvoPress's file as gguf-evopress.gguf (evopress export)
with the held-out text (eval.txt) and an ollama Modelfile next to it, printing the llama-perplexity,
llama-completion (llama-cli) and ollama commands that run it. It prints one comparison table
(held-out perplexity on a stated subsample of the embedded held-out text, KL to the dense model on
it, time; bits per weight and file bytes for the GGUF files) and writes a report folder. Every
search and baseline runs exactly as the evopress search / baseline command its profile records.
The searches use the fast preset (λ = 16, short selection stages) with few generations, so that
the whole demo takes about 5 minutes on 2 cores; --quick is a short smoke run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			req.Print, req.Log = w, stderr
			req.Observer = func(string) (search.Observer, func()) {
				pp := search.NewProgressPrinter(stderr)
				pp.Terminal = isTerminal(stderr)
				return pp.Observe, pp.Finish
			}
			out, err := pipeline.RunDemo(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprint(w, "\n"+out.Table)
			fmt.Fprintf(w, "\ndense greedy sample: %s\n", out.Sample)
			printReportFiles(stderr, out.Report)
			fmt.Fprintf(w, "\ndemo finished in %s; report in %s (and report.html)\n", out.Elapsed.Round(1e9), filepath.Join(req.Out, "report.md"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&req.Quick, "quick", false, "a one-minute smoke run (tiny searches)")
	cmd.Flags().StringVar(&req.Out, "out", "evopress-demo", "report folder")
	cmd.Flags().StringVar(&req.Cache, "cache", "", "folder for the level databases (default: the user cache folder, evopress/)")
	cmd.Flags().Uint64Var(&req.Seed, "seed", 0, "random seed")
	return cmd
}
