package drop_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
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
		p    search.Profile
		want bool
	}{
		{m, search.Profile{1, 0, 0, 1, 0, 0}, true},
		{m, search.Profile{0, 0, 0, 0, 1, 1}, false}, // kept MLP 2 dropped
		{m, search.Profile{0, 0, 0, 1, 1, 0}, true},
		{m, search.Profile{1, 0, 1, 1, 0, 0}, false}, // two attention
		{m, search.Profile{1, 0, 0, 0, 0, 0}, false}, // no MLP
		{m, search.Profile{2, 0, 0, 1, 0, 0}, false},
		{m, search.Profile{1, 0, 0, 1, 0}, false},
		{m, nil, false},
		{w, search.Profile{0, 0, 1, 1, 0, 0}, true},
		{w, search.Profile{1, 0, 0, 1, 0, 0}, false}, // untied
	} {
		if got := tc.m.Legal(tc.p); got != tc.want {
			t.Errorf("%s Legal(%v) = %t, want %t", tc.m.Signature(), tc.p, got, tc.want)
		}
	}
}

// check verifies a profile's budget independently of Mode.Legal.
func check(t *testing.T, p search.Profile, n, k int, whole bool, keep map[int]bool) {
	t.Helper()
	if len(p) != 2*n {
		t.Fatalf("length %d", len(p))
	}
	var dropped [2]int
	for i, v := range p {
		if v != 0 && v != 1 {
			t.Fatalf("level %d at %d", v, i)
		}
		if v == 1 && keep[i] {
			t.Fatalf("kept unit %d dropped in %v", i, p)
		}
		dropped[i%2] += v
	}
	if dropped[0] != k || dropped[1] != k {
		t.Fatalf("dropped %v, want %d of each kind: %v", dropped, k, p)
	}
	if whole {
		for b := range n {
			if p[2*b] != p[2*b+1] {
				t.Fatalf("block %d untied in %v", b, p)
			}
		}
	}
}

func TestMutateWalks(t *testing.T) {
	for _, tc := range []struct {
		name string
		n, k int
		opts drop.Options
		keep []int // unit indices
	}{
		{"plain", 32, 8, drop.Options{}, nil},
		{"plain k=1", 5, 1, drop.Options{}, nil},
		{"plain k=n-1", 5, 4, drop.Options{}, nil},
		{"whole", 32, 8, drop.Options{WholeBlocks: true}, nil},
		{"keep", 16, 5, drop.Options{Keep: []string{"model.layers.0", "model.layers.15", "model.layers.7.mlp"}}, []int{0, 1, 30, 31, 15}},
		{"keep attention fixed", 4, 2, drop.Options{Keep: []string{"model.layers.0.self_attn", "model.layers.1.self_attn"}}, []int{0, 2}},
		{"whole keep", 16, 5, drop.Options{WholeBlocks: true, Keep: []string{"model.layers.0.self_attn", "model.layers.15"}}, []int{0, 1, 30, 31}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := drop.NewK(tc.n, tc.k, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			keep := map[int]bool{}
			for _, i := range tc.keep {
				keep[i] = true
			}
			rng := rand.New(rand.NewPCG(7, 8))
			inits := m.Initial(rng)
			if len(inits) != drop.InitialCandidates {
				t.Fatalf("%d initial profiles", len(inits))
			}
			for _, p := range inits {
				check(t, p, tc.n, tc.k, tc.opts.WholeBlocks, keep)
				if !m.Legal(p) {
					t.Fatalf("initial %v not legal", p)
				}
			}
			everDropped := map[int]bool{}
			p := inits[0]
			for step := range 5000 {
				before := p.Clone()
				q := m.Mutate(rng, p)
				if !p.Equal(before) {
					t.Fatalf("step %d: Mutate modified its input", step)
				}
				check(t, q, tc.n, tc.k, tc.opts.WholeBlocks, keep)
				if !m.Legal(q) {
					t.Fatalf("step %d: %v not legal", step, q)
				}
				changed := 0
				for i := range q {
					if q[i] != p[i] {
						changed++
					}
				}
				if want := map[bool]int{false: 2, true: 4}[tc.opts.WholeBlocks]; changed != want {
					t.Fatalf("step %d: %d units changed, want %d", step, changed, want)
				}
				q[0] ^= 1 // the result must not alias the input
				if !p.Equal(before) {
					t.Fatalf("step %d: Mutate result aliases its input", step)
				}
				q[0] ^= 1
				for i, v := range q {
					if v == 1 {
						everDropped[i] = true
					}
				}
				p = q
			}
			for i := range 2 * tc.n {
				attnFixed := tc.name == "keep attention fixed" && i%2 == 0
				if !keep[i] && !everDropped[i] && !attnFixed {
					t.Fatalf("unit %d never dropped in 5000 switches", i)
				}
			}
		})
	}
}

func TestMutateOddInput(t *testing.T) {
	m, _ := drop.NewK(4, 1, drop.Options{})
	rng := rand.New(rand.NewPCG(1, 1))
	for _, p := range []search.Profile{nil, {}, {1, 0, 1}, {5, 5, 5, 5, 5, 5, 5, 5}, {-1, 1, 0, 0, 0, 0, 0, 0}} {
		q := m.Mutate(rng, p)
		if len(q) != len(p) {
			t.Errorf("Mutate(%v) = %v", p, q)
		}
	}
	// no kept unit at all: nothing to swap, unchanged copy
	all := search.Profile{1, 1, 1, 1, 1, 1, 1, 1}
	if q := m.Mutate(rng, all); !q.Equal(all) {
		t.Errorf("Mutate(%v) = %v", all, q)
	}
}

func TestDropped(t *testing.T) {
	m, _ := drop.NewK(4, 2, drop.Options{})
	attn, mlp := m.Dropped(search.Profile{1, 0, 0, 1, 1, 1, 0, 0})
	if !slices.Equal(attn, []int{0, 2}) || !slices.Equal(mlp, []int{1, 2}) {
		t.Fatalf("Dropped = %v, %v", attn, mlp)
	}
}
