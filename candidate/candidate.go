// Package candidate turns profiles into candidate models: a shallow Clone of the dense model with
// sub-blocks skipped (drop) or layer weights swapped for database levels (sparse, quant; see
// package db).
package candidate

import (
	"fmt"

	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search"
)

// DropUnit parses a drop unit name, "model.layers.N.self_attn" or "model.layers.N.mlp".
func DropUnit(name string, nBlocks int) (block int, attn bool, err error) {
	var rest string
	if _, e := fmt.Sscanf(name, "model.layers.%d.%s", &block, &rest); e != nil {
		return 0, false, fmt.Errorf("unit %q: want model.layers.N.self_attn or model.layers.N.mlp", name)
	}
	if block < 0 || block >= nBlocks {
		return 0, false, fmt.Errorf("unit %q: block %d outside the model's %d blocks", name, block, nBlocks)
	}
	switch rest {
	case "self_attn":
		return block, true, nil
	case "mlp":
		return block, false, nil
	}
	return 0, false, fmt.Errorf("unit %q: want model.layers.N.self_attn or model.layers.N.mlp", name)
}

// ApplyDrop returns a clone of m with the units at level 1 dropped. Units absent from levels are
// kept; levels other than 0 and 1 are an error.
func ApplyDrop(m *model.Model, levels map[string]int) (*model.Model, error) {
	c := m.Clone()
	for name, l := range levels {
		b, attn, err := DropUnit(name, len(m.Blocks))
		if err != nil {
			return nil, err
		}
		if l != 0 && l != 1 {
			return nil, fmt.Errorf("unit %s: drop level %d, want 0 (kept) or 1 (dropped)", name, l)
		}
		if attn {
			c.Blocks[b].SkipAttn = l == 1
		} else {
			c.Blocks[b].SkipMLP = l == 1
		}
	}
	return c, nil
}

// DropBuilder returns a builder of candidate models for drop profiles over units (in profile order).
func DropBuilder(m *model.Model, units []string) (func(p search.Profile) (*model.Model, error), error) {
	type unit struct {
		block int
		attn  bool
	}
	us := make([]unit, len(units))
	for i, name := range units {
		b, attn, err := DropUnit(name, len(m.Blocks))
		if err != nil {
			return nil, err
		}
		us[i] = unit{b, attn}
	}
	return func(p search.Profile) (*model.Model, error) {
		if len(p) != len(us) {
			return nil, fmt.Errorf("profile has %d levels, want %d", len(p), len(us))
		}
		c := m.Clone()
		for i, u := range us {
			if u.attn {
				c.Blocks[u.block].SkipAttn = p[i] == 1
			} else {
				c.Blocks[u.block].SkipMLP = p[i] == 1
			}
		}
		return c, nil
	}, nil
}
