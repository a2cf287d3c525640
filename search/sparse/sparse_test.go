package sparse_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/searchtest"
	"github.com/evopress/evopress/search/sparse"
)

// llamaNumels: hidden 256, GQA with 64-wide k/v, MLP 688 (q, k, v, o, gate, up, down).
var llamaNumels = []int64{256 * 256, 256 * 64, 256 * 64, 256 * 256, 256 * 688, 256 * 688, 688 * 256}

func llamaLayers(t *testing.T, blocks int, s float64, maxLevels int) ([]sparse.Layer, int64) {
	t.Helper()
	d, err := sparse.DefaultD(256, s, maxLevels)
	if err != nil {
		t.Fatal(err)
	}
	var layers []sparse.Layer
	for i, name := range search.LinearUnitNames(blocks) {
		n := llamaNumels[i%7]
		lo, hi, err := sparse.LevelRange(n, d, s, maxLevels)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, sparse.Layer{Name: name, Numel: n, Lo: lo, Hi: hi})
	}
	return layers, d
}

func TestLevelRangeAndDefaultD(t *testing.T) {
	for _, tc := range []struct {
		numel, d int64
		s        float64
		L        int
		lo, hi   int
	}{
		{4096 * 4096, 1_000_000, 0.7, 8, -8, 5},  // s/δ = 11.7, (1−s)/δ = 5.03
		{4096 * 1024, 1_000_000, 0.7, 8, -2, 1},  // 2.94, 1.26
		{2_000_000, 1_000_000, 0.5, 8, -1, 1},    // exactly 1 each way
		{14336 * 4096, 1_000_000, 0.5, 8, -8, 8}, // capped by L
		{100, 1_000_000, 0.5, 8, 0, 0},           // too small to move
		{1000, 10, 0, 4, 0, 4},                   // s = 0: nothing to unprune
		{1000, 10, 0.5, 0, 0, 0},                 // L = 0
	} {
		lo, hi, err := sparse.LevelRange(tc.numel, tc.d, tc.s, tc.L)
		if err != nil || lo != tc.lo || hi != tc.hi {
			t.Errorf("LevelRange(%d, %d, %v, %d) = %d, %d, %v; want %d, %d", tc.numel, tc.d, tc.s, tc.L, lo, hi, err, tc.lo, tc.hi)
		}
	}
	for _, bad := range []struct {
		numel, d int64
		s        float64
		L        int
	}{{0, 1, 0.5, 1}, {1, 0, 0.5, 1}, {1, 1, 1, 1}, {1, 1, -0.1, 1}, {1, 1, math.NaN(), 1}, {1, 1, 0.5, -1}} {
		if _, _, err := sparse.LevelRange(bad.numel, bad.d, bad.s, bad.L); err == nil {
			t.Errorf("LevelRange%v accepted", bad)
		}
	}
	// 0.5·min(0.7, 0.3)/8·4096² = 314572.8
	if d, err := sparse.DefaultD(4096, 0.7, 8); err != nil || d != 314572 {
		t.Errorf("DefaultD(4096, 0.7, 8) = %d, %v; want 314572", d, err)
	}
	if d, err := sparse.DefaultD(4096, 0.5, 8); err != nil || d != 524288 {
		t.Errorf("DefaultD(4096, 0.5, 8) = %d, %v; want 524288", d, err)
	}
	for _, bad := range []struct {
		h int64
		s float64
		L int
	}{{0, 0.5, 8}, {4096, 0, 8}, {4096, 1, 8}, {4096, 0.5, 0}, {2, 0.01, 8}} {
		if _, err := sparse.DefaultD(bad.h, bad.s, bad.L); err == nil {
			t.Errorf("DefaultD%v accepted", bad)
		}
	}
}

