package db

import (
	"fmt"
	"sort"

	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/sparse"
)

// This file is the one place where a manifest becomes a search mode's configuration.

// SparseConfig describes a sparse database's layers as the sparse search mode's units (names,
// sizes and contiguous level ranges), with the database's target and weights diff and the
// group rule.
func (m *Manifest) SparseConfig(rule search.GroupBy) (sparse.Config, error) {
	if m.Mode != ModeSparse || m.Sparse == nil {
		return sparse.Config{}, fmt.Errorf("a %s database is not a sparse database", m.Mode)
	}
	cfg := sparse.Config{Sparsity: m.Sparse.Target, D: m.Sparse.WeightsDiff, GroupBy: rule}
	for _, l := range m.Layers {
		lo, hi := l.Levels[0].Level, l.Levels[len(l.Levels)-1].Level
		if hi-lo+1 != len(l.Levels) {
			return sparse.Config{}, fmt.Errorf("layer %s: levels %d..%d are not contiguous", l.Name, lo, hi)
		}
		cfg.Layers = append(cfg.Layers, sparse.Layer{Name: l.Name, Numel: l.Numel, Lo: lo, Hi: hi})
	}
	return cfg, nil
}

// QuantConfig describes a quant database's layers as the quant search mode's units (names,
// sizes and bit-widths) for a target in mean bits per weight (codes only) and a group rule.
// For a gguf database the units have per-level costs (the cost form, quant.Config.CostLayers):
// each layer's ggml types in the order of their tensor bytes (ties by type id), costing
// 8·tensor bytes; the target is then bytes·8/weights over the layers (set Budget instead, and
// Target to 0, for a budget in bits).
func (m *Manifest) QuantConfig(target float64, rule search.GroupBy) (quant.Config, error) {
	if m.Mode == ModeGGUF {
		cfg := quant.Config{Target: target, GroupBy: rule}
		for i := range m.Layers {
			l := &m.Layers[i]
			cl := quant.CostLayer{Name: l.Name, Numel: l.Numel}
			for _, j := range ggufOrder(l) {
				cl.Levels = append(cl.Levels, l.Levels[j].Level)
				cl.Costs = append(cl.Costs, 8*l.Levels[j].TensorBytes)
			}
			cfg.CostLayers = append(cfg.CostLayers, cl)
		}
		return cfg, nil
	}
	if m.Mode != ModeQuant {
		return quant.Config{}, fmt.Errorf("a %s database is not a quant database", m.Mode)
	}
	cfg := quant.Config{Target: target, GroupBy: rule}
	for _, l := range m.Layers {
		bits := make([]int, len(l.Levels))
		for j, v := range l.Levels {
			bits[j] = v.Level
		}
		cfg.Layers = append(cfg.Layers, quant.Layer{Name: l.Name, Numel: l.Numel, Bits: bits})
	}
	return cfg, nil
}

// ggufOrder returns the indices of a gguf layer's levels in the order of their tensor bytes
// (ties by type id): the order of the cost form's steps.
func ggufOrder(l *LayerInfo) []int {
	idx := make([]int, len(l.Levels))
	for j := range idx {
		idx[j] = j
	}
	sort.SliceStable(idx, func(a, b int) bool { return l.Levels[idx[a]].TensorBytes < l.Levels[idx[b]].TensorBytes })
	return idx
}

// LevelErrors returns every layer's normalised errors in level order: errs[i][j] is layer i's
// j-th level (sparse: level Lo_i + j; quant: its j-th bit-width; gguf: its j-th level of
// QuantConfig's cost order), in manifest layer order.
func (m *Manifest) LevelErrors() [][]float64 {
	errs := make([][]float64, len(m.Layers))
	for i := range m.Layers {
		l := &m.Layers[i]
		if m.Mode == ModeGGUF {
			for _, j := range ggufOrder(l) {
				errs[i] = append(errs[i], l.Levels[j].Error)
			}
			continue
		}
		for _, v := range l.Levels {
			errs[i] = append(errs[i], v.Error)
		}
	}
	return errs
}

// LevelValue is a profile's "values" entry for one layer at one level: the level's actual
// sparsity (sparse databases) or bits per weight with scale/zero overhead (quant, gguf); ok is false
// for a layer or level the database does not have.
func (d *DB) LevelValue(layer string, level int) (v float64, ok bool) {
	for _, lv := range d.Levels(layer) {
		if lv.Level == level {
			if d.man.Mode == ModeSparse {
				return lv.Sparsity, true
			}
			return lv.Bits, true // quant, gguf
		}
	}
	return 0, false
}

// LevelRow summarises one level across a database's layers.
type LevelRow struct {
	Level int `json:"level"`
	// Type is a gguf level's ggml type name.
	Type string `json:"type,omitempty"`
	// Value is the mean sparsity (sparse), the code width (quant) or the bits per weight (gguf).
	Value float64 `json:"value"`
	// Layers is the number of layers that have the level.
	Layers int `json:"layers"`
	// Bits is the weighted mean bits per weight including overhead (manifest).
	Bits float64 `json:"bits_per_weight"`
	// BytesPerWeight is the level files' size on disk per weight (headers included).
	BytesPerWeight float64 `json:"bytes_per_weight"`
	// MeanError is the mean normalised layer error.
	MeanError float64 `json:"mean_error"`
}

// LevelSummary summarises each level over the manifest's layers, in level order.
func LevelSummary(m *Manifest) []LevelRow {
	type acc struct {
		weights, bytes, zeros int64
		bits, err             float64
		n                     int
	}
	by := map[int]*acc{}
	for _, l := range m.Layers {
		for _, v := range l.Levels {
			a := by[v.Level]
			if a == nil {
				a = &acc{}
				by[v.Level] = a
			}
			a.weights += l.Numel
			a.bytes += v.Bytes
			a.zeros += v.Zeros
			a.bits += v.Bits * float64(l.Numel)
			a.err += v.Error
			a.n++
		}
	}
	var out []LevelRow
	for lv, a := range by {
		r := LevelRow{Level: lv, Layers: a.n, Bits: a.bits / float64(a.weights), BytesPerWeight: float64(a.bytes) / float64(a.weights), MeanError: a.err / float64(a.n)}
		switch m.Mode {
		case ModeSparse:
			r.Value = float64(a.zeros) / float64(a.weights)
		case ModeGGUF:
			r.Value, r.Type = r.Bits, ggml.Type(lv).String()
		default:
			r.Value = float64(lv)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Level < out[j].Level })
	return out
}
