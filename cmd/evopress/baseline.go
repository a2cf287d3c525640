package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/baselines"
	"github.com/evopress/evopress/pipeline"
	"github.com/evopress/evopress/profile"
)

// baselineFlags are the flags of `evopress baseline drop|sparse|quant`.
type baselineFlags struct {
	data dataFlags
	req  pipeline.BaselineRequest
	json bool
}

func (f *baselineFlags) register(cmd *cobra.Command, kind, methods string) {
	fl := cmd.Flags()
	dbKind := kind
	if kind == profile.ModeDrop {
		dbKind = ""
	}
	f.req.Mode.Kind = kind
	f.data.register(fl, dbKind)
	fl.StringVar(&f.req.Method, "method", "", methods+" (required)")
	fl.Uint64Var(&f.req.Seed, "seed", 0, "random seed (batch sampling, random profiles)")
	fl.StringVar(&f.req.Out, "out", "", "profile file to write (required)")
	fl.BoolVar(&f.req.Force, "force", false, "replace an existing profile (and --scores file) written by evopress")
	fl.BoolVar(&f.json, "json", false, "print the profile as one JSON object")
	computeFlag(fl)
}

func newBaselineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "baseline drop|sparse|quant",
		Short: "Baseline compression profiles (ShortGPT, window cosine, Shortened-LLaMA, random, exhaustive, ...)",
	}
	var f baselineFlags
	dropCmd := &cobra.Command{
		Use:   "drop",
		Short: "Depth-pruning baselines: shortgpt, window-cosine, shortened-ppl, norm-ratio, random, exhaustive",
		Long: `baseline drop chooses which blocks to drop with a method EvoPress is compared against, and writes
the same profile file as "search drop" (with its "method" field set):

  shortgpt       ShortGPT block influence 1 − mean cos(block input, block output); drop the k lowest
  window-cosine  Gromov et al.: angular distance between the hidden states before and after each
                 window of k consecutive blocks, at the last token of each sequence as in the
                 paper (--window-positions all: every position); drop the closest window
  shortened-ppl  Shortened-LLaMA: calibration perplexity with each single block removed; drop the k
                 whose removal hurts least
  norm-ratio     weight subcloning: mean ‖f(x) − x‖/‖f(x)‖ per block; drop the k lowest
  random         best of N random legal profiles by KL to the dense model, with EvoPress's token
                 budget (N = EvoPress's evaluations at its defaults unless --samples)
  exhaustive     every legal profile scored by KL on one batch (refused above --max-profiles)

The first four drop k = floor(target·n) whole blocks, as in their papers. random and exhaustive
drop k attention and k MLP sub-blocks independently like "search drop", or whole blocks with
--whole-blocks. --tokens is the calibration budget: of the statistics (default: the whole pool),
of the perplexity batch (shortened-ppl, default 32768), of the fitness batch (exhaustive, default
32768), or of random's final selection batch (default 32768).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBaseline(cmd, &f) },
	}
	f.register(dropCmd, profile.ModeDrop, "shortgpt, window-cosine, shortened-ppl, norm-ratio, random or exhaustive")
	fl := dropCmd.Flags()
	r := &f.req
	fl.Float64Var(&r.Mode.Target, "target", 0, "dropped fraction: k = floor(target·blocks)")
	fl.IntVar(&r.Tokens, "tokens", 0, "calibration tokens the method uses (0: the method's default; see above)")
	fl.IntVar(&r.Samples, "samples", 0, "random: profiles drawn (0: as many as EvoPress evaluates at its defaults)")
	fl.IntVar(&r.Survivors, "survivors", 0, "random: profiles re-scored on the final batch (0: as many as EvoPress's token budget leaves)")
	fl.IntVar(&r.MaxProfiles, "max-profiles", baselines.DefaultMaxProfiles, "exhaustive: refuse spaces larger than this")
	fl.BoolVar(&r.Mode.WholeBlocks, "whole-blocks", false, "random, exhaustive: drop whole blocks (attention and MLP together)")
	fl.StringSliceVar(&r.Mode.Keep, "keep", nil, "units (or blocks, model.layers.N) that may not be dropped")
	fl.StringVar(&r.WindowPositions, "window-positions", baselines.WindowLast, "window-cosine: the last token of each sequence (Gromov et al.), or the mean over all positions")
	fl.IntVar(&r.KLTopK, "kl-topk", 0, "random, exhaustive: restrict KL to the dense model's top-k tokens (0: full)")
	fl.BoolVar(&r.NoPrefixReuse, "no-prefix-reuse", false, "recompute every candidate from the first block (slower; same result)")
	atLeast(fl, 0, "tokens", "samples", "survivors", "kl-topk")
	atLeast(fl, 1, "max-profiles")
	fl.StringVar(&r.ScoresOut, "scores", "", "random, exhaustive: also write every scored profile with its fitness (JSON) to this file")
	cmd.AddCommand(dropCmd, newBaselineDBCmd(profile.ModeSparse, "Sparsity baselines over a sparse level database: uniform, owl, dp, random", `baseline sparse allocates the database's sparsity levels to the linear layers with a method
EvoPress is compared against, under exactly the budget of "search sparse" (the levels sum to 0: the
non-zeros of uniform sparsity), and writes the same profile file (with its "method" field set):

  uniform  every layer at the database's target sparsity (level 0)
  owl      Outlier Weighted Layerwise sparsity (Yin et al. 2024): per block, the share of Wanda scores
           |W_ij|·‖x_j‖ (over the block's seven layers, ‖x_j‖ from the calibration pool through the
           dense model) above M × their mean; block sparsity s − (r_b − mean r) with the ratios
           scaled to r ∈ [0, 2λ]; each layer rounded to its nearest database level and the exact
           budget restored by the level moves that change those sparsities least; the grid
           λ ∈ {0.02, 0.05, 0.08, 0.1, 0.2} × M ∈ {3, 5, 7, 10} is scored by KL on --tokens
           calibration tokens and the best point kept
  dp       exact knapsack (dynamic programme over the sum of levels) minimising the sum of the
           database's normalised layer errors, assuming they add up
  random   best of --samples random legal profiles by KL on --tokens calibration tokens

The chosen profile's KL on the same --tokens batch is recorded as its fitness.`, "uniform, owl, dp or random"),
		newBaselineDBCmd(profile.ModeQuant, "Bit-width baselines over a quant level database: uniform, dp, random, llamacpp", `baseline quant allocates the database's bit-widths to the linear layers with a method EvoPress is
compared against, under exactly the budget of "search quant" (Σ numel·bits ≤ target·Σ numel, codes
only; the profile's values are the real bits per weight with scale/zero overhead), and writes the
same profile file (with its "method" field set):

  uniform  every layer at --target bits; a fractional target has no uniform profile, so, as in the
           paper, uniform is then the best of 32 random profiles (as random with --samples 32)
  dp       exact knapsack (dynamic programme over Σ numel·bits in units of the gcd of the layer
           sizes) minimising the sum of the database's normalised layer errors, assuming they add up
  random   best of --samples random legal profiles (every layer from the width above the target,
           random layers lowered until within budget) by KL on --tokens calibration tokens

With a gguf database (evopress db build gguf): uniform is --type T, every layer in T or llama-quantize's
fallback type (no target); llamacpp is --ftype F (Q2_K … Q6_K), every tensor in the type
llama-quantize's rules give it for that file type, as llama-quantize --ftype F would write the file
(with the database's importance matrix; no target; a type the database lacks is an error); dp minimises the summed errors under the byte budget (--target in
bytes·8/weights, or --target-size for the whole file); random draws as the search's initial profiles.

The chosen profile's KL on the same --tokens batch is recorded as its fitness.`, "uniform, dp, random or llamacpp"))
	return cmd
}

