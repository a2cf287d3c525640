package quant_test

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/searchtest"
)

var llamaNumels = []int64{256 * 256, 256 * 64, 256 * 64, 256 * 256, 256 * 688, 256 * 688, 688 * 256}

func llamaLayers(blocks int, bits []int) []quant.Layer {
	var layers []quant.Layer
	for i, name := range search.LinearUnitNames(blocks) {
		layers = append(layers, quant.Layer{Name: name, Numel: llamaNumels[i%7], Bits: bits})
	}
	return layers
}

// budgetRef computes floor(target·Σ numel) with exact rationals, target read as a decimal.
func budgetRef(layers []quant.Layer, target string) int64 {
	t, ok := new(big.Rat).SetString(target)
	if !ok {
		panic(target)
	}
	var n int64
	for _, l := range layers {
		n += l.Numel
	}
	v := new(big.Rat).Mul(t, new(big.Rat).SetInt64(n))
	q := new(big.Int).Quo(v.Num(), v.Denom()) // positive: Quo truncates = floor
	return q.Int64()
}

func codeBitsRef(layers []quant.Layer, p search.Levels) *big.Int {
	s := new(big.Int)
	for i, b := range p {
		s.Add(s, new(big.Int).Mul(big.NewInt(layers[i].Numel), big.NewInt(int64(b))))
	}
	return s
}

func TestBudgetExact(t *testing.T) {
	layers := []quant.Layer{{"a.q_proj", 1000003, []int{2, 3, 4}}, {"b.q_proj", 1000003, []int{2, 3, 4}}, {"c.up_proj", 7, []int{2, 3, 4}}}
	for _, target := range []string{"2.25", "2.3", "2.5", "3", "3.5", "3.9999", "2.0001"} {
		var f float64
		fmt.Sscan(target, &f)
		m, err := quant.New(quant.Config{Layers: layers, Target: f})
		if err != nil {
			t.Fatalf("target %s: %v", target, err)
		}
		if want := budgetRef(layers, target); m.Budget() != want {
			t.Errorf("target %s: budget %d, want %d", target, m.Budget(), want)
		}
		if m.TotalWeights() != 2000013 {
			t.Errorf("total %d", m.TotalWeights())
		}
	}
}

func TestNewErrors(t *testing.T) {
	good := func() []quant.Layer {
		return []quant.Layer{{"a.q_proj", 100, []int{2, 3, 4}}, {"b.q_proj", 100, []int{2, 3, 4}}, {"c.up_proj", 300, []int{2, 3, 4}}}
	}
	for _, tc := range []struct {
		name    string
		mod     func(*quant.Config)
		wantErr string
	}{
		{"one layer", func(c *quant.Config) { c.Layers = c.Layers[:1] }, "1 given, want at least 2"},
		{"target zero", func(c *quant.Config) { c.Target = 0 }, "target = 0"},
		{"target NaN", func(c *quant.Config) { c.Target = math.NaN() }, "target = NaN"},
		{"target huge", func(c *quant.Config) { c.Target = 33 }, "target = 33"},
		{"group", func(c *quant.Config) { c.GroupBy = search.GroupBy(7) }, "group-by = GroupBy(7)"},
		{"max changes", func(c *quant.Config) { c.MaxChanges = -1 }, "max changes = -1"},
		{"draws", func(c *quant.Config) { c.InitialDraws = -1 }, "initial draws = -1"},
		{"empty name", func(c *quant.Config) { c.Layers[0].Name = "" }, "layer 0: name is empty"},
		{"duplicate", func(c *quant.Config) { c.Layers[1].Name = "a.q_proj" }, `name "a.q_proj" appears twice`},
		{"numel", func(c *quant.Config) { c.Layers[2].Numel = -1 }, `layer "c.up_proj": numel = -1`},
		{"no bits", func(c *quant.Config) { c.Layers[2].Bits = nil }, `layer "c.up_proj": no allowed bit-widths`},
		{"bits range", func(c *quant.Config) { c.Layers[2].Bits = []int{0, 2} }, "bit-width 0, want 1..32"},
		{"bits order", func(c *quant.Config) { c.Layers[2].Bits = []int{3, 2} }, "must be strictly increasing"},
		{"bits duplicate", func(c *quant.Config) { c.Layers[2].Bits = []int{2, 2, 3} }, "must be strictly increasing"},
		{"below minimum", func(c *quant.Config) { c.Target = 1.5 }, "below the smallest achievable, 2.0000"},
		{"at minimum", func(c *quant.Config) { c.Target = 2 }, "fits only every layer at its lowest width"},
		{"at maximum", func(c *quant.Config) { c.Target = 4 }, "allows every layer its highest width"},
		{"size groups of one", func(c *quant.Config) { c.Layers[1].Numel = 200; c.GroupBy = search.GroupSize }, "no group holds two layers"},
	} {
		cfg := quant.Config{Layers: good(), Target: 3}
		tc.mod(&cfg)
		m, err := quant.New(cfg)
		if err == nil || m != nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: %v; want error containing %q", tc.name, err, tc.wantErr)
		}
	}
	d := quant.Defaults()
	if d.Offspring != 128 || search.FormatStages(d.Stages) != "16:2048,4:16384,1:131072" || d.Generations != 150 || d.Validate() != nil {
		t.Fatalf("Defaults = %+v", d)
	}
}

