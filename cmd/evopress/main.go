// Command evopress searches dynamic, non-uniform compression profiles of Llama-family language
// models (depth pruning, unstructured sparsity, per-layer bit-widths) by evolutionary search, and
// evaluates and exports them. Run `evopress --help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(runMain(os.Args[1:])) }

// runMain runs the command line args (without the program name) and returns the exit status:
// 0, 1 on an error, 130 when interrupted.
func runMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "evopress: interrupted")
			return 130
		}
		fmt.Fprintln(os.Stderr, "evopress:", err)
		return 1
	}
	return 0
}
