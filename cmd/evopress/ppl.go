package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/eval"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/pipeline"
)

type pplOptions struct {
	model, data, format            string
	seqLen, maxSeqs                int
	batch                          int
	profile, db                    string
	json, kl, force                bool
	protocol, kldBase, saveKLDBase string
}

func newPPLCmd() *cobra.Command {
	var o pplOptions
	cmd := &cobra.Command{
		Use:   "ppl",
		Short: "Perplexity of a model (optionally compressed by a profile) on a text file",
		Long: `ppl tokenizes a text file without special tokens, cuts it into non-overlapping chunks of
--seq-len tokens (remainder dropped) and reports exp(mean NLL) over every next-token prediction.
--format wikitext applies the Hugging Face WikiText-2 protocol to the raw wiki.test.raw file.
Without --model and --data it uses the embedded model and the embedded held-out text.

--protocol llamacpp follows llama-perplexity instead (compare with llama.cpp's tables): BOS in
front, chunks of --seq-len (its -c, default 512) each starting with BOS, only the second half of
each chunk scored, its "Final estimate: PPL = … +/- …". --kld-base FILE reads a base-logits file
(llama-perplexity --kl-divergence-base FILE, or --save-kld-base) and prints llama-perplexity
--kl-divergence's statistics of this model against it; --save-kld-base FILE writes one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPPL(cmd, o)
		},
	}
	f := cmd.Flags()
	profileFlags(f, &o.model, &o.profile, &o.db)
	f.StringVar(&o.data, "data", "", "UTF-8 text file to evaluate (default: the embedded held-out text)")
	f.StringVar(&o.format, "format", "raw", "text format: raw or wikitext")
	f.IntVar(&o.seqLen, "seq-len", 0, "tokens per sequence (0: 256, or llama.cpp's 512 with --protocol llamacpp)")
	f.IntVar(&o.maxSeqs, "max-seqs", 0, "evaluate only the first N sequences (0: all; llama-perplexity's --chunks)")
	f.StringVar(&o.protocol, "protocol", "", "evopress (default) or llamacpp (llama-perplexity's; the default with --kld-base or --save-kld-base)")
	f.StringVar(&o.kldBase, "kld-base", "", "llama.cpp base-logits file: evaluate its tokens and print llama-perplexity --kl-divergence's statistics")
	f.StringVar(&o.saveKLDBase, "save-kld-base", "", "write this model's llama.cpp base-logits file (for --kld-base or llama-perplexity --kl-divergence)")
	f.BoolVar(&o.force, "force", false, "replace an existing --save-kld-base file")
	f.IntVar(&o.batch, "batch", 32, "sequences per forward batch")
	atLeast(f, 2, "seq-len")
	atLeast(f, 0, "max-seqs")
	atLeast(f, 1, "batch")
	f.BoolVar(&o.json, "json", false, "print one JSON object")
	f.BoolVar(&o.kl, "kl", false, "also report the mean KL(dense ‖ compressed) per predicted token (runs the dense model too)")
	computeFlag(f)
	return cmd
}

func runPPL(cmd *cobra.Command, o pplOptions) error {
	format, err := data.ParseFormat(o.format)
	if err != nil {
		return err
	}
	req := pipeline.PPLRequest{ModelDir: o.model, DataFile: o.data, Format: format, SeqLen: o.seqLen, MaxSeqs: o.maxSeqs,
		Batch: o.batch, ProfileFile: o.profile, DBDir: o.db, KL: o.kl, Warn: cmd.ErrOrStderr(),
		Protocol: eval.Protocol(o.protocol), KLDBase: o.kldBase, SaveKLDBase: o.saveKLDBase, Force: o.force}
	if isTerminal(os.Stderr) {
		req.Progress = progressLine(os.Stderr, "ppl", "sequences")
	}
	out, err := pipeline.Perplexity(cmd.Context(), req)
	if err != nil {
		return err
	}
	out.Kernels = kernels.Implementation()
	if o.json {
		return printJSON(cmd.OutOrStdout(), out.PPLResult)
	}
	return out.WriteText(cmd.OutOrStdout())
}
