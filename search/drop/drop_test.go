package drop_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
	"github.com/evopress/evopress/search/searchtest"
)

func TestTargetK(t *testing.T) {
	for _, tc := range []struct {
		n       int
		target  float64
		want    int
		wantErr string
	}{
		{32, 0.25, 8, ""}, {32, 0.125, 4, ""}, {100, 0.29, 29, ""}, {10, 0.3, 3, ""}, {10, 0.7, 7, ""},
		{7, 0.5, 3, ""}, {32, 0, 0, ""}, {32, 1, 32, ""}, {40, 0.3749, 14, ""},
		{0, 0.25, 0, "blocks = 0"}, {32, -0.1, 0, "target = -0.1"}, {32, 1.5, 0, "target = 1.5"},
		{32, math.NaN(), 0, "target = NaN"},
	} {
		k, err := drop.TargetK(tc.n, tc.target)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("TargetK(%d, %v) error %v, want %q", tc.n, tc.target, err, tc.wantErr)
			}
			continue
		}
		if err != nil || k != tc.want {
			t.Errorf("TargetK(%d, %v) = %d, %v; want %d", tc.n, tc.target, k, err, tc.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		make    func() (*drop.Mode, error)
		wantErr string
	}{
		{"zero k from target", func() (*drop.Mode, error) { return drop.New(32, 0.01, drop.Options{}) }, "drops floor(0.01·32) = 0 blocks"},
		{"bad target", func() (*drop.Mode, error) { return drop.New(32, 2, drop.Options{}) }, "target = 2"},
		{"all dropped", func() (*drop.Mode, error) { return drop.New(4, 1, drop.Options{}) }, "k = 4 dropped of 4 blocks, want 1 ≤ k ≤ 3"},
		{"k zero", func() (*drop.Mode, error) { return drop.NewK(4, 0, drop.Options{}) }, "k = 0"},
		{"no blocks", func() (*drop.Mode, error) { return drop.NewK(0, 1, drop.Options{}) }, "blocks = 0"},
		{"unknown keep", func() (*drop.Mode, error) {
			return drop.NewK(4, 1, drop.Options{Keep: []string{"model.layers.1.self_attn.q_proj"}})
		}, `unknown unit "model.layers.1.self_attn.q_proj"`},
		{"keep out of range", func() (*drop.Mode, error) { return drop.NewK(4, 1, drop.Options{Keep: []string{"model.layers.4"}}) }, `unknown unit "model.layers.4"`},
		{"keep leading zero", func() (*drop.Mode, error) { return drop.NewK(4, 1, drop.Options{Keep: []string{"model.layers.01"}}) }, "unknown unit"},
		{"keep too many attention", func() (*drop.Mode, error) {
			return drop.NewK(4, 2, drop.Options{Keep: []string{"model.layers.0.self_attn", "model.layers.1.self_attn", "model.layers.2.self_attn"}})
		}, "keep leaves 1 droppable attention units, fewer than the k = 2"},
		{"keep fixes everything", func() (*drop.Mode, error) {
			return drop.NewK(4, 2, drop.Options{Keep: []string{"model.layers.0", "model.layers.1"}})
		}, "every unit is fixed"},
		{"whole too few", func() (*drop.Mode, error) {
			return drop.NewK(4, 2, drop.Options{WholeBlocks: true, Keep: []string{"model.layers.0.mlp", "model.layers.1.self_attn", "model.layers.2"}})
		}, "keep leaves 1 droppable blocks, fewer than the k = 2"},
		{"whole all fixed", func() (*drop.Mode, error) {
			return drop.NewK(4, 2, drop.Options{WholeBlocks: true, Keep: []string{"model.layers.0.mlp", "model.layers.1.self_attn"}})
		}, "every block is fixed"},
	} {
		m, err := tc.make()
		if err == nil || m != nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: %v, %v; want error containing %q", tc.name, m, err, tc.wantErr)
		}
	}
}

