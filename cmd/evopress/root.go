package main

import (
	"encoding/json"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "evopress",
		Short: "Evolutionary search for non-uniform compression of Llama-family models",
		Long: `evopress finds per-layer compression profiles (dropped sub-blocks, sparsity levels, bit-widths)
under a global budget by evolutionary search, scoring whole candidate models by KL divergence to the
dense model on calibration text (EvoPress, Sieberling et al., ICML 2025).

Models are Hugging Face directories (config.json, *.safetensors, tokenizer.json) of the llama,
mistral and qwen2 families. Without --model, commands use the embedded default model (llama-pd-11m).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newDemoCmd(),
		newTokenizeCmd(),
		newPPLCmd(),
		newSearchCmd(),
		newWorkerCmd(),
		newBaselineCmd(),
		newDBCmd(),
		newExportCmd(),
		newImatrixCmd(),
		newReportCmd(),
		newInspectCmd(),
		newRestampCmd(),
		newEvalCmd(),
	)
	wrapErrors(root)
	return root
}

// printJSON writes v as one indented JSON object followed by a newline.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a character device (a terminal), for progress lines
// rewritten in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
