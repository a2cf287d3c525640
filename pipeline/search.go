package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/evopress/evopress/cluster"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/internal/atomicfile"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/internal/memcheck"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/report"
	"github.com/evopress/evopress/search"
)

// Defaults of a request's zero-valued fields.
const (
	DefaultSeqLen      = 256
	DefaultCalibTokens = 131072
	DefaultCacheMB     = 2048
	DefaultDBCacheMB   = 1024
	DefaultSubBatch    = 16
)

// Data names the model, the calibration text and the level database a request works on.
type Data struct {
	// ModelDir is a Hugging Face model directory; "" is the embedded default model. Model, when
	// set, is used instead (already loaded).
	ModelDir string
	Model    *Loaded
	// CalibFile is the calibration text; "" is the embedded calibration text.
	CalibFile string
	// SeqLen is the calibration sequence length (0: DefaultSeqLen); CalibTokens caps the pool
	// to the chunks of the first CalibTokens tokens (0: the whole text).
	SeqLen, CalibTokens int
	// DBDir is the level database of sparse and quant modes.
	DBDir string
	// CacheMB bounds the cached dense distributions, DBCacheMB the cached database levels (held as stored)
	// (0: the defaults).
	CacheMB, DBCacheMB int
}

// parts are what a request's Data and ModeSpec build.
type parts struct {
	lm   *Loaded
	mode *Mode
	cal  *Calibration
}

// build loads the model, opens the database, makes the mode and the calibration pool.
func (dt *Data) build(spec ModeSpec) (*parts, error) {
	if err := dt.defaults(); err != nil {
		return nil, err
	}
	switch spec.Kind {
	case profile.ModeDrop, profile.ModeSparse, profile.ModeQuant:
	default:
		return nil, invalid("Mode.Kind", spec.Kind, "want drop, sparse or quant")
	}
	lm, err := loadOr(dt.Model, dt.ModelDir)
	if err != nil {
		return nil, err
	}
	p := &parts{lm: lm}
	var d *db.DB
	if spec.Kind != profile.ModeDrop {
		if d, err = OpenDB(dt.DBDir, p.lm, dt.DBCacheMB, spec.Kind); err != nil {
			return nil, err
		}
	}
	if p.mode, err = NewMode(p.lm, d, spec); err != nil {
		return nil, err
	}
	text, err := ReadText(dt.CalibFile, defaultCalib, rawFormat)
	if err != nil {
		return nil, err
	}
	if p.cal, err = NewCalibration(p.lm, text, dt.SeqLen, dt.CalibTokens); err != nil {
		return nil, err
	}
	return p, nil
}

// defaults fills in the zero fields and refuses negative sizes (which would otherwise read as
// "the default" or "no limit" further down).
func (dt *Data) defaults() error {
	if dt.CacheMB < 0 {
		return invalid("CacheMB", dt.CacheMB, "must be ≥ 1 MiB")
	}
	if dt.DBCacheMB < 0 {
		return invalid("DBCacheMB", dt.DBCacheMB, "must be ≥ 1 MiB")
	}
	if dt.SeqLen == 0 {
		dt.SeqLen = DefaultSeqLen
	}
	if dt.CacheMB == 0 {
		dt.CacheMB = DefaultCacheMB
	}
	if dt.DBCacheMB == 0 {
		dt.DBCacheMB = DefaultDBCacheMB
	}
	return nil
}

// SearchRequest is an evolutionary search: what to search, with which settings, and where the
// results go.
type SearchRequest struct {
	Data
	Mode ModeSpec
	// Preset is search.PresetPaper ("" too) or search.PresetFast; Settings override it.
	Preset   string
	Settings search.Overrides
	Seed     uint64
	// Fitness is "kl" ("" too) or "ppl"; KLTopK restricts KL to the dense top-k tokens.
	Fitness string
	KLTopK  int
	// SubBatch is the number of calibration sequences per forward (0: DefaultSubBatch).
	SubBatch int
	// NoPrefixReuse recomputes every candidate from the first block (same result, slower).
	NoPrefixReuse bool
	// Out is the profile file to write. RunDir is the run folder (checkpoint.json, log.jsonl,
	// result.json, report); "" is Out with ".json" replaced by ".run".
	Out, RunDir string
	// Resume continues from the run folder's checkpoint (and starts fresh when there is none);
	// the checkpoint must have been written for the same objective (model, database,
	// calibration text and pool, fitness, KL top-k, sub-batch, kernels), else *ObjectiveError.
	Resume bool
	// Force starts afresh over an earlier run's profile and run folder (only files this tool
	// wrote: an evopress profile, a run folder with an evopress checkpoint). Without Force or
	// Resume, an earlier run's files are refused before any work.
	Force bool
	// Cluster says where candidates are scored; nil is DefaultCluster().
	Cluster *ClusterOptions
	// Command is recorded in the profile (the command line that made it).
	Command string
	// Observer receives progress after initialisation and every generation.
	Observer search.Observer
	// Log receives human-readable messages (nil: discarded).
	Log io.Writer
}

