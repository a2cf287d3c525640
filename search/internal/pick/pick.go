// Package pick holds the level-switch helpers shared by the sparse and quant modes: grouping
// units by a GroupBy rule and drawing a (down, up) pair inside a group.
package pick

import (
	"math/rand/v2"

	"github.com/evopress/evopress/search"
)

// Groups returns a group id per unit (ids 0, 1, ... in order of first appearance) under rule:
// GroupNone puts every unit in group 0, GroupSize groups equal numels, GroupKind groups equal
// search.UnitKind names. Any other rule is treated as GroupNone; callers resolve GroupDefault.
func Groups(names []string, numels []int64, rule search.GroupBy) []int {
	ids := make([]int, len(names))
	switch rule {
	case search.GroupSize:
		seen := map[int64]int{}
		for i, n := range numels {
			id, ok := seen[n]
			if !ok {
				id = len(seen)
				seen[n] = id
			}
			ids[i] = id
		}
	case search.GroupKind:
		seen := map[string]int{}
		for i, name := range names {
			k := search.UnitKind(name)
			id, ok := seen[k]
			if !ok {
				id = len(seen)
				seen[k] = id
			}
			ids[i] = id
		}
	}
	return ids
}

// Pair draws two distinct units of the same group, down with canDown(down) and up with
// canUp(up): down uniformly among the units that can go down and have a partner in their
// group, then up uniformly among the partners. ok is false when no such pair exists.
func Pair(rng *rand.Rand, group []int, canDown, canUp func(int) bool) (down, up int, ok bool) {
	n := len(group)
	ups := make([]bool, n)
	upCount := map[int]int{}
	for i := range n {
		if canUp(i) {
			ups[i] = true
			upCount[group[i]]++
		}
	}
	var downs []int
	for i := range n {
		if !canDown(i) {
			continue
		}
		partners := upCount[group[i]]
		if ups[i] {
			partners--
		}
		if partners > 0 {
			downs = append(downs, i)
		}
	}
	if len(downs) == 0 {
		return 0, 0, false
	}
	down = downs[rng.IntN(len(downs))]
	var cands []int
	for i := range n {
		if i != down && ups[i] && group[i] == group[down] {
			cands = append(cands, i)
		}
	}
	return down, cands[rng.IntN(len(cands))], true
}

// One draws a unit uniformly among those with ok(i), excluding skip (pass −1 to exclude none).
func One(rng *rand.Rand, n, skip int, ok func(int) bool) (int, bool) {
	var c []int
	for i := range n {
		if i != skip && ok(i) {
			c = append(c, i)
		}
	}
	if len(c) == 0 {
		return 0, false
	}
	return c[rng.IntN(len(c))], true
}
