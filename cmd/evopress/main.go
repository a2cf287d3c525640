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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "evopress: interrupted")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "evopress:", err)
		os.Exit(1)
	}
}
