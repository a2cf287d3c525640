package search

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Levels assigns one integer level to every unit of a mode, in the mode's unit order
// (Mode.Units). What a level means is the mode's business: 0/1 kept/dropped for depth pruning, a
// database level for sparsity, a bit-width for quantization.
type Levels []int

// Clone returns a copy of p that shares no memory with it (nil stays nil).
func (p Levels) Clone() Levels {
	if p == nil {
		return nil
	}
	q := make(Levels, len(p))
	copy(q, p)
	return q
}

// Equal reports whether p and q have the same length and the same level for every unit.
func (p Levels) Equal(q Levels) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// key returns a compact map key identifying p's levels.
func (p Levels) key() string {
	buf := make([]byte, 0, len(p)*2)
	for _, v := range p {
		buf = binary.AppendVarint(buf, int64(v))
	}
	return string(buf)
}

// String formats p as "[l0 l1 ...]".
func (p Levels) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range p {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, v)
	}
	b.WriteByte(']')
	return b.String()
}

// LevelsMap pairs unit names with the levels of p, the shape of the profile file's "levels"
// object. It fails when the lengths differ or a name repeats.
func LevelsMap(units []string, p Levels) (map[string]int, error) {
	if len(units) != len(p) {
		return nil, fmt.Errorf("search: profile has %d levels for %d units", len(p), len(units))
	}
	m := make(map[string]int, len(units))
	for i, u := range units {
		if _, dup := m[u]; dup {
			return nil, fmt.Errorf("search: unit name %q appears twice", u)
		}
		m[u] = p[i]
	}
	return m, nil
}

// ProfileFromLevels is the inverse of LevelsMap: it orders the levels of m by units. Every unit
// must be present and m must name no other unit.
func ProfileFromLevels(units []string, m map[string]int) (Levels, error) {
	p := make(Levels, len(units))
	for i, u := range units {
		v, ok := m[u]
		if !ok {
			return nil, fmt.Errorf("search: levels: unit %q missing", u)
		}
		p[i] = v
	}
	if len(m) != len(units) {
		known := make(map[string]bool, len(units))
		for _, u := range units {
			known[u] = true
		}
		for name := range m {
			if !known[name] {
				return nil, fmt.Errorf("search: levels: unknown unit %q", name)
			}
		}
		return nil, fmt.Errorf("search: levels: %d entries for %d units (duplicate unit names?)", len(m), len(units))
	}
	return p, nil
}
