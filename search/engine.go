package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Mode supplies the problem-specific parts of a search: the units, the legal profiles and the
// level switch. Implementations must be deterministic functions of their inputs and the rng.
type Mode interface {
	// Name is the mode's name: "drop", "sparse" or "quant".
	Name() string
	// Units names the compressible units after the Hugging Face modules they stand for, in
	// profile order.
	Units() []string
	// Initial returns candidate initial profiles, all legal. When there is more than one, the
	// engine scores them on one batch of Config.InitTokens tokens and starts from the best.
	Initial(rng *rand.Rand) []Levels
	// Mutate applies ONE budget-neutral level switch to a copy of p and returns the copy; it
	// never modifies p. When no switch is possible it returns an unchanged copy.
	Mutate(rng *rand.Rand, p Levels) Levels
	// Legal reports whether p is within the budget and every level within its unit's range.
	Legal(p Levels) bool
	// AcceptOffspring reports whether child, a legal mutation of parent, may compete; the
	// engine consults it after Legal. Most modes accept every child; the quant mode's free
	// group rule rejects offspring changing too many levels.
	AcceptOffspring(parent, child Levels) bool
	// Signature describes the problem instance (budget, level ranges, group rule, database)
	// in one string. It is stored in checkpoints, and resuming a checkpoint whose signature
	// differs is refused.
	Signature() string
	// Defaults are the mode's reference search settings (population, stages, generations),
	// which presets and explicit settings override (ResolveSettings).
	Defaults() Settings
}

// Batch identifies the calibration data every candidate of one selection stage is scored on.
type Batch struct {
	// Stage is the selection stage, from 1; 0 for the batch scoring the initial candidates.
	Stage int
	// Generation is the generation, from 1; 0 for the initial candidates.
	Generation int
	// Chunks are distinct indices into the calibration pool, in increasing order.
	Chunks []int
	// Tokens is the number of input tokens to score, min(stage tokens, len(Chunks)·SeqLen):
	// the chunks in full, except when a stage asks for fewer tokens than one chunk holds;
	// then only the first Tokens tokens of its single chunk are scored.
	Tokens int
}

// Evaluator scores candidate profiles; the lead's implementation computes the KL divergence of
// each candidate model to the dense model on the batch.
type Evaluator interface {
	// Evaluate returns one fitness per candidate, in candidate order (lower is better), all on
	// the same batch. parent is the current parent (nil when scoring the initial candidates):
	// every candidate differs from it in a few units, so an evaluator can reuse the parent's
	// cached hidden states up to the first changed unit. Evaluate must not modify its
	// arguments; it should return promptly with ctx.Err() when ctx is cancelled. A NaN
	// fitness is ranked as +Inf.
	Evaluate(ctx context.Context, parent Levels, cands []Levels, b Batch) ([]float64, error)
}

// EvaluatorFunc adapts a function to the Evaluator interface.
type EvaluatorFunc func(ctx context.Context, parent Levels, cands []Levels, b Batch) ([]float64, error)

// Evaluate calls f.
func (f EvaluatorFunc) Evaluate(ctx context.Context, parent Levels, cands []Levels, b Batch) ([]float64, error) {
	return f(ctx, parent, cands, b)
}

// Record summarises one generation (generation 0: the initialisation). The counters are
// cumulative since the start of the run, across resumptions. Its JSON form is
// {"generation", "best", "replaced", "evaluations", "tokens", "elapsed_ns"} (and "short" when
// not 0), with a NaN best
// written as null and ±Inf as "+Inf"/"-Inf".
type Record struct {
	Generation int
	// Best is the fitness of the parent chosen by this generation, on the last stage's batch
	// (generation 0: on the init batch; NaN when a single initial profile was not scored).
	Best float64
	// Replaced tells whether an offspring displaced the parent (generation 0: always false).
	Replaced    bool
	Evaluations int64
	Tokens      int64
	Elapsed     time.Duration
	// Short counts the offspring missing from Config.Offspring in this generation: the parent's
	// neighbourhood held fewer distinct legal profiles than λ that Config.MaxAttempts mutation
	// attempts could find (0 normally; λ when none was found and the parent stayed unscored).
	Short int
}

