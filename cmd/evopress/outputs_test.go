package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evopress/evopress/internal/treesnap"
)

// runSafe runs a command line like run and fails the test if it panics.
func runSafe(t *testing.T, args ...string) (out string, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%v panicked: %v", args, r)
		}
	}()
	return run(t, args...)
}

// copyModel copies the small model's files into a fresh folder (tests that aim commands at
// their model must not risk the shared one).
func copyModel(t *testing.T) string {
	t.Helper()
	src := smallModel(t)
	dir := filepath.Join(t.TempDir(), "model")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestHostileOutputs aims every command that writes at what it must not destroy: the model
// directory, a user's notes, an earlier run, paths of the wrong kind. Each must fail before any
// work with a message naming the path or the flag, without a panic, and leave every file as it
// was.
func TestHostileOutputs(t *testing.T) {
	model := copyModel(t)
	tmp := filepath.Dir(model)
	calib := smallCalib(t)
	p := func(name string) string { return filepath.Join(tmp, name) }
	for name, content := range map[string]string{
		"notes/todo.txt":    "buy milk\n",
		"notes.txt":         "my notes\n",
		"reports/report.md": "my report\n",
	} {
		if err := os.MkdirAll(filepath.Dir(p(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p(name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	search := []string{"search", "drop", "--model", model, "--calib", calib, "--seq-len", "64", "--calib-tokens", "2048",
		"--target", "0.4", "--offspring", "4", "--stages", "2:64,1:128", "--init-tokens", "64", "--generations", "1"}
	if out, err := run(t, append(search, "--out", p("run1.json"))...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	with := func(base []string, extra ...string) []string { return append(append([]string{}, base...), extra...) }
	export := []string{"export", "--model", model, "--profile", p("run1.json")}
	baseline := []string{"baseline", "drop", "--model", model, "--calib", calib, "--seq-len", "64", "--calib-tokens", "2048", "--target", "0.4"}
	dbBuild := []string{"db", "build", "quant", "--model", model, "--calib", calib, "--calib-tokens", "512", "--bits", "4", "--method", "rtn"}

	before := treesnap.Take(t, tmp)
	for _, tc := range []struct {
		name string
		args []string
		want []string // in the message
	}{
		{"export into the model", with(export, "--format", "hf", "--out", model, "--force"), []string{"--out", model, "is the model directory"}},
		{"export inside the model", with(export, "--format", "gguf", "--out", filepath.Join(model, "m.gguf"), "--force"), []string{"--out", "is inside the model directory"}},
		{"export around the model", with(export, "--format", "hf", "--out", tmp, "--force"), []string{"--out", "contains the model directory"}},
		{"export over the profile", with(export, "--format", "gguf", "--out", p("run1.json"), "--force"), []string{"--out", "is the profile"}},
		{"export over notes", with(export, "--format", "hf", "--out", p("notes")), []string{"--out", p("notes"), "not an evopress export"}},
		{"export over notes, forced", with(export, "--format", "hf", "--out", p("notes"), "--force"), []string{"--force does not replace", p("notes"), "not an evopress export"}},
		{"export gguf over a notes file", with(export, "--format", "gguf", "--out", p("notes.txt"), "--force"), []string{"--force", p("notes.txt")}},
		{"export gguf over a folder", with(export, "--format", "gguf", "--out", p("notes"), "--force"), []string{"--force", p("notes"), "not a regular file"}},
		{"search over an earlier run", with(search, "--out", p("run1.json")), []string{"--resume", "--force", p("run1.json"), "checkpoint.json"}},
		{"search over notes", with(search, "--out", p("notes.txt"), "--force"), []string{"--out", p("notes.txt"), "not an evopress profile"}},
		{"search into a folder", with(search, "--out", p("notes")), []string{"--out", p("notes"), "is a directory"}},
		{"search under a file", with(search, "--out", p("notes.txt/p.json")), []string{"--out", "notes.txt"}},
		{"search run folder is a file", with(search, "--out", p("x.json"), "--run-dir", p("notes.txt")), []string{"--run-dir", p("notes.txt"), "not a directory"}},
		{"search run folder holds a user's report", with(search, "--out", p("y.json"), "--run-dir", p("reports"), "--force"), []string{"--run-dir", "report.md", "not a search's run folder"}},
		{"baseline over an earlier profile", with(baseline, "--method", "shortgpt", "--out", p("run1.json")), []string{"--force", p("run1.json")}},
		{"baseline over notes", with(baseline, "--method", "shortgpt", "--out", p("notes.txt"), "--force"), []string{"--out", p("notes.txt"), "not an evopress profile"}},
		{"baseline scores over notes", with(baseline, "--method", "random", "--out", p("b.json"), "--scores", p("notes.txt"), "--force"), []string{"--scores", p("notes.txt")}},
		{"baseline into a folder", with(baseline, "--method", "shortgpt", "--out", p("notes")), []string{"--out", "is a directory"}},
		{"db build into notes", with(dbBuild, "--out", p("notes")), []string{p("notes"), "todo.txt", "holds no level database"}},
		{"db build into notes, forced", with(dbBuild, "--out", p("notes"), "--force"), []string{p("notes"), "holds no level database", "even when forced"}},
		{"db build into the model", with(dbBuild, "--out", model, "--force"), []string{model, "holds no level database"}},
		{"db build into a file", with(dbBuild, "--out", p("notes.txt")), []string{p("notes.txt")}},
		{"demo cache is a file", []string{"demo", "--quick", "--out", p("demo"), "--cache", p("notes.txt")}, []string{"--cache", p("notes.txt")}},
		{"demo into a file", []string{"demo", "--quick", "--out", p("notes.txt")}, []string{"--out", p("notes.txt")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runSafe(t, tc.args...)
			if err == nil {
				t.Fatalf("exit 0, want a refusal\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			before.Same(t, tc.name, treesnap.Take(t, tmp))
		})
	}
}

// TestResumeChangedObjective resumes a search with each part of its objective changed: each is
// refused naming the flag with the checkpoint's and the new value, the checkpoint untouched; the
// same objective resumes.
func TestResumeChangedObjective(t *testing.T) {
	dir := t.TempDir()
	calib := smallCalib(t)
	other := filepath.Join(dir, "other.txt")
	raw, _ := os.ReadFile(calib)
	if err := os.WriteFile(other, append([]byte("Something else first. "), raw...), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "p.json")
	args := func(extra ...string) []string {
		a := []string{"search", "drop", "--calib", calib, "--seq-len", "64", "--calib-tokens", "2048", "--target", "0.4",
			"--offspring", "4", "--stages", "2:64,1:128", "--init-tokens", "64", "--seed", "2", "--out", out}
		if !strings.Contains(strings.Join(extra, " "), "--model") {
			a = append(a, "--model", smallModel(t))
		}
		return append(a, extra...)
	}
	if o, err := run(t, args("--generations", "1")...); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	ckPath := filepath.Join(dir, "p.run", "checkpoint.json")
	ck, err := os.ReadFile(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		extra []string
		want  []string
	}{
		{"calib", []string{"--calib", other}, []string{"--calib (calibration text SHA-256)"}},
		{"fitness", []string{"--fitness", "ppl"}, []string{"--fitness (fitness) kl → ppl"}},
		{"kl-topk", []string{"--kl-topk", "5"}, []string{"--kl-topk (KL top-k) 0 → 5"}},
		{"calib-tokens", []string{"--calib-tokens", "1024"}, []string{"--calib-tokens (calibration tokens) 2048 → 1024", "calibration pool chunks 32 → 16"}},
		{"seq-len", []string{"--seq-len", "32"}, []string{"--seq-len (sequence length) 64 → 32"}},
		{"sub-batch", []string{"--sub-batch", "4"}, []string{"--sub-batch (sequences per forward) 16 → 4"}},
		{"model", []string{"--model", embeddedModelDir}, []string{"--model (model fingerprint)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := runSafe(t, args(append(tc.extra, "--generations", "2", "--resume")...)...)
			if err == nil {
				t.Fatalf("resumed with another %s:\n%s", tc.name, o)
			}
			for _, w := range append(tc.want, ckPath, "another objective", "--force") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if now, _ := os.ReadFile(ckPath); !bytes.Equal(now, ck) {
				t.Error("the checkpoint changed")
			}
		})
	}
	if o, err := run(t, args("--generations", "2", "--resume")...); err != nil || !strings.Contains(o, "resuming") {
		t.Fatalf("the same objective: %v\n%s", err, o)
	}
}

// TestExportForce exports over a previous export (replaced with --force only) and checks that
// the model directory is untouched by every export.
func TestExportForce(t *testing.T) {
	model := copyModel(t)
	tmp := filepath.Dir(model)
	prof := filepath.Join(tmp, "p.json")
	if err := os.WriteFile(prof, []byte(`{"format": "evopress-profile/v1", "mode": "drop",
"levels": {"model.layers.1.self_attn": 1, "model.layers.1.mlp": 1}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	modelBefore := treesnap.Take(t, model)
	for _, format := range []string{"hf", "gguf"} {
		out := filepath.Join(tmp, "out-"+format)
		args := []string{"export", "--model", model, "--profile", prof, "--format", format, "--out", out}
		if o, err := runSafe(t, args...); err != nil {
			t.Fatalf("%v\n%s", err, o)
		}
		first := treesnap.Take(t, out)
		if _, err := runSafe(t, args...); err == nil || !strings.Contains(err.Error(), "use --force to replace it") {
			t.Errorf("%s: a second export without --force: %v", format, err)
		}
		first.Same(t, format+" export refused", treesnap.Take(t, out))
		time.Sleep(10 * time.Millisecond) // a new modification time
		if o, err := runSafe(t, append(args, "--force")...); err != nil {
			t.Fatalf("%s --force over an earlier export: %v\n%s", format, err, o)
		}
		second := treesnap.Take(t, out)
		if len(second) != len(first) {
			t.Errorf("%s: %d files after --force, %d before", format, len(second), len(first))
		}
		for p, s := range second {
			if s.MTime.Equal(first[p].MTime) {
				t.Errorf("%s: %s was not rewritten", format, p)
			}
		}
		entries, _ := os.ReadDir(tmp)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp") {
				t.Errorf("temporary %s left behind", e.Name())
			}
		}
	}
	modelBefore.Same(t, "the model", treesnap.Take(t, model))
}
