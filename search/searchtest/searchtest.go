// Package searchtest is a conformance suite for search.Mode implementations: every mode of the
// search (search/drop, search/sparse, search/quant) runs it from its tests, on small instances
// it can check exhaustively and on realistic ones it checks along random walks.
//
// A Case describes one instance: how to build the mode, an independent statement of its budget
// (Within, Invariant), what one level switch looks like (Step) and which other instances must
// have another signature (Variants). Conformance checks, for every case:
//
//   - units: Name and Units are non-empty, unit names are unique, Units returns a copy, Legal
//     rejects profiles of the wrong length and Mutate returns them unchanged;
//   - legal: Legal agrees with the independent budget predicate Within on every enumerated
//     level vector (Case.Levels) or on every profile a walk visits;
//   - moves: every Mutate of a legal profile is legal, keeps the Invariant quantities exactly
//     (units dropped, Σ levels, Σ numel·bits...), has the shape Step describes, never modifies
//     or aliases its input, and is a deterministic function of the profile and the rng;
//     AcceptOffspring agrees with the independent reference Accept; Mutate of an illegal level
//     vector does not panic, keeps the length and leaves the input alone;
//   - bounded: with Bounded, every initial profile has the property and every Mutate of a
//     legal profile that has it has it too (the quant mode's cost form: its unspent budget stays
//     below one step);
//   - initial: Initial profiles exist, have one level per unit, are legal and are a
//     deterministic function of the rng;
//   - reach: with Levels, the profiles reachable from each initial profile by accepted
//     mutations are exactly the legal profiles Reachable selects (by default, all legal
//     profiles with the initial profile's Invariant, and the Bounded property when the case has
//     one) — found by a breadth-first search over
//     Mutate with many rngs per profile; without Levels, a long walk moves every unit not in
//     Fixed;
//   - signature: two constructions give the same name, units, signature and defaults, and
//     every variant (another budget, level range, group rule...) has another signature, as
//     has every other case of the same call;
//   - defaults: Defaults are valid settings (search.Settings.Validate), and resolve with both
//     presets (search.ResolveSettings);
//   - resume: search.Run with a deterministic fake evaluator (a hash of candidate and batch),
//     interrupted after initialisation and after a few generations, checkpointed to a file and
//     resumed, ends exactly as the uninterrupted run (profile, fitness, counters, history, and
//     every later checkpoint), and two uninterrupted runs agree.
package searchtest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/search"
)

// Defaults of the Case fields left zero.
const (
	// DefaultTries is the number of rngs Mutate is called with per profile.
	DefaultTries = 64
	// DefaultWalkTries bounds the rngs per profile for the profiles of a walk.
	DefaultWalkTries = 8
	// DefaultWalkSteps is the length of the random walks of cases without Levels.
	DefaultWalkSteps = 3000
	// DefaultOffspring is λ of the engine runs of the resume check.
	DefaultOffspring = 2
	// MaxEnumerate bounds the number of level vectors Levels may describe.
	MaxEnumerate = 200000
)

