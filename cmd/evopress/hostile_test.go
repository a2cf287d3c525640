package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/internal/dirlock"
	"github.com/evopress/evopress/pipeline"
)

// hostileCase is one hostile command line (issue 13): the command must fail with exit status 1
// (an error, not a panic), say every string of want (the flag or the file the error is about),
// and leave the files it reads and the output folder exactly as they were.
//
// In args, dir and inputs, "{out}" stands for the case's output folder: a fresh folder holding
// only a sentinel file, where every output the command line names should go.
type hostileCase struct {
	name string
	args []string
	// dir is the working directory ("" is the output folder).
	dir string
	// want are substrings of the error output.
	want []string
	// inputs are the files and folders the command reads; the output folder is always checked.
	inputs []string
	// leaves are outputs of the command's own that it may leave behind (under the output folder,
	// with everything in them); nothing else there may change.
	leaves []string
}

// hostileTimeout bounds one hostile command: each fails before any real work.
const hostileTimeout = 2 * time.Minute

// runHostile runs c in a child process (the test binary as evopress) and checks its contract.
func runHostile(t *testing.T, c hostileCase) {
	t.Helper()
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, "sentinel.txt"), []byte("not the tool's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	subst := func(s string) string { return strings.ReplaceAll(s, "{out}", out) }
	args := make([]string, len(c.args))
	for i, a := range c.args {
		args[i] = subst(a)
	}
	watched := []string{out}
	for _, in := range c.inputs {
		watched = append(watched, subst(in))
	}
	before := snapshot(t, watched)

	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "EVOPRESS_TEST_CLI=1")
	cmd.Dir = out
	if c.dir != "" {
		cmd.Dir = subst(c.dir)
	}
	output, err := cmd.CombinedOutput()
	msg := string(output)
	code := cmd.ProcessState.ExitCode()
	switch {
	case ctx.Err() != nil:
		t.Fatalf("evopress %s: still running after %v\n%s", strings.Join(args, " "), hostileTimeout, msg)
	case strings.Contains(msg, "panic:") || strings.Contains(msg, "goroutine "):
		t.Errorf("evopress %s: panicked (exit %d)\n%s", strings.Join(args, " "), code, msg)
	case code != 1:
		t.Errorf("evopress %s: exit status %d (%v), want 1\n%s", strings.Join(args, " "), code, err, msg)
	}
	for _, w := range c.want {
		if !strings.Contains(msg, subst(w)) {
			t.Errorf("evopress %s: the message does not name %q:\n%s", strings.Join(args, " "), subst(w), msg)
		}
	}
	after := snapshot(t, watched)
	for _, l := range c.leaves {
		l = subst(l)
		for p := range after {
			if p == l || strings.HasPrefix(p, l+string(filepath.Separator)) {
				delete(after, p)
			}
		}
		if st, ok := before[out]; ok { // the output folder's own mtime moves with them
			after[out] = st
		}
	}
	if !reflect.DeepEqual(before, after) {
		for p, st := range after {
			if before[p] != st {
				t.Errorf("%s changed or appeared: %+v, was %+v", p, st, before[p])
			}
		}
		for p := range before {
			if _, ok := after[p]; !ok {
				t.Errorf("%s disappeared", p)
			}
		}
	}
}

// fileState is what a hostile command must not change: a file's size, modification time and
// content, or a folder's existence.
type fileState struct {
	Size  int64
	MTime time.Time
	Sum   [32]byte
	Dir   bool
}

// snapshot records every file and folder under paths.
func snapshot(t *testing.T, paths []string) map[string]fileState {
	t.Helper()
	states := map[string]fileState{}
	for _, root := range paths {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			st := fileState{Size: info.Size(), MTime: info.ModTime(), Dir: d.IsDir()}
			if !d.IsDir() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				st.Sum = sha256.Sum256(b)
			}
			states[p] = st
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return states
}

