package model

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/hf"
)

// Identity identifies a loaded model's checkpoint: Fingerprint covers config.json and the
// tensors' names, dtypes, shapes and bytes (hf.Checkpoint.Fingerprint); LegacyFingerprint is
// what older versions recorded (hf.Checkpoint.LegacyFingerprint), kept to recognise their files.
type Identity struct {
	Fingerprint       string
	LegacyFingerprint string
}

// Load reads a Hugging Face model directory (config.json and safetensors) into a float32 Model.
// The second result is the checkpoint's fingerprint (see hf.Checkpoint.Fingerprint). A
// checkpoint holding blocks beyond config.json's num_hidden_layers is refused (CheckBlocks), as
// is a weight that is not a finite number (hf.Checkpoint.ReadFloat32).
func Load(dir string) (*Model, string, error) {
	m, id, err := LoadIdentified(dir)
	return m, id.Fingerprint, err
}

// LoadFS is Load for a model directory inside a file system (such as the embedded default model).
func LoadFS(fsys fs.FS, dir string) (*Model, string, error) {
	m, id, err := LoadIdentifiedFS(fsys, dir)
	return m, id.Fingerprint, err
}

// LoadIdentified is Load returning both fingerprints. The weights are hashed for the
// fingerprint (once per file version: see hf.Checkpoint.Fingerprint) while they are converted.
func LoadIdentified(dir string) (*Model, Identity, error) {
	cfg, err := hf.LoadConfig(dir)
	if err != nil {
		return nil, Identity{}, err
	}
	ck, err := hf.OpenCheckpoint(dir)
	if err != nil {
		return nil, Identity{}, err
	}
	return load(cfg, ck)
}

// LoadIdentifiedFS is LoadIdentified for a model directory inside a file system.
func LoadIdentifiedFS(fsys fs.FS, dir string) (*Model, Identity, error) {
	cfg, err := hf.LoadConfigFS(fsys, dir)
	if err != nil {
		return nil, Identity{}, err
	}
	ck, err := hf.OpenCheckpointFS(fsys, dir)
	if err != nil {
		return nil, Identity{}, err
	}
	return load(cfg, ck)
}

// load converts ck's weights and fingerprints it at the same time, then closes it.
func load(cfg *hf.Config, ck *hf.Checkpoint) (*Model, Identity, error) {
	defer ck.Close()
	if err := CheckBlocks(cfg, ck); err != nil {
		return nil, Identity{}, err
	}
	type fpResult struct {
		fp  string
		err error
	}
	done := make(chan fpResult, 1)
	go func() {
		fp, err := ck.Fingerprint()
		done <- fpResult{fp, err}
	}()
	m, err := New(cfg, ck)
	r := <-done
	if err != nil {
		return nil, Identity{}, err
	}
	if r.err != nil {
		return nil, Identity{}, r.err
	}
	return m, Identity{Fingerprint: r.fp, LegacyFingerprint: ck.LegacyFingerprint()}, nil
}

// CheckBlocks refuses a checkpoint whose tensors number more blocks ("model.layers.N.…") than
// config.json's num_hidden_layers: loading the first blocks and ignoring the rest would evaluate
// another model than the one on disk. The error names both counts and the first extra tensor
// (lowest block, then name). Fewer blocks than the configuration names fail in New, naming the
// first missing tensor.
func CheckBlocks(cfg *hf.Config, ck *hf.Checkpoint) error {
	n := cfg.NumHiddenLayers
	blocks, first, firstBlock := 0, "", -1
	for _, name := range ck.Names() {
		if !strings.HasPrefix(name, arch.LayersPrefix) {
			continue
		}
		_, b, _, ok := arch.SplitLayers(name)
		if !ok || b < n {
			continue
		}
		blocks = max(blocks, b+1)
		if firstBlock < 0 || b < firstBlock {
			first, firstBlock = name, b // Names is sorted: the first name of the lowest block
		}
	}
	if first == "" {
		return nil
	}
	files := strings.Join(ck.Files(), ", ")
	return fmt.Errorf("model: %s: num_hidden_layers is %d but %s holds tensors of %d blocks (the first beyond the configuration: %s)",
		cfg.Path, n, files, blocks, first)
}
