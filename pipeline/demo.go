package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/export"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/ggml"
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
	// BitsPerWeight and FileBytes (GGUF rows) are the linear layers' bits per weight
	// (bytes·8/weights) and the GGUF file's size: the written file's for EvoPress's, the
	// estimate (EstimateGGUF) for the others.
	BitsPerWeight float64 `json:"bits_per_weight,omitempty"`
	FileBytes     int64   `json:"file_bytes,omitempty"`
	target        float64
}

// DemoOutcome is a finished demo.
type DemoOutcome struct {
	Rows []DemoRow
	// GGUF is EvoPress's mixed-precision GGUF file and the commands that run it.
	GGUF *DemoGGUF
	// Table is the comparison as a Markdown table; Sample the dense model's greedy sample.
	Table, Sample string
	Report        *report.Files
	Elapsed       time.Duration
}

// DemoGGUF is the demo's GGUF file: EvoPress's profile written by evopress export, with the
// commands that run it in llama.cpp and ollama.
type DemoGGUF struct {
	// File is the GGUF file; Bytes its size; Estimate the size the profile records
	// (EstimateGGUF); Target the size searched for (the llama.cpp recipe's estimate).
	File                    string
	Bytes, Estimate, Target int64
	// TensorTypes counts the file's tensors of each ggml type.
	TensorTypes map[string]int
	// EvalText is the held-out text, written next to the file for llama-perplexity.
	EvalText string
	// Commands are shell commands (in order) that run the file: llama-perplexity on the
	// held-out text, a completion, and ollama (Modelfile, create, run).
	Commands []string
}

// demoPlan holds the demo's sizes.
type demoPlan struct {
	seqLen, calibTokens, evalSeqs int
	generations, initTokens       int
	stages                        []search.Stage
	baselineTokens                int
	dbCalibTokens, sparseLevels   int
	// ggufGenerations and ggufStages are the GGUF search's (a smaller budget than the others':
	// it starts the demo's last step).
	ggufGenerations int
	ggufStages      []search.Stage
}

func demoPlanFor(quick bool) demoPlan {
	if quick {
		quickStages := []search.Stage{{Survivors: 2, Tokens: 256}, {Survivors: 1, Tokens: 512}}
		return demoPlan{seqLen: 256, calibTokens: 16384, evalSeqs: 8, generations: 1, initTokens: 256,
			stages: quickStages, baselineTokens: 1024, dbCalibTokens: 4096, sparseLevels: 2,
			ggufGenerations: 1, ggufStages: quickStages}
	}
	return demoPlan{seqLen: 256, calibTokens: 131072, evalSeqs: 48, generations: 14, initTokens: 512,
		stages: []search.Stage{{Survivors: 4, Tokens: 512}, {Survivors: 1, Tokens: 4096}}, baselineTokens: 8192,
		dbCalibTokens: 32768, sparseLevels: 4,
		ggufGenerations: 8, ggufStages: []search.Stage{{Survivors: 4, Tokens: 512}, {Survivors: 1, Tokens: 2048}}}
}

type demo struct {
	ctx     context.Context
	req     DemoRequest
	lm      *Loaded
	plan    demoPlan
	held    *fitness.Teacher
	heldIdx []int
	rows    []DemoRow
	gguf    *DemoGGUF
}

// RunDemo runs the demo: dense perplexity; depth pruning at 25% (EvoPress against ShortGPT,
// sliding-window cosine and Shortened-LLaMA); unstructured sparsity at 50% and 3-bit
// quantization (level databases built into the cache and reused; uniform against EvoPress);
// last, mixed-precision GGUF at the file size of llama.cpp's Q3_K_M recipe (a gguf database
// with an importance matrix computed on the calibration text; the recipe against the largest
// uniform type not larger and EvoPress), EvoPress's file written by evopress export with the
// commands that run it in llama.cpp and ollama. Every search and baseline is RunSearch or
// RunBaseline with the settings an `evopress search` or `evopress baseline` command would give
// it, so the demo's run folders and profiles are those commands' (the profiles record the
// equivalent commands).
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
	if err := d.ggufStep(cache); err != nil {
		return nil, err
	}
	out := &DemoOutcome{Rows: d.rows, Table: d.table(), GGUF: d.gguf}
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

