// Package sparse is the unstructured-sparsity mode of the search: the units are the linear
// layers of the blocks (see search.LinearUnitNames for the usual names and order), and a
// unit's level ℓ selects the database entry of sparsity s + ℓ·D/numel, where s is the target
// sparsity and D (the database's "weights diff") is one number of weights shared by all layers.
//
// Moving one layer up a level prunes exactly D more weights and moving another down a level
// prunes exactly D fewer, so the total number of non-zeros is the uniform profile's exactly
// when the levels sum to 0; Legal checks that sum in integer arithmetic. The initial profile is
// all zeros (uniform sparsity s).
package sparse

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

// Layer describes one unit: its name, its number of weights and its allowed levels lo..hi
// (lo ≤ 0 ≤ hi), e.g. from the level database's manifest.
type Layer struct {
	Name  string
	Numel int64
	Lo    int
	Hi    int
}

// Config describes a sparsity search problem.
type Config struct {
	// Layers are the units in profile order.
	Layers []Layer
	// Sparsity is the target (mean) sparsity s, in [0, 1).
	Sparsity float64
	// D is the number of weights one level moves (the database's weights diff), > 0.
	D int64
	// GroupBy restricts the pairs a switch moves: GroupDefault means GroupNone (any two layers;
	// the budget is exact anyway since D is shared), GroupSize pairs layers of equal numel,
	// GroupKind layers of the same projection kind.
	GroupBy search.GroupBy
}

// Mode is the sparsity search mode. Create it with New.
type Mode struct {
	layers []Layer
	units  []string
	s      float64
	d      int64
	rule   search.GroupBy
	group  []int
	sig    string
}

// New validates cfg and returns the mode. Every layer needs a unique non-empty name, a positive
// numel and lo ≤ 0 ≤ hi with both extreme sparsities inside [0, 1]; some switch must be
// possible from the all-zero profile.
func New(cfg Config) (*Mode, error) {
	if len(cfg.Layers) < 2 {
		return nil, fmt.Errorf("sparse: layers: %d given, want at least 2", len(cfg.Layers))
	}
	if math.IsNaN(cfg.Sparsity) || cfg.Sparsity < 0 || cfg.Sparsity >= 1 {
		return nil, fmt.Errorf("sparse: sparsity = %v, want a fraction in [0, 1)", cfg.Sparsity)
	}
	if cfg.D <= 0 {
		return nil, fmt.Errorf("sparse: D (weights per level) = %d, want at least 1", cfg.D)
	}
	rule := cfg.GroupBy
	switch rule {
	case search.GroupDefault:
		rule = search.GroupNone
	case search.GroupNone, search.GroupSize, search.GroupKind:
	default:
		return nil, fmt.Errorf("sparse: group-by = %v, want size, kind or none", cfg.GroupBy)
	}
	m := &Mode{layers: slices.Clone(cfg.Layers), s: cfg.Sparsity, d: cfg.D, rule: rule}
	seen := make(map[string]bool, len(cfg.Layers))
	numels := make([]int64, len(cfg.Layers))
	for i, l := range cfg.Layers {
		if l.Name == "" {
			return nil, fmt.Errorf("sparse: layer %d: name is empty", i)
		}
		if seen[l.Name] {
			return nil, fmt.Errorf("sparse: layer %d: name %q appears twice", i, l.Name)
		}
		seen[l.Name] = true
		if l.Numel <= 0 {
			return nil, fmt.Errorf("sparse: layer %q: numel = %d, want at least 1", l.Name, l.Numel)
		}
		if l.Lo > 0 || l.Hi < 0 {
			return nil, fmt.Errorf("sparse: layer %q: levels %d..%d must include 0 (the uniform sparsity)", l.Name, l.Lo, l.Hi)
		}
		if lo := m.sparsityAt(i, l.Lo); lo < -1e-9 {
			return nil, fmt.Errorf("sparse: layer %q: lowest level %d means sparsity %.6g < 0", l.Name, l.Lo, lo)
		}
		if hi := m.sparsityAt(i, l.Hi); hi > 1+1e-9 {
			return nil, fmt.Errorf("sparse: layer %q: highest level %d means sparsity %.6g > 1", l.Name, l.Hi, hi)
		}
		m.units = append(m.units, l.Name)
		numels[i] = l.Numel
	}
	m.group = pick.Groups(m.units, numels, rule)
	if _, _, ok := pick.Pair(rand.New(rand.NewPCG(0, 0)), m.group,
		func(i int) bool { return m.layers[i].Lo < 0 }, func(i int) bool { return m.layers[i].Hi > 0 }); !ok {
		return nil, fmt.Errorf("sparse: no level switch is possible from uniform sparsity under group-by %v (level ranges too narrow or groups of one layer)", rule)
	}
	h := sha256.New()
	fmt.Fprintf(h, "s=%v D=%d group=%v\n", m.s, m.d, rule)
	for _, l := range m.layers {
		fmt.Fprintf(h, "%s %d %d %d\n", l.Name, l.Numel, l.Lo, l.Hi)
	}
	m.sig = fmt.Sprintf("sparse s=%v D=%d group=%v layers=%d sha256=%s", m.s, m.d, rule, len(m.layers), hex.EncodeToString(h.Sum(nil))[:16])
	return m, nil
}

func (m *Mode) sparsityAt(i, level int) float64 {
	return m.s + float64(level)*float64(m.d)/float64(m.layers[i].Numel)
}

