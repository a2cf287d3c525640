package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/hf"
)

// The embedded model and texts in the repository (no ../shared needed).
const (
	embeddedModelDir = "../../assets/llama-pd-11m"
	embeddedCalib    = "../../assets/pd-english/calib.txt"
	embeddedEval     = "../../assets/pd-english/eval.txt"
	smallBlocks      = 5
)

var (
	smallOnce sync.Once
	smallDir  string
	smallErr  error
)

// smallModel returns a model folder holding the embedded model cut to its first smallBlocks
// blocks (config.json says so): a real trained model, small enough for CLI tests of searches and
// baselines on a clean clone. It is written once per test binary (removed by TestMain).
func smallModel(t *testing.T) string {
	t.Helper()
	smallOnce.Do(func() { smallDir, smallErr = writeSmallModel() })
	if smallErr != nil {
		t.Fatal(smallErr)
	}
	return smallDir
}

func writeSmallModel() (string, error) {
	dir, err := os.MkdirTemp("", "evopress-small-model")
	if err != nil {
		return "", err
	}
	ck, err := hf.OpenCheckpoint(embeddedModelDir)
	if err != nil {
		return "", err
	}
	defer ck.Close()
	var tensors []hf.TensorData
	for _, name := range ck.Names() {
		if tn, err := arch.ParseTensor(name); err == nil {
			if b, ok := tn.Block(); ok && b >= smallBlocks {
				continue
			}
		}
		info, _ := ck.Info(name)
		vals, err := ck.ReadFloat32(name, info.Shape...)
		if err != nil {
			return "", err
		}
		tensors = append(tensors, hf.TensorData{Name: name, DType: info.DType, Shape: info.Shape, F32: vals})
	}
	if err := hf.WriteSafetensors(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		return "", err
	}
	raw, err := os.ReadFile(filepath.Join(embeddedModelDir, "config.json"))
	if err != nil {
		return "", err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return "", err
	}
	cfg["num_hidden_layers"] = smallBlocks
	if raw, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		return "", err
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		b, err := os.ReadFile(filepath.Join(embeddedModelDir, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}
