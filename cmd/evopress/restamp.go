package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/pipeline"
)

func newRestampCmd() *cobra.Command {
	var req pipeline.RestampRequest
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "restamp [--model M] PATH...",
		Short: "Re-stamp databases, profiles and run folders made by an older evopress for a model",
		Long: `Versions of evopress before the v2 model fingerprint stamped level databases, profiles and search
run folders with a fingerprint that did not cover the weights (config.json and tensor names, dtypes and
shapes only). Commands refuse such stamps, since they cannot tell the model from another with the same
shapes. restamp rewrites them with the model's current fingerprint, for the database folders, profile
files, run folders and Hugging Face exports' evopress.json named (and the references in them to
re-stamped databases); it refuses files stamped for another model, and prints what it changed.

Run it only for files you know were made from these very weights.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Paths = args
			res, err := pipeline.Restamp(req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			verb := "re-stamped"
			if req.DryRun {
				verb = "would re-stamp"
			}
			for _, c := range res.Changes {
				fmt.Fprintf(w, "%s %s: %s %s → %s\n", verb, c.Path, c.Field, c.Old, c.New)
			}
			for _, n := range res.Notes {
				fmt.Fprintln(w, n)
			}
			return nil
		},
	}
	modelFlag(cmd.Flags(), &req.ModelDir, "")
	cmd.Flags().BoolVar(&req.DryRun, "dry-run", false, "print what would change, write nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
