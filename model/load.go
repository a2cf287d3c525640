package model

import (
	"io/fs"

	"github.com/evopress/evopress/hf"
)

// Load reads a Hugging Face model directory (config.json and safetensors) into a float32 Model.
// The second result is the checkpoint's fingerprint (see hf.Checkpoint.Fingerprint).
func Load(dir string) (*Model, string, error) {
	cfg, err := hf.LoadConfig(dir)
	if err != nil {
		return nil, "", err
	}
	ck, err := hf.OpenCheckpoint(dir)
	if err != nil {
		return nil, "", err
	}
	defer ck.Close()
	m, err := New(cfg, ck)
	if err != nil {
		return nil, "", err
	}
	return m, ck.Fingerprint(), nil
}

// LoadFS is Load for a model directory inside a file system (such as the embedded default model).
func LoadFS(fsys fs.FS, dir string) (*Model, string, error) {
	cfg, err := hf.LoadConfigFS(fsys, dir)
	if err != nil {
		return nil, "", err
	}
	ck, err := hf.OpenCheckpointFS(fsys, dir)
	if err != nil {
		return nil, "", err
	}
	defer ck.Close()
	m, err := New(cfg, ck)
	if err != nil {
		return nil, "", err
	}
	return m, ck.Fingerprint(), nil
}