// Case is one instance of a mode under test.
type Case struct {
	// Name names the case's subtest.
	Name string
	// New builds the mode. It is called several times and must build the same instance each
	// time.
	New func() (search.Mode, error)
	// Within is the budget predicate, written independently of the mode: p has one allowed
	// level per unit and is within the budget. Legal must agree with it. Required.
	Within func(p search.Levels) bool
	// Invariant returns the quantities every level switch keeps exactly: the budget quantity
	// (units dropped per kind, Σ levels, Σ numel·bits) and any per-group totals the group rule
	// keeps. Nil when the moves keep the budget only as a bound (Within), as the quant mode's
	// free group rule does.
	Invariant func(p search.Levels) []int64
	// Step, when set, checks the shape of one switch: child = Mutate(parent) with child ≠
	// parent, both legal (e.g. "one unit up one level, one of the same group down one").
	Step func(parent, child search.Levels) error
	// Bounded, when set, is a property of legal profiles besides the budget that the initial
	// profiles have and that every switch keeps (e.g. an unspent budget below one level step,
	// for moves that keep the budget only as a bound); it returns what p lacks, or nil.
	Bounded func(p search.Levels) error
	// Accept is an independent reference for AcceptOffspring on (parent, child = Mutate(parent));
	// nil means the mode must accept every legal child.
	Accept func(parent, child search.Levels) bool
	// Levels lists, per unit, the levels to enumerate: a superset of the unit's allowed levels
	// (add a few illegal ones to exercise Legal). With Levels every level vector is checked
	// (at most MaxEnumerate) and reachability is exact; without, the instance is checked along
	// random walks.
	Levels [][]int
	// Reachable, with Levels, selects the legal profiles the walks from initial profile p0
	// must reach, and may reach; nil means the legal profiles with p0's Invariant (all legal
	// profiles when Invariant is nil).
	Reachable func(p0, p search.Levels) bool
	// Fixed lists the units no switch may change; without Levels, a walk must change every
	// other unit.
	Fixed []int
	// Variants build instances differing from New's in one respect (budget, level range,
	// group rule, kept units...): each must have a signature of its own.
	Variants map[string]func() (search.Mode, error)
	// Tries is the number of rngs Mutate is called with per profile (0: DefaultTries; at
	// most DefaultWalkTries on the profiles of a walk).
	Tries int
	// WalkSteps is the length of the walks without Levels (0: DefaultWalkSteps).
	WalkSteps int
	// Offspring is λ of the engine runs (0: DefaultOffspring); lower it to 1 for instances
	// whose profiles have a single neighbour.
	Offspring int
}

// Range returns the levels lo, lo+1, ..., hi: a helper for Case.Levels.
func Range(lo, hi int) []int {
	var out []int
	for v := lo; v <= hi; v++ {
		out = append(out, v)
	}
	return out
}

// Repeat returns n copies of levels: Case.Levels for n units with the same levels.
func Repeat(n int, levels []int) [][]int {
	out := make([][]int, n)
	for i := range out {
		out[i] = slices.Clone(levels)
	}
	return out
}

// Conformance runs every check on every case, each case in a subtest of its name and each
// property in a subtest of that.
func Conformance(t *testing.T, cases []Case) {
	t.Helper()
	if len(cases) == 0 {
		t.Fatal("searchtest: no cases")
	}
	sigs := map[string]string{} // signature → case
	for _, c := range cases {
		if c.Name == "" || c.New == nil || c.Within == nil {
			t.Fatalf("searchtest: case %q needs a Name, New and Within", c.Name)
		}
		m, err := c.New()
		if err != nil {
			t.Fatalf("searchtest: case %q: New: %v", c.Name, err)
		}
		if prev, dup := sigs[m.Signature()]; dup {
			t.Errorf("searchtest: cases %q and %q have the same signature %q", prev, c.Name, m.Signature())
		}
		sigs[m.Signature()] = c.Name
		t.Run(c.Name, func(t *testing.T) { runCase(t, c) })
	}
}

// checker holds one case under test.
type checker struct {
	Case
	m     search.Mode
	n     int             // units
	legal []search.Levels // enumerated legal profiles (Levels) or walk profiles
	enum  bool            // legal holds every legal profile
}

func runCase(t *testing.T, c Case) {
	if c.Tries == 0 {
		c.Tries = DefaultTries
	}
	if c.WalkSteps == 0 {
		c.WalkSteps = DefaultWalkSteps
	}
	if c.Offspring == 0 {
		c.Offspring = DefaultOffspring
	}
	m, err := c.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	k := &checker{Case: c, m: m, n: len(m.Units())}
	t.Run("units", k.units)
	if t.Failed() {
		return
	}
	t.Run("initial", k.initial)
	if t.Failed() {
		return
	}
	if c.Levels != nil {
		t.Run("legal", k.legalAgrees)
	} else {
		t.Run("walk", k.legalAgrees)
	}
	if t.Failed() {
		return
	}
	t.Run("moves", k.moves)
	if k.enum {
		t.Run("reach", k.reach)
	}
	t.Run("signature", k.signature)
	t.Run("defaults", k.defaults)
	t.Run("resume", k.resume)
}

