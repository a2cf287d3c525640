package quant_test

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/searchtest"
)

// Bytes per 256 weights of llama.cpp's types (ggml block sizes): the K-quants Q2_K … Q6_K and
// Q8_0, and the 32-weight fallbacks Q4_0, Q5_0, Q5_1.
var (
	kIDs   = []int{10, 11, 12, 13, 14, 8} // q2_K q3_K q4_K q5_K q6_K q8_0
	kBytes = []int64{84, 110, 144, 176, 210, 272}
	fIDs   = []int{2, 6, 7, 8} // q4_0 q5_0 q5_1 q8_0
	fBytes = []int64{144, 176, 192, 272}
)

// ggufLayer is a layer of numel weights with the given types and bytes per 256 weights.
func ggufLayer(name string, numel int64, ids []int, bytes []int64) quant.CostLayer {
	l := quant.CostLayer{Name: name, Numel: numel, Levels: slices.Clone(ids)}
	for _, b := range bytes {
		l.Costs = append(l.Costs, 8*b*numel/256)
	}
	return l
}

// llamaCostLayers is a Llama of the given blocks with llama-pd-11m's shapes: down_proj's 704
// columns take the fallback types.
func llamaCostLayers(blocks int) []quant.CostLayer {
	var out []quant.CostLayer
	for i, name := range search.LinearUnitNames(blocks) {
		ids, bytes := kIDs, kBytes
		if i%7 == 6 {
			ids, bytes = fIDs, fBytes
		}
		out = append(out, ggufLayer(name, llamaNumels[i%7], ids, bytes))
	}
	return out
}

// costBudget is floor(target·Σ numel) with exact rationals (or the explicit budget).
func costBudget(layers []quant.CostLayer, target string, budget int64) int64 {
	if budget > 0 {
		return budget
	}
	t, ok := new(big.Rat).SetString(target)
	if !ok {
		panic(target)
	}
	var n int64
	for _, l := range layers {
		n += l.Numel
	}
	v := new(big.Rat).Mul(t, new(big.Rat).SetInt64(n))
	return new(big.Int).Quo(v.Num(), v.Denom()).Int64()
}

