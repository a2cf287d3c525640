package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/report"
)

func newReportCmd() *cobra.Command {
	var out, prof string
	var asJSON, force bool
	cmd := &cobra.Command{
		Use:   "report RUN_DIR",
		Short: "Write a Markdown/HTML report with plots for a run",
		Long: `report reads a search's run folder (result.json, else checkpoint.json for a run in progress, else
log.jsonl) and its profile (default: RUN_DIR with .run replaced by .json), and writes report.md, a
self-contained report.html and the PNG plots (fitness against generation and tokens scored, the
per-layer profile) into the run folder, or --out. An earlier report in the run folder is
replaced; one in --out only with --force; files evopress did not write are never replaced.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := report.WriteRun(args[0], prof, out, force)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"markdown": files.Markdown, "html": files.HTML, "images": files.Images})
			}
			printReportFiles(cmd.OutOrStdout(), files)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&out, "out", "", "folder to write the report to (default: RUN_DIR)")
	fl.StringVar(&prof, "profile", "", "the run's profile (default: RUN_DIR with .run replaced by .json)")
	fl.BoolVar(&force, "force", false, "replace an earlier report in --out (only files evopress wrote)")
	fl.BoolVar(&asJSON, "json", false, `print {"markdown", "html", "images"}: the paths written`)
	return cmd
}

func printReportFiles(w io.Writer, files *report.Files) {
	fmt.Fprintf(w, "report written to %s and %s (%d images in %s)\n", files.Markdown, files.HTML, len(files.Images), filepath.Dir(files.HTML))
}
