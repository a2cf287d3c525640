package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/profile"
)

func TestInspect(t *testing.T) {
	out, err := run(t, "inspect", embeddedModelDir)
	if err != nil || !strings.Contains(out, "12 layers") || !strings.Contains(out, "10.95M parameters") {
		t.Errorf("inspect model: %v\n%s", err, out)
	}
	p := profile.New(profile.ModeDrop)
	p.Levels["model.layers.0.mlp"] = 1
	p.Levels["model.layers.1.mlp"] = 0
	path := filepath.Join(t.TempDir(), "p.json")
	if err := p.Write(path); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "inspect", path)
	if err != nil || !strings.Contains(out, "drop profile") || !strings.Contains(out, "level 1: 1 units") {
		t.Errorf("inspect profile: %v\n%s", err, out)
	}
	if _, err := run(t, "inspect", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a model directory") {
		t.Errorf("inspect of an empty folder: %v", err)
	}
}
