package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/evopress/evopress/allocate"
	"github.com/evopress/evopress/baselines"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/internal/atomicfile"
	"github.com/evopress/evopress/internal/memcheck"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/sparse"
)

// Defaults of the database baselines (sparse, quant).
const (
	// DefaultBaselineDBTokens is the calibration batch that scores OWL's grid points and random
	// profiles: the final stage of the fast preset (8192 tokens).
	DefaultBaselineDBTokens = 8192
	// DefaultBaselineDBSamples is random's number of profiles: the paper's best-of-32.
	DefaultBaselineDBSamples = allocate.FractionalRandomDraws
	// scoreGroup is how many candidates one Evaluate call scores.
	scoreGroup = 16
)

// The methods of each mode's baselines.
var (
	DropMethods = []string{"shortgpt", "window-cosine", "shortened-ppl", "norm-ratio", "random", "exhaustive"}
	// SparseMethods are the database baselines of sparse mode; QuantMethods of quant mode.
	SparseMethods = []string{"uniform", "owl", "dp", "random"}
	QuantMethods  = []string{"uniform", "dp", "random", "llamacpp"}
)

// BaselineRequest is a baseline allocation: a method EvoPress is compared against, under the
// budget of the same mode's search, written as the same profile file.
type BaselineRequest struct {
	Data
	Mode ModeSpec
	// Method is one of the mode's methods (DropMethods, SparseMethods, QuantMethods).
	Method string
	// Type is the uniform baseline's ggml type over a gguf database ("q4_k": every layer in it,
	// or in the type llama-quantize falls back to where its rows do not fit).
	Type string
	// FileType is the llamacpp baseline's llama.cpp file type over a gguf database ("Q3_K_M":
	// every layer, the token embedding and the output tensor in the types llama-quantize's
	// rules give them for it).
	FileType string
	Seed     uint64
	// Tokens is the calibration budget: drop methods' (0: the method's default), the batch
	// scoring sparse and quant candidates (0: DefaultBaselineDBTokens).
	Tokens int
	// Samples is random's number of profiles (0: the method's default).
	Samples int
	// Survivors (drop random): profiles re-scored on the final batch (0: by EvoPress's budget).
	Survivors int
	// MaxProfiles (drop exhaustive): refuse larger spaces (0: baselines.DefaultMaxProfiles).
	MaxProfiles int
	// WindowPositions (window-cosine): baselines.WindowLast ("" too) or baselines.WindowAll.
	WindowPositions string
	// KLTopK restricts KL to the dense model's top-k tokens (drop random and exhaustive).
	KLTopK int
	// NoPrefixReuse recomputes every candidate from the first block (same result, slower).
	NoPrefixReuse bool
	// Out is the profile file; ScoresOut (drop random, exhaustive), when set, gets every scored
	// profile with its fitness.
	Out, ScoresOut string
	// Force replaces existing output files (only this tool's: an evopress profile, a scores
	// file); without it they are refused before any work.
	Force bool
	// Command is recorded in the profile.
	Command string
	// Progress, when set, is called as candidates are scored (drop methods).
	Progress func(done, total int)
	// Log receives human-readable messages (nil: discarded).
	Log io.Writer
}

// BaselineOutcome is a finished baseline.
type BaselineOutcome struct {
	// Profile is the profile as its file holds it (a relative db.path is relative to the file's
	// folder; File is set).
	Profile *profile.Profile
	// Drop is the depth-pruning baseline's result (nil for sparse and quant).
	Drop    *baselines.Result
	Elapsed time.Duration
}

// RunBaseline runs the baseline req describes and writes its profile.
func RunBaseline(ctx context.Context, req BaselineRequest) (*BaselineOutcome, error) {
	if req.Out == "" {
		return nil, missing("Out", "the profile file to write")
	}
	if err := checkProfileOuts(req.Out, req.ScoresOut, req.Force); err != nil {
		return nil, err
	}
	if req.Log == nil {
		req.Log = io.Discard
	}
	switch req.Mode.Kind {
	case profile.ModeDrop:
		return runBaselineDrop(ctx, req)
	case profile.ModeSparse, profile.ModeQuant:
		return runBaselineDB(ctx, req)
	}
	return nil, invalid("Mode.Kind", req.Mode.Kind, "want drop, sparse or quant")
}