func TestInitial(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	// Integer target allowed everywhere: the single uniform profile.
	layers := llamaLayers(2, []int{2, 3, 4, 5, 6, 7, 8})
	m, err := quant.New(quant.Config{Layers: layers, Target: 3})
	if err != nil {
		t.Fatal(err)
	}
	init := m.Initial(rng)
	if len(init) != 1 || slices.ContainsFunc(init[0], func(b int) bool { return b != 3 }) || !m.Legal(init[0]) {
		t.Fatalf("integer target: %v", init)
	}
	for _, tc := range []struct {
		name   string
		layers []quant.Layer
		target float64
		draws  int
	}{
		{"2.25", llamaLayers(4, []int{2, 3, 4, 5, 6}), 2.25, 0},
		{"2.5", llamaLayers(4, []int{2, 3, 4, 5, 6}), 2.5, 5},
		{"3.5", llamaLayers(4, []int{2, 3, 4, 5, 6}), 3.5, 0},
		{"integer not allowed everywhere", append(llamaLayers(2, []int{2, 3, 4}), quant.Layer{"x.down_proj", 5000, []int{2, 4, 8}}), 3, 0},
		{"ceil above some maxima", append(llamaLayers(2, []int{2, 3, 4, 5}), quant.Layer{"x.down_proj", 5000, []int{1, 2}}), 2.6, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := quant.New(quant.Config{Layers: tc.layers, Target: tc.target, InitialDraws: tc.draws})
			if err != nil {
				t.Fatal(err)
			}
			want := tc.draws
			if want == 0 {
				want = quant.DefaultInitialDraws
			}
			init := m.Initial(rng)
			if len(init) != want {
				t.Fatalf("%d initial profiles, want %d", len(init), want)
			}
			ceil := int(math.Ceil(tc.target))
			var maxStep int64
			for _, l := range tc.layers {
				for j := 1; j < len(l.Bits); j++ {
					maxStep = max(maxStep, l.Numel*int64(l.Bits[j]-l.Bits[j-1]))
				}
			}
			budget := big.NewInt(m.Budget())
			distinct := map[string]bool{}
			for _, p := range init {
				if !m.Legal(p) {
					t.Fatalf("initial %v not legal", p)
				}
				bits := codeBitsRef(tc.layers, p)
				if bits.Cmp(budget) > 0 {
					t.Fatalf("initial %v over budget", p)
				}
				// Lowering stops as soon as the budget holds: within one step of it.
				if new(big.Int).Add(bits, big.NewInt(maxStep)).Cmp(budget) <= 0 {
					t.Fatalf("initial %v lowered further than needed (%v bits, budget %v)", p, bits, budget)
				}
				for i, b := range p {
					start := tc.layers[i].Bits[len(tc.layers[i].Bits)-1]
					if j, _ := slices.BinarySearch(tc.layers[i].Bits, ceil); j < len(tc.layers[i].Bits) {
						start = tc.layers[i].Bits[j]
					}
					if b > start {
						t.Fatalf("unit %d at %d bits above its start %d", i, b, start)
					}
				}
				distinct[fmt.Sprint(p)] = true
			}
			if len(distinct) < 2 {
				t.Fatalf("all %d initial profiles identical", len(init))
			}
		})
	}
}

