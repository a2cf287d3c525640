package pipeline

import (
	"fmt"
	"math"

	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/sparse"
)

// ModeSpec says what to compress and under which budget.
type ModeSpec struct {
	// Kind is profile.ModeDrop, ModeSparse or ModeQuant.
	Kind string
	// Target is the budget: the dropped fraction (drop), the mean sparsity (sparse: the
	// database's, which is used when Target is 0) or the mean bits per weight, codes only
	// (quant; with a gguf database bytes·8/weights of the linear layers, block scales included).
	Target float64
	// TargetSize (quant, gguf database), instead of Target, is the size in bytes of the whole
	// GGUF file: the linear layers get what is left after the other tensors and the metadata
	// (EstimateGGUF with TokenEmbeddingType and OutputTensorType). Budget, instead of either,
	// is the linear layers' budget in bits.
	TargetSize, Budget int64
	// TokenEmbeddingType and OutputTensorType (quant, gguf database) are the ggml types the GGUF
	// file stores the token embedding and the output tensor in ("": the defaults of
	// GGUFTensorTypes); the profile records them, with the file's estimated size.
	TokenEmbeddingType, OutputTensorType string
	// WholeBlocks (drop) drops attention and MLP of a block together.
	WholeBlocks bool
	// Keep (drop) names units or blocks that may not be dropped.
	Keep []string
	// GroupBy (sparse, quant) says which layers may trade levels: "", "none", "size", "kind".
	GroupBy string
}

// Mode is a search mode over a loaded model: the engine's search.Mode together with what
// turns its level vectors into models and profiles.
type Mode struct {
	search.Mode
	Spec ModeSpec
	// DB is the level database of sparse and quant modes (nil for drop).
	DB *db.DB
	lm *Loaded
	// quant is the quant mode of a gguf database (the cost form).
	quant *quant.Mode
}

// NewMode builds the search mode of spec for lm; sparse and quant modes draw on the level
// database d. A sparse spec with Target 0 takes the database's target.
func NewMode(lm *Loaded, d *db.DB, spec ModeSpec) (*Mode, error) {
	m := &Mode{Spec: spec, DB: d, lm: lm}
	switch spec.Kind {
	case profile.ModeDrop:
		dm, err := drop.New(len(lm.Model.Blocks), spec.Target, drop.Options{WholeBlocks: spec.WholeBlocks, Keep: spec.Keep})
		if err != nil {
			return nil, err
		}
		m.Mode = dm
		return m, nil
	case profile.ModeSparse, profile.ModeQuant:
	default:
		return nil, invalid("Mode.Kind", spec.Kind, "want drop, sparse or quant")
	}
	if d == nil {
		return nil, ErrNoDatabase
	}
	if d.ProfileMode() != spec.Kind {
		return nil, fmt.Errorf("database %s is a %s database, want %s", d.Dir(), d.Mode(), spec.Kind)
	}
	if d.Mode() != db.ModeGGUF && (spec.TargetSize != 0 || spec.Budget != 0 || spec.TokenEmbeddingType != "" || spec.OutputTensorType != "") {
		field := "Mode.TargetSize"
		switch {
		case spec.Budget != 0:
			field = "Mode.Budget"
		case spec.TokenEmbeddingType != "":
			field = "Mode.TokenEmbeddingType"
		case spec.OutputTensorType != "":
			field = "Mode.OutputTensorType"
		}
		return nil, invalid(field, "set", "database %s is a %s database: file sizes and tensor types are for gguf databases (evopress db build gguf)", d.Dir(), d.Mode())
	}
	rule, err := search.ParseGroupBy(spec.GroupBy)
	if err != nil {
		return nil, invalid("Mode.GroupBy", spec.GroupBy, "want size, kind or none")
	}
	man := d.Manifest()
	var inner search.Mode
	if spec.Kind == profile.ModeSparse {
		if spec.Target != 0 && math.Abs(spec.Target-man.Sparse.Target) > 1e-9 {
			return nil, invalid("Mode.Target", spec.Target, "database %s serves sparsity %v (build a database for this target)", d.Dir(), man.Sparse.Target)
		}
		m.Spec.Target = man.Sparse.Target
		cfg, err := man.SparseConfig(rule)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", d.Dir(), err)
		}
		if inner, err = sparse.New(cfg); err != nil {
			return nil, err
		}
	} else if d.Mode() == db.ModeGGUF {
		if inner, err = m.ggufMode(rule); err != nil {
			return nil, err
		}
	} else {
		cfg, err := man.QuantConfig(spec.Target, rule)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", d.Dir(), err)
		}
		if inner, err = quant.New(cfg); err != nil {
			return nil, err
		}
	}
	m.Mode = withDB{Mode: inner, fingerprint: d.Fingerprint()}
	return m, nil
}

// withDB adds the database's fingerprint to a mode's signature, so that a checkpoint cannot be
// resumed with another database.
type withDB struct {
	search.Mode
	fingerprint string
}