// measureProfile evaluates the model a written profile describes, as `evopress ppl --profile`
// does: a GGUF profile with its file's token embedding and output tensor (ggufFixedTensors).
// A GGUF profile's row is of mode "gguf" and records the linear layers' bits per weight and the
// estimated file size.
func (d *demo) measureProfile(p *profile.Profile, label, budget string, seconds float64, note string) error {
	m, _, err := ApplyProfile(d.lm, p, "")
	if err == nil {
		m, err = ggufFixedTensors(m, p)
	}
	if err != nil {
		return err
	}
	mode, target := p.Mode, p.Target
	r := p.Search
	gguf := r != nil && r.FileBytes > 0
	if gguf {
		mode, target = demoGGUFMode, float64(r.FileBytes)
	}
	if err := d.measure(label, mode, budget, target, m, seconds, note); err != nil {
		return err
	}
	if gguf {
		row := &d.rows[len(d.rows)-1]
		row.BitsPerWeight, row.FileBytes = r.BitsPerWeight, r.FileBytes
		fmt.Fprintf(d.req.Print, "%-22s %-6s %-10s %.4f bits per weight (linear layers), file %d bytes\n", "", "", "", r.BitsPerWeight, r.FileBytes)
	}
	return nil
}

// specArgs are the command-line flags of a search's or baseline's budget: --target, or a GGUF
// file's --target-size and tensor types (none for a budget that follows from a type).
func specArgs(spec ModeSpec) []string {
	var args []string
	if spec.Target != 0 {
		args = append(args, "--target", fmt.Sprint(spec.Target))
	}
	if spec.TargetSize != 0 {
		args = append(args, "--target-size", fmt.Sprint(spec.TargetSize))
	}
	if spec.TokenEmbeddingType != "" {
		args = append(args, "--token-embedding-type", spec.TokenEmbeddingType)
	}
	if spec.OutputTensorType != "" {
		args = append(args, "--output-tensor-type", spec.OutputTensorType)
	}
	return args
}

