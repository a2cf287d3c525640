package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/gguf"
	"github.com/evopress/evopress/pipeline"
	"github.com/evopress/evopress/profile"
)

const sharedDir = "../../../shared"

func needShared(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(sharedDir); err != nil {
		t.Skipf("skipping: %s (shared models, data and reference numbers) is absent", sharedDir)
	}
}

// run executes the CLI in-process and returns stdout.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out syncBuffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// syncBuffer is a bytes.Buffer safe for the concurrent writers of a command (progress lines,
// cluster logs).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type pplRef struct {
	PPL         float64 `json:"ppl"`
	NLL         float64 `json:"nll"`
	Tokens      int     `json:"tokens"`
	Seqs        int     `json:"seqs"`
	TotalTokens int     `json:"total_tokens"`
}

// TestPPLReference checks `evopress ppl --json` against PyTorch's perplexities over whole files.
// The WikiText-2 cases (whole file, about 300k tokens each) run only with EVOPRESS_LONG_TESTS=1;
// the held-out text cases check the same protocol on every run.
func TestPPLReference(t *testing.T) {
	needShared(t)
	tests := []struct {
		model, data, format, ref string
		long                     bool
	}{
		{"babyllama-1m", "pd-english/eval.txt", "raw", "babyllama-1m.pd-eval.json", false},
		{"babyllama-1m", "wikitext-2-raw/wiki.test.raw", "wikitext", "babyllama-1m.wikitext.json", true},
		{"llama-pd-11m", "pd-english/eval.txt", "raw", "llama-pd-11m.pd-eval.json", false},
		{"llama-pd-11m", "wikitext-2-raw/wiki.test.raw", "wikitext", "llama-pd-11m.wikitext.json", true},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			if tc.long && os.Getenv("EVOPRESS_LONG_TESTS") == "" {
				t.Skip("long (set EVOPRESS_LONG_TESTS=1 to run)")
			}
			raw, err := os.ReadFile(filepath.Join(sharedDir, "reference", "ppl", tc.ref))
			if err != nil {
				t.Fatal(err)
			}
			var want pplRef
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			out, err := run(t, "ppl", "--model", filepath.Join(sharedDir, "models", tc.model),
				"--data", filepath.Join(sharedDir, "data", tc.data), "--format", tc.format, "--seq-len", "256", "--json")
			if err != nil {
				t.Fatal(err)
			}
			var fields map[string]any
			if err := json.Unmarshal([]byte(out), &fields); err != nil {
				t.Fatalf("output is not one JSON object: %v\n%s", err, out)
			}
			got := map[string]float64{}
			for k, v := range fields {
				if f, ok := v.(float64); ok {
					got[k] = f
				}
			}
			if k, _ := fields["kernels"].(string); k == "" {
				t.Errorf("JSON lacks the kernels that computed it")
			}
			for _, f := range []string{"ppl", "nll", "tokens", "total_tokens", "seqs", "seq_len", "tokens_per_second"} {
				if _, ok := got[f]; !ok {
					t.Errorf("JSON lacks field %q", f)
				}
			}
			if int(got["tokens"]) != want.Tokens || int(got["seqs"]) != want.Seqs || int(got["total_tokens"]) != want.TotalTokens {
				t.Errorf("tokens/seqs/total = %v/%v/%v, want %d/%d/%d", got["tokens"], got["seqs"], got["total_tokens"], want.Tokens, want.Seqs, want.TotalTokens)
			}
			if rel := math.Abs(got["nll"]-want.NLL) / want.NLL; rel > 1e-5 {
				t.Errorf("nll %.7f, want %.7f (relative error %.2g > 1e-5)", got["nll"], want.NLL, rel)
			}
			t.Logf("ppl %.4f (reference %.4f), %.0f tokens/s", got["ppl"], want.PPL, got["tokens_per_second"])
		})
	}
}

func TestPPLErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ppl", "--format", "c4"}, "unknown text format"},
		{[]string{"ppl", "--model", "/nonexistent/model"}, "/nonexistent/model"},
		{[]string{"ppl", "--data", "/nonexistent.txt"}, "/nonexistent.txt"},
		{[]string{"ppl", "--seq-len", "1"}, "seq-len"},
		{[]string{"search", "sparse", "--target", "0.5", "--out", "x.json"}, "--db is required"},
		{[]string{"search", "drop", "--target", "0.25"}, "--out is required"},
	}
	for _, tc := range tests {
		_, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func TestDemoQuick(t *testing.T) {
	dir := t.TempDir()
	out, err := run(t, "demo", "--quick", "--out", dir, "--cache", filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| dense |", "| shortgpt | drop |", "| window-cosine | drop |", "| shortened-ppl | drop |",
		"| EvoPress | drop |", "| uniform SparseGPT | sparse |", "| EvoPress | sparse |", "| uniform GPTQ | quant |", "| EvoPress | quant |",
		"| llama.cpp Q3_K_M | gguf |", "| uniform q3_K | gguf |", "| EvoPress | gguf |", "greedy sample",
		"llama-perplexity -m " + filepath.Join(dir, "gguf-evopress.gguf") + " -f " + filepath.Join(dir, "eval.txt"),
		"llama-completion -m " + filepath.Join(dir, "gguf-evopress.gguf") + " -p 'The President said that'",
		"ollama create evopress-demo -f Modelfile && ollama run evopress-demo"} {
		if !strings.Contains(out, s) {
			t.Errorf("demo output lacks %q:\n%s", s, out)
		}
	}
	for _, f := range []string{"report.md", "results.json", "drop-evopress.json", "sparse-evopress.json", "quant-evopress.json", "gguf-evopress.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	checkDemoGGUF(t, dir)
	// Every profile the demo wrote evaluates through the CLI.
	for _, f := range []string{"drop-evopress.json", "sparse-evopress.json", "quant-evopress.json", "gguf-evopress.json"} {
		if _, err := run(t, "ppl", "--profile", filepath.Join(dir, f), "--max-seqs", "1"); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// The demo's run folders and profiles are what `evopress search` and `evopress baseline`
	// write for the same settings: re-run the commands the demo's profiles record.
	again := t.TempDir()
	for _, name := range []string{"drop-evopress", "quant-evopress", "drop-shortgpt", "sparse-uniform", "gguf-evopress", "gguf-q3_k_m"} {
		demoProfile := filepath.Join(dir, name+".json")
		p, err := profile.Read(demoProfile, "")
		if err != nil {
			t.Fatal(err)
		}
		args := strings.Fields(string(p.Search.Command))
		if len(args) < 3 || args[0] != "evopress" || args[len(args)-2] != "--out" || args[len(args)-1] != demoProfile {
			t.Fatalf("%s records the command %q, want evopress … --out %s", name, p.Search.Command, demoProfile)
		}
		rerun := filepath.Join(again, name+".json")
		args[len(args)-1] = rerun
		if _, err := run(t, args[1:]...); err != nil {
			t.Fatalf("%s: %v", p.Search.Command, err)
		}
		q, err := profile.Read(rerun, "")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p.Levels, q.Levels) || !reflect.DeepEqual(p.Values, q.Values) || !reflect.DeepEqual(p.Fitness, q.Fitness) {
			t.Errorf("%s: the demo's profile differs from its command's", name)
		}
		if !strings.HasSuffix(name, "-evopress") {
			continue
		}
		if p.Search.Generations != q.Search.Generations || p.Search.Evaluations != q.Search.Evaluations || p.Search.Tokens != q.Search.Tokens {
			t.Errorf("%s: demo ran %d generations, %d evaluations, %d tokens; the command %d, %d, %d", name,
				p.Search.Generations, p.Search.Evaluations, p.Search.Tokens, q.Search.Generations, q.Search.Evaluations, q.Search.Tokens)
		}
		for _, f := range []string{"checkpoint.json", "log.jsonl", "result.json", "report.md", "report.html"} {
			if _, err := os.Stat(filepath.Join(dir, name+".run", f)); err != nil {
				t.Errorf("demo run folder: %v", err)
			}
			if _, err := os.Stat(filepath.Join(again, name+".run", f)); err != nil {
				t.Errorf("search run folder: %v", err)
			}
		}
		var demoGens, cmdGens []string
		for _, pair := range []struct {
			path string
			best *[]string
		}{{filepath.Join(dir, name+".run", "log.jsonl"), &demoGens}, {filepath.Join(again, name+".run", "log.jsonl"), &cmdGens}} {
			b, err := os.ReadFile(pair.path)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var rec struct{ Best json.RawMessage }
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("%s: %v", pair.path, err)
				}
				*pair.best = append(*pair.best, string(rec.Best))
			}
		}
		if !reflect.DeepEqual(demoGens, cmdGens) || len(demoGens) == 0 {
			t.Errorf("%s: best fitness by generation: demo %v, command %v", name, demoGens, cmdGens)
		}
	}
}