func TestNewErrors(t *testing.T) {
	good := func() []sparse.Layer {
		return []sparse.Layer{{"a.q_proj", 1000, -2, 2}, {"b.q_proj", 1000, -2, 2}, {"c.up_proj", 3000, -1, 3}}
	}
	for _, tc := range []struct {
		name    string
		mod     func(*sparse.Config)
		wantErr string
	}{
		{"one layer", func(c *sparse.Config) { c.Layers = c.Layers[:1] }, "1 given, want at least 2"},
		{"sparsity", func(c *sparse.Config) { c.Sparsity = 1 }, "sparsity = 1"},
		{"sparsity NaN", func(c *sparse.Config) { c.Sparsity = math.NaN() }, "sparsity = NaN"},
		{"D", func(c *sparse.Config) { c.D = 0 }, "D (weights per level) = 0"},
		{"group", func(c *sparse.Config) { c.GroupBy = search.GroupBy(9) }, "group-by = GroupBy(9)"},
		{"empty name", func(c *sparse.Config) { c.Layers[1].Name = "" }, "layer 1: name is empty"},
		{"duplicate", func(c *sparse.Config) { c.Layers[2].Name = "a.q_proj" }, `layer 2: name "a.q_proj" appears twice`},
		{"numel", func(c *sparse.Config) { c.Layers[0].Numel = 0 }, `layer "a.q_proj": numel = 0`},
		{"lo above 0", func(c *sparse.Config) { c.Layers[0].Lo = 1 }, "levels 1..2 must include 0"},
		{"hi below 0", func(c *sparse.Config) { c.Layers[0].Hi = -1; c.Layers[0].Lo = -2 }, "levels -2..-1 must include 0"},
		{"too sparse", func(c *sparse.Config) { c.Layers[0].Hi = 6 }, "highest level 6 means sparsity 1.1 > 1"},
		{"negative sparsity", func(c *sparse.Config) { c.Layers[0].Lo = -6 }, "lowest level -6 means sparsity -0.1 < 0"},
		{"frozen", func(c *sparse.Config) {
			for i := range c.Layers {
				c.Layers[i].Lo, c.Layers[i].Hi = 0, 0
			}
		}, "no level switch is possible"},
		{"size groups of one", func(c *sparse.Config) { c.Layers[1].Numel = 2000; c.GroupBy = search.GroupSize }, "no level switch is possible"},
	} {
		cfg := sparse.Config{Layers: good(), Sparsity: 0.5, D: 100}
		tc.mod(&cfg)
		m, err := sparse.New(cfg)
		if err == nil || m != nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: %v; want error containing %q", tc.name, err, tc.wantErr)
		}
	}
	m, err := sparse.New(sparse.Config{Layers: good(), Sparsity: 0.5, D: 100})
	if err != nil {
		t.Fatal(err)
	}
	if m.GroupBy() != search.GroupNone || m.Name() != "sparse" || len(m.Units()) != 3 {
		t.Fatal("defaults")
	}
	d := sparse.Defaults()
	if d.Offspring != 64 || search.FormatStages(d.Stages) != "8:2048,2:16384,1:65536" || d.Generations != 400 || d.Validate() != nil {
		t.Fatalf("Defaults = %+v", d)
	}
}