// evolve runs one EvoPress search as `evopress search` would with the demo's settings (gens
// generations, selection stages stages).
func (d *demo) evolve(name string, spec ModeSpec, dbDir string, gens int, stages []search.Stage) (*SearchOutcome, time.Duration, error) {
	init := d.plan.initTokens
	offspring := 16
	req := SearchRequest{Data: d.data(dbDir), Mode: spec, Preset: search.PresetFast, Seed: d.req.Seed,
		Settings: search.Overrides{Offspring: &offspring, Generations: &gens, InitTokens: &init, Stages: stages},
		Out:      filepath.Join(d.req.Out, name+".json"), Force: true, Log: d.req.Log}
	args := append([]string{"evopress search", spec.Kind}, specArgs(spec)...)
	args = append(args, "--seq-len", fmt.Sprint(d.plan.seqLen),
		"--calib-tokens", fmt.Sprint(d.plan.calibTokens), "--preset fast --offspring 16 --stages", search.FormatStages(stages),
		"--generations", fmt.Sprint(gens), "--init-tokens", fmt.Sprint(init), "--seed", fmt.Sprint(d.req.Seed))
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

// baseline runs one baseline as `evopress baseline` would with the demo's settings; over a gguf
// database typ is the uniform baseline's ggml type and fileType the llamacpp baseline's
// llama.cpp file type ("" otherwise).
func (d *demo) baseline(name string, spec ModeSpec, method, dbDir, typ, fileType string) (*BaselineOutcome, error) {
	req := BaselineRequest{Data: d.data(dbDir), Mode: spec, Method: method, Type: typ, FileType: fileType, Seed: d.req.Seed,
		Tokens: d.plan.baselineTokens, Out: filepath.Join(d.req.Out, name+".json"), Force: true, Log: d.req.Log}
	args := append([]string{"evopress baseline", spec.Kind, "--method", method}, specArgs(spec)...)
	if typ != "" {
		args = append(args, "--type", typ)
	}
	if fileType != "" {
		args = append(args, "--ftype", fileType)
	}
	args = append(args, "--seq-len", fmt.Sprint(d.plan.seqLen),
		"--calib-tokens", fmt.Sprint(d.plan.calibTokens), "--tokens", fmt.Sprint(d.plan.baselineTokens), "--seed", fmt.Sprint(d.req.Seed))
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
		res, err := d.baseline("drop-"+meth, spec, meth, "", "", "")
		if err != nil {
			return fmt.Errorf("baseline %s: %w", meth, err)
		}
		if err := d.measureProfile(res.Profile, meth, budget, res.Elapsed.Seconds(), "whole blocks"); err != nil {
			return err
		}
	}
	res, el, err := d.evolve("drop-evopress", spec, "", d.plan.generations, d.plan.stages)
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
	res, err := d.baseline(spec.Kind+"-uniform", spec, "uniform", dbDir, "", "")
	if err != nil {
		return err
	}
	if err := d.measureProfile(res.Profile, label, budget, 0, dbNote); err != nil {
		return err
	}
	ev, el, err := d.evolve(spec.Kind+"-evopress", spec, dbDir, d.plan.generations, d.plan.stages)
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

// The demo's GGUF step.
const (
	// demoGGUFMode is the mode of the GGUF step's rows.
	demoGGUFMode = "gguf"
	// demoGGUFFileType is the llama.cpp file type whose recipe, at its file size, the step
	// compares with.
	demoGGUFFileType = "Q3_K_M"
	// demoGGUFFile is EvoPress's GGUF file in the demo's folder; demoEvalFile the held-out text
	// and demoModelfile ollama's Modelfile written next to it.
	demoGGUFFile  = "gguf-evopress.gguf"
	demoEvalFile  = "eval.txt"
	demoModelfile = "Modelfile"
	// demoOllamaName is the ollama model the printed commands create; demoPrompt their prompt.
	demoOllamaName = "evopress-demo"
	demoPrompt     = "The President said that"
)

// demoRecipe is the profile name of the llamacpp baseline.
var demoRecipe = "gguf-" + strings.ToLower(demoGGUFFileType)

// demoModelfileText is the Modelfile the demo writes next to its GGUF file.
var demoModelfileText = "FROM ./" + demoGGUFFile + "\n"

// ggufStep compares, at the file size of llama.cpp's Q3_K_M recipe, the recipe with the largest
// uniform type not larger and with EvoPress, over a gguf database of the default types (its
// importance matrix computed on the calibration text, shared by the three), every file with the
// recipe's token embedding and output types; then writes EvoPress's file.
func (d *demo) ggufStep(cache string) error {
	types := db.DefaultGGUFTypes()
	dir, dbNote, err := d.buildDB(cache, db.BuildConfig{Mode: db.ModeGGUF, Method: db.MethodGGML, GGUF: db.GGUFParams{Types: types}},
		strings.ToLower(strings.Join(types, "-"))+"-imatrix")
	if err != nil {
		return err
	}
	rec, err := d.baseline(demoRecipe, ModeSpec{Kind: profile.ModeQuant}, "llamacpp", dir, "", demoGGUFFileType)
	if err != nil {
		return fmt.Errorf("baseline llamacpp %s: %w", demoGGUFFileType, err)
	}
	first := len(d.rows) // the step's rows: ordered by the size they are compared at, not their own
	r := rec.Profile.Search
	size := r.FileBytes
	budget := fmt.Sprintf("%.3f MB", float64(size)/1e6)
	if err := d.measureProfile(rec.Profile, "llama.cpp "+demoGGUFFileType, budget, 0, "llama-quantize's rules; "+dbNote); err != nil {
		return err
	}
	spec := ModeSpec{Kind: profile.ModeQuant, TokenEmbeddingType: r.TokenEmbeddingType, OutputTensorType: r.OutputTensorType}
	typ, fits, err := ggufUniformType(d.lm, dir, size, spec)
	if err != nil {
		return err
	}
	uni, err := d.baseline("gguf-uniform", spec, "uniform", dir, typ, "")
	if err != nil {
		return fmt.Errorf("baseline uniform %s: %w", typ, err)
	}
	note := "the largest uniform type not larger"
	if !fits {
		note = "no uniform type is as small: the smallest"
	}
	if err := d.measureProfile(uni.Profile, "uniform "+typ, budget, 0, note); err != nil {
		return err
	}
	spec.TargetSize = size
	ev, el, err := d.evolve("gguf-evopress", spec, dir, d.plan.ggufGenerations, d.plan.ggufStages)
	if err != nil {
		return err
	}
	if err := d.measureProfile(ev.Profile, "EvoPress", budget, el.Seconds(), fmt.Sprintf("%d generations, %d evaluations", ev.Result.Generations, ev.Result.Evaluations)); err != nil {
		return err
	}
	g, err := d.writeGGUF(ev, size)
	if err != nil {
		return err
	}
	d.rows[len(d.rows)-1].FileBytes = g.Bytes
	for i := first; i < len(d.rows); i++ {
		d.rows[i].target = float64(size)
	}
	d.gguf = g
	return nil
}

// ggufUniformType returns, of the gguf database dir's types, the one whose uniform file (every
// linear layer in it or in its fallback type; the token embedding and output at spec's types)
// is the largest not larger than size bytes, and true; when none is that small, the one of
// the smallest file, and false.
func ggufUniformType(lm *Loaded, dir string, size int64, spec ModeSpec) (string, bool, error) {
	d, err := db.Open(dir)
	if err != nil {
		return "", false, err
	}
	var best, smallest string
	var bestSize, smallestSize int64
	for _, name := range d.Manifest().GGUF.Types {
		t, err := ggml.ParseType(name)
		if err != nil {
			return "", false, fmt.Errorf("database %s: type %q: %v", dir, name, err)
		}
		p, err := db.UniformProfile(d, int(t))
		if err != nil {
			return "", false, err
		}
		layers := map[string]ggml.Type{}
		for u, l := range p.Levels {
			layers[u] = ggml.Type(l)
		}
		est, err := EstimateGGUF(lm, layers, spec.TokenEmbeddingType, spec.OutputTensorType)
		if err != nil {
			return "", false, err
		}
		if est.Total <= size && est.Total > bestSize {
			best, bestSize = name, est.Total
		}
		if smallest == "" || est.Total < smallestSize {
			smallest, smallestSize = name, est.Total
		}
	}
	if best != "" {
		return best, true, nil
	}
	if smallest == "" {
		return "", false, fmt.Errorf("database %s lists no types", dir)
	}
	return smallest, false, nil
}

// writeGGUF writes the GGUF file of EvoPress's profile with evopress export (the embedded
// model; the token embedding and output at the profile's types), the held-out text and a
// Modelfile next to it, and returns them with the commands that run the file. A file larger
// than target bytes is an error.
func (d *demo) writeGGUF(ev *SearchOutcome, target int64) (*DemoGGUF, error) {
	out := d.req.Out
	file := filepath.Join(out, demoGGUFFile)
	res, err := export.Run(export.Options{ModelFS: assets.FS(), ModelDir: assets.ModelDir, Profile: ev.Profile, ProfilePath: ev.Out,
		Format: export.FormatGGUF, Out: file, Force: true, Warn: d.req.Log})
	if err != nil {
		return nil, err
	}
	g := &DemoGGUF{File: file, Bytes: res.Bytes, Estimate: ev.Profile.Search.FileBytes, Target: target, TensorTypes: res.TensorTypes,
		EvalText: filepath.Join(out, demoEvalFile)}
	if g.Bytes > target {
		return nil, fmt.Errorf("demo: %s has %d bytes, more than the %d bytes searched for (the profile estimated %d)", file, g.Bytes, target, g.Estimate)
	}
	evalText, err := assets.ReadFile(assets.EvalText)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{demoEvalFile, evalText}, {demoModelfile, []byte(demoModelfileText)}} {
		if err := atomicfile.WriteFile(filepath.Join(out, f.name), f.data, 0o644); err != nil {
			return nil, err
		}
	}
	q := profile.ShellQuote
	g.Commands = []string{
		fmt.Sprintf("llama-perplexity -m %s -f %s", q(file), q(g.EvalText)),
		fmt.Sprintf("llama-completion -m %s -p %s -n 40 -no-cnv", q(file), q(demoPrompt)),
		fmt.Sprintf("cd %s && ollama create %s -f %s && ollama run %s %s", q(out), demoOllamaName, demoModelfile, demoOllamaName, q(demoPrompt)),
	}
	fmt.Fprintf(d.req.Print, "\nwrote %s: %d bytes (the %s recipe's estimate: %d); tensor types %s\n", file, g.Bytes, demoGGUFFileType, target, formatTypeCounts(res.TensorTypes))
	fmt.Fprintf(d.req.Print, "run it (llama.cpp tools; llama-completion is llama-cli in llama.cpp before the two were split; %s holds %s):\n", demoModelfile, strings.TrimSpace(demoModelfileText))
	for _, c := range g.Commands {
		fmt.Fprintf(d.req.Print, "  %s\n", c)
	}
	return g, nil
}

