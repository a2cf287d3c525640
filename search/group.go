package search

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/evopress/evopress/arch"
)

// GroupBy restricts which units a level switch may pair (sparse and quant modes).
type GroupBy int

const (
	// GroupDefault selects the mode's default rule (sparse: GroupNone; quant: GroupSize).
	GroupDefault GroupBy = iota
	// GroupNone pairs any units.
	GroupNone
	// GroupSize pairs only units with the same number of weights.
	GroupSize
	// GroupKind pairs only units of the same projection kind (the last component of the unit
	// name, e.g. "q_proj").
	GroupKind
)

// String returns the rule's flag spelling: "default", "none", "size" or "kind".
func (g GroupBy) String() string {
	switch g {
	case GroupDefault:
		return "default"
	case GroupNone:
		return "none"
	case GroupSize:
		return "size"
	case GroupKind:
		return "kind"
	}
	return "GroupBy(" + strconv.Itoa(int(g)) + ")"
}

// ParseGroupBy reads "size", "kind" or "none" ("" and "default" give GroupDefault).
func ParseGroupBy(s string) (GroupBy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "default":
		return GroupDefault, nil
	case "none":
		return GroupNone, nil
	case "size":
		return GroupSize, nil
	case "kind":
		return GroupKind, nil
	}
	return GroupDefault, fmt.Errorf("group-by %q: want size, kind or none", s)
}

// LinearUnitNames returns the 7·nBlocks unit names of the sparse and quant modes, block by block
// and in arch.LinearKinds order inside a block: model.layers.0.self_attn.q_proj, ...,
// model.layers.0.mlp.down_proj, model.layers.1.self_attn.q_proj, ...
func LinearUnitNames(nBlocks int) []string {
	if nBlocks <= 0 {
		return nil
	}
	names := make([]string, 0, nBlocks*int(arch.NumLinearKinds))
	for b := range nBlocks {
		for k := range arch.NumLinearKinds {
			names = append(names, arch.LinearUnit(b, k).String())
		}
	}
	return names
}

// UnitKind returns the kind of a unit for GroupKind: the last dot-separated component of its
// name (model.layers.3.self_attn.q_proj → q_proj, arch.LinearKind.Short).
func UnitKind(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return name
}
