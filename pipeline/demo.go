package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/internal/atomicfile"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/report"
	"github.com/evopress/evopress/search"
)

// DemoRequest is the demo: the whole pipeline on the embedded model and text.
type DemoRequest struct {
	// Quick is a one-minute smoke run (tiny searches).
	Quick bool
	// Out is the report folder; Cache the folder of the level databases (default: the user
	// cache folder's evopress/).
	Out, Cache string
	Seed       uint64
	// Print receives the comparison rows and the table; Log the progress messages.
	Print, Log io.Writer
	// Observer, when set, makes each search's progress observer (given the search's name);
	// the returned function, when not nil, is called when that search ends.
	Observer func(name string) (search.Observer, func())
}

// DemoRow is one line of the demo's comparison table.
type DemoRow struct {
	Method  string  `json:"method"`
	Mode    string  `json:"mode"`
	Budget  string  `json:"budget"`
	PPL     float64 `json:"ppl"`
	KL      float64 `json:"kl"`
	Seconds float64 `json:"seconds"`
	Note    string  `json:"note,omitempty"`
	target  float64
}

// DemoOutcome is a finished demo.
type DemoOutcome struct {
	Rows []DemoRow
	// Table is the comparison as a Markdown table; Sample the dense model's greedy sample.
	Table, Sample string
	Report        *report.Files
	Elapsed       time.Duration
}

// demoPlan holds the demo's sizes.
type demoPlan struct {
	seqLen, calibTokens, evalSeqs int
	generations, initTokens       int
	stages                        []search.Stage
	baselineTokens                int
	dbCalibTokens, sparseLevels   int
}

func demoPlanFor(quick bool) demoPlan {
	if quick {
		return demoPlan{seqLen: 256, calibTokens: 16384, evalSeqs: 8, generations: 1, initTokens: 256,
			stages: []search.Stage{{Survivors: 2, Tokens: 256}, {Survivors: 1, Tokens: 512}}, baselineTokens: 1024,
			dbCalibTokens: 4096, sparseLevels: 2}
	}
	return demoPlan{seqLen: 256, calibTokens: 131072, evalSeqs: 48, generations: 14, initTokens: 512,
		stages: []search.Stage{{Survivors: 4, Tokens: 512}, {Survivors: 1, Tokens: 4096}}, baselineTokens: 8192,
		dbCalibTokens: 32768, sparseLevels: 4}
}

type demo struct {
	ctx     context.Context
	req     DemoRequest
	lm      *Loaded
	plan    demoPlan
	held    *fitness.Teacher
	heldIdx []int
	rows    []DemoRow
}

// RunDemo runs the demo: dense perplexity; depth pruning at 25% (EvoPress against ShortGPT,
// sliding-window cosine and Shortened-LLaMA); unstructured sparsity at 50% and 3-bit
// quantization (level databases built into the cache and reused; uniform against EvoPress).
// Every search and baseline is RunSearch or RunBaseline with the settings an `evopress
// search` or `evopress baseline` command would give it, so the demo's run folders and profiles
// are those commands' (the profiles record the equivalent commands).
func RunDemo(ctx context.Context, req DemoRequest) (*DemoOutcome, error) {
	start := time.Now()
	if req.Out == "" {
		return nil, missing("Out", "the report folder")
	}
	if req.Print == nil {
		req.Print = io.Discard
	}
	if req.Log == nil {
		req.Log = io.Discard
	}
	d := &demo{ctx: ctx, req: req, plan: demoPlanFor(req.Quick)}
	// The folders the demo writes into are checked before any work.
	if err := os.MkdirAll(req.Out, 0o755); err != nil {
		return nil, invalid("Out", req.Out, "cannot create the report folder: %v", err)
	}
	if err := checkDemoOutputs(req.Out); err != nil {
		return nil, err
	}
	cache := req.Cache
	if cache == "" {
		if uc, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(uc, "evopress")
		} else {
			cache = filepath.Join(req.Out, "cache")
		}
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, invalid("Cache", cache, "cannot create the database folder: %v", err)
	}
	lm, err := LoadModel("")
	if err != nil {
		return nil, err
	}
	d.lm = lm
	w := req.Print
	fmt.Fprintf(w, "evopress demo: %s, %d blocks, %.2fM parameters, loaded in %s (GOMAXPROCS %d)\n",
		lm.Name, len(lm.Model.Blocks), float64(lm.Model.NumParams())/1e6, lm.LoadTime.Round(time.Millisecond), runtime.GOMAXPROCS(0))
	evalText, err := ReadText("", assets.EvalText, data.Raw)
	if err != nil {
		return nil, err
	}
	allEval, err := data.Chunks(lm.Tokenizer.Encode(evalText.Body, false), d.plan.seqLen, 0)
	if err != nil {
		return nil, err
	}
	held := allEval[:min(d.plan.evalSeqs, len(allEval))]
	if d.held, err = fitness.NewTeacher(lm.Model, held, fitness.Options{}); err != nil {
		return nil, err
	}
	for i := range held {
		d.heldIdx = append(d.heldIdx, i)
	}
	fmt.Fprintf(w, "held-out evaluation: the first %d of %d sequences of %d tokens of the embedded eval text; calibration: the first %d tokens of the embedded calib text\n\n",
		len(held), len(allEval), d.plan.seqLen, d.plan.calibTokens)

	if err := d.measure("dense", "dense", "100%", 1, lm.Model, 0, ""); err != nil {
		return nil, err
	}
	if err := d.depth(); err != nil {
		return nil, err
	}
	if err := d.sparsity(cache); err != nil {
		return nil, err
	}
	if err := d.quantization(cache); err != nil {
		return nil, err
	}
	out := &DemoOutcome{Rows: d.rows, Table: d.table()}
	promptIDs := lm.Tokenizer.Encode("The President said that", false)
	gen, err := lm.Model.Generate(promptIDs, 30, lm.Tokenizer.EOS())
	if err != nil {
		return nil, err
	}
	out.Sample = strings.ReplaceAll(lm.Tokenizer.Decode(append(promptIDs, gen...), true), "\n", " ")
	out.Elapsed = time.Since(start)
	if out.Report, err = d.writeReport(out.Sample, out.Elapsed); err != nil {
		return nil, err
	}
	return out, nil
}

