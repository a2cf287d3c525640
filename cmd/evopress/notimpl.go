package main

import "github.com/spf13/cobra"

// stubCmd is a command of the design note's CLI contract that a later version provides: it accepts
// any arguments and says so clearly.
func stubCmd(use, short, issue string) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short + " (not implemented yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errNotImplemented("evopress "+cmd.Name(), issue)
		},
	}
}

func newBaselineCmd() *cobra.Command {
	return stubCmd("baseline drop|sparse|quant", "Baseline compression profiles (ShortGPT, OWL, uniform, DP, ...)", "#3 and #5")
}

func newDBCmd() *cobra.Command {
	return stubCmd("db build sparse|quant", "Build a level database with SparseGPT or GPTQ", "#4")
}

func newExportCmd() *cobra.Command {
	return stubCmd("export", "Export a profile as a Hugging Face model or GGUF", "#6")
}

func newReportCmd() *cobra.Command {
	return stubCmd("report RUN_DIR", "Write a Markdown/HTML report with plots for a run", "#7")
}

func newEvalCmd() *cobra.Command {
	return stubCmd("eval zeroshot", "Zero-shot multiple-choice evaluation", "#7")
}