// checkDemoGGUF checks the demo's GGUF step in its folder dir: three gguf rows in results.json
// (bits per weight and file sizes; the uniform file and EvoPress's no larger than the Q3_K_M
// recipe's), EvoPress's file readable by package gguf with the linear layers in several types
// and the size its row reports, the held-out text and Modelfile next to it, and the report's
// section with the commands.
func checkDemoGGUF(t *testing.T, dir string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []pipeline.DemoRow
	if err := json.Unmarshal(raw, &rows); err != nil {
		t.Fatal(err)
	}
	byMethod := map[string]pipeline.DemoRow{}
	for _, r := range rows {
		if r.Mode == "gguf" {
			byMethod[r.Method] = r
		}
	}
	recipe, uniform, evo := byMethod["llama.cpp Q3_K_M"], byMethod["uniform q3_K"], byMethod["EvoPress"]
	if len(byMethod) != 3 || recipe.FileBytes == 0 || uniform.FileBytes == 0 || evo.FileBytes == 0 {
		t.Fatalf("gguf rows %+v, want the Q3_K_M recipe, uniform q3_K and EvoPress with file sizes", byMethod)
	}
	for _, r := range []pipeline.DemoRow{recipe, uniform, evo} {
		if !(r.BitsPerWeight > 2 && r.BitsPerWeight < 9) || !(r.KL > 0) || !(r.PPL > 1) || r.Budget != recipe.Budget {
			t.Errorf("gguf row %+v: bits per weight, KL, perplexity or budget out of place (budget %q)", r, recipe.Budget)
		}
	}
	if uniform.FileBytes > recipe.FileBytes || evo.FileBytes > recipe.FileBytes || evo.BitsPerWeight <= uniform.BitsPerWeight {
		t.Errorf("file sizes: recipe %d, uniform %d, EvoPress %d (bits per weight %.3f, uniform %.3f): want the others no larger than the recipe, EvoPress above uniform",
			recipe.FileBytes, uniform.FileBytes, evo.FileBytes, evo.BitsPerWeight, uniform.BitsPerWeight)
	}
	file := filepath.Join(dir, "gguf-evopress.gguf")
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != evo.FileBytes {
		t.Errorf("%s has %d bytes, its row says %d", file, st.Size(), evo.FileBytes)
	}
	f, err := gguf.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	layerTypes := map[ggml.Type]int{}
	for _, ti := range f.Tensors {
		if strings.HasPrefix(ti.Name, "blk.") && strings.HasSuffix(ti.Name, ".weight") && !strings.Contains(ti.Name, "_norm") {
			layerTypes[ti.Type]++
		}
	}
	if n := sum(layerTypes); n != 84 || len(layerTypes) < 3 {
		t.Errorf("%s: linear layers by type %v (%d layers), want 84 in at least 3 types", file, layerTypes, n)
	}
	if arch, _ := f.Lookup("general.architecture"); arch != "llama" {
		t.Errorf("%s: general.architecture %v", file, arch)
	}
	for name, want := range map[string]string{"eval.txt": "", "Modelfile": "FROM ./gguf-evopress.gguf\n"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if want == "" {
			b, _ := assets.ReadFile(assets.EvalText)
			want = string(b)
		}
		if string(got) != want {
			t.Errorf("%s: %d bytes, not the demo's", name, len(got))
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## Mixed-precision GGUF", "| bits/weight | file bytes |", "llama-perplexity -m ", "ollama run evopress-demo"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("report.md lacks %q", s)
		}
	}
	// The report lists the GGUF rows in the demo's order (they share the budget they are compared at).
	var methods []string
	for _, line := range strings.Split(string(md), "\n") {
		if cells := strings.Split(line, " | "); strings.HasPrefix(line, "| gguf |") && len(cells) > 2 {
			methods = append(methods, cells[2])
		}
	}
	if want := []string{`llama.cpp Q3\_K\_M`, `uniform q3\_K`, "EvoPress"}; !reflect.DeepEqual(methods, want) {
		t.Errorf("report.md's gguf rows %q, want %q", methods, want)
	}
}

func sum[K comparable](m map[K]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestTokenizeCLI(t *testing.T) {
	needShared(t)
	out, err := run(t, "tokenize", "--tokenizer", filepath.Join(sharedDir, "models", "llama-pd-11m"),
		"--cases", filepath.Join(sharedDir, "reference", "tokenizer", "cases.json"), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ IDs [][]int }
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(sharedDir, "reference", "tokenizer", "llama-pd-11m.ids.json"))
	var want [][]int
	json.Unmarshal(raw, &want)
	if len(got.IDs) != len(want) {
		t.Fatalf("%d cases, want %d", len(got.IDs), len(want))
	}
	for i := range want {
		if len(got.IDs[i]) != len(want[i]) {
			t.Errorf("case %d: %d ids, want %d", i, len(got.IDs[i]), len(want[i]))
			continue
		}
		for j := range want[i] {
			if got.IDs[i][j] != want[i][j] {
				t.Errorf("case %d: ids differ at %d", i, j)
				break
			}
		}
	}
}