// writeModelVariant writes the embedded model cut to its first `blocks` blocks into dir, with
// config.json saying `layers` blocks, tensors as BF16 except where edit returns a replacement,
// and the tokenizer files (tokenizer.json passed through editTok when set).
func writeModelVariant(t *testing.T, dir string, blocks, layers int, edit func(name string, v []float32) (hf.DType, bool), editTok func([]byte) []byte) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ck, err := hf.OpenCheckpoint(embeddedModelDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var tensors []hf.TensorData
	for _, name := range ck.Names() {
		if tn, err := arch.ParseTensor(name); err == nil {
			if b, ok := tn.Block(); ok && b >= blocks {
				continue
			}
		}
		info, _ := ck.Info(name)
		v, err := ck.ReadFloat32(name, info.Shape...)
		if err != nil {
			t.Fatal(err)
		}
		dt := info.DType
		if edit != nil {
			if d, ok := edit(name, v); ok {
				dt = d
			}
		}
		tensors = append(tensors, hf.TensorData{Name: name, DType: dt, Shape: info.Shape, F32: v})
	}
	if err := hf.WriteSafetensors(filepath.Join(dir, hf.SafetensorsFileName), tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(embeddedModelDir, hf.ConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["num_hidden_layers"] = layers
	if raw, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{hf.ConfigFileName: raw}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(embeddedModelDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "tokenizer.json" && editTok != nil {
			b = editTok(b)
		}
		files[f] = b
	}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestHostileCommandLines runs the hostile command lines of issue 13 (items 3 and 6 and the
// count flags): each fails cleanly, names what is wrong and changes nothing. Add a row for each
// new probe.
func TestHostileCommandLines(t *testing.T) {
	if testing.Short() {
		t.Skip("short: about 40 child processes")
	}
	root := t.TempDir()
	models := filepath.Join(root, "models")
	nanModel := writeModelVariant(t, filepath.Join(models, "nan-weight"), 3, 3, func(name string, v []float32) (hf.DType, bool) {
		if name == "model.layers.1.mlp.down_proj.weight" {
			v[3*704+10] = float32(math.NaN()) // row 3, column 10
		}
		return "", false
	}, nil)
	// Finite weights whose products overflow float32: the forward's first non-finite activation
	// is block 2's MLP (RMSNorm makes the model blind to merely large values).
	infModel := writeModelVariant(t, filepath.Join(models, "inf-activation"), 3, 3, func(name string, v []float32) (hf.DType, bool) {
		if name == "model.layers.2.mlp.down_proj.weight" {
			for i := range v {
				v[i] = math.MaxFloat32
			}
			return hf.F32, true
		}
		return "", false
	}, nil)
	fewLayers := writeModelVariant(t, filepath.Join(models, "few-layers"), 5, 3, nil, nil)
	bigID := writeModelVariant(t, filepath.Join(models, "token-id-2p62"), 2, 2, nil, func(b []byte) []byte {
		var tj map[string]any
		if err := json.Unmarshal(b, &tj); err != nil {
			t.Fatal(err)
		}
		tj["model"].(map[string]any)["vocab"].(map[string]any)["<0x61>"] = json.Number("4611686018427387904")
		out, err := json.Marshal(tj)
		if err != nil {
			t.Fatal(err)
		}
		return out
	})

	embedded, err := filepath.Abs(embeddedModelDir) // the commands run in other folders
	if err != nil {
		t.Fatal(err)
	}
	texts := filepath.Join(root, "texts")
	if err := os.MkdirAll(filepath.Join(texts, "not-a-db"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) string {
		p := filepath.Join(texts, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badText := write("bad.txt", "Call me Ishmael.\nSome years \xff ago\n")
	badCases := write("cases.json", "[\"fine\", \"bad \xc3 here\"]")
	piqa := write("piqa.jsonl", piqaLines)
	// Sparse profiles whose relative db.path names no database: "missing" does not exist and
	// "not-a-db" is a folder without a manifest, both next to the profile.
	sparseProfile := func(name, dbPath string) string {
		return write(name, `{"format": "evopress-profile/v1", "mode": "sparse", "target": 0.5,
  "db": {"path": "`+dbPath+`"}, "levels": {"model.layers.0.mlp.up_proj": 1}}`)
	}
	missingDB := sparseProfile("missing-db.json", "missing")
	notDB := sparseProfile("not-a-db.json", "not-a-db")

	seqLen0 := []hostileCase{
		{name: "search seq-len 0", args: []string{"search", "drop", "--target", "0.25", "--seq-len", "0", "--out", "{out}/p.json"}, want: []string{"--seq-len 0"}},
		{name: "baseline seq-len 0", args: []string{"baseline", "drop", "--method", "shortgpt", "--target", "0.25", "--seq-len", "0", "--out", "{out}/p.json"}, want: []string{"--seq-len 0"}},
		{name: "db build seq-len 0", args: []string{"db", "build", "sparse", "--target", "0.5", "--seq-len", "0", "--out", "{out}/db"}, want: []string{"--seq-len 0"}},
		{name: "ppl seq-len 0", args: []string{"ppl", "--seq-len", "0"}, want: []string{"--seq-len 0"}},
	}
	counts := []hostileCase{
		{name: "search negative calib-tokens", args: []string{"search", "drop", "--target", "0.25", "--calib-tokens", "-1", "--out", "{out}/p.json"}, want: []string{"--calib-tokens -1"}},
		{name: "db build negative calib-tokens", args: []string{"db", "build", "quant", "--calib-tokens", "-5", "--out", "{out}/db"}, want: []string{"--calib-tokens -5"}},
		{name: "ppl negative max-seqs", args: []string{"ppl", "--max-seqs", "-1"}, want: []string{"--max-seqs -1"}},
		{name: "ppl batch 0", args: []string{"ppl", "--batch", "0"}, want: []string{"--batch 0"}},
		{name: "ppl batch -1", args: []string{"ppl", "--batch", "-1"}, want: []string{"--batch -1"}},
		{name: "eval batch 0", args: []string{"eval", "zeroshot", "--task", piqa, "--batch", "0"}, want: []string{"--batch 0"}, inputs: []string{piqa}},
		{name: "db build batch 0", args: []string{"db", "build", "sparse", "--target", "0.5", "--batch", "0", "--out", "{out}/db"}, want: []string{"--batch 0"}},
		{name: "db build batch -1", args: []string{"db", "build", "quant", "--batch", "-1", "--out", "{out}/db"}, want: []string{"--batch -1"}},
		{name: "db build block-size 0", args: []string{"db", "build", "sparse", "--target", "0.5", "--block-size", "0", "--out", "{out}/db"}, want: []string{"--block-size 0"}},
		{name: "search init-tokens 0", args: []string{"search", "drop", "--target", "0.25", "--init-tokens", "0", "--out", "{out}/p.json"}, want: []string{"--init-tokens 0"}},
		{name: "search cache-mb -1", args: []string{"search", "drop", "--target", "0.25", "--cache-mb", "-1", "--out", "{out}/p.json"}, want: []string{"--cache-mb -1"}},
		{name: "baseline max-profiles 0", args: []string{"baseline", "drop", "--method", "exhaustive", "--target", "0.25", "--max-profiles", "0", "--out", "{out}/p.json"}, want: []string{"--max-profiles 0"}},
		{name: "baseline sparse tokens 0", args: []string{"baseline", "sparse", "--method", "uniform", "--tokens", "0", "--out", "{out}/p.json"}, want: []string{"--tokens 0"}},
		{name: "search stages beyond the pool", args: []string{"search", "drop", "--target", "0.25", "--seq-len", "32", "--calib-tokens", "512",
			"--stages", "1:1024", "--out", "{out}/p.json"}, want: []string{"calibration pool holds only 16 chunks"}},
		{name: "workers 0 without NATS", args: []string{"search", "drop", "--target", "0.25", "--workers", "0", "--calib-tokens", "4096", "--out", "{out}/p.json"}, want: []string{"--workers 0"}},
	}
	okModel := writeModelVariant(t, filepath.Join(models, "two-blocks"), 2, 2, nil, nil)
	window := []hostileCase{
		{name: "ppl seq-len past the context", args: []string{"ppl", "--model", okModel, "--seq-len", "1025"},
			want: []string{"--seq-len 1025", "max_position_embeddings 1024 in " + filepath.Join(okModel, "config.json")}, inputs: []string{okModel}},
		{name: "search seq-len past the context", args: []string{"search", "drop", "--target", "0.25", "--seq-len", "2048", "--out", "{out}/p.json"},
			want: []string{"--seq-len 2048", "context of 1024 positions", "max_position_embeddings 1024", "config.json"}},
		{name: "db build seq-len past the context", args: []string{"db", "build", "sparse", "--target", "0.5", "--seq-len", "1025", "--out", "{out}/db"},
			want: []string{"--seq-len 1025", "max_position_embeddings 1024", "config.json"}},
		{name: "eval max-len past the context", args: []string{"eval", "zeroshot", "--task", piqa, "--max-len", "4096"},
			want: []string{"--max-len 4096", "max_position_embeddings 1024", "config.json"}, inputs: []string{piqa}},
	}

	broken := []hostileCase{
		{name: "ppl NaN weight", args: []string{"ppl", "--model", nanModel},
			want: []string{filepath.Join(nanModel, "model.safetensors"), "model.layers.1.mlp.down_proj.weight", "element 2122 [3 10] is NaN"}, inputs: []string{nanModel}},
		{name: "search NaN weight", args: []string{"search", "drop", "--model", nanModel, "--target", "0.25", "--out", "{out}/p.json"},
			want: []string{filepath.Join(nanModel, "model.safetensors"), "model.layers.1.mlp.down_proj.weight"}, inputs: []string{nanModel}},
		{name: "ppl Inf activation", args: []string{"ppl", "--model", infModel, "--seq-len", "64", "--max-seqs", "2"},
			want: []string{"model.layers.2.mlp", "first non-finite activation"}, inputs: []string{infModel}},
		{name: "ppl --kl Inf activation", args: []string{"ppl", "--model", infModel, "--seq-len", "64", "--max-seqs", "2", "--kl"},
			want: []string{"model.layers.2.mlp"}, inputs: []string{infModel}},
		{name: "search Inf activation", args: []string{"search", "drop", "--model", infModel, "--target", "0.34", "--seq-len", "32", "--calib-tokens", "512",
			"--offspring", "2", "--stages", "1:64", "--init-tokens", "64", "--generations", "1", "--out", "{out}/p.json"},
			want: []string{"the dense model", "model.layers.2.mlp", "first non-finite activation"}, inputs: []string{infModel},
			leaves: []string{"{out}/p.run"}}, // the dense distributions are computed when the search starts, after the run folder is made
		{name: "eval Inf activation", args: []string{"eval", "zeroshot", "--model", infModel, "--task", piqa, "--limit", "1"},
			want: []string{"model.layers.2.mlp", "first non-finite activation"}, inputs: []string{infModel, piqa}},
		{name: "too few layers in config", args: []string{"ppl", "--model", fewLayers},
			want: []string{filepath.Join(fewLayers, "config.json"), "num_hidden_layers is 3", "tensors of 5 blocks", "model.layers.3.input_layernorm.weight"}, inputs: []string{fewLayers}},
		{name: "db build too few layers", args: []string{"db", "build", "sparse", "--model", fewLayers, "--target", "0.5", "--out", "{out}/db"},
			want: []string{"num_hidden_layers is 3", "model.layers.3."}, inputs: []string{fewLayers}},
	}
	item6 := []hostileCase{
		{name: "relative db.path from another folder", args: []string{"ppl", "--profile", missingDB, "--max-seqs", "1"},
			want: []string{missingDB, `db.path "missing"`, "relative to the profile's folder", filepath.Join(texts, "missing")}, inputs: []string{texts}},
		{name: "db.path not a level database", args: []string{"ppl", "--profile", notDB, "--max-seqs", "1"},
			want: []string{notDB, "not a level database"}, inputs: []string{texts}},
		{name: "export db.path not a level database", args: []string{"export", "--model", okModel, "--profile", notDB, "--format", "hf", "--out", "{out}/export"},
			want: []string{notDB, "not a level database"}, inputs: []string{texts, okModel}},
		{name: "eval db.path not a level database", args: []string{"eval", "zeroshot", "--task", piqa, "--profile", notDB},
			want: []string{notDB, "not a level database"}, inputs: []string{texts}},
		{name: "tokenize token id 2^62", args: []string{"tokenize", "--tokenizer", bigID, "--text", "a"},
			want: []string{filepath.Join(bigID, "tokenizer.json"), "4611686018427387904", "out of range for a vocabulary"}, inputs: []string{bigID}},
		{name: "ppl token id 2^62", args: []string{"ppl", "--model", bigID},
			want: []string{"tokenizer.json", "4611686018427387904", "out of range for a vocabulary"}, inputs: []string{bigID}},
		{name: "tokenize invalid UTF-8 file", args: []string{"tokenize", "--tokenizer", embedded, "--cases", badCases},
			want: []string{badCases, "not valid UTF-8", "byte 0xc3 at offset 14"}, inputs: []string{badCases}},
		{name: "tokenize invalid UTF-8 text", args: []string{"tokenize", "--tokenizer", embedded, "--text", "ab\xfe"},
			want: []string{"--text", "not valid UTF-8", "byte 0xfe at offset 2"}},
		{name: "ppl invalid UTF-8", args: []string{"ppl", "--data", badText},
			want: []string{badText, "not valid UTF-8", "byte 0xff at offset 28"}, inputs: []string{badText}},
	}
	// Report and demo outputs over files of the same names (a run folder with only a profile
	// is enough for a report).
	runDir := filepath.Join(texts, "runs", "p.run")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join("runs", "p.json"), `{"format": "evopress-profile/v1", "mode": "drop", "target": 0.25,
  "levels": {"model.layers.0.self_attn": 1, "model.layers.0.mlp": 0, "model.layers.1.self_attn": 0, "model.layers.1.mlp": 1}}`)
	folder := func(name string, files map[string]string) string {
		dir := filepath.Join(texts, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, body := range files {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
				t.Fatal(err)
			}
			write(filepath.Join(name, f), body)
		}
		return dir
	}
	notesMD := folder("notes-md", map[string]string{"report.md": "# My notes\n"})
	notesPNG := folder("notes-png", map[string]string{"drop-profile.png": "\x89PNG\r\n\x1a\nmy picture"})
	earlier := folder("earlier", nil)
	if out, err := run(t, "report", runDir, "--out", earlier); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	demoResults := folder("demo-results", map[string]string{"results.json": `{"my": "results"}`})
	demoHTML := folder("demo-html", map[string]string{"report.html": "<!DOCTYPE html><p>mine</p>"})
	demoRun := folder("demo-run", map[string]string{"drop-evopress.run/notes.txt": "mine", "drop-evopress.run/report.md": "# mine"})
	demoGGUF := folder("demo-gguf", map[string]string{"gguf-evopress.gguf": "GGUF\x03\x00\x00\x00 my model"})
	demoEval := folder("demo-eval", map[string]string{"eval.txt": "my text\n"})
	demoModelfile := folder("demo-modelfile", map[string]string{"Modelfile": "FROM ./mine.gguf\n"})
	outputs := []hostileCase{
		{name: "report over a foreign report.md", args: []string{"report", runDir, "--out", notesMD, "--force"},
			want: []string{filepath.Join(notesMD, "report.md"), "not a report file evopress wrote", "--out"}, inputs: []string{texts}},
		{name: "report over a foreign PNG", args: []string{"report", runDir, "--out", notesPNG},
			want: []string{filepath.Join(notesPNG, "drop-profile.png"), "without the evopress-report/v1 marker", "even with --force"}, inputs: []string{texts}},
		{name: "report over an earlier report", args: []string{"report", runDir, "--out", earlier},
			want: []string{filepath.Join(earlier, "report.md"), "earlier report", "--force"}, inputs: []string{texts}},
		{name: "demo over foreign results.json", args: []string{"demo", "--quick", "--out", demoResults, "--cache", "{out}/cache"},
			want: []string{"--out " + filepath.Join(demoResults, "results.json"), "not the demo's results"}, inputs: []string{texts}},
		{name: "demo over a foreign report.html", args: []string{"demo", "--quick", "--out", demoHTML, "--cache", "{out}/cache"},
			want: []string{filepath.Join(demoHTML, "report.html"), "not a report file evopress wrote"}, inputs: []string{texts}},
		{name: "demo over a foreign run folder", args: []string{"demo", "--quick", "--out", demoRun, "--cache", "{out}/cache"},
			want: []string{filepath.Join(demoRun, "drop-evopress.run"), "not a search's run folder"}, inputs: []string{texts}},
		{name: "demo over a foreign GGUF file", args: []string{"demo", "--quick", "--out", demoGGUF, "--cache", "{out}/cache"},
			want: []string{filepath.Join(demoGGUF, "gguf-evopress.gguf"), "not a GGUF file written by evopress export"}, inputs: []string{texts}},
		{name: "demo over a foreign eval.txt", args: []string{"demo", "--quick", "--out", demoEval, "--cache", "{out}/cache"},
			want: []string{filepath.Join(demoEval, "eval.txt"), "not the file the demo writes there"}, inputs: []string{texts}},
		{name: "demo over a foreign Modelfile", args: []string{"demo", "--quick", "--out", demoModelfile, "--cache", "{out}/cache"},
			want: []string{filepath.Join(demoModelfile, "Modelfile"), "not the file the demo writes there"}, inputs: []string{texts}},
	}
	// A run folder another process's search holds (this test process holds its lock).
	busyRun := folder(filepath.Join("busy", "p.run"), nil)
	lk, err := dirlock.Acquire(filepath.Join(busyRun, pipeline.RunLockFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lk.Release() })
	busy := "run folder " + busyRun + " is in use by another process (pid " + strconv.Itoa(os.Getpid()) + ")"
	outputs = append(outputs,
		hostileCase{name: "search into a run folder in use", args: []string{"search", "drop", "--target", "0.25", "--out", filepath.Join(texts, "busy", "p.json")},
			want: []string{busy}, inputs: []string{texts}},
		hostileCase{name: "resume a run folder in use", args: []string{"search", "drop", "--target", "0.25", "--resume", "--out", filepath.Join(texts, "busy", "p.json")},
			want: []string{busy}, inputs: []string{texts}})
	clusterFlags := []hostileCase{
		{name: "worker cache-mb 0", args: []string{"worker", "--cache-mb", "0"}, want: []string{"--cache-mb 0: must be at least 1"}},
		{name: "worker db-cache-mb -1", args: []string{"worker", "--db-cache-mb", "-1"}, want: []string{"--db-cache-mb -1: must be at least 1"}},
		{name: "worker connect-timeout -1s", args: []string{"worker", "--connect-timeout", "-1s"}, want: []string{"--connect-timeout -1s: must be at least 0s"}},
		{name: "search worker-timeout 0", args: []string{"search", "drop", "--target", "0.25", "--worker-timeout", "0", "--out", "{out}/p.json"},
			want: []string{"--worker-timeout 0s: must be at least 2s"}},
		{name: "search worker-timeout -5s", args: []string{"search", "drop", "--target", "0.25", "--worker-timeout", "-5s", "--out", "{out}/p.json"},
			want: []string{"--worker-timeout -5s"}},
		{name: "search task-timeout -1s", args: []string{"search", "drop", "--target", "0.25", "--task-timeout", "-1s", "--out", "{out}/p.json"},
			want: []string{"--task-timeout -1s: must be at least 0s"}},
	}
	for _, group := range [][]hostileCase{seqLen0, counts, window, broken, item6, outputs, clusterFlags} {
		for _, c := range group {
			t.Run(c.name, func(t *testing.T) { runHostile(t, c) })
		}
	}
}

// TestProfileDBPathFromAnotherFolder: a sparse profile written with --db relative to the working
// directory records db.path relative to its own folder, and ppl finds the database from any
// working directory.
func TestProfileDBPathFromAnotherFolder(t *testing.T) {
	small := smallModel(t) // before the working directory changes (it reads the repository's assets)
	root := t.TempDir()
	t.Chdir(root)
	for _, d := range []string{"runs", "elsewhere"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := run(t, "db", "build", "sparse", "--model", small, "--target", "0.5", "--levels", "1", "--seq-len", "32",
		"--calib-tokens", "512", "--out", "dbs/s50"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := run(t, "baseline", "sparse", "--model", small, "--db", "dbs/s50", "--method", "uniform", "--target", "0.5",
		"--seq-len", "32", "--calib-tokens", "512", "--tokens", "64", "--out", "runs/u.json", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, `"path": "../dbs/s50"`) { // --json prints what the file holds
		t.Errorf("--json does not print db.path as the profile file holds it:\n%s", out)
	}
	raw, err := os.ReadFile("runs/u.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"path": "../dbs/s50"`) {
		t.Errorf("db.path is not relative to the profile's folder:\n%s", raw)
	}
	t.Chdir(filepath.Join(root, "elsewhere"))
	if out, err := run(t, "ppl", "--model", small, "--profile", "../runs/u.json", "--seq-len", "32", "--max-seqs", "1"); err != nil {
		t.Errorf("ppl from another folder: %v\n%s", err, out)
	}
}
