package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/allocate"
	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/baselines"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/sparse"
)

// Defaults of `evopress baseline sparse|quant`.
const (
	// defaultBaselineDBTokens is the calibration batch that scores OWL's grid points and random
	// profiles: the final stage of --preset fast (8192 tokens).
	defaultBaselineDBTokens = 8192
	// defaultBaselineDBSamples is random's number of profiles: the paper's best-of-32 comparator.
	defaultBaselineDBSamples = allocate.FractionalRandomDraws
	// scoreGroup is how many candidates one Evaluate call scores.
	scoreGroup = 16
)

// baselineDBFlags are the flags of `evopress baseline sparse|quant`.
type baselineDBFlags struct {
	method, model, calib, dbDir, out string
	target                           float64
	seqLen, calibTokens, tokens      int
	samples, dbCacheMB, cacheMB      int
	seed                             uint64
	json                             bool
}

func (f *baselineDBFlags) register(cmd *cobra.Command, methods string) {
	fl := cmd.Flags()
	fl.StringVar(&f.method, "method", "", methods+" (required)")
	fl.StringVar(&f.model, "model", "", "Hugging Face model directory (default: the embedded llama-pd-11m)")
	fl.StringVar(&f.dbDir, "db", "", "level database (evopress db build "+cmd.Name()+")")
	fl.Float64Var(&f.target, "target", 0, "budget: mean sparsity (sparse: must be the database's) or mean bits per weight (quant, codes only)")
	fl.StringVar(&f.calib, "calib", "", "calibration text file (default: the embedded calibration text)")
	fl.IntVar(&f.seqLen, "seq-len", 256, "tokens per calibration sequence")
	fl.IntVar(&f.calibTokens, "calib-tokens", 131072, "calibration pool: the first N tokens' chunks (0: the whole file)")
	fl.IntVar(&f.tokens, "tokens", defaultBaselineDBTokens, "calibration tokens of the batch that scores candidates (KL to the dense model)")
	fl.IntVar(&f.samples, "samples", 0, fmt.Sprintf("random: profiles drawn (0: %d, the paper's best-of-32 comparator)", defaultBaselineDBSamples))
	fl.Uint64Var(&f.seed, "seed", 0, "random seed (scoring batch, random profiles)")
	fl.StringVar(&f.out, "out", "", "profile file to write (required)")
	fl.BoolVar(&f.json, "json", false, "print the profile as one JSON object")
	fl.IntVar(&f.dbCacheMB, "db-cache-mb", 1024, "memory for decoded database levels (MiB)")
	fl.IntVar(&f.cacheMB, "cache-mb", 2048, "memory for cached dense distributions (MiB)")
}