// sparseCase is a conformance case of the sparse mode on layers; Within, Invariant and Step
// are written from the layers alone: levels within range summing to 0, every switch moving
// one unit up and one of the same group down one level, so that each group's level sum (and
// with it the pruned weights, D·Σℓ) is kept.
func sparseCase(name string, layers []sparse.Layer, s float64, d int64, rule search.GroupBy, enumerate bool) searchtest.Case {
	build := func(layers []sparse.Layer, s float64, d int64, rule search.GroupBy) func() (search.Mode, error) {
		return func() (search.Mode, error) {
			return sparse.New(sparse.Config{Layers: layers, Sparsity: s, D: d, GroupBy: rule})
		}
	}
	groupOf := func(i int) string {
		switch rule {
		case search.GroupSize:
			return fmt.Sprint(layers[i].Numel)
		case search.GroupKind:
			return search.UnitKind(layers[i].Name)
		}
		return "all"
	}
	var groups []string
	for i := range layers {
		if g := groupOf(i); !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	c := searchtest.Case{
		Name: name,
		New:  build(layers, s, d, rule),
		Within: func(p search.Levels) bool {
			if len(p) != len(layers) {
				return false
			}
			var extra int64
			for i, l := range p {
				if l < layers[i].Lo || l > layers[i].Hi {
					return false
				}
				extra += int64(l) * d
			}
			return extra == 0
		},
		Invariant: func(p search.Levels) []int64 {
			sums := make([]int64, len(groups))
			for i, l := range p {
				sums[slices.Index(groups, groupOf(i))] += int64(l)
			}
			return sums
		},
		Step: func(p, q search.Levels) error {
			var ups, downs []int
			for i := range q {
				switch q[i] - p[i] {
				case 0:
				case 1:
					ups = append(ups, i)
				case -1:
					downs = append(downs, i)
				default:
					return fmt.Errorf("unit %d moved by %d", i, q[i]-p[i])
				}
			}
			if len(ups) != 1 || len(downs) != 1 || groupOf(ups[0]) != groupOf(downs[0]) {
				return fmt.Errorf("ups %v downs %v, want one of each in one group", ups, downs)
			}
			return nil
		},
		Variants: map[string]func() (search.Mode, error){
			"sparsity":  build(layers, s+0.01, d, rule),
			"D":         build(layers, s, d+1, rule),
			"range":     build(append([]sparse.Layer{{layers[0].Name, layers[0].Numel, layers[0].Lo + 1, layers[0].Hi}}, layers[1:]...), s, d, rule),
			"numel":     build(append([]sparse.Layer{{layers[0].Name, layers[0].Numel + 1, layers[0].Lo, layers[0].Hi}}, layers[1:]...), s, d, rule),
			"unit name": build(append([]sparse.Layer{{layers[0].Name + "x", layers[0].Numel, layers[0].Lo, layers[0].Hi}}, layers[1:]...), s, d, rule),
		},
	}
	for _, other := range []search.GroupBy{search.GroupNone, search.GroupSize, search.GroupKind} {
		if other == rule {
			continue
		}
		c.Variants["group "+other.String()] = build(layers, s, d, other)
	}
	for name, v := range c.Variants {
		if _, err := v(); err != nil {
			delete(c.Variants, name) // not a valid instance
		}
	}
	if enumerate {
		for _, l := range layers {
			c.Levels = append(c.Levels, searchtest.Range(l.Lo-1, l.Hi+1))
		}
	}
	return c
}

// TestConformance runs the search mode conformance suite under every group rule (GroupDefault
// is GroupNone): on four
// layers whose size groups ({q0, k1}, {k0, q1}) differ from their kind groups exhaustively,
// and on a four-block Llama along walks.
func TestConformance(t *testing.T) {
	small := []sparse.Layer{
		{"model.layers.0.self_attn.q_proj", 64, -2, 2},
		{"model.layers.0.self_attn.k_proj", 32, -1, 2},
		{"model.layers.1.self_attn.q_proj", 32, -2, 1},
		{"model.layers.1.self_attn.k_proj", 64, -1, 1},
	}
	large, d := llamaLayers(t, 4, 0.6, 4)
	var cases []searchtest.Case
	for _, rule := range []search.GroupBy{search.GroupNone, search.GroupSize, search.GroupKind} {
		cases = append(cases, sparseCase("small "+rule.String(), small, 0.5, 8, rule, true),
			sparseCase("llama "+rule.String(), large, 0.6, d, rule, false))
	}
	searchtest.Conformance(t, cases)
	// GroupDefault resolves to GroupNone: the same instance, so the same signature.
	def, _ := sparse.New(sparse.Config{Layers: small, Sparsity: 0.5, D: 8})
	none, _ := sparse.New(sparse.Config{Layers: small, Sparsity: 0.5, D: 8, GroupBy: search.GroupNone})
	if def.Signature() != none.Signature() {
		t.Errorf("group default and none give signatures %q and %q", def.Signature(), none.Signature())
	}
}

func TestLegalAndValues(t *testing.T) {
	m, err := sparse.New(sparse.Config{
		Layers:   []sparse.Layer{{"a", 1000, -2, 2}, {"b", 2000, -1, 1}, {"c", 4000, 0, 3}},
		Sparsity: 0.5, D: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    search.Levels
		want bool
	}{
		{search.Levels{0, 0, 0}, true}, {search.Levels{-2, -1, 3}, true}, {search.Levels{-1, 0, 1}, true},
		{search.Levels{1, 0, 0}, false}, {search.Levels{-3, 0, 3}, false}, {search.Levels{0, 2, -2}, false},
		{search.Levels{0, 0}, false}, {nil, false},
	} {
		if got := m.Legal(tc.p); got != tc.want {
			t.Errorf("Legal(%v) = %t", tc.p, got)
		}
	}
	v, err := m.Sparsities(search.Levels{-2, -1, 3})
	want := []float64{0.5 - 0.2, 0.5 - 0.05, 0.5 + 0.075}
	if err != nil || len(v) != 3 {
		t.Fatal(v, err)
	}
	for i := range v {
		if math.Abs(v[i]-want[i]) > 1e-12 {
			t.Errorf("sparsity %d = %v, want %v", i, v[i], want[i])
		}
	}
	// Non-zeros are the uniform profile's: Σ numel·(1 − s_i) = 3500 both ways.
	nz := 0.0
	for i, n := range []float64{1000, 2000, 4000} {
		nz += n * (1 - v[i])
	}
	if math.Abs(nz-3500) > 1e-9 {
		t.Errorf("non-zeros %v, want 3500", nz)
	}
	if _, err := m.Sparsities(search.Levels{0}); err == nil {
		t.Error("short profile accepted")
	}
	if m.ExtraPruned(search.Levels{1, 0, 0}) != 100 {
		t.Error("ExtraPruned")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range []search.Levels{nil, {0}, {9, 9, 9}} {
		if q := m.Mutate(rng, p); len(q) != len(p) {
			t.Errorf("Mutate(%v) = %v", p, q)
		}
	}
}
