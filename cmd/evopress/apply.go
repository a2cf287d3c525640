package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/pipeline"
	"github.com/evopress/evopress/profile"
)

// applyProfileFile reads a profile and returns the compressed model it describes, warning on
// stderr about what cannot be checked or is left dense.
func applyProfileFile(cmd *cobra.Command, lm *pipeline.Loaded, path, dbDir string) (*model.Model, error) {
	p, err := profile.Read(path, "")
	if err != nil {
		return nil, err
	}
	m, warns, err := pipeline.ApplyProfile(lm, p, dbDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, cliError(cmd, err))
	}
	for _, w := range warns {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s: %s\n", path, w)
	}
	return m, nil
}
