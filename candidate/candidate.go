// Package candidate turns profiles into candidate models: a shallow Clone of the dense model with
// sub-blocks skipped (drop) or layer weights swapped for database levels (sparse, quant; see
// package db).
package candidate

import (
	"errors"
	"fmt"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
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
func DropBuilder(m *model.Model, units []string) (func(p search.Levels) (*model.Model, error), error) {
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
	return func(p search.Levels) (*model.Model, error) {
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

// FromProfile is the one place where a profile file becomes a model: a clone of the dense model
// with the profile's drop units skipped, or with its layers' weights swapped for the levels of
// database d (sparse and quant profiles; d is ignored for drop profiles). fingerprint is the
// dense model's: a profile made for another model is refused. The warnings say what could not
// be checked (no fingerprint recorded) or what is left dense.
func FromProfile(dense *model.Model, fingerprint string, p *profile.Profile, d *db.DB) (*model.Model, []string, error) {
	if p == nil {
		return nil, nil, fmt.Errorf("candidate: nil profile")
	}
	if p.Mode != profile.ModeDrop {
		if d == nil {
			return nil, nil, ErrNoDatabase
		}
		// db.ApplyProfile checks (and warns about) the fingerprints of sparse and quant profiles.
		return db.ApplyProfile(dense, fingerprint, p, d)
	}
	var warn []string
	switch {
	case p.Model == nil || p.Model.Fingerprint == "":
		warn = append(warn, "the profile records no model fingerprint: it cannot be checked against the model")
	case p.Model.Fingerprint != fingerprint:
		return nil, nil, fmt.Errorf("profile field model.fingerprint: %.16s… (model %s), the model's is %.16s… (the profile was made for another model)",
			p.Model.Fingerprint, p.Model.Path, fingerprint)
	}
	if n := 2 * len(dense.Blocks); len(p.Levels) < n {
		warn = append(warn, fmt.Sprintf("the profile covers %d of the %d drop units; the others are kept", len(p.Levels), n))
	}
	m, err := ApplyDrop(dense, p.Levels)
	if err != nil {
		return nil, nil, fmt.Errorf("field levels: %w", err)
	}
	return m, warn, nil
}

// ErrNoDatabase is returned for a sparse or quant profile without its level database.
var ErrNoDatabase = errors.New("a sparse or quant profile needs the level database it was made with")