func rngFor(a, b uint64) *rand.Rand { return rand.New(rand.NewPCG(a, b)) }

func (k *checker) units(t *testing.T) {
	if k.m.Name() == "" {
		t.Error("Name is empty")
	}
	u := k.m.Units()
	if len(u) == 0 {
		t.Fatal("no units")
	}
	seen := map[string]bool{}
	for i, name := range u {
		if name == "" {
			t.Errorf("unit %d has no name", i)
		}
		if seen[name] {
			t.Errorf("unit name %q appears twice", name)
		}
		seen[name] = true
	}
	u[0] += "~changed"
	if k.m.Units()[0] == u[0] {
		t.Error("Units returns the mode's own slice: changing it changed the mode")
	}
	if k.Levels != nil && len(k.Levels) != len(u) {
		t.Fatalf("case error: Levels has %d entries for %d units", len(k.Levels), len(u))
	}
	for _, f := range k.Fixed {
		if f < 0 || f >= len(u) {
			t.Fatalf("case error: Fixed unit %d out of range", f)
		}
	}
	p0 := k.m.Initial(rngFor(1, 2))
	if len(p0) == 0 {
		t.Fatal("Initial returned no profile")
	}
	for _, bad := range wrongLengths(p0[0]) {
		if k.m.Legal(bad) {
			t.Errorf("Legal(%v) = true for a profile of %d levels (%d units)", bad, len(bad), len(u))
		}
		in := bad.Clone()
		q := k.m.Mutate(rngFor(3, 4), bad)
		if !bad.Equal(in) {
			t.Errorf("Mutate modified its input %v", in)
		}
		if !q.Equal(in) {
			t.Errorf("Mutate(%v) = %v: a profile of the wrong length must come back unchanged", in, q)
		}
	}
}

// wrongLengths returns profiles one level shorter and longer than p, and nil.
func wrongLengths(p search.Levels) []search.Levels {
	return []search.Levels{nil, p[:len(p)-1].Clone(), append(p.Clone(), p[0])}
}

func (k *checker) initial(t *testing.T) {
	for seed := range uint64(4) {
		a := k.m.Initial(rngFor(seed, 99))
		b := k.m.Initial(rngFor(seed, 99))
		if len(a) == 0 {
			t.Fatalf("seed %d: Initial returned no profile", seed)
		}
		if !equalProfiles(a, b) {
			t.Fatalf("seed %d: Initial is not deterministic: %v then %v", seed, a, b)
		}
		for i, p := range a {
			if len(p) != k.n {
				t.Fatalf("seed %d: initial profile %d has %d levels for %d units", seed, i, len(p), k.n)
			}
			if !k.m.Legal(p) {
				t.Errorf("seed %d: initial profile %d %v is not legal", seed, i, p)
			}
			if !k.Within(p) {
				t.Errorf("seed %d: initial profile %d %v is not within the budget (Within)", seed, i, p)
			}
			if k.Bounded != nil {
				if err := k.Bounded(p); err != nil {
					t.Errorf("seed %d: initial profile %d %v: %v", seed, i, p, err)
				}
			}
		}
	}
}

func equalProfiles(a, b []search.Levels) bool {
	return slices.EqualFunc(a, b, func(p, q search.Levels) bool { return p.Equal(q) })
}