func runBaselineDrop(ctx context.Context, req BaselineRequest) (*BaselineOutcome, error) {
	if req.Method == "" {
		return nil, missing("Method", "%s", strings.Join(DropMethods, ", "))
	}
	method, err := baselines.ParseMethod(req.Method)
	if err != nil {
		return nil, err
	}
	if req.WindowPositions == "" {
		req.WindowPositions = baselines.WindowLast
	}
	if req.WindowPositions != baselines.WindowAll && req.WindowPositions != baselines.WindowLast {
		return nil, invalid("WindowPositions", req.WindowPositions, "want all or last")
	}
	if req.MaxProfiles < 0 {
		return nil, invalid("MaxProfiles", req.MaxProfiles, "must be ≥ 1")
	}
	if req.MaxProfiles == 0 {
		req.MaxProfiles = baselines.DefaultMaxProfiles
	}
	if req.Tokens < 0 {
		return nil, invalid("Tokens", req.Tokens, "must be ≥ 0 (0: the method's default)")
	}
	if err := req.Data.defaults(); err != nil {
		return nil, err
	}
	sc := scoring{command: "baseline drop " + string(method), kl: method == baselines.Random || method == baselines.Exhaustive,
		topK: req.KLTopK, subBatch: DefaultSubBatch, workers: 1, prefixReuse: !req.NoPrefixReuse}
	if err := checkMemory(req.Data.Model, req.ModelDir, func(s *memcheck.Shape) *memcheck.Estimate {
		return scoringEstimate(s, req.Data, sc)
	}); err != nil {
		return nil, err
	}
	lm, err := loadOr(req.Data.Model, req.ModelDir)
	if err != nil {
		return nil, err
	}
	n := len(lm.Model.Blocks)
	k, err := drop.TargetK(n, req.Mode.Target)
	if err != nil {
		return nil, err
	}
	if k == 0 {
		return nil, invalid("Mode.Target", req.Mode.Target, "drops floor(%v·%d) = 0 blocks: nothing to choose (raise the target)", req.Mode.Target, n)
	}
	text, err := ReadText(req.CalibFile, defaultCalib, rawFormat)
	if err != nil {
		return nil, err
	}
	cal, err := NewCalibration(lm, text, req.SeqLen, req.CalibTokens)
	if err != nil {
		return nil, err
	}
	teacher, err := fitness.NewTeacher(lm.Model, cal.Pool, fitness.Options{TopK: req.KLTopK, CacheBytes: int64(req.CacheMB) << 20})
	if err != nil {
		return nil, err
	}
	opt := baselines.Options{
		K: k, WholeBlocks: req.Mode.WholeBlocks, Keep: req.Mode.Keep, Tokens: req.Tokens, Seed: req.Seed,
		Samples: req.Samples, Survivors: req.Survivors, MaxProfiles: req.MaxProfiles, WindowPositions: req.WindowPositions,
		Teacher: teacher, NoPrefixReuse: req.NoPrefixReuse, Progress: req.Progress,
	}
	fmt.Fprintf(req.Log, "baseline %s on %s: k = %d of %d blocks, pool %d×%d tokens from %s\n",
		method, lm.Name, k, n, len(cal.Pool), cal.SeqLen, text.Source)
	res, err := baselines.Run(ctx, lm.Model, cal.Pool, method, opt)
	if err != nil {
		return nil, err
	}
	p := profile.New(profile.ModeDrop)
	p.Target = req.Mode.Target
	p.Model = &profile.Ref{Path: lm.Name, Fingerprint: lm.Fingerprint}
	for i, u := range res.Units {
		p.Levels[u] = res.Profile[i]
	}
	if fv := res.Fitness; !math.IsNaN(fv) {
		p.Fitness = &fv
	}
	p.Method = string(method)
	info := res.Info
	info.Calib = text.Source
	info.Command = profile.Command(req.Command)
	if res.Scores != nil {
		sc := map[string]float64{}
		for i, v := range res.Scores {
			if !math.IsNaN(v) {
				sc[fmt.Sprint(i)] = v
			}
		}
		if method == baselines.WindowCosine {
			info.WindowScores = sc
		} else {
			info.BlockScores = sc
		}
	}
	for _, s := range res.Ranking[:min(10, len(res.Ranking))] {
		info.Top = append(info.Top, dropRanked(s))
	}
	if req.ScoresOut != "" {
		all := make([]profile.DropRanked, len(res.Ranking))
		for i, s := range res.Ranking {
			all[i] = dropRanked(s)
		}
		b, err := json.MarshalIndent(map[string]any{"method": string(method), "batch_chunks": res.Batch.Chunks, "batch_tokens": res.Batch.Tokens, "ranking": all}, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(req.ScoresOut, append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
	}
	p.Search = &info
	if err := p.Write(req.Out); err != nil {
		return nil, err
	}
	return &BaselineOutcome{Profile: p.Stored(req.Out), Drop: res, Elapsed: res.Elapsed}, nil
}

// dropRanked describes a scored drop profile by its dropped blocks.
func dropRanked(s baselines.Scored) profile.DropRanked {
	var r profile.DropRanked
	for i, v := range s.Profile {
		if v == 1 {
			if i%2 == 0 {
				r.Attn = append(r.Attn, i/2)
			} else {
				r.MLP = append(r.MLP, i/2)
			}
		}
	}
	if f := s.Fitness; !math.IsNaN(f) && !math.IsInf(f, 0) {
		r.Fitness = &f
	}
	return r
}

// dbScorer scores profiles of a database by KL to the dense model on one calibration batch.
type dbScorer struct {
	ev    *fitness.Evaluator
	batch search.Batch
	evals int64
}

func (s *dbScorer) score(ctx context.Context, cands []search.Levels) ([]float64, error) {
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

func runBaselineDB(ctx context.Context, req BaselineRequest) (*BaselineOutcome, error) {
	kind := req.Mode.Kind
	methods := SparseMethods
	if kind == profile.ModeQuant {
		methods = QuantMethods
	}
	switch req.Method {
	case "uniform", "dp", "random":
	case "llamacpp":
		if kind != profile.ModeQuant {
			return nil, invalid("Method", req.Method, "llama.cpp's rules are a gguf database's baseline; sparse baselines are %v", methods)
		}
	case "owl":
		if kind == profile.ModeQuant {
			return nil, invalid("Method", req.Method, "OWL is a sparsity method; quant baselines are %v", methods)
		}
	case "":
		return nil, missing("Method", "%s", strings.Join(methods, ", "))
	default:
		return nil, invalid("Method", req.Method, "want %s", strings.Join(methods, ", "))
	}
	if req.Tokens == 0 {
		req.Tokens = DefaultBaselineDBTokens
	}
	if req.Tokens < 1 {
		return nil, invalid("Tokens", req.Tokens, "want at least 1")
	}
	if req.Samples < 0 {
		return nil, invalid("Samples", req.Samples, "want at least 1 (0 for %d)", DefaultBaselineDBSamples)
	}
	start := time.Now()
	var uniform *profile.Profile // the uniform baseline of a gguf database
	if req.Type != "" {
		if kind != profile.ModeQuant || req.Method != "uniform" {
			return nil, invalid("Type", req.Type, "a type is the uniform baseline's, over a gguf database")
		}
		if req.Mode.Target != 0 || req.Mode.TargetSize != 0 || req.Mode.Budget != 0 {
			return nil, invalid("Type", req.Type, "the uniform baseline's size follows from its type: give no target")
		}
		var err error
		if uniform, req.Mode.Budget, err = ggufUniform(req.DBDir, req.Type); err != nil {
			return nil, err
		}
	}
	dt := req.Data
	if err := dt.defaults(); err != nil {
		return nil, err
	}
	est := scoring{command: "baseline " + string(kind) + " " + req.Method, kl: true, subBatch: DefaultSubBatch, workers: 1, prefixReuse: true, db: true}
	if err := checkMemory(dt.Model, dt.ModelDir, func(s *memcheck.Shape) *memcheck.Estimate { return scoringEstimate(s, dt, est) }); err != nil {
		return nil, err
	}
	var recipe *ggufRecipe // the llamacpp baseline
	if req.FileType != "" && req.Method != "llamacpp" {
		return nil, invalid("FileType", req.FileType, "a file type is the llamacpp baseline's, over a gguf database")
	}
	if req.Method == "llamacpp" {
		var err error
		if recipe, err = llamacppBaseline(&req); err != nil {
			return nil, err
		}
	}
	if kind == profile.ModeQuant && req.Mode.Target == 0 && req.Mode.TargetSize == 0 && req.Mode.Budget == 0 {
		return nil, missing("Mode.Target", "mean bits per weight")
	}
	pt, err := req.Data.build(req.Mode)
	if err != nil {
		return nil, err
	}
	lm, mode, cal := pt.lm, pt.mode, pt.cal
	man := mode.DB.Manifest()
	units := mode.Units()
	teacher, err := fitness.NewTeacher(lm.Model, cal.Pool, fitness.Options{CacheBytes: int64(req.CacheMB) << 20})
	if err != nil {
		return nil, err
	}
	build, err := mode.Builder()
	if err != nil {
		return nil, err
	}
	ev, err := fitness.NewEvaluator(teacher, units, build, fitness.KL)
	if err != nil {
		return nil, err
	}
	sc := &dbScorer{ev: ev, batch: baselines.SampleBatch(len(cal.Pool), cal.SeqLen, req.Tokens, req.Seed, 0)}
	target := mode.Spec.Target
	fmt.Fprintf(req.Log, "baseline %s %s on %s: %d layers, target %v, pool %d×%d tokens from %s, scoring batch %d tokens\n",
		kind, req.Method, lm.Name, len(units), target, len(cal.Pool), cal.SeqLen, cal.Text.Source, sc.batch.Tokens)

	info := &profile.Record{Seed: req.Seed, SeqLen: cal.SeqLen, Calib: cal.Text.Source, CalibChunks: len(cal.Pool),
		Fitness: string(fitness.KL), BatchTokens: sc.batch.Tokens, Command: profile.Command(req.Command)}
	var sparseC sparse.Config
	var quantC quant.Config
	if kind == profile.ModeSparse {
		sparseC, err = man.SparseConfig(search.GroupDefault)
	} else {
		quantC, err = man.QuantConfig(target, search.GroupDefault)
		if mode.quant != nil { // gguf: the mode's exact budget
			quantC.Target, quantC.Budget = 0, mode.quant.Budget()
		}
	}
	if err != nil {
		return nil, err
	}
	if mode.quant != nil && req.Method == "uniform" && uniform == nil {
		return nil, missing("Type", "the ggml type of the uniform baseline over a gguf database, e.g. q4_k")
	}
	var levels search.Levels
	bestOf := func(cands []search.Levels) error {
		best, fit, err := allocate.Best(ctx, cands, sc.score)
		if err != nil {
			return err
		}
		levels = cands[best]
		info.Candidates, info.CandidateFitness, info.BestIndex = len(cands), fit, &best
		return nil
	}
	randomProfiles := func(n int) ([]search.Levels, error) {
		if kind == profile.ModeSparse {
			return allocate.RandomSparse(sparseC, n, req.Seed)
		}
		return allocate.RandomQuant(quantC, n, req.Seed)
	}
	samples := req.Samples
	if samples == 0 {
		samples = DefaultBaselineDBSamples
	}
	switch {
	case req.Method == "uniform" && kind == profile.ModeSparse:
		levels, err = allocate.UniformSparse(sparseC)
	case req.Method == "uniform" && uniform != nil:
		levels, err = search.ProfileFromLevels(units, uniform.Levels)
		info.Uniform = fmt.Sprintf("every layer in %s (or llama-quantize's fallback type)", req.Type)
	case req.Method == "uniform":
		levels, err = allocate.UniformQuant(quantC)
		if err != nil && math.Round(target) != target {
			// A fractional target: uniform is undefined; the paper's comparator is the best of 32
			// random profiles.
			n := allocate.FractionalRandomDraws
			if req.Samples > 0 {
				n = req.Samples
			}
			fmt.Fprintf(req.Log, "target %v is fractional: no uniform profile; using the best of %d random profiles (as the paper)\n", target, n)
			info.Uniform = fmt.Sprintf("fractional target: best of %d random profiles", n)
			var cands []search.Levels
			if cands, err = randomProfiles(n); err == nil {
				err = bestOf(cands)
			}
		}
	case recipe != nil:
		levels, err = search.ProfileFromLevels(units, recipe.levels)
		info.FileType = recipe.fileType.String()
	case req.Method == "dp":
		var total float64
		if kind == profile.ModeSparse {
			levels, total, err = allocate.DPSparse(sparseC, man.LevelErrors())
		} else {
			levels, total, err = allocate.DPQuant(quantC, man.LevelErrors())
		}
		info.SumError = &total
	case req.Method == "random":
		var cands []search.Levels
		if cands, err = randomProfiles(samples); err == nil {
			err = bestOf(cands)
		}
	case req.Method == "owl":
		levels, err = runOWL(ctx, lm, cal, sparseC, sc, info, req.Log)
	}
	if err != nil {
		return nil, err
	}
	if !mode.Legal(levels) {
		return nil, fmt.Errorf("internal error: %s profile is not legal", req.Method)
	}
	fit, err := sc.score(ctx, []search.Levels{levels})
	if err != nil {
		return nil, err
	}
	p := mode.Profile(levels, req.Method)
	if !math.IsNaN(fit[0]) {
		p.Fitness = &fit[0]
	}
	_, _, tokens := ev.Stats()
	info.Evaluations = sc.evals
	info.Tokens = tokens
	info.ElapsedS = time.Since(start).Seconds()
	if mode.quant != nil {
		if err := mode.recordGGUF(info, levels); err != nil {
			return nil, err
		}
	} else if kind == profile.ModeQuant {
		qm, err := quant.New(quantC)
		if err != nil {
			return nil, err
		}
		info.CodeBitsPerWeight = float64(qm.CodeBits(levels)) / float64(qm.TotalWeights())
		var bits, n float64
		for _, l := range man.Layers {
			bits += p.Values[l.Name] * float64(l.Numel)
			n += float64(l.Numel)
		}
		info.BitsPerWeight = bits / n
	}
	p.Search = info
	if err := p.Write(req.Out); err != nil {
		return nil, err
	}
	return &BaselineOutcome{Profile: p.Stored(req.Out), Elapsed: time.Since(start)}, nil
}

// llamacppBaseline checks the llamacpp baseline's request, loads its model into req.Data and
// returns the types llama-quantize's rules give, setting req's budget to their size and the
// token embedding and output types to theirs.
func llamacppBaseline(req *BaselineRequest) (*ggufRecipe, error) {
	if req.FileType == "" {
		return nil, missing("FileType", "the llama.cpp file type whose rules to reproduce, e.g. Q3_K_M")
	}
	if req.Mode.Target != 0 || req.Mode.TargetSize != 0 || req.Mode.Budget != 0 {
		return nil, invalid("FileType", req.FileType, "the llamacpp baseline's size follows from its file type: give no target")
	}
	if req.DBDir == "" {
		return nil, ErrNoDatabase
	}
	d, err := db.Open(req.DBDir)
	if err != nil {
		return nil, err
	}
	if d.Mode() != db.ModeGGUF {
		return nil, invalid("Method", req.Method, "database %s is a %s database: llama.cpp's rules need a gguf database", req.DBDir, d.Mode())
	}
	lm, err := loadOr(req.Data.Model, req.ModelDir)
	if err != nil {
		return nil, err
	}
	req.Data.Model = lm
	r, err := llamacppRecipe(lm, d, req.FileType, req.Mode.TokenEmbeddingType, req.Mode.OutputTensorType)
	if err != nil {
		return nil, err
	}
	req.Mode.Budget = r.bits
	req.Mode.TokenEmbeddingType, req.Mode.OutputTensorType = r.tokEmb, r.out
	return r, nil
}

// runOWL computes the outlier ratios and the grid's profiles, scores the distinct ones and
// keeps the best grid point.
func runOWL(ctx context.Context, lm *Loaded, cal *Calibration, cfg sparse.Config, sc *dbScorer, info *profile.Record, logw io.Writer) (search.Levels, error) {
	t0 := time.Now()
	ratios, err := allocate.OutlierRatios(ctx, lm.Model, cal.Pool, allocate.OWLMs, 0)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "owl: outlier ratios of %d blocks over %d calibration sequences in %s\n", len(lm.Model.Blocks), len(cal.Pool), time.Since(t0).Round(time.Millisecond))
	cands, err := allocate.OWLGrid(cfg, ratios, allocate.OWLLambdas, allocate.OWLMs)
	if err != nil {
		return nil, err
	}
	ps := make([]search.Levels, len(cands))
	for i, c := range cands {
		ps[i] = c.Profile
	}
	uniq, index := allocate.UniqueProfiles(ps)
	best, fit, err := allocate.Best(ctx, uniq, sc.score)
	if err != nil {
		return nil, err
	}
	// The first grid point (λ-major order) whose profile is the best one.
	chosen := -1
	info.OWLGrid = make([]profile.OWLPoint, len(cands))
	for i, c := range cands {
		info.OWLGrid[i] = profile.OWLPoint{Lambda: c.Lambda, M: c.M, Fitness: fit[index[i]], BlockSparsity: c.BlockSparsity}
		if chosen < 0 && index[i] == best {
			chosen = i
		}
	}
	info.OWLOutlierRatios = map[string][]float64{}
	for k, m := range allocate.OWLMs {
		info.OWLOutlierRatios[fmt.Sprint(m)] = ratios[k]
	}
	info.OWLLambda = cands[chosen].Lambda
	info.OWLM = cands[chosen].M
	info.OWLBlockSparsity = cands[chosen].BlockSparsity
	info.Candidates = len(uniq)
	return uniq[best], nil
}

// ggufUniform returns the uniform profile of type typ over the gguf database in dir (every layer
// in typ, or in llama-quantize's fallback type) and its linear layers' cost in bits.
func ggufUniform(dir, typ string) (*profile.Profile, int64, error) {
	if dir == "" {
		return nil, 0, ErrNoDatabase
	}
	d, err := db.Open(dir)
	if err != nil {
		return nil, 0, err
	}
	if d.Mode() != db.ModeGGUF {
		return nil, 0, invalid("Type", typ, "database %s is a %s database: a type is the uniform baseline's over a gguf database", dir, d.Mode())
	}
	t, err := ggml.ParseType(typ)
	if err != nil {
		return nil, 0, invalid("Type", typ, "not a ggml type (e.g. q4_k, q8_0)")
	}
	p, err := db.UniformProfile(d, int(t))
	if err != nil {
		return nil, 0, invalid("Type", typ, "%v", err)
	}
	var bits int64
	for _, l := range d.Manifest().Layers {
		for _, v := range l.Levels {
			if v.Level == p.Levels[l.Name] {
				bits += 8 * v.TensorBytes
			}
		}
	}
	return p, bits, nil
}