// LevelRange returns the reference's level range for a layer of numel weights at target
// sparsity s with D weights per level and at most maxLevels levels each way:
// [−min(floor(s/δ), L), +min(floor((1−s)/δ), L)] with δ = D/numel (floors taken with a 1e-9
// tolerance).
func LevelRange(numel, d int64, s float64, maxLevels int) (lo, hi int, err error) {
	switch {
	case numel <= 0:
		return 0, 0, fmt.Errorf("sparse: numel = %d, want at least 1", numel)
	case d <= 0:
		return 0, 0, fmt.Errorf("sparse: D = %d, want at least 1", d)
	case math.IsNaN(s) || s < 0 || s >= 1:
		return 0, 0, fmt.Errorf("sparse: sparsity = %v, want a fraction in [0, 1)", s)
	case maxLevels < 0:
		return 0, 0, fmt.Errorf("sparse: max levels = %d, want at least 0", maxLevels)
	}
	per := float64(numel) / float64(d) // 1/δ
	down := math.Floor(s*per + 1e-9)
	up := math.Floor((1-s)*per + 1e-9)
	return -int(math.Min(down, float64(maxLevels))), int(math.Min(up, float64(maxLevels))), nil
}

// DefaultD returns the reference code's weights diff when none is given:
// floor(0.5·min(s, 1−s)/L · hidden²).
func DefaultD(hidden int64, s float64, maxLevels int) (int64, error) {
	switch {
	case hidden <= 0:
		return 0, fmt.Errorf("sparse: hidden size = %d, want at least 1", hidden)
	case math.IsNaN(s) || s <= 0 || s >= 1:
		return 0, fmt.Errorf("sparse: sparsity = %v, want a fraction in (0, 1)", s)
	case maxLevels < 1:
		return 0, fmt.Errorf("sparse: max levels = %d, want at least 1", maxLevels)
	}
	d := int64(math.Floor(0.5 * math.Min(s, 1-s) / float64(maxLevels) * float64(hidden) * float64(hidden)))
	if d < 1 {
		return 0, fmt.Errorf("sparse: weights diff for hidden %d, sparsity %v, %d levels rounds to 0", hidden, s, maxLevels)
	}
	return d, nil
}

// Defaults returns the reference settings: λ = 64, stages "8:2048,2:16384,1:65536", 400
// generations, 2048 init tokens (unused: there is a single initial profile).
func Defaults() search.Settings {
	return search.Settings{
		Offspring:   64,
		Stages:      []search.Stage{{Survivors: 8, Tokens: 2048}, {Survivors: 2, Tokens: 16384}, {Survivors: 1, Tokens: 65536}},
		Generations: 400,
		InitTokens:  2048,
	}
}

// AcceptOffspring accepts every legal child: the mode has no rule beyond Legal.
func (m *Mode) AcceptOffspring(_, _ search.Levels) bool { return true }

// Defaults returns the reference settings (see the package-level Defaults).
func (m *Mode) Defaults() search.Settings { return Defaults() }

// Name returns "sparse".
func (m *Mode) Name() string { return "sparse" }

// Units returns the layer names in profile order.
func (m *Mode) Units() []string { return slices.Clone(m.units) }

// Layers returns the layers the mode was built with.
func (m *Mode) Layers() []Layer { return slices.Clone(m.layers) }

// GroupBy returns the resolved group rule.
func (m *Mode) GroupBy() search.GroupBy { return m.rule }

// Signature describes the problem instance for checkpoints.
func (m *Mode) Signature() string { return m.sig }

// Legal reports whether every level is within its layer's range and the levels sum to zero
// (the non-zero count of the uniform profile, held exactly).
func (m *Mode) Legal(p search.Levels) bool {
	if len(p) != len(m.layers) {
		return false
	}
	var sum int64
	for i, v := range p {
		if v < m.layers[i].Lo || v > m.layers[i].Hi {
			return false
		}
		sum += int64(v)
	}
	return sum == 0
}

// ExtraPruned returns the number of weights p prunes beyond the uniform profile, D·Σℓ
// (0 for every legal profile), in integer arithmetic.
func (m *Mode) ExtraPruned(p search.Levels) int64 {
	var sum int64
	for _, v := range p {
		sum += int64(v)
	}
	return sum * m.d
}

// Initial returns the single all-zero profile (uniform sparsity).
func (m *Mode) Initial(*rand.Rand) []search.Levels {
	return []search.Levels{make(search.Levels, len(m.layers))}
}

// Mutate returns a copy of p with one layer moved down one level and another, of the same
// group, moved up one level (see pick.Pair for the draw). A profile of the wrong length, or
// one where no pair can move, comes back unchanged.
func (m *Mode) Mutate(rng *rand.Rand, p search.Levels) search.Levels {
	q := p.Clone()
	if len(q) != len(m.layers) {
		return q
	}
	down, up, ok := pick.Pair(rng, m.group,
		func(i int) bool { return q[i] > m.layers[i].Lo },
		func(i int) bool { return q[i] < m.layers[i].Hi })
	if !ok {
		return q
	}
	q[down]--
	q[up]++
	return q
}

// Sparsities returns each unit's actual sparsity s + ℓ·D/numel, the profile file's "values".
func (m *Mode) Sparsities(p search.Levels) ([]float64, error) {
	if len(p) != len(m.layers) {
		return nil, fmt.Errorf("sparse: profile has %d levels for %d layers", len(p), len(m.layers))
	}
	out := make([]float64, len(p))
	for i, v := range p {
		out[i] = m.sparsityAt(i, v)
	}
	return out, nil
}

// String summarises the mode.
func (m *Mode) String() string {
	return m.sig
}

var _ search.Mode = (*Mode)(nil)