func newBaselineSparseCmd() *cobra.Command {
	var f baselineDBFlags
	cmd := &cobra.Command{
		Use:   "sparse",
		Short: "Sparsity baselines over a sparse level database: uniform, owl, dp, random",
		Long: `baseline sparse allocates the database's sparsity levels to the linear layers with a method
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

The chosen profile's KL on the same --tokens batch is recorded as its fitness.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBaselineDB(cmd, &f, db.ModeSparse) },
	}
	f.register(cmd, "uniform, owl, dp or random")
	return cmd
}

func newBaselineQuantCmd() *cobra.Command {
	var f baselineDBFlags
	cmd := &cobra.Command{
		Use:   "quant",
		Short: "Bit-width baselines over a quant level database: uniform, dp, random",
		Long: `baseline quant allocates the database's bit-widths to the linear layers with a method EvoPress is
compared against, under exactly the budget of "search quant" (Σ numel·bits ≤ target·Σ numel, codes
only; the profile's values are the real bits per weight with scale/zero overhead), and writes the
same profile file (with its "method" field set):

  uniform  every layer at --target bits; a fractional target has no uniform profile, so, as in the
           paper, uniform is then the best of 32 random profiles (as random with --samples 32)
  dp       exact knapsack (dynamic programme over Σ numel·bits in units of the gcd of the layer
           sizes) minimising the sum of the database's normalised layer errors, assuming they add up
  random   best of --samples random legal profiles (every layer from the width above the target,
           random layers lowered until within budget) by KL on --tokens calibration tokens

The chosen profile's KL on the same --tokens batch is recorded as its fitness.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBaselineDB(cmd, &f, db.ModeQuant) },
	}
	f.register(cmd, "uniform, dp or random")
	return cmd
}

// dbScorer scores profiles of a database by KL to the dense model on one calibration batch.
type dbScorer struct {
	ev    *fitness.Evaluator
	batch search.Batch
	evals int64
}

func (s *dbScorer) score(ctx context.Context, cands []search.Profile) ([]float64, error) {
	out := make([]float64, 0, len(cands))
	for lo := 0; lo < len(cands); lo += scoreGroup {
		hi := min(lo+scoreGroup, len(cands))
		f, err := s.ev.Evaluate(ctx, nil, cands[lo:hi], s.batch)
		if err != nil {
			return nil, err
		}
		out = append(out, f...)
		s.evals += int64(hi - lo)
	}
	return out, nil
}

func runBaselineDB(cmd *cobra.Command, f *baselineDBFlags, mode string) error {
	methods := "uniform, owl, dp or random"
	if mode == db.ModeQuant {
		methods = "uniform, dp or random"
	}
	switch f.method {
	case "uniform", "dp", "random":
	case "owl":
		if mode == db.ModeQuant {
			return fmt.Errorf("--method owl is a sparsity method; baseline quant has %s", methods)
		}
	case "":
		return fmt.Errorf("--method is required (%s)", methods)
	default:
		return fmt.Errorf("--method %q: want %s", f.method, methods)
	}
	if f.out == "" {
		return fmt.Errorf("--out is required (the profile file to write)")
	}
	if f.tokens < 1 {
		return fmt.Errorf("--tokens %d: want at least 1", f.tokens)
	}
	if f.samples < 0 {
		return fmt.Errorf("--samples %d: want at least 1 (0 for %d)", f.samples, defaultBaselineDBSamples)
	}
	if mode == db.ModeQuant && !cmd.Flags().Changed("target") {
		return fmt.Errorf("--target is required (mean bits per weight)")
	}
	start := time.Now()
	lm, err := loadModel(f.model)
	if err != nil {
		return err
	}
	d, err := openDB(f.dbDir, lm, f.dbCacheMB, mode)
	if err != nil {
		return err
	}
	man := d.Manifest()
	var (
		units   []string
		inner   search.Mode
		errs    [][]float64
		sparseC sparse.Config
		quantC  quant.Config
	)
	if mode == db.ModeSparse {
		if sparseC, errs, err = allocate.SparseProblem(man); err != nil {
			return err
		}
		if cmd.Flags().Changed("target") && math.Abs(f.target-man.Sparse.Target) > 1e-9 {
			return fmt.Errorf("--target %v: database %s serves sparsity %v (build a database for this target)", f.target, f.dbDir, man.Sparse.Target)
		}
		f.target = man.Sparse.Target
		m, err := sparse.New(sparseC)
		if err != nil {
			return err
		}
		inner, units = m, m.Units()
	} else {
		if quantC, errs, err = allocate.QuantProblem(man, f.target); err != nil {
			return err
		}
		m, err := quant.New(quantC)
		if err != nil {
			return err
		}
		inner, units = m, m.Units()
	}
	dm := &dbMode{Mode: inner, d: d, units: units}

	// Calibration pool and scorer (every method's final profile gets its KL on the batch).
	text, calibSource, err := readText(f.calib, assets.CalibText, data.Raw)
	if err != nil {
		return err
	}
	pool, err := data.CalibrationPool(lm.Tok.Encode(text, false), f.seqLen, f.calibTokens)
	if err != nil {
		return fmt.Errorf("%s: %w", calibSource, err)
	}
	teacher, err := fitness.NewTeacher(lm.Model, pool, fitness.Options{CacheBytes: int64(f.cacheMB) << 20})
	if err != nil {
		return err
	}
	ev, err := fitness.NewEvaluator(teacher, units, dbBuilder(d, lm.Model, units), fitness.KL)
	if err != nil {
		return err
	}
	sc := &dbScorer{ev: ev, batch: baselines.SampleBatch(len(pool), f.seqLen, f.tokens, f.seed, 0)}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	stderr := cmd.ErrOrStderr()
	fmt.Fprintf(stderr, "baseline %s %s on %s: %d layers, target %v, pool %d×%d tokens from %s, scoring batch %d tokens\n",
		mode, f.method, lm.Name, len(units), f.target, len(pool), f.seqLen, calibSource, sc.batch.Tokens)

	info := map[string]any{"seed": f.seed, "seq_len": f.seqLen, "calib": calibSource, "calib_chunks": len(pool),
		"fitness": string(fitness.KL), "batch_tokens": sc.batch.Tokens}
	method := f.method
	var levels search.Profile
	bestOf := func(cands []search.Profile) error {
		best, fit, err := allocate.Best(ctx, cands, sc.score)
		if err != nil {
			return err
		}
		levels = cands[best]
		info["candidates"] = len(cands)
		info["candidate_fitness"] = fit
		info["best_index"] = best
		return nil
	}
	randomProfiles := func(n int) ([]search.Profile, error) {
		if mode == db.ModeSparse {
			return allocate.RandomSparse(sparseC, n, f.seed)
		}
		return allocate.RandomQuant(quantC, n, f.seed)
	}
	samples := f.samples
	if samples == 0 {
		samples = defaultBaselineDBSamples
	}
	switch {
	case method == "uniform" && mode == db.ModeSparse:
		levels, err = allocate.UniformSparse(sparseC)
	case method == "uniform":
		levels, err = allocate.UniformQuant(quantC)
		if err != nil && math.Round(f.target) != f.target {
			// A fractional target: uniform is undefined; the paper's comparator is the best of 32
			// random profiles.
			n := allocate.FractionalRandomDraws
			if f.samples > 0 {
				n = f.samples
			}
			fmt.Fprintf(stderr, "target %v is fractional: no uniform profile; using the best of %d random profiles (as the paper)\n", f.target, n)
			info["uniform"] = fmt.Sprintf("fractional target: best of %d random profiles", n)
			var cands []search.Profile
			if cands, err = randomProfiles(n); err == nil {
				err = bestOf(cands)
			}
		}
	case method == "dp":
		var total float64
		if mode == db.ModeSparse {
			levels, total, err = allocate.DPSparse(sparseC, errs)
		} else {
			levels, total, err = allocate.DPQuant(quantC, errs)
		}
		info["sum_error"] = total
	case method == "random":
		var cands []search.Profile
		if cands, err = randomProfiles(samples); err == nil {
			err = bestOf(cands)
		}
	case method == "owl":
		err = runOWL(ctx, f, lm, pool, sparseC, sc, info, stderr, &levels)
	}
	if err != nil {
		return err
	}
	if !inner.Legal(levels) {
		return fmt.Errorf("internal error: %s profile is not legal", method)
	}
	fit, err := sc.score(ctx, []search.Profile{levels})
	if err != nil {
		return err
	}
	p := profile.New(mode)
	p.Target = f.target
	p.Model = &profile.Ref{Path: lm.Name, Fingerprint: lm.Fingerprint}
	for i, u := range units {
		p.Levels[u] = levels[i]
	}
	if !math.IsNaN(fit[0]) {
		p.Fitness = &fit[0]
	}
	p.Method = method
	_, _, tokens := ev.Stats()
	info["evaluations"] = sc.evals
	info["tokens"] = tokens
	info["elapsed_s"] = time.Since(start).Seconds()
	if mode == db.ModeQuant {
		qm := inner.(*quant.Mode)
		info["code_bits_per_weight"] = float64(qm.CodeBits(levels)) / float64(qm.TotalWeights())
	}
	p.Search = info
	if err := dm.annotate(p, levels); err != nil {
		return err
	}
	if mode == db.ModeQuant {
		info["bits_per_weight"] = realBits(p, man)
	}
	if err := p.Write(f.out); err != nil {
		return err
	}
	if f.json {
		return printJSON(cmd.OutOrStdout(), p)
	}
	printBaselineDBSummary(cmd.OutOrStdout(), p, info, f.out)
	return nil
}

// realBits is the mean storage cost of a quant profile in bits per weight, scale/zero overhead
// included (the values weighted by numel).
func realBits(p *profile.Profile, man *db.Manifest) float64 {
	var bits, n float64
	for _, l := range man.Layers {
		bits += p.Values[l.Name] * float64(l.Numel)
		n += float64(l.Numel)
	}
	return bits / n
}

// runOWL computes the outlier ratios, the grid's profiles, scores the distinct ones and keeps
// the best grid point.
func runOWL(ctx context.Context, f *baselineDBFlags, lm *loaded, pool [][]int, cfg sparse.Config, sc *dbScorer,
	info map[string]any, stderr io.Writer, levels *search.Profile) error {
	t0 := time.Now()
	ratios, err := allocate.OutlierRatios(ctx, lm.Model, pool, allocate.OWLMs, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "owl: outlier ratios of %d blocks over %d calibration sequences in %s\n", len(lm.Model.Blocks), len(pool), time.Since(t0).Round(time.Millisecond))
	cands, err := allocate.OWLGrid(cfg, ratios, allocate.OWLLambdas, allocate.OWLMs)
	if err != nil {
		return err
	}
	ps := make([]search.Profile, len(cands))
	for i, c := range cands {
		ps[i] = c.Profile
	}
	uniq, index := allocate.UniqueProfiles(ps)
	best, fit, err := allocate.Best(ctx, uniq, sc.score)
	if err != nil {
		return err
	}
	// The first grid point (λ-major order) whose profile is the best one.
	chosen := -1
	grid := make([]map[string]any, len(cands))
	for i, c := range cands {
		grid[i] = map[string]any{"lambda": c.Lambda, "m": c.M, "fitness": fit[index[i]], "block_sparsity": c.BlockSparsity}
		if chosen < 0 && index[i] == best {
			chosen = i
		}
	}
	ratioInfo := map[string]any{}
	for k, m := range allocate.OWLMs {
		ratioInfo[fmt.Sprint(m)] = ratios[k]
	}
	*levels = uniq[best]
	info["owl_lambda"] = cands[chosen].Lambda
	info["owl_m"] = cands[chosen].M
	info["owl_block_sparsity"] = cands[chosen].BlockSparsity
	info["owl_outlier_ratios"] = ratioInfo
	info["owl_grid"] = grid
	info["candidates"] = len(uniq)
	return nil
}

func printBaselineDBSummary(w io.Writer, p *profile.Profile, info map[string]any, out string) {
	fmt.Fprintf(w, "%s %s: %v evaluations, %.1f s\n", p.Mode, p.Method, info["evaluations"], info["elapsed_s"])
	if v, ok := info["owl_lambda"]; ok {
		fmt.Fprintf(w, "owl grid point λ = %v, M = %v\n", v, info["owl_m"])
	}
	if v, ok := info["bits_per_weight"]; ok {
		fmt.Fprintf(w, "bits per weight %.4f (codes %.4f)\n", v, info["code_bits_per_weight"])
	}
	if p.Fitness != nil {
		fmt.Fprintf(w, "fitness %.5f (KL on %v tokens)\n", *p.Fitness, info["batch_tokens"])
	}
	fmt.Fprintf(w, "profile written to %s\n", out)
}