func newBaselineDBCmd(kind, short, long, methods string) *cobra.Command {
	var f baselineFlags
	cmd := &cobra.Command{Use: kind, Short: short, Long: long, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBaseline(cmd, &f) }}
	f.register(cmd, kind, methods)
	fl := cmd.Flags()
	fl.Float64Var(&f.req.Mode.Target, "target", 0, "budget: mean sparsity (sparse: must be the database's) or mean bits per weight (quant, codes only; gguf database: bytes·8/weights)")
	if kind == profile.ModeQuant {
		ggufFlags(fl, &f.req.Mode)
		fl.StringVar(&f.req.Type, "type", "", "uniform over a gguf database: the ggml type of every layer (e.g. q4_k; llama-quantize's fallback where rows do not fit)")
		fl.StringVar(&f.req.FileType, "ftype", "", "llamacpp over a gguf database: the llama.cpp file type whose per-tensor rules to apply (Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K)")
	}
	fl.IntVar(&f.req.Tokens, "tokens", pipeline.DefaultBaselineDBTokens, "calibration tokens of the batch that scores candidates (KL to the dense model)")
	fl.IntVar(&f.req.Samples, "samples", 0, fmt.Sprintf("random: profiles drawn (0: %d, the paper's best-of-32 comparator)", pipeline.DefaultBaselineDBSamples))
	atLeast(fl, 1, "tokens")
	atLeast(fl, 0, "samples")
	return cmd
}