// legalAgrees checks Legal against Within on every enumerated vector, and collects the legal
// profiles the other checks run on (a walk's profiles when the case has no Levels).
func (k *checker) legalAgrees(t *testing.T) {
	if k.Levels != nil {
		total := 1
		for i, l := range k.Levels {
			if len(l) == 0 {
				t.Fatalf("case error: Levels[%d] is empty", i)
			}
			total *= len(l)
			if total > MaxEnumerate {
				t.Fatalf("case error: Levels describe more than %d vectors", MaxEnumerate)
			}
		}
		var bad int
		enumerate(k.Levels, func(p search.Levels) {
			legal, within := k.m.Legal(p), k.Within(p)
			if legal != within {
				if bad++; bad <= 5 {
					t.Errorf("Legal(%v) = %t, Within = %t", p, legal, within)
				}
			}
			if legal {
				k.legal = append(k.legal, p.Clone())
			}
			// Mutate of any vector, legal or not: no panic, same length, input untouched.
			in := p.Clone()
			q := k.m.Mutate(rngFor(uint64(total), 5), p)
			if !p.Equal(in) {
				t.Fatalf("Mutate modified its input %v", in)
			}
			if len(q) != len(p) {
				t.Fatalf("Mutate(%v) returned %d levels", in, len(q))
			}
		})
		if len(k.legal) == 0 {
			t.Fatal("no enumerated vector is legal")
		}
		k.enum = true
		return
	}
	// A walk over accepted moves, from the first initial profile.
	p := k.m.Initial(rngFor(7, 7))[0]
	rng := rngFor(11, 13)
	k.legal = append(k.legal, p.Clone())
	seen := map[string]bool{key(p): true}
	moved := make([]bool, k.n)
	for range k.WalkSteps {
		q := k.m.Mutate(rng, p)
		if legal, within := k.m.Legal(q), k.Within(q); legal != within {
			t.Fatalf("Legal(%v) = %t, Within = %t", q, legal, within)
		}
		if !k.m.Legal(q) || !k.m.AcceptOffspring(p, q) {
			continue // the moves check reports it
		}
		for i := range q {
			if q[i] != p[i] {
				moved[i] = true
			}
		}
		if !seen[key(q)] && len(k.legal) < 400 {
			seen[key(q)] = true
			k.legal = append(k.legal, q.Clone())
		}
		p = q
	}
	for i, mv := range moved {
		fixed := slices.Contains(k.Fixed, i)
		switch {
		case fixed && mv:
			t.Errorf("unit %d (%s) is listed as fixed but changed", i, k.m.Units()[i])
		case !fixed && !mv:
			t.Errorf("unit %d (%s) never changed in %d steps", i, k.m.Units()[i], k.WalkSteps)
		}
	}
}

// enumerate calls f with every vector of levels[0] × levels[1] × ... (f must not keep p).
func enumerate(levels [][]int, f func(p search.Levels)) {
	p := make(search.Levels, len(levels))
	idx := make([]int, len(levels))
	for i := range p {
		p[i] = levels[i][0]
	}
	for {
		f(p)
		i := len(p) - 1
		for ; i >= 0; i-- {
			if idx[i]++; idx[i] < len(levels[i]) {
				p[i] = levels[i][idx[i]]
				break
			}
			idx[i] = 0
			p[i] = levels[i][0]
		}
		if i < 0 {
			return
		}
	}
}

func key(p search.Levels) string { return fmt.Sprint([]int(p)) }

func (k *checker) invariant(p search.Levels) []int64 {
	if k.Invariant == nil {
		return nil
	}
	return k.Invariant(p)
}