// costCase is a conformance case of the cost form; Within, Bounded, Step and Accept are written
// from the layers alone.
func costCase(name string, layers []quant.CostLayer, target string, budget int64, rule search.GroupBy, enumerate bool) searchtest.Case {
	var tf float64
	if budget == 0 {
		fmt.Sscan(target, &tf)
	}
	build := func(layers []quant.CostLayer, tf float64, budget int64, rule search.GroupBy, maxChanges int) func() (search.Mode, error) {
		return func() (search.Mode, error) {
			return quant.New(quant.Config{CostLayers: layers, Target: tf, Budget: budget, GroupBy: rule, MaxChanges: maxChanges})
		}
	}
	resolved := rule
	if resolved == search.GroupDefault {
		resolved = search.GroupNone
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
	limit := costBudget(layers, target, budget)
	idx := func(i, l int) int { return slices.Index(layers[i].Levels, l) }
	cost := func(p search.Levels) int64 {
		var s int64
		for i, l := range p {
			s += layers[i].Costs[idx(i, l)]
		}
		return s
	}
	var maxStep int64
	for _, l := range layers {
		for j := 1; j < len(l.Costs); j++ {
			maxStep = max(maxStep, l.Costs[j]-l.Costs[j-1])
		}
	}
	// upSteps lists the positive costs of the next step up of every layer with one.
	upStep := func(p search.Levels, i int) (int64, bool) {
		j := idx(i, p[i])
		if j+1 >= len(layers[i].Costs) {
			return 0, false
		}
		return layers[i].Costs[j+1] - layers[i].Costs[j], true
	}
	c := searchtest.Case{
		Name: name,
		New:  build(layers, tf, budget, rule, 0),
		Within: func(p search.Levels) bool {
			if len(p) != len(layers) {
				return false
			}
			for i, l := range p {
				if idx(i, l) < 0 {
					return false
				}
			}
			return cost(p) <= limit
		},
		// Under GroupNone every visited profile is maximal: no layer's step of positive cost
		// fits the unspent budget. Under the group rules, only the moved group is filled: the
		// unspent budget stays below the largest step.
		Bounded: func(p search.Levels) error {
			slack := limit - cost(p)
			for i := range p {
				if s, ok := upStep(p, i); ok && s > 0 && (resolved == search.GroupNone && s <= slack || slack >= maxStep) {
					return fmt.Errorf("unspent budget %d (largest step %d) while layer %d can go up at cost %d", slack, maxStep, i, s)
				}
			}
			return nil
		},
		// One switch moves layers of one group, at least one up, and ends with the group filled.
		Step: func(p, q search.Levels) error {
			group, up := "", false
			for i := range q {
				d := idx(i, q[i]) - idx(i, p[i])
				if d == 0 {
					continue
				}
				if group == "" {
					group = groupOf(i)
				} else if groupOf(i) != group {
					return fmt.Errorf("layers of groups %s and %s moved", group, groupOf(i))
				}
				up = up || d > 0
			}
			if !up {
				return fmt.Errorf("no layer went up")
			}
			slack := limit - cost(q)
			for i := range q {
				if s, ok := upStep(q, i); ok && groupOf(i) == group && s > 0 && s <= slack {
					return fmt.Errorf("layer %d's step of %d still fits the unspent %d", i, s, slack)
				}
			}
			return nil
		},
		Accept: func(p, q search.Levels) bool {
			steps := 0
			for i := range q {
				d := idx(i, q[i]) - idx(i, p[i])
				steps += max(d, -d)
			}
			return steps <= quant.DefaultMaxChanges
		},
		Variants: map[string]func() (search.Mode, error){
			"max changes": build(layers, tf, budget, rule, quant.DefaultMaxChanges+1),
			"levels":      build(append([]quant.CostLayer{{layers[0].Name, layers[0].Numel, layers[0].Levels[1:], layers[0].Costs[1:]}}, layers[1:]...), tf, budget, rule, 0),
			"costs": build(append([]quant.CostLayer{{layers[0].Name, layers[0].Numel, layers[0].Levels,
				append([]int64{layers[0].Costs[0] - 1}, layers[0].Costs[1:]...)}}, layers[1:]...), tf, budget, rule, 0),
		},
	}
	if budget > 0 {
		c.Variants["budget"] = build(layers, 0, budget+1, rule, 0)
	} else {
		c.Variants["target"] = build(layers, tf+0.125, 0, rule, 0)
	}
	for _, other := range []search.GroupBy{search.GroupNone, search.GroupSize, search.GroupKind} {
		if other != resolved {
			c.Variants["group "+other.String()] = build(layers, tf, budget, other, 0)
		}
	}
	for name, v := range c.Variants {
		if _, err := v(); err != nil {
			delete(c.Variants, name)
		}
	}
	if enumerate {
		for _, l := range layers {
			c.Levels = append(c.Levels, append([]int{99}, l.Levels...))
		}
	}
	return c
}

// TestConformanceCosts runs the conformance suite on the cost form: small instances
// exhaustively (uneven K-quant steps, fallback types, levels of equal cost, explicit budgets,
// every group rule) and Llamas with llama-pd-11m's shapes along walks.
func TestConformanceCosts(t *testing.T) {
	small := []quant.CostLayer{
		ggufLayer("model.layers.0.self_attn.q_proj", 512, kIDs[:4], kBytes[:4]),
		ggufLayer("model.layers.0.self_attn.k_proj", 256, kIDs[:4], kBytes[:4]),
		ggufLayer("model.layers.1.self_attn.q_proj", 512, kIDs[:4], kBytes[:4]),
		ggufLayer("model.layers.0.mlp.down_proj", 512, fIDs, fBytes),
	}
	// q4_0 and q4_K cost the same: a zero-cost step
	ties := []quant.CostLayer{
		ggufLayer("a.q_proj", 256, []int{10, 2, 12, 13}, []int64{84, 144, 144, 176}),
		ggufLayer("a.k_proj", 256, []int{10, 2, 12, 13}, []int64{84, 144, 144, 176}),
		ggufLayer("b.q_proj", 512, []int{2, 12, 8}, []int64{144, 144, 272}),
		ggufLayer("b.k_proj", 256, []int{11, 12}, []int64{110, 144}),
	}
	searchtest.Conformance(t, []searchtest.Case{
		costCase("none 4", small, "4", 0, search.GroupDefault, true),
		costCase("none 5.2", small, "5.2", 0, search.GroupNone, true),
		costCase("size 4.5", small, "4.5", 0, search.GroupSize, false),
		costCase("none budget", small, "", 8*(110+144+110+176)*2+40, search.GroupNone, true),
		costCase("ties 4.2", ties, "4.2", 0, search.GroupNone, true),
		costCase("llama 4.5", llamaCostLayers(4), "4.5", 0, search.GroupNone, false),
		costCase("llama 3.3", llamaCostLayers(4), "3.3", 0, search.GroupDefault, false),
		costCase("llama size 5.9", llamaCostLayers(4), "5.9", 0, search.GroupSize, false),
		costCase("llama kind 5", llamaCostLayers(4), "5", 0, search.GroupKind, false),
		costCase("llama budget", llamaCostLayers(4), "", 11_000_000, search.GroupNone, false),
	})
}

// TestCostErrors checks New's refusals of the cost form.
func TestCostErrors(t *testing.T) {
	good := func() []quant.CostLayer {
		return []quant.CostLayer{ggufLayer("a.q_proj", 256, kIDs, kBytes), ggufLayer("b.q_proj", 256, kIDs, kBytes)}
	}
	for _, tc := range []struct {
		name    string
		mod     func(*quant.Config)
		wantErr string
	}{
		{"both forms", func(c *quant.Config) { c.Layers = []quant.Layer{{"x", 1, []int{2}}} }, "give one form"},
		{"budget and target", func(c *quant.Config) { c.Budget = 5000 }, "give one of them"},
		{"negative budget", func(c *quant.Config) { c.Target, c.Budget = 0, -1 }, "budget = -1"},
		{"no levels", func(c *quant.Config) { c.CostLayers[1].Levels = nil }, "0 levels with 6 costs"},
		{"duplicate level", func(c *quant.Config) { c.CostLayers[1].Levels[2] = 10 }, "level 10 appears twice"},
		{"negative id", func(c *quant.Config) { c.CostLayers[1].Levels[0] = -3 }, "want level ids ≥ 0"},
		{"decreasing", func(c *quant.Config) { c.CostLayers[1].Costs[3] = 1 }, "must not decrease"},
		{"too costly", func(c *quant.Config) { c.CostLayers[1].Costs[5] = 33 * 256 }, "want 0..32·numel"},
		{"below minimum", func(c *quant.Config) { c.Target = 2.5 }, "below the smallest achievable, 2.6250"},
		{"group", func(c *quant.Config) { c.GroupBy = search.GroupBy(9) }, "group-by = GroupBy(9)"},
		{"size groups of one", func(c *quant.Config) { c.CostLayers[1].Numel = 512; c.GroupBy = search.GroupSize }, "no group holds two layers"},
	} {
		cfg := quant.Config{CostLayers: good(), Target: 4}
		tc.mod(&cfg)
		if m, err := quant.New(cfg); err == nil || m != nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: %v; want error containing %q", tc.name, err, tc.wantErr)
		}
	}
	// Trivial budgets are accepted (baselines use them) and reported by Searchable.
	for _, tc := range []struct {
		target  float64
		wantErr string
	}{{2.625, "fits only every layer at its first level"}, {8.5, "allows every layer its last level"}, {9, "allows every layer its last level"}, {4, ""}} {
		m, err := quant.New(quant.Config{CostLayers: good(), Target: tc.target})
		if err != nil {
			t.Fatalf("target %v: %v", tc.target, err)
		}
		if err := m.Searchable(); (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("target %v: Searchable = %v, want %q", tc.target, err, tc.wantErr)
		}
	}
	classic, _ := quant.New(quant.Config{Layers: llamaLayers(1, []int{2, 3, 4}), Target: 3})
	if classic.Searchable() != nil || classic.CostForm() || classic.CostLayers() != nil {
		t.Error("bit-width form: Searchable, CostForm or CostLayers")
	}
}

