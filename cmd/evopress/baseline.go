package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/baselines"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/internal/atomicfile"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search/drop"
)

// baselineFlags are the flags of `evopress baseline drop`.
type baselineFlags struct {
	method, model, calib string
	target               float64
	seqLen, calibTokens  int
	tokens, samples      int
	survivors            int
	maxProfiles          int
	seed                 uint64
	out, scores          string
	json, wholeBlocks    bool
	noReuse              bool
	keep                 []string
	windowPositions      string
	klTopK, cacheMB      int
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
		RunE: func(cmd *cobra.Command, _ []string) error { return runBaselineDrop(cmd, &f) },
	}
	fl := dropCmd.Flags()
	fl.StringVar(&f.method, "method", "", "shortgpt, window-cosine, shortened-ppl, norm-ratio, random or exhaustive (required)")
	fl.Float64Var(&f.target, "target", 0, "dropped fraction: k = floor(target·blocks)")
	fl.StringVar(&f.model, "model", "", "Hugging Face model directory (default: the embedded llama-pd-11m)")
	fl.StringVar(&f.calib, "calib", "", "calibration text file (default: the embedded calibration text)")
	fl.IntVar(&f.seqLen, "seq-len", 256, "tokens per calibration sequence")
	fl.IntVar(&f.calibTokens, "calib-tokens", 131072, "calibration pool: the first N tokens' chunks (0: the whole file)")
	fl.IntVar(&f.tokens, "tokens", 0, "calibration tokens the method uses (0: the method's default; see above)")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed (batch sampling, random profiles)")
	fl.IntVar(&f.samples, "samples", 0, "random: profiles drawn (0: as many as EvoPress evaluates at its defaults)")
	fl.IntVar(&f.survivors, "survivors", 0, "random: profiles re-scored on the final batch (0: as many as EvoPress's token budget leaves)")
	fl.IntVar(&f.maxProfiles, "max-profiles", baselines.DefaultMaxProfiles, "exhaustive: refuse spaces larger than this")
	fl.BoolVar(&f.wholeBlocks, "whole-blocks", false, "random, exhaustive: drop whole blocks (attention and MLP together)")
	fl.StringSliceVar(&f.keep, "keep", nil, "units (or blocks, model.layers.N) that may not be dropped")
	fl.StringVar(&f.windowPositions, "window-positions", baselines.WindowLast, "window-cosine: the last token of each sequence (Gromov et al.), or the mean over all positions")
	fl.IntVar(&f.klTopK, "kl-topk", 0, "random, exhaustive: restrict KL to the dense model's top-k tokens (0: full)")
	fl.IntVar(&f.cacheMB, "cache-mb", 2048, "memory for cached dense distributions (MiB)")
	fl.BoolVar(&f.noReuse, "no-prefix-reuse", false, "recompute every candidate from the first block (slower; same result)")
	fl.StringVar(&f.scores, "scores", "", "random, exhaustive: also write every scored profile with its fitness (JSON) to this file")
	fl.StringVar(&f.out, "out", "", "profile file to write (required)")
	fl.BoolVar(&f.json, "json", false, "print the profile as one JSON object")
	cmd.AddCommand(dropCmd, newBaselineSparseCmd(), newBaselineQuantCmd())
	return cmd
}

