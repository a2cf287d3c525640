package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/data"
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
	profileFlags(f, &o.model, &o.profile, &o.db)
	f.StringVar(&o.data, "data", "", "UTF-8 text file to evaluate (default: the embedded held-out text)")
	f.StringVar(&o.format, "format", "raw", "text format: raw or wikitext")
	f.IntVar(&o.seqLen, "seq-len", 256, "tokens per sequence")
	f.IntVar(&o.maxSeqs, "max-seqs", 0, "evaluate only the first N sequences (0: all)")
	f.IntVar(&o.batch, "batch", 32, "sequences per forward batch")
	atLeast(f, 2, "seq-len")
	atLeast(f, 0, "max-seqs")
	atLeast(f, 1, "batch")
	f.BoolVar(&o.json, "json", false, "print one JSON object")
	f.BoolVar(&o.kl, "kl", false, "also report the mean KL(dense ‖ compressed) per predicted token (runs the dense model too)")
	return cmd
}

func runPPL(cmd *cobra.Command, o pplOptions) error {
	format, err := data.ParseFormat(o.format)
	if err != nil {
		return err
	}
	req := pipeline.PPLRequest{ModelDir: o.model, DataFile: o.data, Format: format, SeqLen: o.seqLen, MaxSeqs: o.maxSeqs,
		Batch: o.batch, ProfileFile: o.profile, DBDir: o.db, KL: o.kl, Warn: cmd.ErrOrStderr()}
	if isTerminal(os.Stderr) {
		req.Progress = progressLine(os.Stderr, "ppl", "sequences")
	}
	out, err := pipeline.Perplexity(cmd.Context(), req)
	if err != nil {
		return err
	}
	res := out.PPLResult
	if o.json {
		return printJSON(cmd.OutOrStdout(), res)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "model      %s\n", out.Model.Name)
	fmt.Fprintf(w, "data       %s (%s), %d tokens\n", out.Source, format, res.TotalTokens)
	fmt.Fprintf(w, "sequences  %d × %d tokens, %d predicted\n", res.Seqs, res.SeqLen, res.Tokens)
	fmt.Fprintf(w, "perplexity %.4f (mean NLL %.6f)\n", res.PPL, res.NLL)
	if res.KL != nil {
		fmt.Fprintf(w, "KL         %.5f nats/token to the dense model\n", *res.KL)
	}
	fmt.Fprintf(w, "speed      %.0f tokens/s (%.1f s forward)\n", res.TokensPerSecond, res.Seconds)
	return nil
}