// SearchOutcome is a finished search.
type SearchOutcome struct {
	// Profile is the profile as its file (Out) holds it (a relative db.path is relative to the
	// file's folder; File is set).
	Profile *profile.Profile
	Result  *search.Result
	// Out and RunDir are where the profile and the run folder were written; Report lists the
	// report's files.
	Out, RunDir string
	Report      *report.Files
	// Resumed is the generation the run resumed from (0: started fresh).
	Resumed int
	// Cluster counts the evaluation's block forwards and re-sent tasks.
	Cluster cluster.Stats
}

// RunSearch runs the search req describes and writes its profile, run folder and report.
func RunSearch(ctx context.Context, req SearchRequest) (*SearchOutcome, error) {
	if req.Out == "" {
		return nil, missing("Out", "the profile file to write")
	}
	if req.Fitness == "" {
		req.Fitness = string(fitness.KL)
	}
	kind, err := fitness.ParseKind(req.Fitness)
	if err != nil {
		return nil, invalid("Fitness", req.Fitness, "want kl or ppl")
	}
	if req.SubBatch == 0 {
		req.SubBatch = DefaultSubBatch
	}
	if req.SubBatch < 1 {
		return nil, invalid("SubBatch", req.SubBatch, "must be ≥ 1")
	}
	if req.Cluster != nil {
		if err := req.Cluster.check(); err != nil {
			return nil, err // before the model is loaded and the run folder made
		}
	}
	logw := req.Log
	if logw == nil {
		logw = io.Discard
	}
	runDir := req.RunDir
	if runDir == "" {
		runDir = strings.TrimSuffix(req.Out, ".json") + ".run"
	}
	ckPath := filepath.Join(runDir, "checkpoint.json")
	ckExists, err := checkRunOutputs(req.Out, runDir, req.RunDir != "", req.Resume, req.Force)
	if err != nil {
		return nil, err
	}
	if err := checkRunLock(runDir); err != nil {
		return nil, err
	}
	// The report written at the end replaces only its own files.
	if err := report.CheckFiles(runDir, append([]string{report.MarkdownFile, report.HTMLFile}, report.RunImages(req.Mode.Kind)...), true); err != nil {
		return nil, err
	}
	co := req.Cluster
	if co == nil {
		co = DefaultCluster()
	}
	sc := scoring{command: "search " + string(req.Mode.Kind), kl: kind == fitness.KL, topK: req.KLTopK, subBatch: req.SubBatch,
		workers: co.Workers, prefixReuse: !req.NoPrefixReuse, db: req.Mode.Kind != profile.ModeDrop}
	dt := req.Data
	if err := dt.defaults(); err != nil {
		return nil, err
	}
	if err := checkMemory(dt.Model, dt.ModelDir, func(s *memcheck.Shape) *memcheck.Estimate { return scoringEstimate(s, dt, sc) }); err != nil {
		return nil, err
	}
	pt, err := req.Data.build(req.Mode)
	if err != nil {
		return nil, err
	}
	lm, mode, cal := pt.lm, pt.mode, pt.cal
	if mode.quant != nil {
		if err := mode.quant.Searchable(); err != nil {
			return nil, invalid("Mode.Target", mode.Spec.Target, "%v", err)
		}
	}
	settings, err := search.ResolveSettings(req.Preset, mode.Defaults(), req.Settings)
	if err != nil {
		return nil, err
	}
	cfg := search.NewConfig(settings, req.Seed, cal.SeqLen, len(cal.Pool))
	if err := cfg.Validate(); err != nil { // before the server starts and the run folder is made
		return nil, err
	}
	teacher, err := fitness.NewTeacher(lm.Model, cal.Pool, fitness.Options{TopK: req.KLTopK, CacheBytes: int64(req.CacheMB) << 20})
	if err != nil {
		return nil, err
	}
	worker := NewWorker(lm, cal.Text, mode.DB, req.CacheMB)
	job := cluster.Job{Mode: mode.Name(), Units: mode.Units(), Model: lm.Name, ModelFingerprint: lm.Fingerprint,
		CalibSHA256: cal.Text.SHA256, SeqLen: cal.SeqLen, CalibTokens: cal.Tokens, PoolChunks: len(cal.Pool),
		Fitness: string(kind), TopK: req.KLTopK, PrefixReuse: !req.NoPrefixReuse, SubBatch: req.SubBatch, Kernels: kernels.Implementation()}
	if mode.DB != nil {
		job.DBFingerprint = mode.DB.Fingerprint()
	}
	if job.TokenEmbeddingType, job.OutputTensorType, err = mode.fileTensorTypes(); err != nil {
		return nil, err
	}
	worker.seedTeacher(&job, teacher)

	obj := searchObjective(pt, kind, req.KLTopK, req.SubBatch)
	out := &SearchOutcome{Out: req.Out, RunDir: runDir}
	opts := []search.Option{search.WithCheckpointer(&search.FileCheckpointer{Path: ckPath}), search.WithObjective(obj)}
	var resumed *search.State
	var ckStat os.FileInfo // the checkpoint resumed, as it was read
	if req.Resume && ckExists {
		if ckStat, err = os.Stat(ckPath); err != nil {
			return nil, err
		}
		if resumed, err = search.LoadCheckpoint(ckPath); err != nil {
			return nil, err
		}
		recorded := []string{resumed.Signature}
		for _, v := range resumed.Objective {
			recorded = append(recorded, v)
		}
		dbDir := ""
		if mode.DB != nil {
			dbDir = mode.DB.Dir()
		}
		if err := lm.Stamps().CheckRun(runDir, recorded, dbDir); err != nil {
			return nil, err // stamped by an older evopress: the advice to re-stamp it
		}
		var oe *search.ObjectiveError
		if err := resumed.CheckObjective(obj); errors.As(err, &oe) {
			return nil, &ObjectiveError{Checkpoint: ckPath, Changes: oe.Changes, Unrecorded: oe.Unrecorded}
		}
		fmt.Fprintf(logw, "resuming %s from generation %d\n", ckPath, resumed.Generation)
		out.Resumed = resumed.Generation
		opts = append(opts, search.WithResume(resumed))
	} else if req.Resume {
		fmt.Fprintf(logw, "no checkpoint at %s: starting fresh\n", ckPath)
	}

	runField := "RunDir"
	if req.RunDir == "" {
		runField = "Out"
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil { // only now: a search that fails to start leaves nothing
		return nil, invalid(runField, runDir, "cannot create the run folder: %v", err)
	}
	lock, err := lockRunDir(runDir)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	// Another search may have started in the folder (and ended) since it was checked.
	if again, err := checkRunOutputs(req.Out, runDir, req.RunDir != "", req.Resume, req.Force); err != nil {
		return nil, err
	} else if again != ckExists || (ckStat != nil && !sameFile(ckPath, ckStat)) {
		return nil, fmt.Errorf("run folder %s changed while this search was starting (another search wrote its checkpoint): run the command again", runDir)
	}
	logFlags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if resumed == nil {
		logFlags |= os.O_TRUNC // a fresh run's log (an earlier run's only with Force)
	}
	logFile, err := os.OpenFile(filepath.Join(runDir, "log.jsonl"), logFlags, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	fileLog := search.NewJSONLogger(logFile)
	opts = append(opts, search.WithObserver(func(p search.Progress) {
		fileLog.Observe(p)
		if req.Observer != nil {
			req.Observer(p)
		}
	}))
	ev, err := startEvaluation(ctx, co, job, worker, logw)
	if err != nil {
		return nil, err
	}
	defer ev.Close()
	opts = append(opts, search.WithWorkerStatus(ev.co.Workers))
	fmt.Fprintf(logw, "search %s on %s: %d units, λ=%d, stages %s, %d generations, seed %d, pool %d×%d tokens from %s\n",
		mode.Name(), lm.Name, len(mode.Units()), cfg.Offspring, search.FormatStages(cfg.Stages), cfg.Generations, cfg.Seed, len(cal.Pool), cal.SeqLen, cal.Text.Source)

	start := time.Now()
	res, err := search.Run(ctx, cfg, mode, ev.co, opts...)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil, &InterruptedError{Checkpoint: ckPath, Err: err}
		}
		return nil, err
	}
	cst := ev.co.Stats()
	out.Result, out.Cluster = res, cst
	p := mode.Profile(res.Profile, "evopress")
	if fv := res.Fitness; fv == fv {
		p.Fitness = &fv
	}
	p.Search = &profile.Record{
		Seed: cfg.Seed, Generations: res.Generations, Offspring: cfg.Offspring,
		Stages: search.FormatStages(cfg.Stages), InitTokens: cfg.InitTokens, SeqLen: cal.SeqLen,
		Calib: cal.Text.Source, CalibChunks: len(cal.Pool), Fitness: string(kind), KLTopK: req.KLTopK,
		CalibSHA256: obj["calib_sha256"], CalibTokens: cal.Tokens, Kernels: obj["kernels"],
		Evaluations: res.Evaluations, Tokens: res.Tokens, ElapsedS: res.Elapsed.Seconds(),
		ThisRunS: time.Since(start).Seconds(), BlocksComputed: cst.BlocksRun, BlocksFullForward: cst.BlocksFull,
		Command: profile.Command(req.Command), Workers: len(ev.co.Workers()), ResentTasks: cst.Resent,
		SubBatch: req.SubBatch, RangeTasks: cst.RangeTasks,
	}
	if err := mode.recordGGUF(p.Search, res.Profile); err != nil {
		return nil, err
	}
	if err := p.Write(req.Out); err != nil {
		return nil, err
	}
	out.Profile = p.Stored(req.Out) // what the file holds (db.path relative to its folder)
	resJSON, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(runDir, "result.json"), resJSON, 0o644); err != nil {
		return nil, err
	}
	if out.Report, err = report.WriteRun(runDir, req.Out, "", true); err != nil {
		return nil, fmt.Errorf("writing the run's report: %w", err)
	}
	return out, nil
}