// quantCase is a conformance case of the quant mode; Within, Invariant, Step and Accept are
// written from the layers alone (exact rationals for the budget). With contiguous widths and
// equal numels inside every group, a grouped switch keeps each group's Σ numel·bits; otherwise
// (free rule, gaps in the widths) the budget is only a bound.
func quantCase(name string, layers []quant.Layer, target string, rule search.GroupBy, enumerate bool) searchtest.Case {
	var tf float64
	fmt.Sscan(target, &tf)
	build := func(layers []quant.Layer, tf float64, rule search.GroupBy, maxChanges int) func() (search.Mode, error) {
		return func() (search.Mode, error) {
			return quant.New(quant.Config{Layers: layers, Target: tf, GroupBy: rule, MaxChanges: maxChanges})
		}
	}
	resolved := rule
	if resolved == search.GroupDefault {
		resolved = search.GroupSize
	}
	groupOf := func(i int) string {
		switch resolved {
		case search.GroupSize:
			return fmt.Sprint(layers[i].Numel)
		case search.GroupKind:
			return search.UnitKind(layers[i].Name)
		}
		return "all"
	}
	var groups []string
	exact := resolved != search.GroupNone // every group: equal numels, contiguous widths
	numelOf := map[string]int64{}
	for i, l := range layers {
		g := groupOf(i)
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
		if n, ok := numelOf[g]; ok && n != l.Numel {
			exact = false
		}
		numelOf[g] = l.Numel
		for j := 1; j < len(l.Bits); j++ {
			exact = exact && l.Bits[j] == l.Bits[j-1]+1
		}
	}
	budget := big.NewInt(budgetRef(layers, target))
	idx := func(i, b int) int { return slices.Index(layers[i].Bits, b) }
	c := searchtest.Case{
		Name: name,
		New:  build(layers, tf, rule, 0),
		Within: func(p search.Levels) bool {
			if len(p) != len(layers) {
				return false
			}
			for i, b := range p {
				if idx(i, b) < 0 {
					return false
				}
			}
			return codeBitsRef(layers, p).Cmp(budget) <= 0
		},
		Step: func(p, q search.Levels) error {
			var ups, downs []int
			steps := 0
			for i := range q {
				d := idx(i, q[i]) - idx(i, p[i])
				steps += max(d, -d)
				if d > 0 {
					ups = append(ups, i)
				} else if d < 0 {
					downs = append(downs, i)
				}
			}
			if resolved == search.GroupNone {
				if len(ups) != 1 || idx(ups[0], q[ups[0]])-idx(ups[0], p[ups[0]]) != 1 {
					return fmt.Errorf("ups %v, want one unit up one width", ups)
				}
				return nil
			}
			if len(ups) != 1 || len(downs) != 1 || steps != 2 || groupOf(ups[0]) != groupOf(downs[0]) {
				return fmt.Errorf("ups %v downs %v steps %d, want one unit up and one of its group down one width", ups, downs, steps)
			}
			return nil
		},
		Accept: func(p, q search.Levels) bool {
			if resolved != search.GroupNone {
				return true
			}
			// width steps and added/removed bits against the parent
			steps, added, removed := 0, int64(0), int64(0)
			for i := range q {
				d := idx(i, q[i]) - idx(i, p[i])
				steps += max(d, -d)
				if bits := layers[i].Numel * int64(q[i]-p[i]); bits > 0 {
					added += bits
				} else {
					removed -= bits
				}
			}
			return steps <= quant.DefaultMaxChanges && float64(added)/float64(max(1, removed)) >= 0.8
		},
		Variants: map[string]func() (search.Mode, error){
			"target":      build(layers, tf+0.125, rule, 0),
			"widths":      build(append([]quant.Layer{{layers[0].Name, layers[0].Numel, layers[0].Bits[1:]}}, layers[1:]...), tf, rule, 0),
			"numel":       build(append([]quant.Layer{{layers[0].Name, layers[0].Numel + 1, layers[0].Bits}}, layers[1:]...), tf, rule, 0),
			"max changes": build(layers, tf, rule, quant.DefaultMaxChanges+1),
		},
	}
	for _, other := range []search.GroupBy{search.GroupNone, search.GroupSize, search.GroupKind} {
		if other != resolved {
			c.Variants["group "+other.String()] = build(layers, tf, other, 0)
		}
	}
	for name, v := range c.Variants {
		if _, err := v(); err != nil {
			delete(c.Variants, name) // not a valid instance
		}
	}
	if exact {
		c.Invariant = func(p search.Levels) []int64 {
			sums := make([]int64, len(groups))
			for i, b := range p {
				sums[slices.Index(groups, groupOf(i))] += layers[i].Numel * int64(b)
			}
			return sums
		}
	}
	if enumerate {
		for _, l := range layers {
			c.Levels = append(c.Levels, append([]int{l.Bits[0] - 1}, append(slices.Clone(l.Bits), l.Bits[len(l.Bits)-1]+1)...))
		}
	}
	return c
}

