package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/evopress/evopress/profile"
)

// searchArgs is a small, fast drop search on the embedded model cut to 5 blocks.
func searchArgs(t *testing.T, out string, extra ...string) []string {
	args := []string{"search", "drop", "--model", smallModel(t),
		"--calib", embeddedCalib, "--seq-len", "64",
		"--calib-tokens", "8192", "--target", "0.4", "--offspring", "6", "--stages", "2:128,1:256",
		"--init-tokens", "128", "--seed", "7", "--out", out}
	return append(args, extra...)
}

// TestSearchDropResumeEqualsUninterrupted runs 4 generations at once, and 2 then 2 more resumed
// from the checkpoint, and checks both end with the same profile.
func TestSearchDropResumeEqualsUninterrupted(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full.json")
	if _, err := run(t, searchArgs(t, full, "--generations", "4")...); err != nil {
		t.Fatal(err)
	}
	split := filepath.Join(dir, "split.json")
	if _, err := run(t, searchArgs(t, split, "--generations", "2")...); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, searchArgs(t, split, "--generations", "4", "--resume")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "resuming") {
		t.Errorf("resumed run did not say so:\n%s", out)
	}
	a, err := profile.Read(full, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := profile.Read(split, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Levels, b.Levels) || *a.Fitness != *b.Fitness {
		t.Errorf("resumed profile %v (fitness %v) differs from uninterrupted %v (fitness %v)", b.Levels, *b.Fitness, a.Levels, *a.Fitness)
	}
	dropped := map[string]int{}
	for u, l := range a.Levels {
		if l == 1 {
			dropped[u[strings.LastIndexByte(u, '.')+1:]]++
		}
	}
	if dropped["self_attn"] != 2 || dropped["mlp"] != 2 {
		t.Errorf("dropped %v, want exactly 2 attention and 2 MLP sub-blocks (floor(0.4·5))", dropped)
	}
	// The profile evaluates.
	if _, err := run(t, "ppl", "--model", smallModel(t), "--profile", full,
		"--data", embeddedEval, "--max-seqs", "2"); err != nil {
		t.Fatal(err)
	}
}

func TestSearchResumeWithoutCheckpointStartsFresh(t *testing.T) {
	out, err := run(t, searchArgs(t, filepath.Join(t.TempDir(), "p.json"), "--generations", "1", "--resume")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "starting fresh") {
		t.Errorf("no 'starting fresh' notice:\n%s", out)
	}
}

func TestProfileFingerprintMismatch(t *testing.T) {
	p := profile.New(profile.ModeDrop)
	p.Model = &profile.Ref{Path: "other", Fingerprint: "0123456789abcdef"}
	p.Levels["model.layers.0.mlp"] = 1
	path := filepath.Join(t.TempDir(), "p.json")
	if err := p.Write(path); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "ppl", "--model", smallModel(t), "--profile", path, "--max-seqs", "1")
	if err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("error %v, want a fingerprint mismatch", err)
	}
}

func TestPPLKL(t *testing.T) {
	m := smallModel(t)
	p := profile.New(profile.ModeDrop)
	p.Levels["model.layers.2.mlp"] = 1
	path := filepath.Join(t.TempDir(), "p.json")
	if err := p.Write(path); err != nil {
		t.Fatal(err)
	}
	klOf := func(args ...string) float64 {
		out, err := run(t, append([]string{"ppl", "--model", m, "--max-seqs", "3", "--kl", "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ KL *float64 }
		if err := json.Unmarshal([]byte(out[strings.IndexByte(out, '{'):]), &got); err != nil || got.KL == nil {
			t.Fatalf("no kl in %s (%v)", out, err)
		}
		return *got.KL
	}
	if kl := klOf(); kl > 1e-4 {
		t.Errorf("dense KL to itself = %v", kl)
	}
	if kl := klOf("--profile", path); kl < 1e-3 {
		t.Errorf("KL of a model without one MLP = %v, want clearly positive", kl)
	}
}