// MarshalJSON encodes r (see Record).
func (r Record) MarshalJSON() ([]byte, error) {
	return json.Marshal(recordFile{Generation: r.Generation, Best: jsonFloat(r.Best), Replaced: r.Replaced,
		Evaluations: r.Evaluations, Tokens: r.Tokens, ElapsedNS: int64(r.Elapsed), Short: r.Short})
}

// UnmarshalJSON decodes what MarshalJSON writes.
func (r *Record) UnmarshalJSON(b []byte) error {
	var f recordFile
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*r = Record{Generation: f.Generation, Best: float64(f.Best), Replaced: f.Replaced,
		Evaluations: f.Evaluations, Tokens: f.Tokens, Elapsed: time.Duration(f.ElapsedNS), Short: f.Short}
	return nil
}

// Result is the outcome of a run. Its JSON form has the fields mode, units, profile, fitness
// (null when NaN), generations, evaluations, tokens, history and elapsed_ns.
type Result struct {
	Mode  string
	Units []string
	// Profile is the final parent.
	Profile Levels
	// Fitness is the final parent's fitness on the last batch it was scored on; NaN when it was
	// never scored (a single initial profile and zero generations).
	Fitness float64
	// Generations is the number of completed generations.
	Generations int
	// Evaluations counts candidate evaluations, the parent's re-scorings included.
	Evaluations int64
	// Tokens counts input tokens scored (each evaluation counts its batch's tokens).
	Tokens  int64
	History []Record
	// Elapsed is the wall time of the run, summed over resumptions.
	Elapsed time.Duration
}

// MarshalJSON encodes r (see Result).
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Mode        string    `json:"mode"`
		Units       []string  `json:"units"`
		Profile     Levels    `json:"profile"`
		Fitness     jsonFloat `json:"fitness"`
		Generations int       `json:"generations"`
		Evaluations int64     `json:"evaluations"`
		Tokens      int64     `json:"tokens"`
		History     []Record  `json:"history"`
		ElapsedNS   int64     `json:"elapsed_ns"`
	}{r.Mode, r.Units, r.Profile, jsonFloat(r.Fitness), r.Generations, r.Evaluations, r.Tokens, r.History, int64(r.Elapsed)})
}

// Option configures Run.
type Option func(*options)

type options struct {
	checkpointer Checkpointer
	resume       *State
	objective    Objective
	observers    []Observer
	workers      func() []WorkerStatus
	now          func() time.Time
}

// WithWorkerStatus makes every Progress report carry status(): the workers of an evaluator
// that spreads candidates over several (the cluster's coordinator).
func WithWorkerStatus(status func() []WorkerStatus) Option {
	return func(o *options) { o.workers = status }
}

// WithCheckpointer hands the state to c after initialisation and after every generation.
func WithCheckpointer(c Checkpointer) Option { return func(o *options) { o.checkpointer = c } }

// WithResume continues the run saved in st instead of starting afresh. The objective
// (WithObjective), the mode (name, units, signature) and the configuration (all but Generations
// and MaxAttempts) must match the ones st was saved under; the continued run then ends exactly where an uninterrupted run would.
func WithResume(st *State) Option { return func(o *options) { o.resume = st } }

// WithObjective records obj in every State and makes WithResume refuse a state recorded with
// another objective (or with none) with an *ObjectiveError.
func WithObjective(obj Objective) Option {
	return func(o *options) {
		if o.objective = nil; len(obj) > 0 {
			o.objective = maps.Clone(obj)
		}
	}
}

// WithObserver calls obs after initialisation and after every generation, once the state is
// checkpointed.
func WithObserver(obs Observer) Option {
	return func(o *options) {
		if obs != nil {
			o.observers = append(o.observers, obs)
		}
	}
}

