package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
)

// applyProfileFile reads a profile and returns the compressed model it describes. It warns (on
// stderr) when the profile cannot be checked against the model or does not cover every unit.
func applyProfileFile(cmd *cobra.Command, lm *loaded, path, dbDir string) (*model.Model, error) {
	p, err := profile.Read(path, "")
	if err != nil {
		return nil, err
	}
	return applyProfile(cmd, lm, p, path, dbDir)
}

func applyProfile(cmd *cobra.Command, lm *loaded, p *profile.Profile, path, dbDir string) (*model.Model, error) {
	warn := cmd.ErrOrStderr()
	switch {
	case p.Mode != profile.ModeDrop:
		// db.ApplyProfile checks (and warns about) the fingerprints of sparse and quant profiles.
	case p.Model == nil || p.Model.Fingerprint == "":
		fmt.Fprintf(warn, "warning: %s has no model fingerprint: it cannot be checked against %s\n", path, lm.Name)
	case p.Model.Fingerprint != lm.Fingerprint:
		return nil, fmt.Errorf("%s was made for model %s (fingerprint %.12s…), not for %s (fingerprint %.12s…)",
			path, p.Model.Path, p.Model.Fingerprint, lm.Name, lm.Fingerprint)
	}
	switch p.Mode {
	case profile.ModeDrop:
		if n := 2 * len(lm.Model.Blocks); len(p.Levels) < n {
			fmt.Fprintf(warn, "warning: %s covers %d of the %d drop units; the others are kept\n", path, len(p.Levels), n)
		}
		m, err := candidate.ApplyDrop(lm.Model, p.Levels)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return m, nil
	default:
		if dbDir == "" && p.DB != nil {
			dbDir = p.DB.Path
		}
		if dbDir == "" {
			return nil, fmt.Errorf("%s is a %s profile: --db is required (the level database it was made with)", path, p.Mode)
		}
		d, err := db.Open(dbDir)
		if err != nil {
			return nil, err
		}
		m, warns, err := db.ApplyProfile(lm.Model, lm.Fingerprint, p, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for _, w := range warns {
			fmt.Fprintf(warn, "warning: %s: %s\n", path, w)
		}
		return m, nil
	}
}
