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