func (k *checker) moves(t *testing.T) {
	fails := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if fails++; fails <= 8 {
			t.Errorf(format, args...)
		}
	}
	tries := k.Tries
	if !k.enum {
		tries = min(tries, DefaultWalkTries) // many profiles along the walk already
	}
	for pi, p := range k.legal {
		inv := k.invariant(p)
		bounded := k.Bounded != nil && k.Bounded(p) == nil
		for s := range tries {
			seed := uint64(pi)<<20 | uint64(s)
			in := p.Clone()
			q := k.m.Mutate(rngFor(seed, 17), p)
			if !p.Equal(in) {
				t.Fatalf("Mutate modified its input: %v became %v", in, p)
			}
			if again := k.m.Mutate(rngFor(seed, 17), p); !again.Equal(q) {
				fail("Mutate(%v) is not deterministic for one rng: %v then %v", p, q, again)
			}
			if len(q) != len(p) {
				fail("Mutate(%v) = %v: %d levels", p, q, len(q))
				continue
			}
			if len(q) > 0 {
				q[0] += 1000
				if !p.Equal(in) {
					t.Fatalf("Mutate(%v)'s result aliases its input", in)
				}
				q[0] -= 1000
			}
			if !k.m.Legal(q) {
				fail("Mutate(%v) = %v is not legal", p, q)
				continue
			}
			if !k.Within(q) {
				fail("Mutate(%v) = %v is legal but not within the budget (Within)", p, q)
			}
			if got := k.invariant(q); !slices.Equal(got, inv) {
				fail("Mutate(%v) = %v changes the invariant %v to %v", p, q, inv, got)
			}
			if bounded {
				if err := k.Bounded(q); err != nil {
					fail("Mutate(%v) = %v loses the Bounded property: %v", p, q, err)
				}
			}
			want := true
			if k.Accept != nil {
				want = k.Accept(p, q)
			}
			if got := k.m.AcceptOffspring(p, q); got != want {
				fail("AcceptOffspring(%v, %v) = %t, want %t", p, q, got, want)
			}
			if k.Step != nil && !q.Equal(p) {
				if err := k.Step(p, q); err != nil {
					fail("Mutate(%v) = %v: %v", p, q, err)
				}
			}
		}
	}
}

// reach checks that accepted mutations connect each initial profile to exactly the profiles
// Reachable selects.
func (k *checker) reach(t *testing.T) {
	want := func(p0, p search.Levels) bool {
		if k.Reachable != nil {
			return k.Reachable(p0, p)
		}
		return slices.Equal(k.invariant(p0), k.invariant(p)) && (k.Bounded == nil || k.Bounded(p) == nil)
	}
	legalSet := map[string]bool{}
	for _, p := range k.legal {
		legalSet[key(p)] = true
	}
	done := map[string]bool{}
	for seed := range uint64(2) {
		for _, p0 := range k.m.Initial(rngFor(seed, 31)) {
			if done[key(p0)] {
				continue
			}
			done[key(p0)] = true
			seen := k.bfs(p0)
			var missing, extra []string
			for _, p := range k.legal {
				if want(p0, p) && !seen[key(p)] {
					missing = append(missing, key(p))
				}
			}
			for s := range seen {
				if !legalSet[s] {
					extra = append(extra, s+" (not legal)")
				}
			}
			for _, p := range k.legal {
				if seen[key(p)] && !want(p0, p) {
					extra = append(extra, key(p))
				}
			}
			if len(missing) > 0 {
				t.Errorf("from %v, %d profiles were never reached (%d reached), e.g. %s", p0, len(missing), len(seen), firstFew(missing))
			}
			if len(extra) > 0 {
				t.Errorf("from %v, %d profiles outside Reachable were reached, e.g. %s", p0, len(extra), firstFew(extra))
			}
			if t.Failed() {
				return
			}
		}
	}
}

func firstFew(s []string) string {
	slices.Sort(s)
	return strings.Join(s[:min(len(s), 4)], ", ")
}