func runBaseline(cmd *cobra.Command, f *baselineFlags) error {
	req := f.req
	req.Data = f.data.data()
	req.Command = commandLine(cmd)
	stderr := cmd.ErrOrStderr()
	req.Log = stderr
	fl := cmd.Flags()
	if req.Mode.Kind == profile.ModeQuant && !fl.Changed("target") && !fl.Changed("target-size") && req.Type == "" && req.FileType == "" && req.Method != "llamacpp" {
		return fmt.Errorf("--target is required (mean bits per weight)")
	}
	if req.Mode.Kind == profile.ModeSparse && fl.Changed("target") && req.Mode.Target == 0 {
		return fmt.Errorf("--target 0: a sparse baseline needs the database's target sparsity in (0, 1)")
	}
	if isTerminal(stderr) {
		start, line := time.Now(), progressLine(stderr, req.Method, "candidates")
		req.Progress = func(done, total int) { line(done, total, time.Since(start)) }
	}
	out, err := pipeline.RunBaseline(cmd.Context(), req)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(cmd.OutOrStdout(), out.Profile)
	}
	if out.Drop != nil {
		printBaselineDropSummary(cmd.OutOrStdout(), out.Drop, req.Out)
	} else {
		printBaselineDBSummary(cmd.OutOrStdout(), out.Profile, req.Out)
	}
	return nil
}

func printBaselineDropSummary(w io.Writer, res *baselines.Result, out string) {
	fmt.Fprintf(w, "%s: %d tokens over %d calibration chunks, %d candidate evaluations, %s\n",
		res.Method, res.Tokens, len(res.Batch.Chunks), res.Evaluations, res.Elapsed.Round(time.Millisecond))
	if res.Scores != nil {
		parts := make([]string, 0, len(res.Scores))
		for i, v := range res.Scores {
			if math.IsNaN(v) {
				parts = append(parts, fmt.Sprintf("%d:kept", i))
			} else {
				parts = append(parts, fmt.Sprintf("%d:%.4g", i, v))
			}
		}
		label := "block scores"
		if res.Method == baselines.WindowCosine {
			label = "window scores (by first block)"
		}
		fmt.Fprintf(w, "%s: %s\n", label, strings.Join(parts, " "))
	}
	if !math.IsNaN(res.Fitness) {
		fmt.Fprintf(w, "fitness %.5f (KL on %d tokens)\n", res.Fitness, res.Batch.Tokens)
	}
	fmt.Fprintf(w, "dropped attention: %v  MLP: %v\n", res.Attn, res.MLP)
	fmt.Fprintf(w, "profile written to %s\n", out)
}

func printBaselineDBSummary(w io.Writer, p *profile.Profile, out string) {
	info := p.Search
	fmt.Fprintf(w, "%s %s: %v evaluations, %.1f s\n", p.Mode, p.Method, info.Evaluations, info.ElapsedS)
	if p.Method == "owl" {
		fmt.Fprintf(w, "owl grid point λ = %v, M = %v\n", info.OWLLambda, info.OWLM)
	}
	if p.Mode == profile.ModeQuant && info.FileBytes > 0 {
		fmt.Fprintf(w, "bits per weight %.4f, GGUF file ≈ %d bytes\n", info.BitsPerWeight, info.FileBytes)
	} else if p.Mode == profile.ModeQuant {
		fmt.Fprintf(w, "bits per weight %.4f (codes %.4f)\n", info.BitsPerWeight, info.CodeBitsPerWeight)
	}
	if p.Fitness != nil {
		fmt.Fprintf(w, "fitness %.5f (KL on %v tokens)\n", *p.Fitness, info.BatchTokens)
	}
	fmt.Fprintf(w, "profile written to %s\n", out)
}
