// Package drop is the depth-pruning mode of the search: each transformer block contributes two
// units, its attention sub-block and its MLP sub-block, and a level of 1 drops the unit (it adds
// nothing to the residual stream) while 0 keeps it.
//
// Unit order: block by block, attention first — unit 2·b is block b's attention sub-block
// (model.layers.b.self_attn, see package arch) and unit 2·b+1 its MLP (model.layers.b.mlp).
//
// The budget drops exactly k attention units and exactly k MLP units, placed independently
// (with WholeBlocks, the two units of a block are tied and exactly k whole blocks are dropped).
// A level switch swaps one kept unit with one dropped unit of the same kind, so every switch
// keeps the budget exact.
package drop

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/search"
)

// InitialCandidates is the number of random legal profiles Initial draws; the engine scores
// them on one batch and starts from the best (the reference's choice).
const InitialCandidates = 64

// Options are the depth-pruning options.
type Options struct {
	// WholeBlocks ties the attention and MLP units of each block: both carry the same level,
	// and a switch swaps a kept block with a dropped one.
	WholeBlocks bool
	// Keep names units that may never be dropped: sub-block unit names (model.layers.0.self_attn,
	// model.layers.0.mlp) or block names (model.layers.0, both of its units); see arch.ParseUnit.
	Keep []string
}

// Mode is the depth-pruning search mode. Create it with New or NewK.
type Mode struct {
	n, k   int
	whole  bool
	units  []string
	keep   []bool   // per unit: never dropped
	kept   []string // sorted unit names of keep, for the signature
	blocks []int    // WholeBlocks: droppable blocks
	kinds  [2][]int // !WholeBlocks: droppable units of each kind (0 attention, 1 MLP)
}

// UnitNames returns the 2·nBlocks unit names in mode order.
func UnitNames(nBlocks int) []string {
	if nBlocks <= 0 {
		return nil
	}
	u := make([]string, 0, 2*nBlocks)
	for b := range nBlocks {
		u = append(u, arch.SubUnit(b, arch.Attention).String(), arch.SubUnit(b, arch.MLP).String())
	}
	return u
}

// TargetK converts a dropped fraction to the number of units of each kind dropped:
// k = floor(target·nBlocks), computed with a 1e-9 tolerance so that e.g. 0.29·100 gives 29.
func TargetK(nBlocks int, target float64) (int, error) {
	if nBlocks < 1 {
		return 0, fmt.Errorf("drop: blocks = %d, want at least 1", nBlocks)
	}
	if math.IsNaN(target) || target < 0 || target > 1 {
		return 0, fmt.Errorf("drop: target = %v, want a dropped fraction in [0, 1]", target)
	}
	return int(math.Floor(target*float64(nBlocks) + 1e-9)), nil
}

// New returns the mode dropping k = floor(target·nBlocks) attention and k MLP units (see
// TargetK) of a model with nBlocks blocks.
func New(nBlocks int, target float64, opts Options) (*Mode, error) {
	k, err := TargetK(nBlocks, target)
	if err != nil {
		return nil, err
	}
	if k == 0 {
		return nil, fmt.Errorf("drop: target = %v drops floor(%v·%d) = 0 blocks: nothing to search (raise the target)", target, target, nBlocks)
	}
	return NewK(nBlocks, k, opts)
}