// bfs returns the profiles reachable from p0 by accepted mutations, trying Tries rngs per
// profile.
func (k *checker) bfs(p0 search.Levels) map[string]bool {
	seen := map[string]bool{key(p0): true}
	queue := []search.Levels{p0.Clone()}
	for n := 0; len(queue) > 0; n++ {
		p := queue[0]
		queue = queue[1:]
		for s := range k.Tries {
			q := k.m.Mutate(rngFor(uint64(n), uint64(s)), p)
			if !k.m.Legal(q) || !k.m.AcceptOffspring(p, q) || seen[key(q)] {
				continue
			}
			seen[key(q)] = true
			queue = append(queue, q)
		}
	}
	return seen
}

func (k *checker) signature(t *testing.T) {
	a, err := k.New()
	if err != nil {
		t.Fatal(err)
	}
	if a.Signature() == "" {
		t.Error("signature is empty")
	}
	if a.Signature() != k.m.Signature() {
		t.Errorf("two constructions give signatures %q and %q", k.m.Signature(), a.Signature())
	}
	if a.Name() != k.m.Name() || !slices.Equal(a.Units(), k.m.Units()) {
		t.Error("two constructions give other names or units")
	}
	da, db := a.Defaults(), k.m.Defaults()
	if da.Offspring != db.Offspring || !slices.Equal(da.Stages, db.Stages) || da.Generations != db.Generations || da.InitTokens != db.InitTokens {
		t.Errorf("two constructions give defaults %+v and %+v", db, da)
	}
	sigs := map[string]string{k.m.Signature(): "the case"}
	names := make([]string, 0, len(k.Variants))
	for name := range k.Variants {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		v, err := k.Variants[name]()
		if err != nil {
			t.Errorf("variant %q: %v", name, err)
			continue
		}
		if prev, dup := sigs[v.Signature()]; dup {
			t.Errorf("variant %q has the signature of %s: %q", name, prev, v.Signature())
			continue
		}
		sigs[v.Signature()] = "variant " + name
	}
}

func (k *checker) defaults(t *testing.T) {
	d := k.m.Defaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("Defaults %+v: %v", d, err)
	}
	for _, preset := range []string{search.PresetPaper, search.PresetFast} {
		s, err := search.ResolveSettings(preset, d, search.Overrides{})
		if err != nil {
			t.Errorf("preset %s: %v", preset, err)
			continue
		}
		// A pool as large as the last stage needs: the configuration must validate.
		last := s.Stages[len(s.Stages)-1].Tokens
		if err := search.NewConfig(s, 1, 128, max(1, last/128)).Validate(); err != nil {
			t.Errorf("preset %s: %v", preset, err)
		}
	}
}

// hashEval scores a candidate with a hash of the candidate and the batch, and checks that the
// engine hands it legal candidates.
type hashEval struct{ m search.Mode }

func (e hashEval) Evaluate(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
	out := make([]float64, len(cands))
	for i, c := range cands {
		if !e.m.Legal(c) {
			return nil, fmt.Errorf("candidate %v is not legal", c)
		}
		h := fnv.New64a()
		fmt.Fprint(h, b.Stage, b.Generation, b.Chunks, b.Tokens, []int(c))
		out[i] = float64(h.Sum64()>>11) / (1 << 53)
	}
	return out, ctx.Err()
}

const resumeGenerations = 6

// runConfig is the configuration of the resume check's runs.
func (k *checker) runConfig() search.Config {
	stages := []search.Stage{{Survivors: 1, Tokens: 64}}
	if k.Offspring > 1 {
		stages = []search.Stage{{Survivors: max(1, k.Offspring/2), Tokens: 32}, {Survivors: 1, Tokens: 64}}
	}
	return search.Config{Offspring: k.Offspring, Stages: stages, Generations: resumeGenerations,
		InitTokens: 32, Seed: 42, SeqLen: 16, PoolChunks: 16}
}

// saved is a checkpointed state, encoded with its elapsed times cleared.
type saved map[int]string

func (s saved) save(st *search.State) error {
	c := *st
	c.Elapsed = 0
	c.History = slices.Clone(st.History)
	for i := range c.History {
		c.History[i].Elapsed = 0
	}
	data, err := search.EncodeState(&c)
	if err != nil {
		return err
	}
	s[st.Generation] = string(data)
	return nil
}