// TestCostBudgetAndSlack checks the cost form's budget arithmetic and that a long walk of
// switches on a llama-pd-11m-shaped model keeps Σ cost ≤ budget with the unspent budget below
// the largest step, and measures how small it stays.
func TestCostBudgetAndSlack(t *testing.T) {
	layers := llamaCostLayers(12)
	m, err := quant.New(quant.Config{CostLayers: layers, Target: 4.25})
	if err != nil {
		t.Fatal(err)
	}
	if want := costBudget(layers, "4.25", 0); m.Budget() != want || m.Target() != 4.25 || !m.CostForm() || m.GroupBy() != search.GroupNone {
		t.Fatalf("budget %d (want %d), target %v, group %v", m.Budget(), want, m.Target(), m.GroupBy())
	}
	if !strings.HasPrefix(m.Signature(), "quant costs budget=") {
		t.Fatalf("signature %q", m.Signature())
	}
	mb, err := quant.New(quant.Config{CostLayers: layers, Budget: m.Budget()})
	if err != nil || mb.Signature() != m.Signature() || mb.Target() != float64(m.Budget())/float64(m.TotalWeights()) {
		t.Fatalf("explicit budget: %v, signature %q vs %q", err, mb.Signature(), m.Signature())
	}
	rng := rand.New(rand.NewPCG(5, 5))
	inits := m.Initial(rng)
	if len(inits) != quant.DefaultInitialDraws {
		t.Fatalf("%d initial profiles", len(inits))
	}
	p := inits[0]
	var worst int64
	for step := range 20000 {
		q := m.Mutate(rng, p)
		if !m.Legal(q) {
			t.Fatalf("step %d: %v is not legal", step, q)
		}
		// maximal: the slack is below every step of positive cost a layer can take
		slack := m.Budget() - m.Cost(q)
		for i, l := range layers {
			j := slices.Index(l.Levels, q[i])
			if j+1 < len(l.Costs) && l.Costs[j+1] > l.Costs[j] && l.Costs[j+1]-l.Costs[j] <= slack {
				t.Fatalf("step %d: unspent budget %d, and layer %d can still go up at cost %d", step, slack, i, l.Costs[j+1]-l.Costs[j])
			}
		}
		if slack < 0 || slack >= m.MaxStep() {
			t.Fatalf("step %d: unspent budget %d, largest step %d", step, slack, m.MaxStep())
		}
		worst = max(worst, slack)
		if m.AcceptOffspring(p, q) {
			p = q
		}
	}
	t.Logf("largest unspent budget over 20000 switches: %d bits (%.2e of the budget); largest step %d", worst, float64(worst)/float64(m.Budget()), m.MaxStep())
	per, mean, err := m.BitsPerWeight(p, nil)
	if err != nil || mean > 4.25 || mean < 4.24 || per[6] < 4.5 {
		t.Fatalf("BitsPerWeight: %v %v %v", per[:7], mean, err)
	}
	if _, _, err := m.BitsPerWeight(search.Levels(slices.Repeat([]int{12}, len(layers))), nil); err == nil || !strings.Contains(err.Error(), "level 12 is not one of its levels [2 6 7 8]") {
		t.Fatalf("BitsPerWeight of a missing level: %v", err)
	}
}