// data is the Data of every search and baseline of the demo.
func (d *demo) data(dbDir string) Data {
	return Data{Model: d.lm, SeqLen: d.plan.seqLen, CalibTokens: d.plan.calibTokens, DBDir: dbDir}
}

// measure evaluates a model on the held-out subsample and records a table row.
func (d *demo) measure(method, mode, budget string, target float64, m *model.Model, seconds float64, note string) error {
	kl, nll, err := d.held.Measure(m, d.heldIdx)
	if err != nil {
		return err
	}
	kl = math.Max(kl, 0) // the dense model's KL to itself is 0 up to float16 rounding of the cache
	r := DemoRow{Method: method, Mode: mode, Budget: budget, PPL: math.Exp(nll), KL: kl, Seconds: seconds, Note: note, target: target}
	d.rows = append(d.rows, r)
	fmt.Fprintf(d.req.Print, "%-22s %-6s %-10s ppl %8.3f  KL %.4f  %6.1f s\n", method, mode, budget, r.PPL, r.KL, seconds)
	return nil
}

// measureProfile evaluates the model a written profile describes.
func (d *demo) measureProfile(p *profile.Profile, label, budget string, seconds float64, note string) error {
	m, _, err := ApplyProfile(d.lm, p, "")
	if err != nil {
		return err
	}
	return d.measure(label, p.Mode, budget, p.Target, m, seconds, note)
}

// evolve runs one EvoPress search as `evopress search` would with the demo's settings.
func (d *demo) evolve(name string, spec ModeSpec, dbDir string) (*SearchOutcome, time.Duration, error) {
	gens, init := d.plan.generations, d.plan.initTokens
	offspring := 16
	req := SearchRequest{Data: d.data(dbDir), Mode: spec, Preset: search.PresetFast, Seed: d.req.Seed,
		Settings: search.Overrides{Offspring: &offspring, Generations: &gens, InitTokens: &init, Stages: d.plan.stages},
		Out:      filepath.Join(d.req.Out, name+".json"), Force: true, Log: d.req.Log}
	args := []string{"evopress search", spec.Kind, "--target", fmt.Sprint(spec.Target), "--seq-len", fmt.Sprint(d.plan.seqLen),
		"--calib-tokens", fmt.Sprint(d.plan.calibTokens), "--preset fast --offspring 16 --stages", search.FormatStages(d.plan.stages),
		"--generations", fmt.Sprint(gens), "--init-tokens", fmt.Sprint(init), "--seed", fmt.Sprint(d.req.Seed)}
	if dbDir != "" {
		args = append(args, "--db", profile.ShellQuote(dbDir))
	}
	req.Command = strings.Join(append(args, "--out", profile.ShellQuote(req.Out)), " ")
	var done func()
	if d.req.Observer != nil {
		req.Observer, done = d.req.Observer(name)
	}
	start := time.Now()
	res, err := RunSearch(d.ctx, req)
	if done != nil {
		done()
	}
	return res, time.Since(start), err
}

