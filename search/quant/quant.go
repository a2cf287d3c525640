// Package quant is the dynamic bit-width mode of the search: the units are the linear layers of
// the blocks (see search.LinearUnitNames), and a unit's level is one of the quantized versions
// the level database holds for it. It has two forms:
//
//   - bit-widths (Config.Layers, a GPTQ/RTN database): a level is a width b (e.g. 2..8) costing
//     numel·b bits, so every step up or down costs the same per weight;
//   - per-level costs (Config.CostLayers, a GGUF database): a level is any id (a ggml
//     tensor type) with its own cost in bits (the bytes the tensor takes ×8), and the steps are
//     uneven (2.625, 3.4375, 4.5, 5.5, 6.5625, 8.5 bits per weight for Q2_K … Q8_0).
//
// Budget: Σ cost ≤ Budget(), computed in int64. For a target t in bits per weight (rounded to
// 1e-4 bits, so 2.25 is exactly 22500/10000 and no float drift accumulates) the budget is
// floor(t·Σ numel); the cost form also takes the budget directly (Config.Budget: a file size's
// share, in bits). With bit-widths the budget counts code bits only; BitsPerWeight adds the
// per-group scale/zero overhead for reporting. With costs it counts what is stored, scales
// included.
//
// Level switch with bit-widths, by group rule (GroupDefault = GroupSize):
//   - GroupSize / GroupKind: one unit goes up one allowed width and another unit of the same
//     numel (resp. projection kind) goes down one; with contiguous widths and equal numels this
//     is budget-neutral. A switch that would exceed the budget is not made.
//   - GroupNone: one random unit goes up one width, then random other units go down one width
//     until the profile is within budget. The engine rejects (AcceptOffspring) offspring that
//     differ from their parent by more than MaxChanges width steps in total, or that remove
//     more than 1.25 times the bits they add (the reference's 0.8 added/removed ratio), so
//     offspring do not drift far below the budget.
//
// Level switch with costs: uneven steps make the one-up-one-down switch inexact (Q4_K→Q5_K
// adds 1 bit per weight, Q3_K→Q2_K saves 0.8125), and rejecting inexact switches or letting
// the unspent budget drift are both poor, so one switch is budget-exact by construction:
//
//  1. a random unit u goes up one level (cost c);
//  2. exact swap (with probability ½ when c > 0): a random other unit whose step down saves
//     exactly c (two units of one size making opposite transitions, e.g. Q4_K→Q5_K and
//     Q5_K→Q4_K) goes down one level — the spent budget is unchanged;
//  3. otherwise (or when no unit has such a step) rebalance: random other units go down one
//     level until Σ cost ≤ budget;
//  4. fill: random units go up one level while a step fits (a step of positive cost at most the
//     unspent budget), until none fits.
//
// So the budget is never exceeded, and every profile the search visits is maximal: no unit can
// go up one level within the budget (the initial profiles end with the same fill). The unspent
// budget (the slack) is therefore below the smallest step any unit could still take — in
// bits, a fraction of one small layer's step, instead of drifting down as unchecked
// down-moves let it — and always below MaxStep(), the largest one-level step of any unit. The
// swap gives the search the local, budget-neutral trades of the integer-width switch wherever
// they exist; the rebalance lets one large layer's step be paid by several small ones and
// vice versa. Under GroupSize / GroupKind every unit a switch moves is in u's group (the
// profile is then maximal within that group, and its slack stays below MaxStep()); the default
// is GroupNone, since exactness comes from the switch itself and confining trades to
// same-size layers would freeze each group's share of the initial profile. AcceptOffspring
// rejects offspring more than MaxChanges level steps away from their parent (offspring stay
// local); the added/removed ratio is not needed, the slack being bounded by construction.
// Levels of equal cost (Q4_0, Q4_K and IQ4_NL all take 4.5 bits per weight) are allowed: the
// order the caller gives them in is the order of the steps, a zero-cost step up is a switch of
// its own, and rebalancing may lower through them.
//
// Initial profiles: with bit-widths and an integer target allowed for every unit, the single
// uniform profile. Otherwise (fractional targets such as 2.25, 2.5, 3.5, and always with costs)
// InitialDraws profiles (default 32), each made by starting every unit at the lowest level that
// costs at least the target per weight — ceil(target) bits (or the nearest allowed width above,
// else the highest); with costs the first level whose cost is ≥ budget·numel/Σ numel — and
// lowering random units one level at a time until within budget; with costs, random units then
// go up while a step fits, as in the switch's fill. The engine scores them on one init batch and
// starts from the best (duplicates dropped). 32 draws cost a quarter of one generation's first
// stage (λ = 128 at the same 2048 tokens) and, as the paper's best-of-32 random baseline shows,
// the best of 32 such profiles is a much better start than one draw.
package quant

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/internal/pick"
)

