package main

import (
	"fmt"
	"math"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/sparse"
)

// dbMode wraps a sparse or quant mode with its database, to annotate final profiles.
type dbMode struct {
	search.Mode
	d     *db.DB
	units []string
}

func (m *dbMode) annotate(p *profile.Profile, levels search.Profile) error {
	p.DB = &profile.Ref{Path: m.d.Dir(), Fingerprint: m.d.Fingerprint()}
	p.Values = map[string]float64{}
	for i, u := range m.units {
		for _, lv := range m.d.Levels(u) {
			if lv.Level == levels[i] {
				if m.d.Mode() == db.ModeSparse {
					p.Values[u] = lv.Sparsity
				} else {
					p.Values[u] = lv.Bits
				}
			}
		}
	}
	return nil
}

// Signature adds the database's fingerprint to the inner mode's (checkpoints compare it on
// resume).
func (m *dbMode) Signature() string { return m.Mode.Signature() + " db=" + m.d.Fingerprint() }

// openDB opens and checks a level database for a model.
func openDB(dir string, lm *loaded, cacheMB int, want string) (*db.DB, error) {
	if dir == "" {
		return nil, fmt.Errorf("--db is required (build one with `evopress db build %s`)", want)
	}
	d, err := db.Open(dir)
	if err != nil {
		return nil, err
	}
	if d.Mode() != want {
		return nil, fmt.Errorf("database %s is a %s database, want %s", dir, d.Mode(), want)
	}
	if err := d.Check(lm.Fingerprint); err != nil {
		return nil, err
	}
	d.SetCacheBudget(int64(cacheMB) << 20)
	return d, nil
}

// sparseModeFromDB is the sparse search mode over a sparse database's layers and level ranges.
func sparseModeFromDB(d *db.DB, rule search.GroupBy) (*sparse.Mode, error) {
	man := d.Manifest()
	cfg := sparse.Config{Sparsity: man.Sparse.Target, D: man.Sparse.WeightsDiff, GroupBy: rule}
	for _, l := range man.Layers {
		cfg.Layers = append(cfg.Layers, sparse.Layer{Name: l.Name, Numel: l.Numel, Lo: l.Levels[0].Level, Hi: l.Levels[len(l.Levels)-1].Level})
	}
	return sparse.New(cfg)
}

// quantModeFromDB is the quant search mode over a quant database's layers and bit-widths.
func quantModeFromDB(d *db.DB, target float64, rule search.GroupBy) (*quant.Mode, error) {
	cfg := quant.Config{Target: target, GroupBy: rule}
	for _, l := range d.Manifest().Layers {
		var bits []int
		for _, lv := range l.Levels {
			bits = append(bits, lv.Level)
		}
		cfg.Layers = append(cfg.Layers, quant.Layer{Name: l.Name, Numel: l.Numel, Bits: bits})
	}
	return quant.New(cfg)
}

// dbBuilder builds candidate models by swapping database levels into the dense model.
func dbBuilder(d *db.DB, m *model.Model, units []string) fitness.Builder {
	return func(p search.Profile) (*model.Model, error) {
		levels := make(map[string]int, len(units))
		for i, u := range units {
			levels[u] = p[i]
		}
		return d.Apply(m, levels)
	}
}

func newSearchSparseCmd() *cobra.Command {
	var f searchFlags
	var dbDir, groupBy string
	var dbCacheMB int
	cmd := &cobra.Command{
		Use:   "sparse",
		Short: "Per-layer unstructured sparsity levels from a sparse level database",
		Long: `search sparse assigns every linear layer a sparsity level of the database (built with
evopress db build sparse for one target s) so that the total number of non-zeros stays exactly that
of uniform sparsity s. Defaults follow the EvoPress reference: λ = 64, stages 8:2048,2:16384,1:65536,
400 generations; --preset fast for λ = 16, stages 4:512,1:8192.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSearch(cmd, &f, func(lm *loaded) (search.Mode, *db.DB, error) {
				d, err := openDB(dbDir, lm, dbCacheMB, db.ModeSparse)
				if err != nil {
					return nil, nil, err
				}
				man := d.Manifest()
				if cmd.Flags().Changed("target") && math.Abs(f.target-man.Sparse.Target) > 1e-9 {
					return nil, nil, fmt.Errorf("--target %v: database %s serves sparsity %v (build a database for this target)", f.target, dbDir, man.Sparse.Target)
				}
				f.target = man.Sparse.Target
				rule, err := search.ParseGroupBy(groupBy)
				if err != nil {
					return nil, nil, err
				}
				mode, err := sparseModeFromDB(d, rule)
				if err != nil {
					return nil, nil, err
				}
				units := mode.Units()
				return &dbMode{Mode: mode, d: d, units: units}, d, nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&dbDir, "db", "", "sparse level database (evopress db build sparse)")
	cmd.Flags().StringVar(&groupBy, "group-by", "", "which layers may trade levels: none (default: every layer shares one weights-diff), size or kind")
	cmd.Flags().IntVar(&dbCacheMB, "db-cache-mb", 1024, "memory for decoded database levels (MiB)")
	return cmd
}

func newSearchQuantCmd() *cobra.Command {
	var f searchFlags
	var dbDir, groupBy string
	var dbCacheMB int
	cmd := &cobra.Command{
		Use:   "quant",
		Short: "Per-layer bit-widths from a quantization level database",
		Long: `search quant assigns every linear layer a bit-width of the database (built with evopress db build
quant) so that Σ numel·bits ≤ target·Σ numel (codes only; the profile's values report the real bits
per weight including scale/zero overhead). Fractional targets (2.25, 2.5, 3.5) start from the best of
several random profiles. Defaults follow the EvoPress reference: λ = 128, stages
16:2048,4:16384,1:131072, 150 generations; --preset fast for λ = 16, stages 4:512,1:8192.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSearch(cmd, &f, func(lm *loaded) (search.Mode, *db.DB, error) {
				d, err := openDB(dbDir, lm, dbCacheMB, db.ModeQuant)
				if err != nil {
					return nil, nil, err
				}
				rule, err := search.ParseGroupBy(groupBy)
				if err != nil {
					return nil, nil, err
				}
				mode, err := quantModeFromDB(d, f.target, rule)
				if err != nil {
					return nil, nil, err
				}
				units := mode.Units()
				return &dbMode{Mode: mode, d: d, units: units}, d, nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&dbDir, "db", "", "quant level database (evopress db build quant)")
	cmd.Flags().StringVar(&groupBy, "group-by", "", "which layers may trade bits: size (default), kind or none")
	cmd.Flags().IntVar(&dbCacheMB, "db-cache-mb", 1024, "memory for decoded database levels (MiB)")
	return cmd
}