// baseline runs one baseline as `evopress baseline` would with the demo's settings.
func (d *demo) baseline(name string, spec ModeSpec, method, dbDir string) (*BaselineOutcome, error) {
	req := BaselineRequest{Data: d.data(dbDir), Mode: spec, Method: method, Seed: d.req.Seed, Tokens: d.plan.baselineTokens,
		Out: filepath.Join(d.req.Out, name+".json"), Force: true, Log: d.req.Log}
	args := []string{"evopress baseline", spec.Kind, "--method", method, "--target", fmt.Sprint(spec.Target), "--seq-len", fmt.Sprint(d.plan.seqLen),
		"--calib-tokens", fmt.Sprint(d.plan.calibTokens), "--tokens", fmt.Sprint(d.plan.baselineTokens), "--seed", fmt.Sprint(d.req.Seed)}
	if dbDir != "" {
		args = append(args, "--db", profile.ShellQuote(dbDir))
	}
	req.Command = strings.Join(append(args, "--out", profile.ShellQuote(req.Out)), " ")
	return RunBaseline(d.ctx, req)
}

// depth compares EvoPress with the depth-pruning baselines at 25% (3 of 12 blocks' sub-blocks).
func (d *demo) depth() error {
	n := len(d.lm.Model.Blocks)
	spec := ModeSpec{Kind: profile.ModeDrop, Target: 0.25}
	budget := fmt.Sprintf("%d/%d", int(spec.Target*float64(n)), n)
	for _, meth := range demoDropMethods {
		res, err := d.baseline("drop-"+meth, spec, meth, "")
		if err != nil {
			return fmt.Errorf("baseline %s: %w", meth, err)
		}
		if err := d.measureProfile(res.Profile, meth, budget, res.Elapsed.Seconds(), "whole blocks"); err != nil {
			return err
		}
	}
	res, el, err := d.evolve("drop-evopress", spec, "")
	if err != nil {
		return err
	}
	return d.measureProfile(res.Profile, "EvoPress", budget, el.Seconds(), fmt.Sprintf("%d generations, %d evaluations", res.Result.Generations, res.Result.Evaluations))
}

// buildDB builds (or reuses) a level database in the cache folder, as `evopress db build`
// with the demo's calibration settings would.
func (d *demo) buildDB(cache string, cfg db.BuildConfig, key string) (string, string, error) {
	cfg.Out = filepath.Join(cache, fmt.Sprintf("demo-%s-%.12s-%s-%d-seed%d", cfg.Mode, d.lm.Fingerprint, key, d.plan.dbCalibTokens, d.req.Seed))
	cfg.Force = true
	fmt.Fprintf(d.req.Log, "level database %s ...\n", cfg.Out)
	res, err := BuildDB(d.ctx, DBRequest{Data: Data{Model: d.lm, SeqLen: d.plan.seqLen, CalibTokens: d.plan.dbCalibTokens}, Build: cfg, Seed: d.req.Seed})
	if err != nil {
		return "", "", err
	}
	note := fmt.Sprintf("database built in %.1f s", res.Seconds)
	if len(res.Reused) > 0 && len(res.Computed) == 0 {
		note = "database reused from " + cache
	}
	fmt.Fprintf(d.req.Log, "  %s\n", note)
	return cfg.Out, note, nil
}

// compareDB compares the uniform baseline with EvoPress over one database.
func (d *demo) compareDB(spec ModeSpec, dbDir, dbNote, label, budget string) error {
	res, err := d.baseline(spec.Kind+"-uniform", spec, "uniform", dbDir)
	if err != nil {
		return err
	}
	if err := d.measureProfile(res.Profile, label, budget, 0, dbNote); err != nil {
		return err
	}
	ev, el, err := d.evolve(spec.Kind+"-evopress", spec, dbDir)
	if err != nil {
		return err
	}
	return d.measureProfile(ev.Profile, "EvoPress", budget, el.Seconds(), fmt.Sprintf("%d generations, %d evaluations", ev.Result.Generations, ev.Result.Evaluations))
}

// sparsity compares uniform SparseGPT with EvoPress at 50%.
func (d *demo) sparsity(cache string) error {
	const target = 0.5
	params := db.DefaultSparseParams(target)
	params.Levels = d.plan.sparseLevels
	dir, note, err := d.buildDB(cache, db.BuildConfig{Mode: db.ModeSparse, Method: db.MethodSparseGPT, Sparse: params}, fmt.Sprintf("s%g-L%d", target, params.Levels))
	if err != nil {
		return err
	}
	return d.compareDB(ModeSpec{Kind: profile.ModeSparse, Target: target}, dir, note, "uniform SparseGPT", "50%")
}

// quantization compares uniform 3-bit GPTQ with EvoPress at 3 bits on average.
func (d *demo) quantization(cache string) error {
	params := db.DefaultQuantParams()
	params.Bits = []int{2, 3, 4, 5}
	dir, note, err := d.buildDB(cache, db.BuildConfig{Mode: db.ModeQuant, Method: db.MethodGPTQ, Quant: params}, "b2345-g128")
	if err != nil {
		return err
	}
	return d.compareDB(ModeSpec{Kind: profile.ModeQuant, Target: 3}, dir, note, "uniform GPTQ", "3 bits")
}

