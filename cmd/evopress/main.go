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
	"runtime/pprof"
	"syscall"
)

func main() { os.Exit(runMain(os.Args[1:])) }

// runMain runs the command line args (without the program name) and returns the exit status:
// 0, 1 on an error, 130 when interrupted.
func runMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path := os.Getenv("EVOPRESS_CPUPROFILE"); path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "evopress:", err)
			return 1
		}
		defer stopProfile()
	}
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

// startCPUProfile writes a CPU profile of the whole command to path (EVOPRESS_CPUPROFILE, for
// `go tool pprof`), refusing to overwrite an existing file; the returned function ends it.
func startCPUProfile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("EVOPRESS_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("EVOPRESS_CPUPROFILE=%s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "evopress: EVOPRESS_CPUPROFILE:", err)
		}
	}, nil
}
