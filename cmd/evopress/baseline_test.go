package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/profile"
)

// smallCalib writes the first 20000 bytes of the embedded calibration text to a temporary file
// (tokenizing the whole file for every command would dominate the test's time).
func smallCalib(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(embeddedCalib)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "calib.txt")
	if err := os.WriteFile(path, raw[:min(len(raw), 20000)], 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBaselineDropCLI(t *testing.T) {
	model := smallModel(t)
	calib := smallCalib(t)
	dir := t.TempDir()
	common := []string{"baseline", "drop", "--model", model, "--calib", calib, "--calib-tokens", "4096", "--seq-len", "64", "--target", "0.4"}
	for _, tc := range []struct {
		method string
		extra  []string
	}{
		{"shortgpt", nil},
		{"window-cosine", []string{"--window-positions", "all"}},
		{"norm-ratio", nil},
		{"shortened-ppl", []string{"--tokens", "512"}},
		{"random", []string{"--samples", "6", "--tokens", "256"}},
		{"exhaustive", []string{"--whole-blocks", "--tokens", "256"}},
	} {
		out := filepath.Join(dir, tc.method+".json")
		args := append(append(append([]string{}, common...), "--method", tc.method, "--out", out), tc.extra...)
		stdout, err := run(t, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.method, err, stdout)
		}
		p, err := profile.Read(out, "")
		if err != nil {
			t.Fatal(err)
		}
		if p.Method != tc.method || p.Mode != profile.ModeDrop || p.Target != 0.4 || len(p.Levels) != 10 {
			t.Errorf("%s: profile method %q mode %q target %v with %d units", tc.method, p.Method, p.Mode, p.Target, len(p.Levels))
		}
		var attn, mlp int
		for u, l := range p.Levels {
			if l == 1 && strings.HasSuffix(u, ".self_attn") {
				attn++
			}
			if l == 1 && strings.HasSuffix(u, ".mlp") {
				mlp++
			}
		}
		if attn != 2 || mlp != 2 {
			t.Errorf("%s: %d attention and %d MLP units dropped, want 2 each (k = floor(0.4·5))", tc.method, attn, mlp)
		}
		if (tc.method == "random" || tc.method == "exhaustive") != (p.Fitness != nil) {
			t.Errorf("%s: fitness %v", tc.method, p.Fitness)
		}
	}
}

func TestBaselineErrors(t *testing.T) {
	model := smallModel(t)
	calib := smallCalib(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"baseline", "sparse", "--method", "owl"}, "--out is required"},
		{[]string{"baseline", "quant", "--method=dp", "--out", "x.json"}, "--target is required"},
		{[]string{"baseline", "sparse", "--method", "uniform", "--out", "x.json"}, "--db"},
		{[]string{"baseline", "drop", "--method", "magic", "--out", "x.json"}, "unknown depth-pruning method"},
		{[]string{"baseline", "drop", "--method", "shortgpt"}, "--out is required"},
		{[]string{"baseline", "drop", "--out", "x.json"}, "--method is required"},
		{[]string{"baseline", "drop", "--method", "exhaustive", "--model", model, "--calib", calib, "--calib-tokens", "4096", "--seq-len", "64",
			"--target", "0.4", "--max-profiles", "50", "--out", filepath.Join(t.TempDir(), "x.json")}, "100 profiles"},
	} {
		_, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}
