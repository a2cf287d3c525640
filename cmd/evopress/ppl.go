package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/eval"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/pipeline"
)

type pplOptions struct {
	model, data, format string
	seqLen, maxSeqs     int
	batch               int
	profile, db         string
	json, kl            bool
}

func newPPLCmd() *cobra.Command {
	var o pplOptions
	cmd := &cobra.Command{
		Use:   "ppl",
		Short: "Perplexity of a model (optionally compressed by a profile) on a text file",
		Long: `ppl tokenizes a text file without special tokens, cuts it into non-overlapping chunks of
--seq-len tokens (remainder dropped) and reports exp(mean NLL) over every next-token prediction.
--format wikitext applies the Hugging Face WikiText-2 protocol to the raw wiki.test.raw file.
Without --model and --data it uses the embedded model and the embedded held-out text.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPPL(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "Hugging Face model directory (default: the embedded llama-pd-11m)")
	f.StringVar(&o.data, "data", "", "UTF-8 text file to evaluate (default: the embedded held-out text)")
	f.StringVar(&o.format, "format", "raw", "text format: raw or wikitext")
	f.IntVar(&o.seqLen, "seq-len", 256, "tokens per sequence")
	f.IntVar(&o.maxSeqs, "max-seqs", 0, "evaluate only the first N sequences (0: all)")
	f.IntVar(&o.batch, "batch", 32, "sequences per forward batch")
	f.StringVar(&o.profile, "profile", "", "compression profile (JSON) to apply before evaluating")
	f.StringVar(&o.db, "db", "", "level database for sparse and quant profiles")
	f.BoolVar(&o.json, "json", false, "print one JSON object")
	f.BoolVar(&o.kl, "kl", false, "also report the mean KL(dense ‖ compressed) per predicted token (runs the dense model too)")
	return cmd
}

func runPPL(cmd *cobra.Command, o pplOptions) error {
	format, err := data.ParseFormat(o.format)
	if err != nil {
		return err
	}
	lm, err := pipeline.LoadModel(o.model)
	if err != nil {
		return err
	}
	m := lm.Model
	if o.profile != "" {
		if m, err = applyProfileFile(cmd, lm, o.profile, o.db); err != nil {
			return err
		}
	}
	text, err := pipeline.ReadText(o.data, assets.EvalText, format)
	if err != nil {
		return err
	}
	source := text.Source
	ids := lm.Tokenizer.Encode(text.Body, false)
	chunks, err := data.Chunks(ids, o.seqLen, o.maxSeqs)
	if err != nil {
		return err
	}
	if len(chunks) == 0 {
		return fmt.Errorf("%s: %d tokens, fewer than one sequence of %d", source, len(ids), o.seqLen)
	}
	var progress eval.Progress
	if isTerminal(os.Stderr) {
		progress = func(done, total int, el time.Duration) {
			eta := time.Duration(float64(el) / float64(done) * float64(total-done))
			fmt.Fprintf(os.Stderr, "\rppl: %d/%d sequences, %s elapsed, ETA %s   ", done, total, el.Round(time.Second), eta.Round(time.Second))
			if done == total {
				fmt.Fprintln(os.Stderr)
			}
		}
	}
	res, err := eval.Perplexity(cmd.Context(), m, chunks, o.batch, progress)
	if err != nil {
		return err
	}
	res.TotalTokens = len(ids)
	if o.kl {
		teacher, err := fitness.NewTeacher(lm.Model, chunks, fitness.Options{Batch: o.batch})
		if err != nil {
			return err
		}
		idx := make([]int, len(chunks))
		for i := range idx {
			idx[i] = i
		}
		kl, _, err := teacher.Measure(m, idx)
		if err != nil {
			return err
		}
		kl = max(kl, 0) // the dense model's KL to itself is 0 up to the cache's float16 rounding
		res.KL = &kl
	}
	if o.json {
		return printJSON(cmd.OutOrStdout(), res)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "model      %s\n", lm.Name)
	fmt.Fprintf(w, "data       %s (%s), %d tokens\n", source, format, len(ids))
	fmt.Fprintf(w, "sequences  %d × %d tokens, %d predicted\n", res.Seqs, res.SeqLen, res.Tokens)
	fmt.Fprintf(w, "perplexity %.4f (mean NLL %.6f)\n", res.PPL, res.NLL)
	if res.KL != nil {
		fmt.Fprintf(w, "KL         %.5f nats/token to the dense model\n", *res.KL)
	}
	fmt.Fprintf(w, "speed      %.0f tokens/s (%.1f s forward)\n", res.TokensPerSecond, res.Seconds)
	return nil
}
