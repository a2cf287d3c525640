package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/baselines"
	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/internal/atomicfile"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/report"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
)

type demoOptions struct {
	quick    bool
	out      string
	cacheDir string
	seed     uint64
}

func newDemoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the main job on the embedded model and text",
		Long: `demo runs the whole EvoPress pipeline on the embedded default model (llama-pd-11m) and text:
dense perplexity; depth pruning at 25% (EvoPress against ShortGPT, sliding-window cosine and
Shortened-LLaMA); unstructured sparsity at 50% (a SparseGPT level database built on the fly into a
cache folder and reused by the next run; uniform against EvoPress); 3-bit quantization (GPTQ database;
uniform against EvoPress). It prints one comparison table (held-out perplexity on a stated subsample
of the embedded held-out text, KL to the dense model on it, time) and writes a report folder.
The searches use the fast preset (λ = 16, short selection stages) with few generations, so that the
whole demo takes about 5 minutes on 2 cores; --quick is a one-minute smoke run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd, o) },
	}
	cmd.Flags().BoolVar(&o.quick, "quick", false, "a one-minute smoke run (tiny searches)")
	cmd.Flags().StringVar(&o.out, "out", "evopress-demo", "report folder")
	cmd.Flags().StringVar(&o.cacheDir, "cache", "", "folder for the level databases (default: the user cache folder, evopress/)")
	cmd.Flags().Uint64Var(&o.seed, "seed", 0, "random seed")
	return cmd
}

// demoPlan holds the demo's sizes.
type demoPlan struct {
	seqLen, calibTokens, evalSeqs int
	generations, initTokens       int
	stages                        []search.Stage
	baselineTokens                int
	dbCalibTokens, sparseLevels   int
}

func planFor(quick bool) demoPlan {
	if quick {
		return demoPlan{seqLen: 256, calibTokens: 16384, evalSeqs: 8, generations: 1, initTokens: 256,
			stages: []search.Stage{{Survivors: 2, Tokens: 256}, {Survivors: 1, Tokens: 512}}, baselineTokens: 1024,
			dbCalibTokens: 4096, sparseLevels: 2}
	}
	return demoPlan{seqLen: 256, calibTokens: 131072, evalSeqs: 48, generations: 14, initTokens: 512,
		stages: []search.Stage{{Survivors: 4, Tokens: 512}, {Survivors: 1, Tokens: 4096}}, baselineTokens: 8192,
		dbCalibTokens: 32768, sparseLevels: 4}
}

// demoRow is one line of the comparison table.
type demoRow struct {
	Method  string  `json:"method"`
	Mode    string  `json:"mode"`
	Budget  string  `json:"budget"`
	PPL     float64 `json:"ppl"`
	KL      float64 `json:"kl"`
	Seconds float64 `json:"seconds"`
	Note    string  `json:"note,omitempty"`
	target  float64
}

type demo struct {
	ctx     context.Context
	w, log  io.Writer
	lm      *loaded
	plan    demoPlan
	seed    uint64
	calib   *fitness.Teacher
	held    *fitness.Teacher
	heldIdx []int
	rows    []demoRow
	out     string
}

func runDemo(cmd *cobra.Command, o demoOptions) error {
	start := time.Now()
	d := &demo{ctx: cmd.Context(), w: cmd.OutOrStdout(), log: cmd.ErrOrStderr(), plan: planFor(o.quick), seed: o.seed, out: o.out}
	lm, err := loadModel("")
	if err != nil {
		return err
	}
	d.lm = lm
	fmt.Fprintf(d.w, "evopress demo: %s, %d blocks, %.2fM parameters, loaded in %s (GOMAXPROCS %d)\n",
		lm.Name, len(lm.Model.Blocks), float64(lm.Model.NumParams())/1e6, lm.LoadTime.Round(time.Millisecond), runtime.GOMAXPROCS(0))
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}

	calibText, _, err := readText("", assets.CalibText, data.Raw)
	if err != nil {
		return err
	}
	calibIDs := lm.Tok.Encode(calibText, false)
	pool, err := data.CalibrationPool(calibIDs, d.plan.seqLen, d.plan.calibTokens)
	if err != nil {
		return err
	}
	evalText, _, err := readText("", assets.EvalText, data.Raw)
	if err != nil {
		return err
	}
	evalIDs := lm.Tok.Encode(evalText, false)
	allEval, err := data.Chunks(evalIDs, d.plan.seqLen, 0)
	if err != nil {
		return err
	}
	held := allEval[:min(d.plan.evalSeqs, len(allEval))]
	if d.calib, err = fitness.NewTeacher(lm.Model, pool, fitness.Options{}); err != nil {
		return err
	}
	if d.held, err = fitness.NewTeacher(lm.Model, held, fitness.Options{}); err != nil {
		return err
	}
	for i := range held {
		d.heldIdx = append(d.heldIdx, i)
	}
	fmt.Fprintf(d.w, "held-out evaluation: the first %d of %d sequences of %d tokens of the embedded eval text; calibration: %d sequences of the embedded calib text\n\n",
		len(held), len(allEval), d.plan.seqLen, len(pool))

	if err := d.measure("dense", "dense", "100%", 1, lm.Model, 0, ""); err != nil {
		return err
	}
	if err := d.depth(); err != nil {
		return err
	}
	cache := o.cacheDir
	if cache == "" {
		if uc, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(uc, "evopress")
		} else {
			cache = filepath.Join(o.out, "cache")
		}
	}
	if err := d.sparsity(cache); err != nil {
		return err
	}
	if err := d.quantization(cache); err != nil {
		return err
	}

	table := d.table()
	fmt.Fprintln(d.w)
	fmt.Fprint(d.w, table)
	prompt := "The President said that"
	promptIDs := lm.Tok.Encode(prompt, false)
	gen, err := lm.Model.Generate(promptIDs, 30, lm.Tok.EOS())
	if err != nil {
		return err
	}
	sample := strings.ReplaceAll(lm.Tok.Decode(append(promptIDs, gen...), true), "\n", " ")
	fmt.Fprintf(d.w, "\ndense greedy sample: %s\n", sample)
	total := time.Since(start)
	if err := d.writeReport(sample, total); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "\ndemo finished in %s; report in %s (and report.html)\n", total.Round(time.Second), filepath.Join(o.out, "report.md"))
	return nil
}

// measure evaluates a model on the held-out subsample and records a table row.
func (d *demo) measure(method, mode, budget string, target float64, m *model.Model, seconds float64, note string) error {
	kl, nll, err := d.held.Measure(m, d.heldIdx)
	if err != nil {
		return err
	}
	kl = math.Max(kl, 0) // the dense model's KL to itself is 0 up to float16 rounding of the cache
	r := demoRow{Method: method, Mode: mode, Budget: budget, PPL: math.Exp(nll), KL: kl, Seconds: seconds, Note: note, target: target}
	d.rows = append(d.rows, r)
	fmt.Fprintf(d.w, "%-22s %-6s %-10s ppl %8.3f  KL %.4f  %6.1f s\n", method, mode, budget, r.PPL, r.KL, seconds)
	return nil
}

// evolve runs the search engine with the demo's settings, checkpointing into the report folder.
func (d *demo) evolve(mode search.Mode, build fitness.Builder, name string) (*search.Result, time.Duration, error) {
	settings := search.Settings{Offspring: 16, Stages: d.plan.stages, Generations: d.plan.generations, InitTokens: d.plan.initTokens}
	cfg := search.NewConfig(settings, d.seed, d.plan.seqLen, len(d.calib.Pool()))
	ev, err := fitness.NewEvaluator(d.calib, mode.Units(), build, fitness.KL)
	if err != nil {
		return nil, 0, err
	}
	runDir := filepath.Join(d.out, name+".run")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, 0, err
	}
	pp := search.NewProgressPrinter(d.log)
	if f, ok := d.log.(*os.File); !ok || !isTerminal(f) {
		pp.Terminal = false
	}
	defer pp.Finish()
	start := time.Now()
	res, err := search.Run(d.ctx, cfg, mode, ev, search.WithObserver(pp.Observe),
		search.WithCheckpointer(&search.FileCheckpointer{Path: filepath.Join(runDir, "checkpoint.json")}))
	if err != nil {
		return nil, 0, err
	}
	if b, err := json.MarshalIndent(res, "", "  "); err == nil {
		atomicfile.WriteFile(filepath.Join(runDir, "result.json"), b, 0o644)
	}
	return res, time.Since(start), nil
}

func (d *demo) writeProfile(name, mode string, target float64, units []string, levels search.Profile, method string, dbd *db.DB) error {
	p := profile.New(mode)
	p.Target = target
	p.Method = method
	p.Model = &profile.Ref{Path: d.lm.Name, Fingerprint: d.lm.Fingerprint}
	if dbd != nil {
		p.DB = &profile.Ref{Path: dbd.Dir(), Fingerprint: dbd.Fingerprint()}
	}
	for i, u := range units {
		p.Levels[u] = levels[i]
	}
	return p.Write(filepath.Join(d.out, name+".json"))
}

// depth compares EvoPress with the depth-pruning baselines at 25% (3 of 12 blocks' sub-blocks).
func (d *demo) depth() error {
	m := d.lm.Model
	n := len(m.Blocks)
	const target = 0.25
	mode, err := drop.New(n, target, drop.Options{})
	if err != nil {
		return err
	}
	k := mode.K()
	budget := fmt.Sprintf("%d/%d", k, n)
	for _, meth := range []baselines.Method{baselines.ShortGPT, baselines.WindowCosine, baselines.ShortenedPPL} {
		res, err := baselines.Run(d.ctx, m, d.calib.Pool(), meth, baselines.Options{K: k, Tokens: d.plan.baselineTokens, Seed: d.seed, Teacher: d.calib})
		if err != nil {
			return fmt.Errorf("baseline %s: %w", meth, err)
		}
		cm, err := candidate.ApplyDrop(m, levelsMap(res.Units, res.Profile))
		if err != nil {
			return err
		}
		if err := d.writeProfile("drop-"+string(meth), "drop", target, res.Units, res.Profile, string(meth), nil); err != nil {
			return err
		}
		if err := d.measure(string(meth), "drop", budget, target, cm, res.Elapsed.Seconds(), "whole blocks"); err != nil {
			return err
		}
	}
	build, err := candidate.DropBuilder(m, mode.Units())
	if err != nil {
		return err
	}
	res, el, err := d.evolve(mode, build, "drop-evopress")
	if err != nil {
		return err
	}
	cm, _ := build(res.Profile)
	if err := d.writeProfile("drop-evopress", "drop", target, res.Units, res.Profile, "evopress", nil); err != nil {
		return err
	}
	return d.measure("EvoPress", "drop", budget, target, cm, el.Seconds(), fmt.Sprintf("%d generations, %d evaluations", res.Generations, res.Evaluations))
}

// buildDB builds (or reuses) a level database in the cache folder.
func (d *demo) buildDB(cache string, cfg db.BuildConfig, key string) (*db.DB, string, error) {
	text, _, err := readText("", assets.CalibText, data.Raw)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256([]byte(text))
	ids := d.lm.Tok.Encode(text, false)
	seqs, err := data.CalibrationPool(ids, d.plan.seqLen, d.plan.dbCalibTokens)
	if err != nil {
		return nil, "", err
	}
	cfg.Out = filepath.Join(cache, fmt.Sprintf("demo-%s-%.12s-%s-%d", cfg.Mode, d.lm.Fingerprint, key, d.plan.dbCalibTokens))
	cfg.Model = d.lm.Model
	cfg.ModelInfo = db.ModelInfo{Path: d.lm.Name, Fingerprint: d.lm.Fingerprint}
	cfg.Calib = seqs
	cfg.Calibration = db.CalibInfo{Source: "embedded:" + assets.CalibText, SHA256: hex.EncodeToString(sum[:]), FileTokens: len(ids)}
	cfg.Force = true
	fmt.Fprintf(d.log, "level database %s ...\n", cfg.Out)
	res, err := db.Build(d.ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	note := fmt.Sprintf("database built in %.1f s", res.Seconds)
	if len(res.Reused) > 0 && len(res.Computed) == 0 {
		note = "database reused from " + cache
	}
	fmt.Fprintf(d.log, "  %s\n", note)
	dd, err := db.Open(cfg.Out)
	return dd, note, err
}

// sparsity compares uniform SparseGPT with EvoPress at 50%.
func (d *demo) sparsity(cache string) error {
	const target = 0.5
	params := db.DefaultSparseParams(target)
	params.Levels = d.plan.sparseLevels
	dd, dbNote, err := d.buildDB(cache, db.BuildConfig{Mode: db.ModeSparse, Method: db.MethodSparseGPT, Sparse: params}, fmt.Sprintf("s%g-L%d", target, params.Levels))
	if err != nil {
		return err
	}
	mode, err := sparseModeFromDB(dd, search.GroupDefault)
	if err != nil {
		return err
	}
	units := mode.Units()
	build := dbBuilder(dd, d.lm.Model, units)
	uniform := make(search.Profile, len(units))
	um, err := build(uniform)
	if err != nil {
		return err
	}
	if err := d.writeProfile("sparse-uniform", "sparse", target, units, uniform, "uniform", dd); err != nil {
		return err
	}
	if err := d.measure("uniform SparseGPT", "sparse", "50%", target, um, 0, dbNote); err != nil {
		return err
	}
	res, el, err := d.evolve(mode, build, "sparse-evopress")
	if err != nil {
		return err
	}
	em, _ := build(res.Profile)
	if err := d.writeProfile("sparse-evopress", "sparse", target, units, res.Profile, "evopress", dd); err != nil {
		return err
	}
	return d.measure("EvoPress", "sparse", "50%", target, em, el.Seconds(), fmt.Sprintf("%d generations, %d evaluations", res.Generations, res.Evaluations))
}

// quantization compares uniform 3-bit GPTQ with EvoPress at 3 bits on average.
func (d *demo) quantization(cache string) error {
	const target = 3
	params := db.DefaultQuantParams()
	params.Bits = []int{2, 3, 4, 5}
	dd, dbNote, err := d.buildDB(cache, db.BuildConfig{Mode: db.ModeQuant, Method: db.MethodGPTQ, Quant: params}, "b2345-g128")
	if err != nil {
		return err
	}
	mode, err := quantModeFromDB(dd, target, search.GroupDefault)
	if err != nil {
		return err
	}
	units := mode.Units()
	build := dbBuilder(dd, d.lm.Model, units)
	uniform := make(search.Profile, len(units))
	for i := range uniform {
		uniform[i] = target
	}
	um, err := build(uniform)
	if err != nil {
		return err
	}
	if err := d.writeProfile("quant-uniform", "quant", target, units, uniform, "uniform", dd); err != nil {
		return err
	}
	if err := d.measure("uniform GPTQ", "quant", "3 bits", target, um, 0, dbNote); err != nil {
		return err
	}
	res, el, err := d.evolve(mode, build, "quant-evopress")
	if err != nil {
		return err
	}
	em, _ := build(res.Profile)
	if err := d.writeProfile("quant-evopress", "quant", target, units, res.Profile, "evopress", dd); err != nil {
		return err
	}
	return d.measure("EvoPress", "quant", "3 bits", target, em, el.Seconds(), fmt.Sprintf("%d generations, %d evaluations", res.Generations, res.Evaluations))
}

func (d *demo) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| method | mode | budget | held-out ppl | KL | time (s) | note |\n|---|---|---|---|---|---|---|\n")
	for _, r := range d.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %.3f | %.4f | %.1f | %s |\n", r.Method, r.Mode, r.Budget, r.PPL, r.KL, r.Seconds, r.Note)
	}
	return b.String()
}

func (d *demo) writeReport(sample string, total time.Duration) error {
	rows, err := json.MarshalIndent(d.rows, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(d.out, "results.json"), rows, 0o644); err != nil {
		return err
	}
	in := report.Input{
		Title: "evopress demo",
		Notes: []string{fmt.Sprintf("Embedded model %s (fingerprint %.16s…). Held-out perplexity and KL on the first %d sequences of %d tokens of %s; "+
			"searches with λ = 16, stages %s, %d generations, seed %d, on calibration sequences of %s; "+
			"baseline statistics on %d calibration tokens; level databases on %d calibration tokens. Total time %s on %d cores.",
			d.lm.Name, d.lm.Fingerprint, len(d.heldIdx), d.plan.seqLen, assets.EvalText, search.FormatStages(d.plan.stages),
			d.plan.generations, d.seed, assets.CalibText, d.plan.baselineTokens, d.plan.dbCalibTokens, total.Round(time.Second), runtime.GOMAXPROCS(0)),
			"The profiles are in this folder (*.json; evaluate one with `evopress ppl --profile FILE`), the search runs in *.run/.",
			"Dense greedy sample: " + sample},
		Generated: time.Now(),
	}
	for _, r := range d.rows {
		in.Results = append(in.Results, report.MethodResult{Method: r.Method, Mode: r.Mode, Budget: r.Budget, Target: r.target,
			PPL: r.PPL, KL: r.KL, Seconds: r.Seconds, Note: r.Note})
	}
	for _, name := range []string{"drop-evopress", "sparse-evopress", "quant-evopress"} {
		run, err := report.LoadRun(filepath.Join(d.out, name+".run"), filepath.Join(d.out, name+".json"))
		if err != nil {
			return err
		}
		run.Name = name
		in.Runs = append(in.Runs, run)
	}
	files, err := report.Write(d.out, in)
	if err != nil {
		return err
	}
	printReportFiles(d.log, files)
	return nil
}

func levelsMap(units []string, p search.Profile) map[string]int {
	m := make(map[string]int, len(units))
	for i, u := range units {
		m[u] = p[i]
	}
	return m
}