func (d *demo) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| method | mode | budget | bits/weight | file bytes | held-out ppl | KL | time (s) | note |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range d.rows {
		bpw, size := "", ""
		if r.FileBytes > 0 {
			bpw, size = fmt.Sprintf("%.3f", r.BitsPerWeight), fmt.Sprint(r.FileBytes)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.3f | %.4f | %.1f | %s |\n", r.Method, r.Mode, r.Budget, bpw, size, r.PPL, r.KL, r.Seconds, r.Note)
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
			"searches with λ = 16, stages %s, %d generations (the GGUF search: stages %s, %d generations), seed %d, on calibration sequences of %s; "+
			"baseline statistics on %d calibration tokens; level databases on %d calibration tokens. Total time %s on %d cores.",
			d.lm.Name, d.lm.Fingerprint, len(d.heldIdx), d.plan.seqLen, assets.EvalText, search.FormatStages(d.plan.stages),
			d.plan.generations, search.FormatStages(d.plan.ggufStages), d.plan.ggufGenerations, d.req.Seed, assets.CalibText,
			d.plan.baselineTokens, d.plan.dbCalibTokens, total.Round(time.Second), runtime.GOMAXPROCS(0)),
			"The profiles are in this folder (*.json; evaluate one with `evopress ppl --profile FILE`), the search runs in *.run/; each profile records the command that repeats it.",
			"Dense greedy sample: " + sample},
		Generated: time.Now(),
	}
	for _, r := range d.rows {
		in.Results = append(in.Results, report.MethodResult{Method: r.Method, Mode: r.Mode, Budget: r.Budget, Target: r.target,
			PPL: r.PPL, KL: r.KL, Seconds: r.Seconds, Note: r.Note, BitsPerWeight: r.BitsPerWeight, FileBytes: r.FileBytes})
	}
	if g := d.gguf; g != nil {
		in.Sections = append(in.Sections, report.Section{Title: "Mixed-precision GGUF",
			Paragraphs: []string{
				fmt.Sprintf("The gguf rows compare, at the file size of llama.cpp's %s recipe (%d bytes, estimated as evopress export writes it), "+
					"llama-quantize's %s rules, the largest uniform type whose file is not larger, and EvoPress (`search quant --target-size`), over one gguf level database "+
					"(types %s, each layer also in llama-quantize's fallback type where its rows do not fit) quantized with the importance matrix evopress computed on %s; "+
					"the three files share the recipe's token embedding and output types. Each is measured with its file's token embedding and output tensor.",
					demoGGUFFileType, g.Target, demoGGUFFileType, strings.Join(db.DefaultGGUFTypes(), ", "), assets.CalibText),
				fmt.Sprintf("EvoPress's file is `%s` (%d bytes; tensor types %s), with the held-out text `%s` and an ollama `%s` (`%s`) next to it. "+
					"Run it with llama.cpp (`llama-completion` is `llama-cli` in llama.cpp before the two were split; llama-perplexity scores 512-token chunks' second halves, so its perplexity is not the table's) and ollama:",
					demoGGUFFile, g.Bytes, formatTypeCounts(g.TensorTypes), demoEvalFile, demoModelfile, strings.TrimSpace(demoModelfileText)),
			},
			Code: strings.Join(g.Commands, "\n")})
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
var demoSearches = []string{"drop-evopress", "sparse-evopress", "quant-evopress", "gguf-evopress"}

// formatTypeCounts lists tensor counts by type, in the types' order ("q3_K ×40, q4_K ×20").
func formatTypeCounts(counts map[string]int) string {
	names := make([]string, 0, len(counts))
	for t := range counts {
		names = append(names, t)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, t := range names {
		parts[i] = fmt.Sprintf("%s ×%d", t, counts[t])
	}
	return strings.Join(parts, ", ")
}

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
	baselines = append(baselines, profile.ModeSparse+"-uniform", profile.ModeQuant+"-uniform", demoRecipe, "gguf-uniform")
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
	// The GGUF file may only be an earlier evopress export (an empty file too, as for
	// evopress export); the texts written next to it only the demo's own (the same bytes).
	gf := filepath.Join(out, demoGGUFFile)
	if ok, err := outputFile("Out", gf); err != nil {
		return err
	} else if fi, _ := os.Stat(gf); ok && fi.Size() > 0 && !export.IsGGUFExport(gf) {
		return invalid("Out", gf, "exists and is not a GGUF file written by evopress export (no %s key): not replaced; move it or choose another folder", export.GGUFMarkerKey)
	}
	evalText, err := assets.ReadFile(assets.EvalText)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{demoEvalFile, evalText}, {demoModelfile, []byte(demoModelfileText)}} {
		p := filepath.Join(out, f.name)
		if ok, err := outputFile("Out", p); err != nil {
			return err
		} else if ok && !sameBytes(p, f.data) {
			return invalid("Out", p, "exists and is not the file the demo writes there: not replaced; move it or choose another folder")
		}
	}
	return report.CheckFiles(out, files, true)
}

// sameBytes reports whether the file path holds exactly data.
func sameBytes(path string, data []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	got, err := io.ReadAll(io.LimitReader(f, int64(len(data))+1))
	return err == nil && bytes.Equal(got, data)
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