// NewK returns the mode dropping exactly k attention and k MLP units (k whole blocks with
// WholeBlocks) of a model with nBlocks blocks. It fails when k is out of range, a Keep name is
// unknown, or the kept units leave too few droppable ones to drop k, or none to swap with.
func NewK(nBlocks, k int, opts Options) (*Mode, error) {
	if nBlocks < 1 {
		return nil, fmt.Errorf("drop: blocks = %d, want at least 1", nBlocks)
	}
	if k < 1 || k >= nBlocks {
		return nil, fmt.Errorf("drop: k = %d dropped of %d blocks, want 1 ≤ k ≤ %d", k, nBlocks, nBlocks-1)
	}
	m := &Mode{n: nBlocks, k: k, whole: opts.WholeBlocks, units: UnitNames(nBlocks), keep: make([]bool, 2*nBlocks)}
	for _, name := range opts.Keep {
		name = strings.TrimSpace(name)
		if u, err := arch.ParseUnit(name); err == nil && u.Block() < nBlocks {
			b := u.Block()
			switch u.Level() {
			case arch.BlockLevel:
				m.keep[2*b], m.keep[2*b+1] = true, true
				continue
			case arch.SubBlockLevel:
				if s, _ := u.Sub(); s == arch.Attention {
					m.keep[2*b] = true
				} else {
					m.keep[2*b+1] = true
				}
				continue
			}
		}
		return nil, fmt.Errorf("drop: keep: unknown unit %q (want model.layers.N.self_attn, model.layers.N.mlp or model.layers.N with N < %d)", name, nBlocks)
	}
	for i, kp := range m.keep {
		if kp {
			m.kept = append(m.kept, m.units[i])
		}
	}
	slices.Sort(m.kept)
	if m.whole {
		for b := range nBlocks {
			if !m.keep[2*b] && !m.keep[2*b+1] {
				m.blocks = append(m.blocks, b)
			}
		}
		if len(m.blocks) < k {
			return nil, fmt.Errorf("drop: keep leaves %d droppable blocks, fewer than the k = %d to drop", len(m.blocks), k)
		}
		if len(m.blocks) == k {
			return nil, fmt.Errorf("drop: keep leaves exactly k = %d droppable blocks: every block is fixed, nothing to search", k)
		}
		return m, nil
	}
	for i := range m.units {
		if !m.keep[i] {
			m.kinds[i%2] = append(m.kinds[i%2], i)
		}
	}
	for c, name := range [2]string{"attention", "MLP"} {
		if len(m.kinds[c]) < k {
			return nil, fmt.Errorf("drop: keep leaves %d droppable %s units, fewer than the k = %d to drop", len(m.kinds[c]), name, k)
		}
	}
	if len(m.kinds[0]) == k && len(m.kinds[1]) == k {
		return nil, fmt.Errorf("drop: keep leaves exactly k = %d droppable units of each kind: every unit is fixed, nothing to search", k)
	}
	return m, nil
}

// Name returns "drop".
func (m *Mode) Name() string { return "drop" }

// Units returns the unit names (see the package documentation for the order).
func (m *Mode) Units() []string { return slices.Clone(m.units) }

// Blocks returns the number of transformer blocks.
func (m *Mode) Blocks() int { return m.n }

// K returns the number of attention (and of MLP) units dropped.
func (m *Mode) K() int { return m.k }

// WholeBlocks reports whether attention and MLP units are tied.
func (m *Mode) WholeBlocks() bool { return m.whole }

// Signature describes the problem instance for checkpoints.
func (m *Mode) Signature() string {
	return fmt.Sprintf("drop n=%d k=%d whole=%t keep=%s", m.n, m.k, m.whole, strings.Join(m.kept, ","))
}

// AcceptOffspring accepts every legal child: the mode has no rule beyond Legal.
func (m *Mode) AcceptOffspring(_, _ search.Levels) bool { return true }

// Defaults returns the reference settings for this instance (see Defaults).
func (m *Mode) Defaults() search.Settings { return Defaults(m.n, m.k) }

// Defaults returns the reference settings for dropping k of n: λ = 32, stages
// "2:2048,1:32768", floor(k·(n−k)/1.5) generations, 2048 init tokens.
func Defaults(n, k int) search.Settings {
	return search.Settings{
		Offspring:   32,
		Stages:      []search.Stage{{Survivors: 2, Tokens: 2048}, {Survivors: 1, Tokens: 32768}},
		Generations: max(0, 2*k*(n-k)/3),
		InitTokens:  2048,
	}
}

