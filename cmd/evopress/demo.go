package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/eval"
	"github.com/evopress/evopress/internal/atomicfile"
)

type demoOptions struct {
	quick bool
	out   string
}

func newDemoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the main job on the embedded model and text",
		Long: `demo loads the embedded default model (llama-pd-11m), measures its dense perplexity on a stated
subsample of the embedded held-out text, writes a short greedy generation sample, and writes a
report folder (--out). The compression search steps join the demo as they land.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd, o) },
	}
	cmd.Flags().BoolVar(&o.quick, "quick", false, "a smoke run of a few seconds")
	cmd.Flags().StringVar(&o.out, "out", "evopress-demo", "report folder")
	return cmd
}

func runDemo(cmd *cobra.Command, o demoOptions) error {
	w := cmd.OutOrStdout()
	lm, err := loadModel("")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "evopress demo: %s, %d blocks, %.2fM parameters, loaded in %s (GOMAXPROCS %d)\n",
		lm.Name, len(lm.Model.Blocks), float64(lm.Model.NumParams())/1e6, lm.LoadTime.Round(time.Millisecond), runtime.GOMAXPROCS(0))

	const seqLen = 256
	maxSeqs := 128
	if o.quick {
		maxSeqs = 8
	}
	text, source, err := readText("", assets.EvalText, data.Raw)
	if err != nil {
		return err
	}
	ids := lm.Tok.Encode(text, false)
	all, err := data.Chunks(ids, seqLen, 0)
	if err != nil {
		return err
	}
	chunks := all[:min(maxSeqs, len(all))]
	res, err := eval.Perplexity(cmd.Context(), lm.Model, chunks, 32, nil)
	if err != nil {
		return err
	}
	res.TotalTokens = len(ids)

	prompt := "The President said that"
	gen, err := lm.Model.Generate(lm.Tok.Encode(prompt, false), 40, lm.Tok.EOS())
	if err != nil {
		return err
	}
	sample := prompt + lm.Tok.Decode(gen, true)

	var b strings.Builder
	fmt.Fprintf(&b, "# evopress demo\n\n")
	fmt.Fprintf(&b, "Model `%s` (fingerprint `%.16s…`), %d blocks, %.2fM parameters.\n\n", lm.Name, lm.Fingerprint, len(lm.Model.Blocks), float64(lm.Model.NumParams())/1e6)
	fmt.Fprintf(&b, "Held-out text `%s`: the first %d of %d sequences of %d tokens (%d predicted tokens).\n\n", source, len(chunks), len(all), seqLen, res.Tokens)
	fmt.Fprintf(&b, "| method | budget | perplexity | KL | time |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| dense | 100%% | %.3f | 0 | %.1f s (%.0f tokens/s) |\n\n", res.PPL, res.Seconds, res.TokensPerSecond)
	fmt.Fprintf(&b, "Greedy sample:\n\n> %s\n", strings.ReplaceAll(sample, "\n", " "))
	report := b.String()
	fmt.Fprintln(w)
	fmt.Fprint(w, report)

	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(o.out, "report.md")
	if err := atomicfile.WriteFile(path, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nreport written to %s\n", path)
	return nil
}