// TestConformance runs the search mode conformance suite: small instances exhaustively, under
// every group rule and with integer and fractional targets, and four-block Llamas along walks.
func TestConformance(t *testing.T) {
	w := []int{2, 3, 4}
	// size groups {q0, q1, o0} and {k0, k1}; kind groups {q0, q1}, {k0, k1}, {o0}
	small := []quant.Layer{
		{"model.layers.0.self_attn.q_proj", 64, w}, {"model.layers.0.self_attn.k_proj", 32, w},
		{"model.layers.1.self_attn.q_proj", 64, w}, {"model.layers.1.self_attn.k_proj", 32, w},
		{"model.layers.0.self_attn.o_proj", 64, w},
	}
	equal := []quant.Layer{{"a.q_proj", 48, w}, {"a.k_proj", 48, w}, {"b.q_proj", 48, w}, {"b.k_proj", 48, w}}
	bitsOf := func(layers []quant.Layer) func(p0, p search.Levels) bool {
		// the free rule at equal numels and contiguous widths: every switch lowers exactly the
		// bits it adds, so the walk keeps the initial profile's Σ numel·bits
		return func(p0, p search.Levels) bool { return codeBitsRef(layers, p0).Cmp(codeBitsRef(layers, p)) == 0 }
	}
	noneInt := quantCase("none 3 equal numels", equal, "3", search.GroupNone, true)
	noneInt.Reachable = bitsOf(equal)
	noneFrac := quantCase("none 2.5 equal numels", equal, "2.5", search.GroupNone, true)
	noneFrac.Reachable = bitsOf(equal)
	searchtest.Conformance(t, []searchtest.Case{
		quantCase("size 3", small, "3", search.GroupSize, true),
		quantCase("size 2.5", small, "2.5", search.GroupSize, true),
		quantCase("size 3.3", small, "3.3", search.GroupSize, true),
		quantCase("kind 3", small, "3", search.GroupKind, true),
		quantCase("kind 2.75", small, "2.75", search.GroupKind, true),
		quantCase("size gaps 3.5", []quant.Layer{{"a.q_proj", 16, []int{2, 3, 4, 8}}, {"b.q_proj", 16, []int{2, 3, 4, 8}}, {"c.q_proj", 16, []int{2, 3, 4, 8}}}, "3.5", search.GroupSize, false),
		noneInt, noneFrac,
		// four-block Llamas along walks
		quantCase("llama size 3", llamaLayers(4, []int{2, 3, 4, 5, 6}), "3", search.GroupDefault, false),
		quantCase("llama size 2.25", llamaLayers(4, []int{2, 3, 4, 5, 6}), "2.25", search.GroupSize, false),
		quantCase("llama kind 4", llamaLayers(4, []int{2, 3, 4, 5, 6, 7, 8}), "4", search.GroupKind, false),
		quantCase("llama none 3", llamaLayers(4, []int{2, 3, 4, 5, 6}), "3", search.GroupNone, false),
		quantCase("llama none 2.5", llamaLayers(4, []int{2, 3, 4, 5, 6}), "2.5", search.GroupNone, false),
		quantCase("llama size gaps 3.5", llamaLayers(4, []int{2, 3, 4, 8}), "3.5", search.GroupSize, false),
		quantCase("llama none gaps 3.5", llamaLayers(4, []int{2, 3, 4, 8}), "3.5", search.GroupNone, false),
	})
}

