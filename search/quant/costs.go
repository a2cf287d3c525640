package quant

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/internal/pick"
)

// This file is the cost form of the mode (Config.CostLayers); see the package documentation for
// its budget, switch and initial profiles.

// newCosts validates a configuration whose layers have per-level costs.
func newCosts(cfg Config) (*Mode, error) {
	rule := cfg.GroupBy
	switch rule {
	case search.GroupDefault:
		rule = search.GroupNone
	case search.GroupNone, search.GroupSize, search.GroupKind:
	default:
		return nil, fmt.Errorf("quant: group-by = %v, want size, kind or none", cfg.GroupBy)
	}
	if cfg.MaxChanges < 0 {
		return nil, fmt.Errorf("quant: max changes = %d, want at least 1 (0 for %d)", cfg.MaxChanges, DefaultMaxChanges)
	}
	if cfg.InitialDraws < 0 {
		return nil, fmt.Errorf("quant: initial draws = %d, want at least 1 (0 for %d)", cfg.InitialDraws, DefaultInitialDraws)
	}
	m := &Mode{rule: rule, maxChanges: cfg.MaxChanges, draws: cfg.InitialDraws, costs: true}
	if m.maxChanges == 0 {
		m.maxChanges = DefaultMaxChanges
	}
	if m.draws == 0 {
		m.draws = DefaultInitialDraws
	}
	seen := make(map[string]bool, len(cfg.CostLayers))
	numels := make([]int64, len(cfg.CostLayers))
	for i, l := range cfg.CostLayers {
		if l.Name == "" {
			return nil, fmt.Errorf("quant: layer %d: name is empty", i)
		}
		if seen[l.Name] {
			return nil, fmt.Errorf("quant: layer %d: name %q appears twice", i, l.Name)
		}
		seen[l.Name] = true
		if l.Numel <= 0 {
			return nil, fmt.Errorf("quant: layer %q: numel = %d, want at least 1", l.Name, l.Numel)
		}
		if len(l.Levels) == 0 || len(l.Levels) != len(l.Costs) {
			return nil, fmt.Errorf("quant: layer %q: %d levels with %d costs, want as many of each and at least one", l.Name, len(l.Levels), len(l.Costs))
		}
		if m.total += l.Numel; m.total > maxWeights {
			return nil, fmt.Errorf("quant: layers hold more than %d weights in total", int64(maxWeights))
		}
		ids := map[int]bool{}
		for j, id := range l.Levels {
			c := l.Costs[j]
			switch {
			case id < 0:
				return nil, fmt.Errorf("quant: layer %q: level %d, want level ids ≥ 0", l.Name, id)
			case ids[id]:
				return nil, fmt.Errorf("quant: layer %q: level %d appears twice in %v", l.Name, id, l.Levels)
			case c < 0 || c > 32*l.Numel:
				return nil, fmt.Errorf("quant: layer %q: level %d costs %d bits, want 0..32·numel = %d", l.Name, id, c, 32*l.Numel)
			case j > 0 && c < l.Costs[j-1]:
				return nil, fmt.Errorf("quant: layer %q: costs %v must not decrease along the levels %v", l.Name, l.Costs, l.Levels)
			}
			ids[id] = true
			if j > 0 {
				m.maxStep = max(m.maxStep, c-l.Costs[j-1])
			}
		}
		m.minCost += l.Costs[0]
		m.maxCost += l.Costs[len(l.Costs)-1]
		m.layers = append(m.layers, Layer{Name: l.Name, Numel: l.Numel})
		m.levelIDs = append(m.levelIDs, slices.Clone(l.Levels))
		m.cost = append(m.cost, slices.Clone(l.Costs))
		m.units = append(m.units, l.Name)
		numels[i] = l.Numel
	}
	switch {
	case cfg.Budget < 0:
		return nil, fmt.Errorf("quant: budget = %d bits, want a positive number", cfg.Budget)
	case cfg.Budget > 0 && cfg.Target != 0:
		return nil, fmt.Errorf("quant: target = %v and budget = %d: give one of them", cfg.Target, cfg.Budget)
	case cfg.Budget > 0:
		m.budget = cfg.Budget
	case math.IsNaN(cfg.Target) || cfg.Target <= 0 || cfg.Target > 32:
		return nil, fmt.Errorf("quant: target = %v bits per weight, want a number in (0, 32]", cfg.Target)
	default:
		m.t4 = int64(math.Round(cfg.Target * TargetScale))
		m.budget = m.t4 * m.total / TargetScale
	}
	if m.minCost > m.budget {
		return nil, fmt.Errorf("quant: %s is below the smallest achievable, %.4f bits per weight (every layer at its first level)",
			m.budgetString(), float64(m.minCost)/float64(m.total))
	}
	m.group = pick.Groups(m.units, numels, rule)
	if rule != search.GroupNone {
		movable := func(i int) bool { return len(m.levelIDs[i]) > 1 }
		if _, _, ok := pick.Pair(rand.New(rand.NewPCG(0, 0)), m.group, movable, movable); !ok {
			return nil, fmt.Errorf("quant: group-by %v: no group holds two layers with more than one level, so no switch is possible", rule)
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "costs budget=%d group=%v maxchanges=%d draws=%d\n", m.budget, rule, m.maxChanges, m.draws)
	for i, l := range m.layers {
		fmt.Fprintf(h, "%s %d %v %v\n", l.Name, l.Numel, m.levelIDs[i], m.cost[i])
	}
	m.sig = fmt.Sprintf("quant costs budget=%d group=%v layers=%d sha256=%s",
		m.budget, rule, len(m.layers), hex.EncodeToString(h.Sum(nil))[:16])
	return m, nil
}

// budgetString names the budget in errors: the target, or the explicit budget.
func (m *Mode) budgetString() string {
	if m.t4 == 0 {
		return fmt.Sprintf("budget = %d bits (%.4f bits per weight)", m.budget, float64(m.budget)/float64(m.total))
	}
	return fmt.Sprintf("target = %s bits per weight", m.targetString())
}

// Searchable reports why a search could not move: a budget that fits only every layer at its
// first level, or one that allows every layer its last. With bit-widths New refuses these; with
// costs New accepts them (a baseline's profile may sit there) and a search asks here.
func (m *Mode) Searchable() error {
	if !m.costs {
		return nil
	}
	if m.minCost == m.budget {
		return fmt.Errorf("quant: %s fits only every layer at its first level: nothing to search", m.budgetString())
	}
	if m.maxCost <= m.budget {
		return fmt.Errorf("quant: %s allows every layer its last level (%.4f bits per weight): nothing to search",
			m.budgetString(), float64(m.maxCost)/float64(m.total))
	}
	return nil
}

// Cost returns Σ cost of p's levels (bit-widths: Σ numel·bits); a level a layer does not have
// makes it math.MaxInt64.
func (m *Mode) Cost(p search.Levels) int64 {
	if !m.costs {
		return m.CodeBits(p)
	}
	var s int64
	for i, l := range p[:min(len(p), len(m.layers))] {
		j := m.index(i, l)
		if j < 0 {
			return math.MaxInt64
		}
		s += m.cost[i][j]
	}
	return s
}

// costState is a profile being changed by the cost form's moves: the level indices and the
// spent budget.
type costState struct {
	m     *Mode
	q     search.Levels
	idx   []int
	total int64
}

func (st *costState) canUp(i int) bool   { return st.idx[i] < len(st.m.levelIDs[i])-1 }
func (st *costState) canDown(i int) bool { return st.idx[i] > 0 }

// up and down are the costs of layer i's next step up and down (only when possible).
func (st *costState) up(i int) int64   { return st.m.cost[i][st.idx[i]+1] - st.m.cost[i][st.idx[i]] }
func (st *costState) down(i int) int64 { return st.m.cost[i][st.idx[i]] - st.m.cost[i][st.idx[i]-1] }

func (st *costState) move(i, d int) {
	if d > 0 {
		st.total += st.up(i)
	} else {
		st.total -= st.down(i)
	}
	st.idx[i] += d
	st.q[i] = st.m.levelIDs[i][st.idx[i]]
}

// fill moves random layers with ok(i) up one level while a step of positive cost fits.
func (st *costState) fill(rng *rand.Rand, ok func(int) bool) {
	for {
		slack := st.m.budget - st.total
		i, found := pick.One(rng, len(st.q), -1, func(i int) bool {
			return ok(i) && st.canUp(i) && st.up(i) > 0 && st.up(i) <= slack
		})
		if !found {
			return
		}
		st.move(i, +1)
	}
}

// startIndex returns layer i's first level whose cost per weight is at least the budget's,
// cost·total ≥ budget·numel (compared in 128 bits), or its last level.
func (m *Mode) startIndex(i int) int {
	for j, c := range m.cost[i] {
		if cmpProducts(uint64(c), uint64(m.total), uint64(m.budget), uint64(m.layers[i].Numel)) >= 0 {
			return j
		}
	}
	return len(m.cost[i]) - 1
}

// cmpProducts compares a·b with c·d exactly.
func cmpProducts(a, b, c, d uint64) int {
	h1, l1 := bits.Mul64(a, b)
	h2, l2 := bits.Mul64(c, d)
	switch {
	case h1 != h2:
		return cmpU(h1, h2)
	default:
		return cmpU(l1, l2)
	}
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// initialCosts draws InitialDraws profiles: every layer at its start level, random layers
// lowered one level until within budget, then random layers raised while a step fits.
func (m *Mode) initialCosts(rng *rand.Rand) []search.Levels {
	n := len(m.layers)
	start := make([]int, n)
	for i := range start {
		start[i] = m.startIndex(i)
	}
	out := make([]search.Levels, m.draws)
	for d := range out {
		st := &costState{m: m, q: make(search.Levels, n), idx: slices.Clone(start)}
		for i, j := range st.idx {
			st.q[i] = m.levelIDs[i][j]
			st.total += m.cost[i][j]
		}
		for st.total > m.budget {
			i, ok := pick.One(rng, n, -1, st.canDown)
			if !ok {
				break // cannot happen: New checked that the first levels fit
			}
			st.move(i, -1)
		}
		st.fill(rng, func(int) bool { return true })
		out[d] = st.q
	}
	return out
}

// mutateCosts is the cost form's switch (package documentation): a random layer up one level,
// then an exact swap or a rebalance. q is a copy of p, idx its level indices.
func (m *Mode) mutateCosts(rng *rand.Rand, p, q search.Levels, idx []int) search.Levels {
	n := len(q)
	st := &costState{m: m, q: q, idx: idx}
	for i, j := range idx {
		st.total += m.cost[i][j]
	}
	u, ok := pick.One(rng, n, -1, st.canUp)
	if !ok {
		return q
	}
	inGroup := func(i int) bool { return m.group[i] == m.group[u] }
	c := st.up(u)
	if c > 0 && rng.IntN(2) == 0 {
		d, ok := pick.One(rng, n, u, func(i int) bool { return inGroup(i) && st.canDown(i) && st.down(i) == c })
		if ok {
			st.move(u, +1)
			st.move(d, -1)
			st.fill(rng, inGroup)
			return q
		}
	}
	st.move(u, +1)
	for st.total > m.budget {
		d, ok := pick.One(rng, n, u, func(i int) bool { return inGroup(i) && st.canDown(i) })
		if !ok {
			return p.Clone()
		}
		st.move(d, -1)
	}
	st.fill(rng, inGroup)
	return q
}

// acceptCosts rejects offspring more than MaxChanges level steps from their parent.
func (m *Mode) acceptCosts(parent, child search.Levels) bool {
	if len(parent) != len(m.layers) || len(child) != len(m.layers) {
		return false
	}
	steps := 0
	for i := range child {
		a, b := m.index(i, parent[i]), m.index(i, child[i])
		if a < 0 || b < 0 {
			return false
		}
		steps += abs(b - a)
	}
	return steps <= m.maxChanges
}
