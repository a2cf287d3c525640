package pipeline

import (
	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/stamp"
)

// Stamps returns lm's identity for checking (and re-stamping) what databases, profiles and run
// folders record about the model: see package stamp.
func (lm *Loaded) Stamps() stamp.Model {
	dir := lm.Name
	if lm.embedded {
		dir = ""
	}
	return stamp.Model{Dir: dir, Fingerprint: lm.Fingerprint, Legacy: lm.LegacyFingerprint}
}

// RestampRequest asks to re-stamp, for a model, the level databases, profiles and search run
// folders an older evopress stamped with the model's legacy fingerprint (which did not cover
// the weights). Run it only for files known to belong to this very model: see stamp.Restamp.
type RestampRequest struct {
	// ModelDir is the model directory; "" is the embedded default model.
	ModelDir string
	// Paths are the database folders, profile files and run folders to re-stamp.
	Paths []string
	// DryRun reports what would change without writing anything.
	DryRun bool
}

// Restamp re-stamps req.Paths for the model (stamp.Restamp), after computing its fingerprints
// (the weights are hashed, not loaded).
func Restamp(req RestampRequest) (*stamp.Result, error) {
	if len(req.Paths) == 0 {
		return nil, missing("Paths", "the databases, profiles and run folders to re-stamp")
	}
	var ck *hf.Checkpoint
	var err error
	if req.ModelDir == "" {
		ck, err = hf.OpenCheckpointFS(assets.FS(), assets.ModelDir)
	} else {
		ck, err = hf.OpenCheckpoint(req.ModelDir)
	}
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	fp, err := ck.Fingerprint()
	if err != nil {
		return nil, err
	}
	return stamp.Restamp(stamp.Model{Dir: req.ModelDir, Fingerprint: fp, Legacy: ck.LegacyFingerprint()}, req.Paths, req.DryRun)
}