// withClock replaces time.Now (tests).
func withClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// rngStream is the second PCG word; the first is the seed.
const rngStream = 0x65766f7072657373 // "evopress"

// engine is the state of one run.
type engine struct {
	cfg   Config
	mode  Mode
	eval  Evaluator
	opts  options
	units []string
	sig   string

	src *rand.PCG
	rng *rand.Rand

	// committed state: that of the last complete generation
	gen         int
	parent      Levels
	fitness     float64
	evaluations int64
	tokens      int64
	history     []Record
	elapsedBase time.Duration // elapsed before this session
	start       time.Time     // start of this session
	sessionGens int           // generations completed in this session
}

// Run performs the (1+λ) evolutionary search of docs/design.md ("The method") with mode's units, levels
// and mutation, scoring candidates with eval. See the package documentation for the algorithm,
// tie-breaking and determinism. On error Run returns, with the error, the result of the last
// complete generation (nil if initialisation did not complete); when ctx is cancelled the
// error wraps ctx.Err().
func Run(ctx context.Context, cfg Config, mode Mode, eval Evaluator, opts ...Option) (*Result, error) {
	if mode == nil {
		return nil, errors.New("search: mode is nil")
	}
	if eval == nil {
		return nil, errors.New("search: evaluator is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &engine{cfg: cfg.withDefaults(), mode: mode, eval: eval, opts: options{now: time.Now}}
	for _, o := range opts {
		if o != nil {
			o(&e.opts)
		}
	}
	e.units = slices.Clone(mode.Units())
	if len(e.units) == 0 {
		return nil, fmt.Errorf("search: mode %q has no units", mode.Name())
	}
	e.sig = mode.Signature()
	e.start = e.opts.now()

	if st := e.opts.resume; st != nil {
		if err := e.restore(st); err != nil {
			return nil, err
		}
	} else {
		e.src = rand.NewPCG(e.cfg.Seed, rngStream)
		e.rng = rand.New(e.src)
		if err := e.initialise(ctx); err != nil {
			return nil, err
		}
		if err := e.commit(); err != nil {
			return e.result(), err
		}
	}

	for e.gen < e.cfg.Generations {
		if err := ctx.Err(); err != nil {
			return e.result(), fmt.Errorf("search: interrupted after generation %d of %d: %w", e.gen, e.cfg.Generations, err)
		}
		if err := e.generation(ctx); err != nil {
			return e.result(), err
		}
		if err := e.commit(); err != nil {
			return e.result(), err
		}
	}
	return e.result(), nil
}

// initialise picks the first parent (generation 0).
func (e *engine) initialise(ctx context.Context) error {
	inits := e.mode.Initial(e.rng)
	if len(inits) == 0 {
		return fmt.Errorf("search: mode %q returned no initial profile", e.mode.Name())
	}
	seen := make(map[string]bool, len(inits))
	var cands []Levels
	for i, p := range inits {
		if len(p) != len(e.units) {
			return fmt.Errorf("search: mode %q: initial profile %d has %d levels for %d units", e.mode.Name(), i, len(p), len(e.units))
		}
		if !e.mode.Legal(p) {
			return fmt.Errorf("search: mode %q: initial profile %d %v is not legal", e.mode.Name(), i, p)
		}
		if k := p.key(); !seen[k] {
			seen[k] = true
			cands = append(cands, p.Clone())
		}
	}
	rec := Record{Generation: 0, Best: math.NaN()}
	if len(cands) == 1 {
		e.parent, e.fitness = cands[0], math.NaN()
	} else {
		if err := e.cfg.checkInitPool(); err != nil {
			return err
		}
		b := e.drawBatch(0, 0, e.cfg.InitTokens)
		fit, err := e.score(ctx, nil, cands, b)
		if err != nil {
			return err
		}
		order := rank(fit)
		e.parent, e.fitness = cands[order[0]], fit[order[0]]
		e.evaluations += int64(len(cands))
		e.tokens += int64(len(cands)) * int64(b.Tokens)
		rec.Best = e.fitness
	}
	rec.Evaluations, rec.Tokens = e.evaluations, e.tokens
	rec.Elapsed = e.elapsed()
	e.history = append(e.history, rec)
	return nil
}

// generation runs one generation and commits its outcome to e only when it completes.
func (e *engine) generation(ctx context.Context) error {
	g := e.gen + 1
	cands, err := e.offspring()
	if err != nil {
		return fmt.Errorf("search: generation %d: %w", g, err)
	}
	short := e.cfg.Offspring - len(cands)
	if len(cands) == 0 {
		// No legal neighbour found: the parent stays, nothing is scored.
		e.gen = g
		e.sessionGens++
		e.history = append(e.history, Record{Generation: g, Best: e.fitness, Evaluations: e.evaluations,
			Tokens: e.tokens, Elapsed: e.elapsed(), Short: short})
		return nil
	}
	// isParent marks which candidate is the parent (only at the last stage).
	isParent := make([]bool, len(cands))
	var fit []float64
	var evals, toks int64
	for s, st := range e.cfg.Stages {
		if s == len(e.cfg.Stages)-1 {
			// Elitism at the last stage only; placed first, the parent wins ties.
			cands = append([]Levels{e.parent}, cands...)
			isParent = append([]bool{true}, isParent...)
		}
		b := e.drawBatch(s+1, g, st.Tokens)
		f, err := e.score(ctx, e.parent, cands, b)
		if err != nil {
			return fmt.Errorf("search: generation %d stage %d: %w", g, s+1, err)
		}
		evals += int64(len(cands))
		toks += int64(len(cands)) * int64(b.Tokens)
		order := rank(f)
		keep := min(st.Survivors, len(cands))
		nc, nf, np := make([]Levels, keep), make([]float64, keep), make([]bool, keep)
		for i, j := range order[:keep] {
			nc[i], nf[i], np[i] = cands[j], f[j], isParent[j]
		}
		cands, fit, isParent = nc, nf, np
	}
	e.gen = g
	e.parent, e.fitness = cands[0], fit[0]
	e.evaluations += evals
	e.tokens += toks
	e.sessionGens++
	e.history = append(e.history, Record{
		Generation: g, Best: e.fitness, Replaced: !isParent[0],
		Evaluations: e.evaluations, Tokens: e.tokens, Elapsed: e.elapsed(), Short: short,
	})
	return nil
}

// offspring makes λ distinct legal offspring of the parent, none equal to it, or as many as
// Config.MaxAttempts mutation attempts find when the parent's neighbourhood is smaller.
func (e *engine) offspring() ([]Levels, error) {
	lambda := e.cfg.Offspring
	seen := make(map[string]bool, lambda+1)
	seen[e.parent.key()] = true
	out := make([]Levels, 0, lambda)
	for attempt := 0; len(out) < lambda; attempt++ {
		if attempt >= e.cfg.MaxAttempts {
			break // a small neighbourhood: the generation goes on with fewer (Record.Short)
		}
		child := e.parent.Clone()
		for range switches(e.rng) {
			child = e.mode.Mutate(e.rng, child)
		}
		if len(child) != len(e.units) {
			return nil, fmt.Errorf("mode %q: mutation returned %d levels for %d units", e.mode.Name(), len(child), len(e.units))
		}
		if !e.mode.Legal(child) {
			continue
		}
		if !e.mode.AcceptOffspring(e.parent, child) {
			continue
		}
		k := child.key()
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, child)
	}
	return out, nil
}

// switches draws r = min(U{1..3}, U{1..3}): 1, 2, 3 with probabilities 5/9, 3/9, 1/9.
func switches(rng *rand.Rand) int {
	return min(1+rng.IntN(3), 1+rng.IntN(3))
}

// drawBatch samples max(1, tokens/SeqLen) distinct chunks of the pool.
func (e *engine) drawBatch(stage, gen, tokens int) Batch {
	n := chunksFor(tokens, e.cfg.SeqLen)
	chunks := sampleDistinct(e.rng, e.cfg.PoolChunks, n)
	slices.Sort(chunks)
	return Batch{Stage: stage, Generation: gen, Chunks: chunks, Tokens: min(tokens, n*e.cfg.SeqLen)}
}

// sampleDistinct returns k distinct integers of [0, n) (k ≤ n) by a partial Fisher–Yates
// shuffle over a sparse permutation, in O(k) time and memory.
func sampleDistinct(rng *rand.Rand, n, k int) []int {
	perm := make(map[int]int, 2*k)
	at := func(i int) int {
		if v, ok := perm[i]; ok {
			return v
		}
		return i
	}
	out := make([]int, k)
	for i := range k {
		j := i + rng.IntN(n-i)
		vi, vj := at(i), at(j)
		perm[i], perm[j] = vj, vi
		out[i] = vj
	}
	return out
}

// score calls the evaluator on copies of the candidates and checks its answer.
func (e *engine) score(ctx context.Context, parent Levels, cands []Levels, b Batch) ([]float64, error) {
	cp := make([]Levels, len(cands))
	for i, c := range cands {
		cp[i] = c.Clone()
	}
	fit, err := e.eval.Evaluate(ctx, parent.Clone(), cp, b)
	if cerr := ctx.Err(); cerr != nil {
		if err != nil && !errors.Is(err, cerr) {
			return nil, fmt.Errorf("interrupted: %w (evaluator: %w)", cerr, err)
		}
		return nil, fmt.Errorf("interrupted: %w", cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	if len(fit) != len(cands) {
		return nil, fmt.Errorf("evaluate: returned %d fitness values for %d candidates", len(fit), len(cands))
	}
	return fit, nil
}

// rank returns candidate indices by increasing fitness; NaN ranks as +Inf and ties keep the
// lower index first.
func rank(fit []float64) []int {
	order := make([]int, len(fit))
	for i := range order {
		order[i] = i
	}
	key := func(i int) float64 {
		if math.IsNaN(fit[i]) {
			return math.Inf(1)
		}
		return fit[i]
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ka, kb := key(a), key(b)
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
	return order
}

func (e *engine) elapsed() time.Duration {
	return e.elapsedBase + e.opts.now().Sub(e.start)
}

// commit checkpoints the committed state and notifies observers.
func (e *engine) commit() error {
	if e.opts.checkpointer != nil {
		st, err := e.state()
		if err != nil {
			return err
		}
		if err := e.opts.checkpointer.Save(st); err != nil {
			return fmt.Errorf("search: checkpoint after generation %d: %w", e.gen, err)
		}
	}
	if len(e.opts.observers) > 0 {
		p := e.progress()
		for _, obs := range e.opts.observers {
			obs(p)
		}
	}
	return nil
}

func (e *engine) progress() Progress {
	last := e.history[len(e.history)-1]
	eta := time.Duration(-1)
	if e.sessionGens > 0 {
		per := e.opts.now().Sub(e.start) / time.Duration(e.sessionGens)
		eta = per * time.Duration(max(0, e.cfg.Generations-e.gen))
	} else if e.gen >= e.cfg.Generations {
		eta = 0
	}
	return Progress{
		Mode: e.mode.Name(), Generation: e.gen, Generations: e.cfg.Generations,
		Best: e.fitness, Replaced: last.Replaced, Evaluations: e.evaluations, Tokens: e.tokens,
		Elapsed: last.Elapsed, ETA: eta, Workers: e.workers(), Short: last.Short,
	}
}

// workers asks for the workers' status when the run was given a way to (WithWorkerStatus).
func (e *engine) workers() []WorkerStatus {
	if e.opts.workers != nil {
		return e.opts.workers()
	}
	return nil
}

func (e *engine) result() *Result {
	if e.parent == nil {
		return nil
	}
	el := e.elapsedBase
	if n := len(e.history); n > 0 {
		el = e.history[n-1].Elapsed
	}
	return &Result{
		Mode: e.mode.Name(), Units: slices.Clone(e.units), Profile: e.parent.Clone(), Fitness: e.fitness,
		Generations: e.gen, Evaluations: e.evaluations, Tokens: e.tokens,
		History: slices.Clone(e.history), Elapsed: el,
	}
}

// state snapshots the committed state.
func (e *engine) state() (*State, error) {
	rs, err := e.src.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("search: saving the random state: %w", err)
	}
	el := e.elapsedBase
	if n := len(e.history); n > 0 {
		el = e.history[n-1].Elapsed
	}
	return &State{
		Mode: e.mode.Name(), Signature: e.sig, Units: slices.Clone(e.units), Objective: maps.Clone(e.opts.objective), Config: e.cfg,
		Generation: e.gen, Parent: e.parent.Clone(), ParentFitness: e.fitness, RNG: rs,
		Evaluations: e.evaluations, Tokens: e.tokens, History: slices.Clone(e.history), Elapsed: el,
	}, nil
}

// restore loads a saved state after checking it belongs to this problem and configuration.
func (e *engine) restore(st *State) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("search: resume: "+format, args...)
	}
	if err := st.CheckObjective(e.opts.objective); err != nil {
		return err
	}
	if st.Mode != e.mode.Name() {
		return fail("checkpoint is for mode %q, not %q", st.Mode, e.mode.Name())
	}
	if !slices.Equal(st.Units, e.units) {
		return fail("checkpoint units differ from the mode's (%d vs %d units): another model or mode options?", len(st.Units), len(e.units))
	}
	if st.Signature != e.sig {
		return fail("checkpoint signature %q differs from the mode's %q: another target, level range or group rule?", st.Signature, e.sig)
	}
	c, s := e.cfg, st.Config.withDefaults()
	switch {
	case s.Offspring != c.Offspring:
		return fail("checkpoint has offspring %d, config %d", s.Offspring, c.Offspring)
	case !slices.Equal(s.Stages, c.Stages):
		return fail("checkpoint has stages %q, config %q", FormatStages(s.Stages), FormatStages(c.Stages))
	case s.InitTokens != c.InitTokens:
		return fail("checkpoint has init tokens %d, config %d", s.InitTokens, c.InitTokens)
	case s.Seed != c.Seed:
		return fail("checkpoint has seed %d, config %d", s.Seed, c.Seed)
	case s.SeqLen != c.SeqLen:
		return fail("checkpoint has seq len %d, config %d", s.SeqLen, c.SeqLen)
	case s.PoolChunks != c.PoolChunks:
		return fail("checkpoint has pool chunks %d, config %d", s.PoolChunks, c.PoolChunks)
	}
	if st.Generation < 0 {
		return fail("checkpoint generation %d is negative", st.Generation)
	}
	if len(st.Parent) != len(e.units) {
		return fail("checkpoint parent has %d levels for %d units", len(st.Parent), len(e.units))
	}
	if !e.mode.Legal(st.Parent) {
		return fail("checkpoint parent %v is not legal for this mode", st.Parent)
	}
	if len(st.History) != st.Generation+1 {
		return fail("checkpoint history has %d records for %d generations", len(st.History), st.Generation)
	}
	src := new(rand.PCG)
	if err := src.UnmarshalBinary(st.RNG); err != nil {
		return fail("checkpoint random state: %v", err)
	}
	e.src, e.rng = src, rand.New(src)
	e.gen = st.Generation
	e.parent, e.fitness = st.Parent.Clone(), st.ParentFitness
	e.evaluations, e.tokens = st.Evaluations, st.Tokens
	e.history = slices.Clone(st.History)
	e.elapsedBase = st.Elapsed
	return nil
}
