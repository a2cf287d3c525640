package model

import (
	"io/fs"

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
// The second result is the checkpoint's fingerprint (see hf.Checkpoint.Fingerprint).
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
