package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/tokenizer"
)

// loaded is a model with its tokenizer and identity.
type loaded struct {
	Model       *model.Model
	Tok         *tokenizer.Tokenizer
	Name        string // directory, or "embedded:…"
	Fingerprint string
	LoadTime    time.Duration
}

// loadModel loads the model directory dir, or the embedded default when dir is empty.
func loadModel(dir string) (*loaded, error) {
	start := time.Now()
	if dir == "" {
		m, fp, err := model.LoadFS(assets.FS(), assets.ModelDir)
		if err != nil {
			return nil, fmt.Errorf("embedded model: %w", err)
		}
		tj, err := fs.ReadFile(assets.FS(), assets.ModelDir+"/tokenizer.json")
		if err != nil {
			return nil, err
		}
		tc, _ := fs.ReadFile(assets.FS(), assets.ModelDir+"/tokenizer_config.json")
		tok, err := tokenizer.Parse(tj, tc, assets.ModelName+"/tokenizer.json")
		if err != nil {
			return nil, err
		}
		return &loaded{Model: m, Tok: tok, Name: assets.ModelName, Fingerprint: fp, LoadTime: time.Since(start)}, nil
	}
	m, fp, err := model.Load(dir)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > m.Vocab {
		return nil, fmt.Errorf("%s: tokenizer has %d tokens but config.json vocab_size is %d", dir, tok.VocabSize(), m.Vocab)
	}
	return &loaded{Model: m, Tok: tok, Name: dir, Fingerprint: fp, LoadTime: time.Since(start)}, nil
}

// readText reads a text file in the given format; "" means the embedded file def.
func readText(path, def string, f data.Format) (string, string, error) {
	if path == "" {
		b, err := assets.ReadFile(def)
		if err != nil {
			return "", "", err
		}
		t, err := data.Normalize(string(b), f)
		return t, "embedded:" + def, err
	}
	t, err := data.ReadText(path, f)
	return t, filepath.Clean(path), err
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