func (d *demo) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| method | mode | budget | held-out ppl | KL | time (s) | note |\n|---|---|---|---|---|---|---|\n")
	for _, r := range d.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %.3f | %.4f | %.1f | %s |\n", r.Method, r.Mode, r.Budget, r.PPL, r.KL, r.Seconds, r.Note)
	}
	return b.String()
}

func (d *demo) writeReport(sample string, total time.Duration) (*report.Files, error) {
	rows, err := json.MarshalIndent(d.rows, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(d.req.Out, demoResultsFile), rows, 0o644); err != nil {
		return nil, err
	}
	in := report.Input{
		Title: "evopress demo",
		Notes: []string{fmt.Sprintf("Embedded model %s (fingerprint %.16s…). Held-out perplexity and KL on the first %d sequences of %d tokens of %s; "+
			"searches with λ = 16, stages %s, %d generations, seed %d, on calibration sequences of %s; "+
			"baseline statistics on %d calibration tokens; level databases on %d calibration tokens. Total time %s on %d cores.",
			d.lm.Name, d.lm.Fingerprint, len(d.heldIdx), d.plan.seqLen, assets.EvalText, search.FormatStages(d.plan.stages),
			d.plan.generations, d.req.Seed, assets.CalibText, d.plan.baselineTokens, d.plan.dbCalibTokens, total.Round(time.Second), runtime.GOMAXPROCS(0)),
			"The profiles are in this folder (*.json; evaluate one with `evopress ppl --profile FILE`), the search runs in *.run/; each profile records the command that repeats it.",
			"Dense greedy sample: " + sample},
		Generated: time.Now(),
	}
	for _, r := range d.rows {
		in.Results = append(in.Results, report.MethodResult{Method: r.Method, Mode: r.Mode, Budget: r.Budget, Target: r.target,
			PPL: r.PPL, KL: r.KL, Seconds: r.Seconds, Note: r.Note})
	}
	for _, name := range demoSearches {
		run, err := report.LoadRun(filepath.Join(d.req.Out, name+".run"), filepath.Join(d.req.Out, name+".json"))
		if err != nil {
			return nil, err
		}
		run.Name = name
		in.Runs = append(in.Runs, run)
	}
	in.Force = true // the demo's own earlier report (checkDemoOutputs refused any other)
	return report.Write(d.req.Out, in)
}

// demoDropMethods are the depth-pruning baselines the demo compares with EvoPress.
var demoDropMethods = []string{"shortgpt", "window-cosine", "shortened-ppl"}

// demoSearches are the demo's searches: profiles NAME.json with run folders NAME.run.
var demoSearches = []string{"drop-evopress", "sparse-evopress", "quant-evopress"}

// demoResultsFile is the comparison table as JSON, in the demo's folder.
const demoResultsFile = "results.json"

// checkDemoOutputs checks, before any work, every file the demo writes into its folder out:
// each may exist only as the demo wrote it (an evopress profile, a search's run folder, the
// demo's results, evopress's report files), and is then replaced; anything else of the same
// name is refused.
func checkDemoOutputs(out string) error {
	var baselines []string
	for _, m := range demoDropMethods {
		baselines = append(baselines, "drop-"+m)
	}
	baselines = append(baselines, profile.ModeSparse+"-uniform", profile.ModeQuant+"-uniform")
	for _, name := range baselines {
		if err := checkProfileOuts(filepath.Join(out, name+".json"), "", true); err != nil {
			return err
		}
	}
	files := []string{report.MarkdownFile, report.HTMLFile, report.MethodsImage}
	for _, name := range demoSearches {
		if _, err := checkRunOutputs(filepath.Join(out, name+".json"), filepath.Join(out, name+".run"), false, false, true); err != nil {
			return err
		}
		files = append(files, report.RunImages(name)...)
	}
	res := filepath.Join(out, demoResultsFile)
	if ok, err := outputFile("Out", res); err != nil {
		return err
	} else if ok && !isDemoResults(res) {
		return invalid("Out", res, "exists and is not the demo's results (a JSON array of method, mode, budget and ppl rows): not replaced; move it or choose another folder")
	}
	return report.CheckFiles(out, files, true)
}

// isDemoResults reports whether path holds the demo's results: a non-empty JSON array of rows
// with a method, mode, budget and perplexity each.
func isDemoResults(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxOwnedBytes))
	if err != nil {
		return false
	}
	var rows []map[string]json.RawMessage
	if json.Unmarshal(data, &rows) != nil || len(rows) == 0 {
		return false
	}
	for _, r := range rows {
		for _, k := range []string{"method", "mode", "budget", "ppl"} {
			if _, ok := r[k]; !ok {
				return false
			}
		}
	}
	return true
}
