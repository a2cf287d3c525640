package search_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
)

func TestFormatProgress(t *testing.T) {
	for _, tc := range []struct {
		p    search.Progress
		want string
	}{
		{search.Progress{Mode: "drop", Generation: 0, Generations: 18, Best: math.NaN(), ETA: -1},
			"drop init  0/18 best - evals 0 tokens 0 elapsed 0s eta ?"},
		{search.Progress{Mode: "quant", Generation: 3, Generations: 150, Best: 0.0123456789, Replaced: true, Evaluations: 1234,
			Tokens: 3_100_000, Elapsed: 62*time.Second + 400*time.Millisecond, ETA: 9*time.Minute + 40*time.Second},
			"quant gen 3/150 best 0.0123457 * evals 1234 tokens 3.10M elapsed 1m2s eta 9m40s"},
		{search.Progress{Mode: "sparse", Generation: 400, Generations: 400, Best: 2, Tokens: 12345, Elapsed: 1500 * time.Millisecond},
			"sparse gen 400/400 best 2 evals 0 tokens 12.3k elapsed 1.5s eta 0s"},
		{search.Progress{Mode: "drop", Generation: 2, Generations: 4, Best: 1, ETA: -1, Workers: []search.WorkerStatus{
			{ID: "a", Connected: true, Rate: 4.123}, {ID: "b", Connected: false, Rate: 9}, {ID: "c", Connected: true, Rate: 12.5}}},
			"drop gen 2/4 best 1 evals 0 tokens 0 elapsed 0s eta ? workers 2/3 [a 4.12/s, b lost, c 12.5/s]"},
	} {
		if got := search.FormatProgress(tc.p); got != tc.want {
			t.Errorf("FormatProgress = %q\nwant             %q", got, tc.want)
		}
	}
}

func runWithObservers(t *testing.T, obs ...search.Observer) {
	t.Helper()
	mode, _ := drop.NewK(6, 2, drop.Options{})
	cfg := search.Config{Offspring: 4, Stages: []search.Stage{{1, 64}}, Generations: 3, SeqLen: 64, PoolChunks: 4, InitTokens: 64}
	var opts []search.Option
	for _, o := range obs {
		opts = append(opts, search.WithObserver(o))
	}
	if _, err := search.Run(context.Background(), cfg, mode, fnEval{f: linearFitness(dropCosts(6, 1), 1)}, opts...); err != nil {
		t.Fatal(err)
	}
}

func TestProgressPrinter(t *testing.T) {
	var plain bytes.Buffer
	pp := search.NewProgressPrinter(&plain)
	if pp.Terminal {
		t.Fatal("a buffer detected as a terminal")
	}
	var term bytes.Buffer
	tp := search.NewProgressPrinter(&term)
	tp.Terminal = true
	runWithObservers(t, pp.Observe, tp.Observe)
	lines := strings.Split(strings.TrimSuffix(plain.String(), "\n"), "\n")
	if len(lines) != 4 || strings.Contains(plain.String(), "\r") || !strings.HasPrefix(lines[3], "drop gen 3/3 best ") {
		t.Fatalf("plain output:\n%s", plain.String())
	}
	out := term.String()
	if strings.Count(out, "\r") != 4 || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("terminal output %q", out)
	}
	tp.Finish() // nothing open: no output
	if term.String() != out {
		t.Fatal("Finish wrote after a completed run")
	}
	tp.Observe(search.Progress{Mode: "drop", Generation: 1, Generations: 5, ETA: -1})
	tp.Finish()
	if !strings.HasSuffix(term.String(), "\n") {
		t.Fatal("Finish did not end the open line")
	}
}

func TestJSONLogger(t *testing.T) {
	var buf bytes.Buffer
	jl := search.NewJSONLogger(&buf)
	runWithObservers(t, jl.Observe)
	jl.Observe(search.Progress{Mode: "drop", Best: math.NaN(), ETA: -1})
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		for _, k := range []string{"time", "msg", "mode", "generation", "generations", "best", "replaced", "evaluations", "tokens", "elapsed_s", "eta_s"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("line %d lacks %q: %s", i, k, l)
			}
		}
		if i < 4 && m["generation"].(float64) != float64(i) {
			t.Fatalf("line %d has generation %v", i, m["generation"])
		}
	}
	if !strings.Contains(lines[4], `"best":"NaN"`) {
		t.Fatalf("NaN best logged as %s", lines[4])
	}
}
