package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/pipeline"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
)

// searchFlags are the flags of `evopress search drop|sparse|quant` (docs/design.md, "CLI").
type searchFlags struct {
	data                   dataFlags
	generations, offspring int
	initTokens             int
	stages, preset         string
	seed                   uint64
	runDir, out            string
	resume, force          bool
	fitness                string
	klTopK, subBatch       int
	logJSON, json, noReuse bool
	mode                   pipeline.ModeSpec
	nats                   natsFlags
}

func (f *searchFlags) register(cmd *cobra.Command, dbKind string) {
	fl := cmd.Flags()
	f.data.register(fl, dbKind)
	fl.Float64Var(&f.mode.Target, "target", 0, "budget: dropped fraction (drop), mean sparsity (sparse) or mean bits (quant)")
	fl.IntVar(&f.generations, "generations", 0, "generations (default: the mode's)")
	fl.IntVar(&f.offspring, "offspring", 0, "offspring per generation, λ (default: the mode's)")
	fl.IntVar(&f.initTokens, "init-tokens", 0, "tokens to score the initial candidates on (default 2048)")
	fl.StringVar(&f.stages, "stages", "", `selection stages "survivors:tokens,...", e.g. "2:2048,1:32768"`)
	fl.StringVar(&f.preset, "preset", "paper", "fast (λ=16, stages 4:512,1:8192) or paper (the reference defaults); explicit flags override")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed")
	fl.StringVar(&f.runDir, "run-dir", "", "run folder for checkpoint, log and report (default: --out with .json replaced by .run)")
	fl.StringVar(&f.out, "out", "", "profile file to write (required)")
	fl.BoolVar(&f.resume, "resume", false, "continue from the run folder's checkpoint (starts fresh when there is none); refused if the objective changed")
	fl.BoolVar(&f.force, "force", false, "start afresh over an earlier run's profile and run folder (without it they are refused)")
	fl.StringVar(&f.fitness, "fitness", "kl", "fitness: kl (to the dense model) or ppl")
	fl.IntVar(&f.klTopK, "kl-topk", 0, "restrict KL to the dense model's top-k tokens (0: full distributions)")
	fl.IntVar(&f.subBatch, "sub-batch", pipeline.DefaultSubBatch, "calibration sequences per forward; with several workers, batches are split into these (fitness sums in float64 follow this grouping)")
	atLeast(fl, 0, "generations", "kl-topk")
	atLeast(fl, 1, "offspring", "init-tokens", "sub-batch")
	fl.BoolVar(&f.logJSON, "log-json", false, "progress as JSON lines on stderr instead of a progress line")
	fl.BoolVar(&f.noReuse, "no-prefix-reuse", false, "recompute every candidate from the first block (slower; same result)")
	fl.BoolVar(&f.json, "json", false, "print the result as one JSON object")
	computeFlag(fl)
	f.nats.registerSearch(cmd)
}

func (f *searchFlags) overrides(cmd *cobra.Command) (search.Overrides, error) {
	set := func(name string, p *int) *int {
		if cmd.Flags().Changed(name) {
			return p
		}
		return nil
	}
	o := search.Overrides{Generations: set("generations", &f.generations), Offspring: set("offspring", &f.offspring),
		InitTokens: set("init-tokens", &f.initTokens)}
	if cmd.Flags().Changed("stages") {
		st, err := search.ParseStages(f.stages)
		if err != nil {
			return o, fmt.Errorf("--stages: %w", err)
		}
		o.Stages = st
	}
	return o, nil
}

func newSearchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "search drop|sparse|quant",
		Short: "Evolutionary search of a compression profile",
		Long: `search runs the (1+λ) evolutionary search of a compression profile for one mode.

Candidates are scored by workers through NATS: by default one in-process worker on an embedded
server (--workers N for more); --nats-listen HOST:PORT lets evopress worker processes on other hosts
join, --nats URL uses a NATS server of your own. The same seed gives the same profile with any
number of workers, and workers that die mid-search have their candidates re-sent (docs/cluster.md).`,
	}
	drop := newSearchModeCmd(profile.ModeDrop, "drop", "Depth pruning: which attention and MLP sub-blocks to drop",
		`search drop removes exactly k = floor(target·n) attention sub-blocks and k MLP sub-blocks
(or k whole blocks with --whole-blocks) of an n-block model, choosing which by (1+λ) evolution with
multi-step selection, scoring candidates by KL divergence to the dense model on calibration text.
Defaults follow the EvoPress reference: λ = 32, stages 2:2048,1:32768, floor(k(n−k)/1.5) generations.`)
	sparse := newSearchModeCmd(profile.ModeSparse, "sparse", "Per-layer unstructured sparsity levels from a sparse level database",
		`search sparse assigns every linear layer a sparsity level of the database (built with
evopress db build sparse for one target s) so that the total number of non-zeros stays exactly that
of uniform sparsity s. Defaults follow the EvoPress reference: λ = 64, stages 8:2048,2:16384,1:65536,
400 generations; --preset fast for λ = 16, stages 4:512,1:8192.`)
	quant := newSearchModeCmd(profile.ModeQuant, "quant", "Per-layer bit-widths from a quantization level database",
		`search quant assigns every linear layer a bit-width of the database (built with evopress db build
quant) so that Σ numel·bits ≤ target·Σ numel (codes only; the profile's values report the real bits
per weight including scale/zero overhead). Fractional targets (2.25, 2.5, 3.5) start from the best of
several random profiles. Defaults follow the EvoPress reference: λ = 128, stages
16:2048,4:16384,1:131072, 150 generations; --preset fast for λ = 16, stages 4:512,1:8192.

With a gguf database (evopress db build gguf) the levels are llama.cpp's tensor types and the budget
is what the tensors take: --target is bytes·8/weights of the linear layers (block scales included),
or --target-size the whole GGUF file, its other tensors (--token-embedding-type,
--output-tensor-type, norms in F32) and metadata taken off. A switch raises one layer a type, then
trades exactly (another layer down the same number of bytes) or lowers random layers until within
budget and raises random ones while a type fits, so the budget is never exceeded and is left unspent
only below the smallest step a layer could take (design: package search/quant).`)
	cmd.AddCommand(drop, sparse, quant)
	return cmd
}