// Legal reports whether p has one 0/1 level per unit, drops exactly k units of each kind, never
// drops a kept unit, and (WholeBlocks) gives both units of every block the same level.
func (m *Mode) Legal(p search.Levels) bool {
	if len(p) != 2*m.n {
		return false
	}
	var dropped [2]int
	for i, v := range p {
		switch v {
		case 0:
		case 1:
			if m.keep[i] {
				return false
			}
			dropped[i%2]++
		default:
			return false
		}
	}
	if dropped[0] != m.k || dropped[1] != m.k {
		return false
	}
	if m.whole {
		for b := range m.n {
			if p[2*b] != p[2*b+1] {
				return false
			}
		}
	}
	return true
}

// Initial returns InitialCandidates random legal profiles.
func (m *Mode) Initial(rng *rand.Rand) []search.Levels {
	out := make([]search.Levels, InitialCandidates)
	for c := range out {
		p := make(search.Levels, 2*m.n)
		if m.whole {
			for _, b := range choose(rng, m.blocks, m.k) {
				p[2*b], p[2*b+1] = 1, 1
			}
		} else {
			for kind := range 2 {
				for _, u := range choose(rng, m.kinds[kind], m.k) {
					p[u] = 1
				}
			}
		}
		out[c] = p
	}
	return out
}

// choose returns k distinct elements of from (a partial Fisher–Yates shuffle of a copy).
func choose(rng *rand.Rand, from []int, k int) []int {
	s := slices.Clone(from)
	for i := range k {
		j := i + rng.IntN(len(s)-i)
		s[i], s[j] = s[j], s[i]
	}
	return s[:k]
}

// Mutate returns a copy of p with one switch: with WholeBlocks, a random kept (droppable)
// block and a random dropped block trade levels; otherwise attention or MLP is picked at
// random (among the kinds that can switch at all) and a random kept droppable unit of that kind
// trades levels with a random dropped unit of that kind. A profile of the wrong length, or one
// where no switch is possible, comes back unchanged.
func (m *Mode) Mutate(rng *rand.Rand, p search.Levels) search.Levels {
	q := p.Clone()
	if len(q) != 2*m.n {
		return q
	}
	if m.whole {
		var kept, dropped []int
		for _, b := range m.blocks {
			switch {
			case q[2*b] == 0 && q[2*b+1] == 0:
				kept = append(kept, b)
			case q[2*b] == 1 && q[2*b+1] == 1:
				dropped = append(dropped, b)
			}
		}
		if len(kept) == 0 || len(dropped) == 0 {
			return q
		}
		a, d := kept[rng.IntN(len(kept))], dropped[rng.IntN(len(dropped))]
		q[2*a], q[2*a+1] = 1, 1
		q[2*d], q[2*d+1] = 0, 0
		return q
	}
	var kept, dropped [2][]int
	var movable []int
	for kind := range 2 {
		for _, u := range m.kinds[kind] {
			switch q[u] {
			case 0:
				kept[kind] = append(kept[kind], u)
			case 1:
				dropped[kind] = append(dropped[kind], u)
			}
		}
		if len(kept[kind]) > 0 && len(dropped[kind]) > 0 {
			movable = append(movable, kind)
		}
	}
	if len(movable) == 0 {
		return q
	}
	kind := movable[rng.IntN(len(movable))]
	a := kept[kind][rng.IntN(len(kept[kind]))]
	d := dropped[kind][rng.IntN(len(dropped[kind]))]
	q[a], q[d] = 1, 0
	return q
}

// Dropped lists the blocks whose attention, and whose MLP, units p drops.
func (m *Mode) Dropped(p search.Levels) (attn, mlp []int) {
	for i, v := range p {
		if v == 1 && i < 2*m.n {
			if i%2 == 0 {
				attn = append(attn, i/2)
			} else {
				mlp = append(mlp, i/2)
			}
		}
	}
	return attn, mlp
}

var _ search.Mode = (*Mode)(nil)