func TestUnitsAndDefaults(t *testing.T) {
	m, err := drop.New(12, 0.25, drop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := m.Units()
	if len(u) != 24 || u[0] != "model.layers.0.self_attn" || u[1] != "model.layers.0.mlp" || u[23] != "model.layers.11.mlp" {
		t.Fatalf("units %v", u)
	}
	if m.Name() != "drop" || m.K() != 3 || m.Blocks() != 12 || m.WholeBlocks() {
		t.Fatal("accessors")
	}
	for _, tc := range []struct{ n, k, gens int }{{32, 8, 128}, {12, 3, 18}, {32, 16, 170}, {40, 10, 200}, {2, 1, 0}} {
		d := drop.Defaults(tc.n, tc.k)
		if d.Generations != tc.gens || d.Offspring != 32 || search.FormatStages(d.Stages) != "2:2048,1:32768" || d.InitTokens != 2048 {
			t.Errorf("Defaults(%d, %d) = %+v, want %d generations", tc.n, tc.k, d, tc.gens)
		}
		// independent reference: floor(k(n−k)/1.5) in floating point
		if want := int(math.Floor(float64(tc.k*(tc.n-tc.k)) / 1.5)); d.Generations != want {
			t.Errorf("Defaults(%d, %d) generations %d, float reference %d", tc.n, tc.k, d.Generations, want)
		}
	}
	if err := m.Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
	a, _ := drop.NewK(12, 3, drop.Options{WholeBlocks: true})
	b, _ := drop.NewK(12, 3, drop.Options{Keep: []string{"model.layers.0"}})
	c, _ := drop.NewK(12, 3, drop.Options{Keep: []string{"model.layers.0.mlp", "model.layers.0.self_attn"}})
	if m.Signature() == a.Signature() || m.Signature() == b.Signature() || b.Signature() != c.Signature() {
		t.Fatalf("signatures %q %q %q %q", m.Signature(), a.Signature(), b.Signature(), c.Signature())
	}
}

func TestLegal(t *testing.T) {
	m, _ := drop.NewK(3, 1, drop.Options{Keep: []string{"model.layers.2.mlp"}})
	w, _ := drop.NewK(3, 1, drop.Options{WholeBlocks: true})
	for _, tc := range []struct {
		m    *drop.Mode
		p    search.Levels
		want bool
	}{
		{m, search.Levels{1, 0, 0, 1, 0, 0}, true},
		{m, search.Levels{0, 0, 0, 0, 1, 1}, false}, // kept MLP 2 dropped
		{m, search.Levels{0, 0, 0, 1, 1, 0}, true},
		{m, search.Levels{1, 0, 1, 1, 0, 0}, false}, // two attention
		{m, search.Levels{1, 0, 0, 0, 0, 0}, false}, // no MLP
		{m, search.Levels{2, 0, 0, 1, 0, 0}, false},
		{m, search.Levels{1, 0, 0, 1, 0}, false},
		{m, nil, false},
		{w, search.Levels{0, 0, 1, 1, 0, 0}, true},
		{w, search.Levels{1, 0, 0, 1, 0, 0}, false}, // untied
	} {
		if got := tc.m.Legal(tc.p); got != tc.want {
			t.Errorf("%s Legal(%v) = %t, want %t", tc.m.Signature(), tc.p, got, tc.want)
		}
	}
}

// within is the budget of a drop profile, written independently of Mode.Legal: one 0/1 level
// per unit, exactly k units of each kind dropped, no kept unit dropped and (whole) both units
// of every block alike.
func within(p search.Levels, n, k int, whole bool, keep map[int]bool) bool {
	if len(p) != 2*n {
		return false
	}
	var dropped [2]int
	for i, v := range p {
		if v != 0 && v != 1 || v == 1 && keep[i] {
			return false
		}
		dropped[i%2] += v
	}
	if dropped[0] != k || dropped[1] != k {
		return false
	}
	for b := range n {
		if whole && p[2*b] != p[2*b+1] {
			return false
		}
	}
	return true
}

// dropCase is a conformance case of NewK(n, k, opts); keep lists the kept unit indices and
// fixed the units no switch can change.
func dropCase(name string, n, k int, opts drop.Options, keep, fixed []int, enumerate bool) searchtest.Case {
	kept := map[int]bool{}
	for _, i := range keep {
		kept[i] = true
	}
	build := func(n, k int, o drop.Options) func() (search.Mode, error) {
		return func() (search.Mode, error) { return drop.NewK(n, k, o) }
	}
	c := searchtest.Case{
		Name:   name,
		New:    build(n, k, opts),
		Within: func(p search.Levels) bool { return within(p, n, k, opts.WholeBlocks, kept) },
		Invariant: func(p search.Levels) []int64 {
			var d [2]int64
			for i, v := range p {
				d[i%2] += int64(v)
			}
			return d[:]
		},
		Step: func(p, q search.Levels) error {
			// one kept unit and one dropped unit of the same kind trade levels (both units of
			// two blocks with WholeBlocks)
			var changed []int
			for i := range q {
				if q[i] != p[i] {
					changed = append(changed, i)
				}
			}
			if opts.WholeBlocks {
				if len(changed) != 4 || changed[0]/2 != changed[1]/2 || changed[2]/2 != changed[3]/2 || p[changed[0]] == p[changed[2]] {
					return fmt.Errorf("changed units %v, want both units of a kept and a dropped block", changed)
				}
				return nil
			}
			if len(changed) != 2 || changed[0]%2 != changed[1]%2 || p[changed[0]] == p[changed[1]] {
				return fmt.Errorf("changed units %v, want a kept and a dropped unit of one kind", changed)
			}
			return nil
		},
		Fixed: fixed,
		Variants: map[string]func() (search.Mode, error){
			"k-1":      build(n, k-1, opts),
			"n+1":      build(n+1, k, opts),
			"whole":    build(n, k, drop.Options{WholeBlocks: !opts.WholeBlocks, Keep: opts.Keep}),
			"keep one": build(n, k, drop.Options{WholeBlocks: opts.WholeBlocks, Keep: append(slices.Clone(opts.Keep), "model.layers.1.mlp")}),
		},
	}
	if k == 1 {
		c.Variants["k+1"] = build(n, k+1, opts)
		delete(c.Variants, "k-1")
	}
	for name, v := range c.Variants {
		if _, err := v(); err != nil {
			delete(c.Variants, name) // not a valid instance (e.g. every block fixed)
		}
	}
	if enumerate {
		c.Levels = searchtest.Repeat(2*n, searchtest.Range(0, 2))
	}
	return c
}

// TestConformance runs the search mode conformance suite: small instances exhaustively, the
// paper-sized ones along walks.
func TestConformance(t *testing.T) {
	keep := drop.Options{Keep: []string{"model.layers.0", "model.layers.2.mlp"}}
	searchtest.Conformance(t, []searchtest.Case{
		// enumerated: every level vector of {0,1,2}^units
		dropCase("sub-blocks n=4 k=2", 4, 2, drop.Options{}, nil, nil, true),
		dropCase("sub-blocks n=5 k=1", 5, 1, drop.Options{}, nil, nil, true),
		dropCase("whole n=5 k=2", 5, 2, drop.Options{WholeBlocks: true}, nil, nil, true),
		dropCase("keep n=4 k=1", 4, 1, keep, []int{0, 1, 5}, nil, true),
		dropCase("whole keep n=4 k=1", 4, 1, drop.Options{WholeBlocks: true, Keep: []string{"model.layers.3.self_attn"}}, []int{6, 7}, nil, true),
		// walks on larger instances
		dropCase("sub-blocks n=32 k=8", 32, 8, drop.Options{}, nil, nil, false),
		dropCase("sub-blocks n=5 k=4", 5, 4, drop.Options{}, nil, nil, false),
		dropCase("whole n=32 k=8", 32, 8, drop.Options{WholeBlocks: true}, nil, nil, false),
		dropCase("keep n=16 k=5", 16, 5, drop.Options{Keep: []string{"model.layers.0", "model.layers.15", "model.layers.7.mlp"}},
			[]int{0, 1, 30, 31, 15}, []int{0, 1, 30, 31, 15}, false),
		// attention units 0 and 1 kept, so attention 2 and 3 are always dropped
		dropCase("keep attention fixed n=4 k=2", 4, 2, drop.Options{Keep: []string{"model.layers.0.self_attn", "model.layers.1.self_attn"}},
			[]int{0, 2}, []int{0, 2, 4, 6}, false),
		dropCase("whole keep n=16 k=5", 16, 5, drop.Options{WholeBlocks: true, Keep: []string{"model.layers.0.self_attn", "model.layers.15"}},
			[]int{0, 1, 30, 31}, []int{0, 1, 30, 31}, false),
	})
}

func TestMutateOddInput(t *testing.T) {
	m, _ := drop.NewK(4, 1, drop.Options{})
	rng := rand.New(rand.NewPCG(1, 1))
	for _, p := range []search.Levels{nil, {}, {1, 0, 1}, {5, 5, 5, 5, 5, 5, 5, 5}, {-1, 1, 0, 0, 0, 0, 0, 0}} {
		q := m.Mutate(rng, p)
		if len(q) != len(p) {
			t.Errorf("Mutate(%v) = %v", p, q)
		}
	}
	// no kept unit at all: nothing to swap, unchanged copy
	all := search.Levels{1, 1, 1, 1, 1, 1, 1, 1}
	if q := m.Mutate(rng, all); !q.Equal(all) {
		t.Errorf("Mutate(%v) = %v", all, q)
	}
}

func TestDropped(t *testing.T) {
	m, _ := drop.NewK(4, 2, drop.Options{})
	attn, mlp := m.Dropped(search.Levels{1, 0, 0, 1, 1, 1, 0, 0})
	if !slices.Equal(attn, []int{0, 2}) || !slices.Equal(mlp, []int{1, 2}) {
		t.Fatalf("Dropped = %v, %v", attn, mlp)
	}
}