func runBaselineDrop(cmd *cobra.Command, f *baselineFlags) error {
	if f.method == "" {
		return fmt.Errorf("--method is required (shortgpt, window-cosine, shortened-ppl, norm-ratio, random or exhaustive)")
	}
	method, err := baselines.ParseMethod(f.method)
	if err != nil {
		return err
	}
	if f.out == "" {
		return fmt.Errorf("--out is required (the profile file to write)")
	}
	if f.windowPositions != baselines.WindowAll && f.windowPositions != baselines.WindowLast {
		return fmt.Errorf("--window-positions %q: want all or last", f.windowPositions)
	}
	lm, err := loadModel(f.model)
	if err != nil {
		return err
	}
	n := len(lm.Model.Blocks)
	k, err := drop.TargetK(n, f.target)
	if err != nil {
		return err
	}
	if k == 0 {
		return fmt.Errorf("--target %v drops floor(%v·%d) = 0 blocks: nothing to choose (raise the target)", f.target, f.target, n)
	}
	text, calibSource, err := readText(f.calib, assets.CalibText, data.Raw)
	if err != nil {
		return err
	}
	pool, err := data.CalibrationPool(lm.Tok.Encode(text, false), f.seqLen, f.calibTokens)
	if err != nil {
		return fmt.Errorf("%s: %w", calibSource, err)
	}
	teacher, err := fitness.NewTeacher(lm.Model, pool, fitness.Options{TopK: f.klTopK, CacheBytes: int64(f.cacheMB) << 20})
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	opt := baselines.Options{
		K: k, WholeBlocks: f.wholeBlocks, Keep: f.keep, Tokens: f.tokens, Seed: f.seed,
		Samples: f.samples, Survivors: f.survivors, MaxProfiles: f.maxProfiles, WindowPositions: f.windowPositions,
		Teacher: teacher, NoPrefixReuse: f.noReuse,
	}
	start := time.Now()
	if file, ok := stderr.(*os.File); ok && isTerminal(file) {
		opt.Progress = func(done, total int) {
			el := time.Since(start)
			eta := time.Duration(float64(el) / float64(done) * float64(total-done))
			fmt.Fprintf(stderr, "\r%s: %d/%d candidates, %s elapsed, ETA %s   ", method, done, total, el.Round(time.Second), eta.Round(time.Second))
			if done == total {
				fmt.Fprintln(stderr)
			}
		}
	}
	fmt.Fprintf(stderr, "baseline %s on %s: k = %d of %d blocks, pool %d×%d tokens from %s\n",
		method, lm.Name, k, n, len(pool), f.seqLen, calibSource)
	res, err := baselines.Run(cmd.Context(), lm.Model, pool, method, opt)
	if err != nil {
		return err
	}
	p := profile.New(profile.ModeDrop)
	p.Target = f.target
	p.Model = &profile.Ref{Path: lm.Name, Fingerprint: lm.Fingerprint}
	for i, u := range res.Units {
		p.Levels[u] = res.Profile[i]
	}
	if fv := res.Fitness; !math.IsNaN(fv) {
		p.Fitness = &fv
	}
	p.Method = string(method)
	info := res.Info
	info["calib"] = calibSource
	if res.Scores != nil {
		sc := map[string]float64{}
		for i, v := range res.Scores {
			if !math.IsNaN(v) {
				sc[fmt.Sprint(i)] = v
			}
		}
		if method == baselines.WindowCosine {
			info["window_scores"] = sc
		} else {
			info["block_scores"] = sc
		}
	}
	if len(res.Ranking) > 0 {
		var top []map[string]any
		for _, s := range res.Ranking[:min(10, len(res.Ranking))] {
			top = append(top, scoredJSON(s))
		}
		info["top"] = top
	}
	if f.scores != "" {
		all := make([]map[string]any, len(res.Ranking))
		for i, s := range res.Ranking {
			all[i] = scoredJSON(s)
		}
		var b strings.Builder
		if err := printJSON(&b, map[string]any{"method": string(method), "batch_chunks": res.Batch.Chunks, "batch_tokens": res.Batch.Tokens, "ranking": all}); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(f.scores, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	p.Search = info
	if err := p.Write(f.out); err != nil {
		return err
	}
	if f.json {
		return printJSON(cmd.OutOrStdout(), p)
	}
	printBaselineSummary(cmd.OutOrStdout(), res, f.out)
	return nil
}

// scoredJSON describes a scored profile by its dropped blocks.
func scoredJSON(s baselines.Scored) map[string]any {
	var attn, mlp []int
	for i, v := range s.Profile {
		if v == 1 {
			if i%2 == 0 {
				attn = append(attn, i/2)
			} else {
				mlp = append(mlp, i/2)
			}
		}
	}
	m := map[string]any{"attn": attn, "mlp": mlp}
	if !math.IsNaN(s.Fitness) && !math.IsInf(s.Fitness, 0) {
		m["fitness"] = s.Fitness
	}
	return m
}

func printBaselineSummary(w io.Writer, res *baselines.Result, out string) {
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
