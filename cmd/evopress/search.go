package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/cluster"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/internal/atomicfile"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
)

// searchFlags are the flags every search mode shares (design note's CLI contract).
type searchFlags struct {
	model, calib           string
	seqLen, calibTokens    int
	generations, offspring int
	initTokens             int
	stages, preset         string
	seed                   uint64
	runDir, out            string
	resume                 bool
	fitness                string
	klTopK                 int
	cacheMB, subBatch      int
	logJSON, json, noReuse bool
	target                 float64
	wholeBlocks            bool
	keep                   []string
	nats                   natsFlags
}

func (f *searchFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "Hugging Face model directory (default: the embedded llama-pd-11m)")
	fl.StringVar(&f.calib, "calib", "", "calibration text file (default: the embedded calibration text)")
	fl.Float64Var(&f.target, "target", 0, "budget: dropped fraction (drop), mean sparsity (sparse) or mean bits (quant)")
	fl.IntVar(&f.seqLen, "seq-len", 256, "tokens per calibration sequence")
	fl.IntVar(&f.calibTokens, "calib-tokens", 131072, "calibration pool: the first N tokens' chunks (0: the whole file)")
	fl.IntVar(&f.generations, "generations", 0, "generations (default: the mode's)")
	fl.IntVar(&f.offspring, "offspring", 0, "offspring per generation, λ (default: the mode's)")
	fl.IntVar(&f.initTokens, "init-tokens", 0, "tokens to score the initial candidates on (default 2048)")
	fl.StringVar(&f.stages, "stages", "", `selection stages "survivors:tokens,...", e.g. "2:2048,1:32768"`)
	fl.StringVar(&f.preset, "preset", "paper", "fast (λ=16, stages 4:512,1:8192) or paper (the reference defaults); explicit flags override")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed")
	fl.StringVar(&f.runDir, "run-dir", "", "run folder for checkpoint, log and report (default: --out with .json replaced by .run)")
	fl.StringVar(&f.out, "out", "", "profile file to write (required)")
	fl.BoolVar(&f.resume, "resume", false, "continue from the run folder's checkpoint (starts fresh when there is none)")
	fl.StringVar(&f.fitness, "fitness", "kl", "fitness: kl (to the dense model) or ppl")
	fl.IntVar(&f.klTopK, "kl-topk", 0, "restrict KL to the dense model's top-k tokens (0: full distributions)")
	fl.IntVar(&f.cacheMB, "cache-mb", 2048, "memory for cached dense distributions (MiB)")
	fl.IntVar(&f.subBatch, "sub-batch", 16, "calibration sequences per forward; with several workers, batches are split into these (fitness sums in float64 follow this grouping)")
	fl.BoolVar(&f.logJSON, "log-json", false, "progress as JSON lines on stderr instead of a progress line")
	fl.BoolVar(&f.noReuse, "no-prefix-reuse", false, "recompute every candidate from the first block (slower; same result)")
	fl.BoolVar(&f.json, "json", false, "print the result as one JSON object")
	f.nats.registerSearch(cmd)
}