func newSearchModeCmd(kind, use, short, long string) *cobra.Command {
	var f searchFlags
	f.mode.Kind = kind
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSearch(cmd, &f) }}
	dbKind := kind
	if kind == profile.ModeDrop {
		dbKind = ""
	}
	f.register(cmd, dbKind)
	fl := cmd.Flags()
	switch kind {
	case profile.ModeDrop:
		fl.BoolVar(&f.mode.WholeBlocks, "whole-blocks", false, "drop whole blocks (attention and MLP together)")
		fl.StringSliceVar(&f.mode.Keep, "keep", nil, "units (or blocks, model.layers.N) that may not be dropped")
	case profile.ModeSparse:
		fl.StringVar(&f.mode.GroupBy, "group-by", "", "which layers may trade levels: none (default: every layer shares one weights-diff), size or kind")
	case profile.ModeQuant:
		fl.StringVar(&f.mode.GroupBy, "group-by", "", "which layers may trade bits: size (default; none with a gguf database), kind or none")
		ggufFlags(fl, &f.mode)
	}
	return cmd
}

// runSearch turns the flags into a pipeline.SearchRequest, runs it and prints the outcome.
func runSearch(cmd *cobra.Command, f *searchFlags) error {
	ov, err := f.overrides(cmd)
	if err != nil {
		return err
	}
	if f.mode.Kind == profile.ModeSparse && cmd.Flags().Changed("target") && f.mode.Target == 0 {
		return fmt.Errorf("--target 0: a sparse search needs the database's target sparsity in (0, 1)")
	}
	stderr := cmd.ErrOrStderr()
	co, err := f.nats.cluster(cmd, stderr, f.logJSON)
	if err != nil {
		return err
	}
	req := pipeline.SearchRequest{Data: f.data.data(), Mode: f.mode, Preset: f.preset, Settings: ov, Seed: f.seed,
		Fitness: f.fitness, KLTopK: f.klTopK, SubBatch: f.subBatch, NoPrefixReuse: f.noReuse,
		Out: f.out, RunDir: f.runDir, Resume: f.resume, Force: f.force, Cluster: co, Command: commandLine(cmd), Log: stderr}
	if f.logJSON {
		req.Observer = search.NewJSONLogger(stderr).Observe
	} else {
		pp := search.NewProgressPrinter(stderr)
		pp.Terminal = isTerminal(stderr)
		defer pp.Finish()
		req.Observer = pp.Observe
	}
	out, err := pipeline.RunSearch(cmd.Context(), req)
	if err != nil {
		return err
	}
	printReportFiles(stderr, out.Report)
	if f.json {
		return printJSON(cmd.OutOrStdout(), out.Profile)
	}
	printSearchSummary(cmd.OutOrStdout(), out)
	return nil
}

func printSearchSummary(w io.Writer, out *pipeline.SearchOutcome) {
	p, res := out.Profile, out.Result
	fmt.Fprintf(w, "%s search: %d generations, %d evaluations, %d tokens scored in %s\n",
		p.Mode, res.Generations, res.Evaluations, res.Tokens, res.Elapsed.Round(time.Second))
	if run, full := out.Cluster.BlocksRun, out.Cluster.BlocksFull; full > 0 {
		fmt.Fprintf(w, "prefix reuse: %d of %d block forwards computed (%.0f%% saved)\n", run, full, 100*(1-float64(run)/float64(full)))
	}
	if p.Fitness != nil {
		fmt.Fprintf(w, "fitness %.5f\n", *p.Fitness)
	}
	if p.Mode == profile.ModeDrop {
		var dropped []string
		for _, u := range p.Units() {
			if p.Levels[u] == 1 {
				dropped = append(dropped, strings.TrimPrefix(u, arch.LayersPrefix))
			}
		}
		fmt.Fprintf(w, "dropped: %s\n", strings.Join(dropped, " "))
	}
	fmt.Fprintf(w, "profile written to %s\n", out.Out)
}

// clusterLogger logs cluster events on w: JSON lines with --log-json, else text.
func clusterLogger(w io.Writer, jsonLines bool, level slog.Level) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if jsonLines {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
