// Package candidate turns profiles into candidate models: a shallow Clone of the dense model with
// sub-blocks skipped (drop) or layer weights swapped for database levels (sparse, quant; see
// package db).
package candidate

import (
	"fmt"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search"
)

// DropUnit reads a drop unit: the name of a sub-block of one of the model's nBlocks blocks,
// model.layers.N.self_attn or model.layers.N.mlp (see arch.ParseUnit).
func DropUnit(name string, nBlocks int) (block int, attn bool, err error) {
	u, err := arch.ParseUnit(name)
	if err != nil || u.Level() != arch.SubBlockLevel {
		return 0, false, fmt.Errorf("unit %q: want model.layers.N.self_attn or model.layers.N.mlp", name)
	}
	if u.Block() >= nBlocks {
		return 0, false, fmt.Errorf("unit %q: block %d outside the model's %d blocks", name, u.Block(), nBlocks)
	}
	s, _ := u.Sub()
	return u.Block(), s == arch.Attention, nil
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