func (f *searchFlags) overrides(cmd *cobra.Command) (search.Overrides, error) {
	var o search.Overrides
	fl := cmd.Flags()
	if fl.Changed("generations") {
		o.Generations = &f.generations
	}
	if fl.Changed("offspring") {
		o.Offspring = &f.offspring
	}
	if fl.Changed("init-tokens") {
		o.InitTokens = &f.initTokens
	}
	if fl.Changed("stages") {
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
	var f searchFlags
	dropCmd := &cobra.Command{
		Use:   "drop",
		Short: "Depth pruning: which attention and MLP sub-blocks to drop",
		Long: `search drop removes exactly k = floor(target·n) attention sub-blocks and k MLP sub-blocks
(or k whole blocks with --whole-blocks) of an n-block model, choosing which by (1+λ) evolution with
multi-step selection, scoring candidates by KL divergence to the dense model on calibration text.
Defaults follow the EvoPress reference: λ = 32, stages 2:2048,1:32768, floor(k(n−k)/1.5) generations.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSearch(cmd, &f, func(lm *loaded) (search.Mode, *db.DB, error) {
				mode, err := drop.New(len(lm.Model.Blocks), f.target, drop.Options{WholeBlocks: f.wholeBlocks, Keep: f.keep})
				return mode, nil, err
			})
		},
	}
	f.register(dropCmd)
	dropCmd.Flags().BoolVar(&f.wholeBlocks, "whole-blocks", false, "drop whole blocks (attention and MLP together)")
	dropCmd.Flags().StringSliceVar(&f.keep, "keep", nil, "units (or blocks, model.layers.N) that may not be dropped")
	cmd.AddCommand(dropCmd, newSearchSparseCmd(), newSearchQuantCmd())
	return cmd
}

// searchSetup makes a mode for a loaded model, with the level database it draws on (nil for
// drop).
type searchSetup func(lm *loaded) (search.Mode, *db.DB, error)

// annotator fills a mode's extra profile fields (db, values) for a final profile.
type annotator interface {
	annotate(p *profile.Profile, levels search.Profile) error
}

// runSearch is the search pipeline every mode shares: load, calibrate, run the engine with
// checkpoints, write the profile.
func runSearch(cmd *cobra.Command, f *searchFlags, setup searchSetup) error {
	if f.out == "" {
		return fmt.Errorf("--out is required (the profile file to write)")
	}
	kind, err := fitness.ParseKind(f.fitness)
	if err != nil {
		return err
	}
	if f.subBatch < 1 {
		return fmt.Errorf("--sub-batch %d: must be ≥ 1", f.subBatch)
	}
	ov, err := f.overrides(cmd)
	if err != nil {
		return err
	}
	lm, err := loadModel(f.model)
	if err != nil {
		return err
	}
	mode, levelDB, err := setup(lm)
	if err != nil {
		return err
	}
	settings, err := search.ResolveSettings(f.preset, mode.Defaults(), ov)
	if err != nil {
		return err
	}
	text, calibSource, err := readText(f.calib, assets.CalibText, data.Raw)
	if err != nil {
		return err
	}
	pool, err := data.CalibrationPool(lm.Tok.Encode(text, false), f.seqLen, f.calibTokens)
	if err != nil {
		return fmt.Errorf("%s: %w", calibSource, err)
	}
	cfg := search.NewConfig(settings, f.seed, f.seqLen, len(pool))
	teacher, err := fitness.NewTeacher(lm.Model, pool, fitness.Options{TopK: f.klTopK, CacheBytes: int64(f.cacheMB) << 20})
	if err != nil {
		return err
	}
	resources := newWorkerResources(lm, text, calibSource, levelDB, f.cacheMB)
	job := cluster.Job{Mode: mode.Name(), Units: mode.Units(), Model: lm.Name, ModelFingerprint: lm.Fingerprint,
		CalibSHA256: resources.sha, SeqLen: f.seqLen, CalibTokens: f.calibTokens, PoolChunks: len(pool),
		Fitness: string(kind), TopK: f.klTopK, PrefixReuse: !f.noReuse, SubBatch: f.subBatch, Kernels: kernels.Implementation()}
	if levelDB != nil {
		job.DBFingerprint = levelDB.Fingerprint()
	}
	resources.seedTeacher(&job, teacher)

	runDir := f.runDir
	if runDir == "" {
		runDir = strings.TrimSuffix(f.out, ".json") + ".run"
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	ckPath := filepath.Join(runDir, "checkpoint.json")
	stderr := cmd.ErrOrStderr()
	opts := []search.Option{search.WithCheckpointer(&search.FileCheckpointer{Path: ckPath})}
	if f.resume {
		st, err := search.LoadCheckpoint(ckPath)
		switch {
		case err == nil:
			fmt.Fprintf(stderr, "resuming %s from generation %d\n", ckPath, st.Generation)
			opts = append(opts, search.WithResume(st))
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(stderr, "no checkpoint at %s: starting fresh\n", ckPath)
		default:
			return err
		}
	}
	logFile, err := os.OpenFile(filepath.Join(runDir, "log.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	fileLog := search.NewJSONLogger(logFile)
	var screen search.Observer
	if f.logJSON {
		screen = search.NewJSONLogger(stderr).Observe
	} else {
		pp := search.NewProgressPrinter(stderr)
		if file, ok := stderr.(*os.File); !ok || !isTerminal(file) {
			pp.Terminal = false
		}
		defer pp.Finish()
		screen = pp.Observe
	}
	opts = append(opts, search.WithObserver(func(p search.Progress) {
		fileLog.Observe(p)
		screen(p)
	}))
	logLevel := slog.LevelWarn // a search on this machine only: nothing to say unless it goes wrong
	if f.nats.url != "" || f.nats.listen != "" {
		logLevel = slog.LevelInfo
	}
	ec, err := startCluster(cmd.Context(), cmd, &f.nats, job, resources, clusterLogger(stderr, f.logJSON, logLevel))
	if err != nil {
		return err
	}
	defer ec.Close()
	ev := ec.co
	opts = append(opts, search.WithWorkerStatus(ev.Workers))
	fmt.Fprintf(stderr, "search %s on %s: %d units, λ=%d, stages %s, %d generations, seed %d, pool %d×%d tokens from %s\n",
		mode.Name(), lm.Name, len(mode.Units()), cfg.Offspring, search.FormatStages(cfg.Stages), cfg.Generations, cfg.Seed, len(pool), f.seqLen, calibSource)

	start := time.Now()
	res, err := search.Run(cmd.Context(), cfg, mode, ev, opts...)
	if err != nil {
		if errors.Is(err, cmd.Context().Err()) {
			fmt.Fprintf(stderr, "interrupted: resume with the same command and --resume (checkpoint %s)\n", ckPath)
		}
		return err
	}
	cst := ev.Stats()
	run, full := cst.BlocksRun, cst.BlocksFull
	p := profile.New(mode.Name())
	p.Target = f.target
	p.Model = &profile.Ref{Path: lm.Name, Fingerprint: lm.Fingerprint}
	for i, u := range res.Units {
		p.Levels[u] = res.Profile[i]
	}
	if fv := res.Fitness; fv == fv {
		p.Fitness = &fv
	}
	p.Method = "evopress"
	p.Search = map[string]any{
		"seed": cfg.Seed, "generations": res.Generations, "offspring": cfg.Offspring,
		"stages": search.FormatStages(cfg.Stages), "init_tokens": cfg.InitTokens, "seq_len": f.seqLen,
		"calib": calibSource, "calib_chunks": len(pool), "fitness": string(kind), "kl_topk": f.klTopK,
		"evaluations": res.Evaluations, "tokens": res.Tokens, "elapsed_s": res.Elapsed.Seconds(),
		"this_run_s": time.Since(start).Seconds(), "blocks_computed": run, "blocks_full_forward": full,
		"command": commandLine(cmd), "workers": len(ev.Workers()), "resent_tasks": cst.Resent, "sub_batch": f.subBatch, "range_tasks": cst.RangeTasks,
	}
	if an, ok := mode.(annotator); ok {
		if err := an.annotate(p, res.Profile); err != nil {
			return err
		}
	}
	if err := p.Write(f.out); err != nil {
		return err
	}
	resJSON, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(runDir, "result.json"), resJSON, 0o644); err != nil {
		return err
	}
	if err := writeSearchReport(stderr, runDir, f.out); err != nil {
		return err
	}
	if f.json {
		return printJSON(cmd.OutOrStdout(), p)
	}
	printSearchSummary(cmd.OutOrStdout(), p, res, run, full, f.out)
	return nil
}

func printSearchSummary(w io.Writer, p *profile.Profile, res *search.Result, run, full int64, out string) {
	fmt.Fprintf(w, "%s search: %d generations, %d evaluations, %d tokens scored in %s\n",
		p.Mode, res.Generations, res.Evaluations, res.Tokens, res.Elapsed.Round(time.Second))
	if full > 0 {
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
	fmt.Fprintf(w, "profile written to %s\n", out)
}

// commandLine reconstructs the command as typed: its path and the flags that were set.
func commandLine(cmd *cobra.Command) string {
	parts := []string{cmd.CommandPath()}
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		v := fl.Value.String()
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			v = strings.Join(sv.GetSlice(), ",")
		}
		if fl.Value.Type() == "bool" {
			parts = append(parts, "--"+fl.Name)
			if v != "true" {
				parts[len(parts)-1] += "=" + v
			}
			return
		}
		if v == "" || strings.ContainsAny(v, " \t'\"$") {
			v = "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
		}
		parts = append(parts, "--"+fl.Name, v)
	})
	return strings.Join(parts, " ")
}