func (k *checker) resume(t *testing.T) {
	cfg := k.runConfig()
	full := saved{}
	want, err := search.Run(context.Background(), cfg, k.m, hashEval{k.m}, search.WithCheckpointer(search.CheckpointerFunc(full.save)))
	if err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	if len(full) != resumeGenerations+1 {
		t.Fatalf("uninterrupted run saved %d checkpoints, want %d", len(full), resumeGenerations+1)
	}
	if !k.m.Legal(want.Profile) {
		t.Errorf("the run ended on an illegal profile %v", want.Profile)
	}
	again, err := search.Run(context.Background(), cfg, k.m, hashEval{k.m})
	if err != nil {
		t.Fatal(err)
	}
	if msg := diff(want, again); msg != "" {
		t.Fatalf("two uninterrupted runs differ: %s", msg)
	}
	for _, stop := range []int{0, resumeGenerations / 2} {
		// Interrupt: cancel once generation stop is checkpointed.
		path := filepath.Join(t.TempDir(), "ckpt.json")
		ctx, cancel := context.WithCancel(context.Background())
		m1, err := k.New()
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		_, err = search.Run(ctx, cfg, m1, hashEval{m1}, search.WithCheckpointer(&search.FileCheckpointer{Path: path}),
			search.WithObserver(func(p search.Progress) {
				if p.Generation == stop {
					cancel()
				}
			}))
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run at generation %d: err = %v, want context.Canceled", stop, err)
		}
		st, err := search.LoadCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Generation != stop {
			t.Fatalf("checkpoint at generation %d, want %d", st.Generation, stop)
		}
		// Resume on a fresh construction of the mode.
		m2, err := k.New()
		if err != nil {
			t.Fatal(err)
		}
		resumed := saved{}
		got, err := search.Run(context.Background(), cfg, m2, hashEval{m2}, search.WithResume(st),
			search.WithCheckpointer(search.CheckpointerFunc(resumed.save)))
		if err != nil {
			t.Fatalf("resumed at generation %d: %v", stop, err)
		}
		if msg := diff(want, got); msg != "" {
			t.Errorf("resumed at generation %d: %s", stop, msg)
		}
		for g := stop + 1; g <= resumeGenerations; g++ {
			if resumed[g] != full[g] {
				t.Errorf("resumed at generation %d: checkpoint of generation %d differs:\n%s\nuninterrupted:\n%s", stop, g, resumed[g], full[g])
				break
			}
		}
	}
}

// diff describes how two results differ, elapsed times aside ("" when they do not).
func diff(a, b *search.Result) string {
	same := func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }
	switch {
	case !a.Profile.Equal(b.Profile):
		return fmt.Sprintf("profile %v vs %v", a.Profile, b.Profile)
	case !same(a.Fitness, b.Fitness):
		return fmt.Sprintf("fitness %v vs %v", a.Fitness, b.Fitness)
	case a.Generations != b.Generations || a.Evaluations != b.Evaluations || a.Tokens != b.Tokens:
		return fmt.Sprintf("generations/evaluations/tokens %d/%d/%d vs %d/%d/%d",
			a.Generations, a.Evaluations, a.Tokens, b.Generations, b.Evaluations, b.Tokens)
	case len(a.History) != len(b.History):
		return fmt.Sprintf("%d vs %d history records", len(a.History), len(b.History))
	}
	for i := range a.History {
		x, y := a.History[i], b.History[i]
		x.Elapsed, y.Elapsed = 0, 0
		if x.Generation != y.Generation || !same(x.Best, y.Best) || x.Replaced != y.Replaced ||
			x.Evaluations != y.Evaluations || x.Tokens != y.Tokens {
			return fmt.Sprintf("history record %d: %+v vs %+v", i, x, y)
		}
	}
	return ""
}