// Defaults for Config's zero fields.
const (
	DefaultMaxChanges   = 10
	DefaultInitialDraws = 32
	// TargetScale is the resolution of the target: 1/TargetScale bits per weight.
	TargetScale = 10000
)

// Layer describes one unit: its name, its number of weights and its allowed bit-widths
// (strictly increasing, each in 1..32); width b costs Numel·b bits.
type Layer struct {
	Name  string
	Numel int64
	Bits  []int
}

// CostLayer describes one unit of the cost form: its name, its number of weights, its level
// ids (distinct, ≥ 0; a GGUF database's ggml type ids) in the order of their steps, and what
// each costs in bits (Costs[j] for Levels[j], 0 ≤ cost ≤ 32·Numel, non-decreasing).
type CostLayer struct {
	Name   string
	Numel  int64
	Levels []int
	Costs  []int64
}

// Config describes a bit-width search problem.
type Config struct {
	// Layers are the units in profile order, with bit-widths; CostLayers, instead, with
	// per-level costs (the cost form).
	Layers     []Layer
	CostLayers []CostLayer
	// Target is the mean bits per weight (codes only with bit-widths; with costs, the mean cost
	// per weight), rounded to 1/TargetScale.
	Target float64
	// Budget, with costs only and instead of Target, is the largest allowed Σ cost in bits.
	Budget int64
	// GroupBy is the switch's group rule; GroupDefault means GroupSize with bit-widths and
	// GroupNone with costs.
	GroupBy search.GroupBy
	// MaxChanges bounds the total level steps between an offspring and its parent (bit-widths:
	// under GroupNone only; costs: under every rule); 0 means DefaultMaxChanges.
	MaxChanges int
	// InitialDraws is the number of initial profiles drawn for a fractional target; 0 means
	// DefaultInitialDraws.
	InitialDraws int
}

// Mode is the bit-width search mode. Create it with New.
type Mode struct {
	layers     []Layer
	units      []string
	t4         int64 // target·TargetScale (0 with an explicit budget)
	total      int64 // Σ numel
	budget     int64 // floor(t4·total/TargetScale), or Config.Budget
	rule       search.GroupBy
	group      []int
	maxChanges int
	draws      int
	sig        string

	// The cost form (costs is false for bit-widths).
	costs    bool
	levelIDs [][]int   // per layer, its levels in step order
	cost     [][]int64 // per layer, the cost of each level
	minCost  int64     // every layer at its first level
	maxCost  int64     // every layer at its last level
	maxStep  int64     // the largest one-level step of any layer
}

// maxWeights bounds Σ numel so that Σ numel·32·TargetScale fits in int64.
const maxWeights = math.MaxInt64 / (32 * TargetScale * 2)