func TestAcceptOffspring(t *testing.T) {
	layers := []quant.Layer{{"a.q_proj", 100, []int{2, 3, 4, 5, 6}}, {"b.q_proj", 100, []int{2, 3, 4, 5, 6}},
		{"c.up_proj", 400, []int{2, 3, 4, 5, 6}}, {"d.up_proj", 400, []int{2, 3, 4, 5, 6}}}
	m, err := quant.New(quant.Config{Layers: layers, Target: 4, GroupBy: search.GroupNone, MaxChanges: 3})
	if err != nil {
		t.Fatal(err)
	}
	parent := search.Levels{4, 4, 4, 4}
	for _, tc := range []struct {
		child search.Levels
		want  bool
	}{
		{search.Levels{5, 3, 4, 4}, true},  // +100 −100
		{search.Levels{6, 4, 3, 4}, false}, // +200 −400: ratio 0.5
		{search.Levels{4, 4, 5, 3}, true},  // +400 −400
		{search.Levels{6, 2, 4, 4}, false}, // 4 steps > 3
		{search.Levels{5, 2, 4, 4}, false}, // 3 steps, ratio 0.5
		{search.Levels{3, 3, 4, 4}, false}, // only removals
		{search.Levels{4, 4, 4, 4}, false}, // adds nothing (the engine rejects it as the parent anyway)
		{search.Levels{4, 4, 4}, false},
		{search.Levels{4, 4, 4, 7}, false}, // width not allowed
	} {
		if got := m.AcceptOffspring(parent, tc.child); got != tc.want {
			t.Errorf("AcceptOffspring(%v, %v) = %t, want %t", parent, tc.child, got, tc.want)
		}
	}
	ms, _ := quant.New(quant.Config{Layers: layers, Target: 4})
	if !ms.AcceptOffspring(parent, search.Levels{6, 2, 4, 4}) {
		t.Error("size rule filters offspring")
	}
}