func (m withDB) Signature() string { return m.Mode.Signature() + " db=" + m.fingerprint }

// Builder returns the candidate-model builder of the mode's level vectors.
func (m *Mode) Builder() (fitness.Builder, error) {
	units := m.Units()
	if m.DB == nil {
		return candidate.DropBuilder(m.lm.Model, units)
	}
	tokEmb, output, err := m.fileTensorTypes()
	if err != nil {
		return nil, err
	}
	base := m.lm.Model
	if tokEmb != "" {
		if base, err = fileTensors(base, tokEmb, output); err != nil {
			return nil, err
		}
	}
	return dbBuilder(m.DB, base, units), nil
}

// fileTensorTypes returns the ggml types in which a GGUF database's file stores the token
// embedding and the output head (output "" when tied to the embedding); candidates are scored
// with those tensors as the file holds them. Both are "" for other databases.
func (m *Mode) fileTensorTypes() (tokEmb, output string, err error) {
	if m.DB == nil || m.DB.Mode() != db.ModeGGUF {
		return "", "", nil
	}
	tok, out, err := GGUFTensorTypes(m.lm, m.Spec.TokenEmbeddingType, m.Spec.OutputTensorType)
	if err != nil {
		return "", "", err
	}
	if !m.lm.Model.Config.TieWordEmbeddings {
		output = out.String()
	}
	return tok.String(), output, nil
}

// dbBuilder builds candidate models by swapping database levels into the dense model.
func dbBuilder(d *db.DB, dense *model.Model, units []string) fitness.Builder {
	return func(p search.Levels) (*model.Model, error) {
		levels, err := search.LevelsMap(units, p)
		if err != nil {
			return nil, err
		}
		return d.Apply(dense, levels)
	}
}

// Profile returns the profile file of a level vector: mode, target, model and database
// references, levels and (sparse, quant) each layer's actual sparsity or bits per weight.
func (m *Mode) Profile(levels search.Levels, method string) *profile.Profile {
	p := profile.New(m.Spec.Kind)
	p.Target = m.Spec.Target
	p.Method = method
	p.Model = &profile.Ref{Path: m.lm.Name, Fingerprint: m.lm.Fingerprint}
	units := m.Units()
	for i, u := range units {
		p.Levels[u] = levels[i]
	}
	if m.DB != nil {
		p.DB = &profile.Ref{Path: m.DB.Dir(), Fingerprint: m.DB.Fingerprint()}
		p.Values = map[string]float64{}
		for i, u := range units {
			if v, ok := m.DB.LevelValue(u, levels[i]); ok {
				p.Values[u] = v
			}
		}
	}
	return p
}

// OpenDB opens the level database in dir for lm and checks that it was built for lm and serves
// the wanted profile mode (profile.ModeSparse; profile.ModeQuant: a quant or gguf database);
// cacheMB bounds its level cache (levels held as stored).
func OpenDB(dir string, lm *Loaded, cacheMB int, kind string) (*db.DB, error) {
	if dir == "" {
		return nil, ErrNoDatabase
	}
	d, err := db.Open(dir)
	if err != nil {
		return nil, err
	}
	if kind != "" && d.ProfileMode() != kind {
		return nil, fmt.Errorf("database %s is a %s database, want %s", dir, d.Mode(), kind)
	}
	if err := lm.Stamps().CheckDB(d); err != nil {
		return nil, err
	}
	if err := d.Check(lm.Fingerprint); err != nil {
		return nil, err
	}
	d.SetCacheBudget(int64(cacheMB) << 20)
	return d, nil
}

// ApplyProfile returns the model a profile describes, for lm: see candidate.FromProfile. A
// sparse or quant profile reads the database dbDir, or the one the profile names when dbDir is
// empty (profile.Profile.DatabaseDir: relative to the profile file's folder). A profile or
// database stamped by an older evopress is refused with a *stamp.LegacyError.
func ApplyProfile(lm *Loaded, p *profile.Profile, dbDir string) (*model.Model, []string, error) {
	return applyProfile(lm, p, "", dbDir)
}

// applyProfile is ApplyProfile for the profile read from path ("" when unknown: the advice
// of a *stamp.LegacyError names it).
func applyProfile(lm *Loaded, p *profile.Profile, path, dbDir string) (*model.Model, []string, error) {
	var d *db.DB
	if p.Mode != profile.ModeDrop {
		dir := p.DatabaseDir(dbDir)
		if dir == "" {
			return nil, nil, ErrNoDatabase
		}
		var err error
		if d, err = db.Open(dir); err != nil {
			return nil, nil, p.DatabaseError(dbDir, err)
		}
	}
	if d != nil {
		if err := lm.Stamps().CheckDB(d); err != nil {
			return nil, nil, err
		}
	}
	if err := lm.Stamps().CheckProfile(p, path, d); err != nil {
		return nil, nil, err
	}
	return candidate.FromProfile(lm.Model, lm.Fingerprint, p, d)
}
