package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/pipeline"
)

func newImatrixCmd() *cobra.Command {
	var req pipeline.ImatrixRequest
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "imatrix",
		Short: "Compute a llama.cpp importance matrix (as llama-imatrix does) for llama-quantize",
		Long: `imatrix computes the importance matrix of a model on a text as llama.cpp's llama-imatrix does:
the text (one trailing newline removed) is tokenized with BOS, cut into chunks of --seq-len tokens
whose first token is BOS, and for every linear layer of every block the squared inputs are summed
per column over all tokens. The file is llama.cpp's GGUF imatrix (--format gguf, the default) or
its legacy format (--format dat, the default for a .dat name); llama-quantize --imatrix reads both.
On the same text and chunks the sums equal llama-imatrix's run with -ctk f32 -ctv f32 -fa off
(its default F16 KV cache changes them by about 1e-3). An existing --out is replaced only with --force.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if isTerminal(os.Stderr) {
				req.Progress = progressLine(os.Stderr, "imatrix", "chunks")
			}
			res, err := pipeline.ComputeImatrix(cmd.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s): %d tensors, %d chunks × %d tokens of %s (BOS %v), %.1f s\n",
				res.Out, res.Format, res.Entries, res.Chunks, res.SeqLen, res.Dataset, res.BOS, res.Seconds)
			return nil
		},
	}
	f := cmd.Flags()
	modelFlag(f, &req.ModelDir, "")
	f.StringVar(&req.CalibFile, "calib", "", "text file (default: the embedded calibration text)")
	f.IntVar(&req.SeqLen, "seq-len", pipeline.DefaultImatrixSeqLen, "tokens per chunk (llama-imatrix -c)")
	f.IntVar(&req.Chunks, "chunks", 0, "use the first N chunks (0: all; llama-imatrix --chunks)")
	f.StringVar(&req.Out, "out", "", "importance matrix file to write (required)")
	f.StringVar(&req.Format, "format", "", "gguf or dat (default: dat for a .dat file, else gguf)")
	f.BoolVar(&req.Force, "force", false, "replace an existing --out")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