func TestBitsPerWeight(t *testing.T) {
	layers := []quant.Layer{{"a.q_proj", 4096 * 4096, []int{2, 3, 4}}, {"b.k_proj", 4096 * 1024, []int{2, 3, 4}}}
	m, err := quant.New(quant.Config{Layers: layers, Target: 3, GroupBy: search.GroupNone})
	if err != nil {
		t.Fatal(err)
	}
	p := search.Levels{3, 4}
	per, mean, err := m.BitsPerWeight(p, nil)
	if err != nil || per[0] != 3 || per[1] != 4 || math.Abs(mean-(3*16+4*4)/20.0) > 1e-12 {
		t.Fatalf("codes only: %v %v %v", per, mean, err)
	}
	// GPTQ-style: fp16 scale per 128 weights, zero packed at the code width.
	ov, err := m.GroupOverhead(128, 16, 0)
	if err != nil {
		t.Fatal(err)
	}
	per, mean, err = m.BitsPerWeight(p, ov)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{3 + 19.0/128, 4 + 20.0/128}
	wantMean := (want[0]*16 + want[1]*4) / 20
	if math.Abs(per[0]-want[0]) > 1e-12 || math.Abs(per[1]-want[1]) > 1e-12 || math.Abs(mean-wantMean) > 1e-12 {
		t.Fatalf("with overhead: %v %v, want %v %v", per, mean, want, wantMean)
	}
	ov16, _ := m.GroupOverhead(128, 16, 16)
	if per, _, _ := m.BitsPerWeight(p, ov16); per[0] != 3.25 {
		t.Fatalf("fp16 zero: %v", per)
	}
	// ceil(numel/groupSize) groups
	odd, _ := quant.New(quant.Config{Layers: []quant.Layer{{"a", 130, []int{2, 3}}, {"b", 130, []int{2, 3}}}, Target: 2.5})
	ov2, _ := odd.GroupOverhead(128, 16, 0)
	if got := ov2(0, 2); got != 2*18 {
		t.Fatalf("overhead of 130 weights = %d, want 36", got)
	}
	if ov2(5, 2) != 0 || ov2(-1, 2) != 0 {
		t.Fatal("out-of-range unit")
	}
	for _, bad := range [][3]int{{0, 16, 0}, {128, -1, 0}, {128, 16, -1}} {
		if _, err := m.GroupOverhead(int64(bad[0]), bad[1], bad[2]); err == nil {
			t.Errorf("GroupOverhead%v accepted", bad)
		}
	}
	if _, _, err := m.BitsPerWeight(search.Levels{3}, nil); err == nil {
		t.Error("short profile accepted")
	}
	if _, _, err := m.BitsPerWeight(search.Levels{3, 5}, nil); err == nil || !strings.Contains(err.Error(), "5 bits is not an allowed width") {
		t.Errorf("bad width: %v", err)
	}
}

func TestLegalAndOddInput(t *testing.T) {
	layers := []quant.Layer{{"a.q_proj", 100, []int{2, 3, 4}}, {"b.q_proj", 100, []int{2, 3, 4}}, {"c.up_proj", 300, []int{2, 4}}}
	m, err := quant.New(quant.Config{Layers: layers, Target: 3})
	if err != nil {
		t.Fatal(err)
	}
	// budget = 1500
	for _, tc := range []struct {
		p    search.Levels
		want bool
	}{
		{search.Levels{3, 3, 2}, true}, {search.Levels{4, 4, 2}, true}, {search.Levels{2, 2, 4}, false},
		{search.Levels{3, 3, 3}, false}, {search.Levels{4, 4}, false}, {nil, false}, {search.Levels{4, 4, 4}, false},
		{search.Levels{1, 3, 2}, false},
	} {
		if got := m.Legal(tc.p); got != tc.want {
			t.Errorf("Legal(%v) = %t, want %t", tc.p, got, tc.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, rule := range []search.GroupBy{search.GroupSize, search.GroupNone} {
		mm, _ := quant.New(quant.Config{Layers: layers, Target: 3, GroupBy: rule})
		for _, p := range []search.Levels{nil, {3}, {3, 3, 3}, {9, 9, 9}, {-1, 3, 2}} {
			if q := mm.Mutate(rng, p); !q.Equal(p) {
				t.Errorf("%v: Mutate(%v) = %v, want unchanged", rule, p, q)
			}
		}
	}
	if m.Target() != 3 || m.Name() != "quant" || m.GroupBy() != search.GroupSize || len(m.Layers()) != 3 || m.Signature() == "" {
		t.Fatal("accessors")
	}
	if !strings.Contains(m.Signature(), "target=3.0000") {
		t.Fatalf("signature %q", m.Signature())
	}
}