// New validates cfg and returns the mode.
func New(cfg Config) (*Mode, error) {
	if cfg.CostLayers != nil && cfg.Layers != nil {
		return nil, fmt.Errorf("quant: layers with bit-widths and layers with costs: give one form")
	}
	if n := len(cfg.Layers) + len(cfg.CostLayers); n < 2 {
		return nil, fmt.Errorf("quant: layers: %d given, want at least 2", n)
	}
	if cfg.CostLayers != nil {
		return newCosts(cfg)
	}
	if cfg.Budget != 0 {
		return nil, fmt.Errorf("quant: budget = %d: an explicit budget needs layers with per-level costs", cfg.Budget)
	}
	if math.IsNaN(cfg.Target) || cfg.Target <= 0 || cfg.Target > 32 {
		return nil, fmt.Errorf("quant: target = %v bits per weight, want a number in (0, 32]", cfg.Target)
	}
	rule := cfg.GroupBy
	switch rule {
	case search.GroupDefault:
		rule = search.GroupSize
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
	m := &Mode{rule: rule, maxChanges: cfg.MaxChanges, draws: cfg.InitialDraws}
	if m.maxChanges == 0 {
		m.maxChanges = DefaultMaxChanges
	}
	if m.draws == 0 {
		m.draws = DefaultInitialDraws
	}
	seen := make(map[string]bool, len(cfg.Layers))
	numels := make([]int64, len(cfg.Layers))
	var minBits, maxBits int64
	for i, l := range cfg.Layers {
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
		if len(l.Bits) == 0 {
			return nil, fmt.Errorf("quant: layer %q: no allowed bit-widths", l.Name)
		}
		for j, b := range l.Bits {
			if b < 1 || b > 32 {
				return nil, fmt.Errorf("quant: layer %q: bit-width %d, want 1..32", l.Name, b)
			}
			if j > 0 && b <= l.Bits[j-1] {
				return nil, fmt.Errorf("quant: layer %q: bit-widths %v must be strictly increasing", l.Name, l.Bits)
			}
		}
		if m.total += l.Numel; m.total > maxWeights {
			return nil, fmt.Errorf("quant: layers hold more than %d weights in total", int64(maxWeights))
		}
		minBits += l.Numel * int64(l.Bits[0])
		maxBits += l.Numel * int64(l.Bits[len(l.Bits)-1])
		m.layers = append(m.layers, Layer{Name: l.Name, Numel: l.Numel, Bits: slices.Clone(l.Bits)})
		m.units = append(m.units, l.Name)
		numels[i] = l.Numel
	}
	m.t4 = int64(math.Round(cfg.Target * TargetScale))
	m.budget = m.t4 * m.total / TargetScale
	if minBits > m.budget {
		return nil, fmt.Errorf("quant: target = %v bits per weight is below the smallest achievable, %.4f (every layer at its lowest width)",
			cfg.Target, float64(minBits)/float64(m.total))
	}
	if minBits == m.budget {
		return nil, fmt.Errorf("quant: target = %v bits per weight fits only every layer at its lowest width: nothing to search", cfg.Target)
	}
	if maxBits <= m.budget {
		return nil, fmt.Errorf("quant: target = %v bits per weight allows every layer its highest width (%.4f bits per weight): nothing to search",
			cfg.Target, float64(maxBits)/float64(m.total))
	}
	m.group = pick.Groups(m.units, numels, rule)
	if rule != search.GroupNone {
		movable := func(i int) bool { return len(m.layers[i].Bits) > 1 }
		if _, _, ok := pick.Pair(rand.New(rand.NewPCG(0, 0)), m.group, movable, movable); !ok {
			return nil, fmt.Errorf("quant: group-by %v: no group holds two layers with more than one bit-width, so no switch is possible", rule)
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "t4=%d group=%v maxchanges=%d draws=%d\n", m.t4, rule, m.maxChanges, m.draws)
	for _, l := range m.layers {
		fmt.Fprintf(h, "%s %d %v\n", l.Name, l.Numel, l.Bits)
	}
	m.sig = fmt.Sprintf("quant target=%s budget=%d group=%v layers=%d sha256=%s",
		m.targetString(), m.budget, rule, len(m.layers), hex.EncodeToString(h.Sum(nil))[:16])
	return m, nil
}

func (m *Mode) targetString() string {
	return fmt.Sprintf("%d.%04d", m.t4/TargetScale, m.t4%TargetScale)
}

// Defaults returns the reference settings: λ = 128, stages "16:2048,4:16384,1:131072", 150
// generations, 2048 init tokens.
func Defaults() search.Settings {
	return search.Settings{
		Offspring:   128,
		Stages:      []search.Stage{{Survivors: 16, Tokens: 2048}, {Survivors: 4, Tokens: 16384}, {Survivors: 1, Tokens: 131072}},
		Generations: 150,
		InitTokens:  2048,
	}
}

// Defaults returns the reference settings (see the package-level Defaults).
func (m *Mode) Defaults() search.Settings { return Defaults() }

// Name returns "quant".
func (m *Mode) Name() string { return "quant" }

// Units returns the layer names in profile order.
func (m *Mode) Units() []string { return slices.Clone(m.units) }

// Layers returns the layers the mode was built with (with costs: names and sizes only, see
// CostLayers).
func (m *Mode) Layers() []Layer {
	out := make([]Layer, len(m.layers))
	for i, l := range m.layers {
		out[i] = Layer{Name: l.Name, Numel: l.Numel, Bits: slices.Clone(l.Bits)}
	}
	return out
}

// CostLayers returns the layers of the cost form (nil for bit-widths).
func (m *Mode) CostLayers() []CostLayer {
	if !m.costs {
		return nil
	}
	out := make([]CostLayer, len(m.layers))
	for i, l := range m.layers {
		out[i] = CostLayer{Name: l.Name, Numel: l.Numel, Levels: slices.Clone(m.levelIDs[i]), Costs: slices.Clone(m.cost[i])}
	}
	return out
}

// CostForm reports whether the layers have per-level costs (Config.CostLayers) rather than
// bit-widths.
func (m *Mode) CostForm() bool { return m.costs }

// GroupBy returns the resolved group rule.
func (m *Mode) GroupBy() search.GroupBy { return m.rule }

// Target returns the target in bits per weight after rounding to 1/TargetScale; with an
// explicit budget, Budget()/TotalWeights().
func (m *Mode) Target() float64 {
	if m.t4 == 0 {
		return float64(m.budget) / float64(m.total)
	}
	return float64(m.t4) / TargetScale
}

// Budget returns the largest allowed Σ numel·bits (with costs: Σ cost).
func (m *Mode) Budget() int64 { return m.budget }

// MaxStep returns the largest cost of one level step of any layer: with costs, the slack
// (Budget() − Cost(p)) of every initial profile and of every switch's result from a profile
// with less slack is below it, unless no layer has a step of positive cost left.
func (m *Mode) MaxStep() int64 {
	if !m.costs {
		var s int64
		for _, l := range m.layers {
			for j := 1; j < len(l.Bits); j++ {
				s = max(s, l.Numel*int64(l.Bits[j]-l.Bits[j-1]))
			}
		}
		return s
	}
	return m.maxStep
}

// TotalWeights returns Σ numel.
func (m *Mode) TotalWeights() int64 { return m.total }

// Signature describes the problem instance for checkpoints.
func (m *Mode) Signature() string { return m.sig }

// index returns the position of bits among layer i's widths (with costs: of level id bits
// among its levels), or −1.
func (m *Mode) index(i, bits int) int {
	if m.costs {
		return slices.Index(m.levelIDs[i], bits)
	}
	j, ok := slices.BinarySearch(m.layers[i].Bits, bits)
	if !ok {
		return -1
	}
	return j
}

// CodeBits returns Σ numel·bits of p (no overhead; with costs, Cost(p)); p must have one level
// per layer.
func (m *Mode) CodeBits(p search.Levels) int64 {
	if m.costs {
		return m.Cost(p)
	}
	var s int64
	for i, b := range p[:min(len(p), len(m.layers))] {
		s += m.layers[i].Numel * int64(b)
	}
	return s
}

// Legal reports whether every unit has an allowed width and Σ numel·bits ≤ Budget().
func (m *Mode) Legal(p search.Levels) bool {
	if len(p) != len(m.layers) {
		return false
	}
	for i, b := range p {
		if m.index(i, b) < 0 {
			return false
		}
	}
	return m.CodeBits(p) <= m.budget
}

// Initial returns the uniform profile for an integer target allowed everywhere, otherwise
// InitialDraws random profiles within budget (see the package documentation).
func (m *Mode) Initial(rng *rand.Rand) []search.Levels {
	if m.costs {
		return m.initialCosts(rng)
	}
	if m.t4%TargetScale == 0 {
		t := int(m.t4 / TargetScale)
		p := make(search.Levels, len(m.layers))
		ok := true
		for i := range p {
			if m.index(i, t) < 0 {
				ok = false
				break
			}
			p[i] = t
		}
		if ok {
			return []search.Levels{p}
		}
	}
	ceil := int((m.t4 + TargetScale - 1) / TargetScale)
	start := make([]int, len(m.layers)) // width index
	for i, l := range m.layers {
		j, _ := slices.BinarySearch(l.Bits, ceil)
		start[i] = min(j, len(l.Bits)-1)
	}
	out := make([]search.Levels, m.draws)
	for d := range out {
		idx := slices.Clone(start)
		p := make(search.Levels, len(m.layers))
		for i := range p {
			p[i] = m.layers[i].Bits[idx[i]]
		}
		total := m.CodeBits(p)
		for total > m.budget {
			i, ok := pick.One(rng, len(p), -1, func(i int) bool { return idx[i] > 0 })
			if !ok {
				break // cannot happen: New checked that the lowest widths fit
			}
			idx[i]--
			nb := m.layers[i].Bits[idx[i]]
			total -= m.layers[i].Numel * int64(p[i]-nb)
			p[i] = nb
		}
		out[d] = p
	}
	return out
}

// Mutate returns a copy of p with one level switch (see the package documentation). A
// profile of the wrong length or with a width a layer does not allow, or one where the switch
// is impossible, comes back unchanged.
func (m *Mode) Mutate(rng *rand.Rand, p search.Levels) search.Levels {
	q := p.Clone()
	if len(q) != len(m.layers) {
		return q
	}
	idx := make([]int, len(q))
	for i, b := range q {
		if idx[i] = m.index(i, b); idx[i] < 0 {
			return q
		}
	}
	if m.costs {
		return m.mutateCosts(rng, p, q, idx)
	}
	canUp := func(i int) bool { return idx[i] < len(m.layers[i].Bits)-1 }
	canDown := func(i int) bool { return idx[i] > 0 }
	set := func(i, j int) { idx[i] = j; q[i] = m.layers[i].Bits[j] }
	if m.rule != search.GroupNone {
		down, up, ok := pick.Pair(rng, m.group, canDown, canUp)
		if !ok {
			return q
		}
		set(down, idx[down]-1)
		set(up, idx[up]+1)
		if m.CodeBits(q) > m.budget {
			return p.Clone()
		}
		return q
	}
	up, ok := pick.One(rng, len(q), -1, canUp)
	if !ok {
		return q
	}
	set(up, idx[up]+1)
	total := m.CodeBits(q)
	for total > m.budget {
		d, ok := pick.One(rng, len(q), up, canDown)
		if !ok {
			return p.Clone()
		}
		old := q[d]
		set(d, idx[d]-1)
		total -= m.layers[d].Numel * int64(old-q[d])
	}
	return q
}

// AcceptOffspring implements search.Mode: under GroupNone it rejects offspring more
// than MaxChanges width steps away from the parent, or whose removed bits exceed 1.25 times
// their added bits (counted per unit against the parent); under the other rules it accepts all.
//
// With costs it rejects, under every rule, offspring more than MaxChanges level steps away.
func (m *Mode) AcceptOffspring(parent, child search.Levels) bool {
	if m.costs {
		return m.acceptCosts(parent, child)
	}
	if m.rule != search.GroupNone {
		return true
	}
	if len(parent) != len(m.layers) || len(child) != len(m.layers) {
		return false
	}
	steps := 0
	var added, removed int64
	for i := range child {
		a, b := m.index(i, parent[i]), m.index(i, child[i])
		if a < 0 || b < 0 {
			return false
		}
		steps += abs(b - a)
		if d := int64(child[i] - parent[i]); d > 0 {
			added += m.layers[i].Numel * d
		} else {
			removed -= m.layers[i].Numel * d
		}
	}
	if steps > m.maxChanges {
		return false
	}
	return 10*added >= 8*max(1, removed)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Overhead returns the extra bits (scales, zeros) unit i costs at the given code width.
type Overhead func(unit, bits int) int64

// GroupOverhead is the overhead of per-group quantisation: every group of groupSize weights
// (GPTQ: a row's 128 consecutive columns) stores a scale of scaleBits and a zero point of
// zeroBits bits, or of the code width itself when zeroBits is 0 (packed integer zeros). A
// unit holds ceil(numel/groupSize) groups.
func (m *Mode) GroupOverhead(groupSize int64, scaleBits, zeroBits int) (Overhead, error) {
	if groupSize < 1 {
		return nil, fmt.Errorf("quant: group size = %d, want at least 1", groupSize)
	}
	if scaleBits < 0 || zeroBits < 0 {
		return nil, fmt.Errorf("quant: scale bits = %d, zero bits = %d, want non-negative", scaleBits, zeroBits)
	}
	return func(unit, bits int) int64 {
		if unit < 0 || unit >= len(m.layers) {
			return 0
		}
		groups := (m.layers[unit].Numel + groupSize - 1) / groupSize
		z := zeroBits
		if z == 0 {
			z = bits
		}
		return groups * int64(scaleBits+z)
	}, nil
}

// BitsPerWeight reports the real storage cost of p: per unit (numel·bits + overhead)/numel,
// the profile file's "values", and the mean over all weights. A nil overhead counts codes only.
// With costs, numel·bits is the level's cost, which includes what the level stores besides
// its codes (pass a nil overhead).
func (m *Mode) BitsPerWeight(p search.Levels, overhead Overhead) (perUnit []float64, mean float64, err error) {
	if len(p) != len(m.layers) {
		return nil, 0, fmt.Errorf("quant: profile has %d levels for %d layers", len(p), len(m.layers))
	}
	perUnit = make([]float64, len(p))
	var total int64
	for i, b := range p {
		j := m.index(i, b)
		if j < 0 && m.costs {
			return nil, 0, fmt.Errorf("quant: layer %q: level %d is not one of its levels %v", m.layers[i].Name, b, m.levelIDs[i])
		}
		if j < 0 {
			return nil, 0, fmt.Errorf("quant: layer %q: %d bits is not an allowed width %v", m.layers[i].Name, b, m.layers[i].Bits)
		}
		bits := m.layers[i].Numel * int64(b)
		if m.costs {
			bits = m.cost[i][j]
		}
		if overhead != nil {
			bits += overhead(i, b)
		}
		perUnit[i] = float64(bits) / float64(m.layers[i].Numel)
		total += bits
	}
	return perUnit, float64(total) / float64(m.total), nil
}

var _ search.Mode = (*Mode)(nil)
