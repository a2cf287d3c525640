package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	piqaLines = `{"goal":"To open a locked door,","sol1":"use the key.","sol2":"use a spoon of soup.","label":0}
{"goal":"To dry wet hands,","sol1":"use a towel.","sol2":"use a glass of water.","label":0}
{"goal":"To see in the dark,","sol1":"close your eyes.","sol2":"turn on a lamp.","label":1}
`
	winoLines = `{"sentence":"The trophy did not fit in the suitcase because the _ was too small.","option1":"trophy","option2":"suitcase","answer":"2"}
{"sentence":"The trophy did not fit in the suitcase because the _ was too big.","option1":"trophy","option2":"suitcase","answer":"1"}
`
)

type zsResult struct {
	Task          string   `json:"task"`
	N             int      `json:"n"`
	Acc           *float64 `json:"acc"`
	AccNorm       *float64 `json:"acc_norm"`
	AccStderr     *float64 `json:"acc_stderr"`
	AccNormStderr *float64 `json:"acc_norm_stderr"`
	Requests      int      `json:"requests"`
}

func (r zsResult) check(t *testing.T, task string, n, requests int) {
	t.Helper()
	if r.Task != task || r.N != n || r.Requests != requests {
		t.Errorf("task %q n %d requests %d, want %q %d %d", r.Task, r.N, r.Requests, task, n, requests)
	}
	for name, v := range map[string]*float64{"acc": r.Acc, "acc_norm": r.AccNorm, "acc_stderr": r.AccStderr, "acc_norm_stderr": r.AccNormStderr} {
		if v == nil || *v < 0 || *v > 1 {
			t.Errorf("%s: %v missing or outside [0, 1]", name, v)
		}
	}
	// acc is a count of n items; the stderr is lm-eval's √(p(1−p)·n/(n−1)/n).
	if r.Acc != nil && r.AccStderr != nil {
		p := *r.Acc
		k := p * float64(n)
		if d := k - float64(int(k+0.5)); d > 1e-9 || d < -1e-9 {
			t.Errorf("acc %v is not a multiple of 1/%d", p, n)
		}
		if want := p * (1 - p) / float64(n-1); (*r.AccStderr)*(*r.AccStderr)-want > 1e-12 || want-(*r.AccStderr)*(*r.AccStderr) > 1e-12 {
			t.Errorf("acc_stderr %v, want √%v", *r.AccStderr, want)
		}
	}
}

func TestEvalZeroshotCLI(t *testing.T) {
	dir := t.TempDir()
	piqa := filepath.Join(dir, "piqa_hand.jsonl")
	wino := filepath.Join(dir, "wino.jsonl")
	bad := filepath.Join(dir, "bad.jsonl")
	for p, s := range map[string]string{piqa: piqaLines, wino: winoLines, bad: piqaLines + `{"goal":"g","sol1":"a"}` + "\n"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	out, err := run(t, "eval", "zeroshot", "--task", piqa, "--limit", "2", "--batch", "3", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var one zsResult
	if err := json.Unmarshal([]byte(out), &one); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	one.check(t, "piqa", 2, 4)

	out, err = run(t, "eval", "zeroshot", "--task", piqa, "--task", wino, "--add-bos", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var many []zsResult
	if err := json.Unmarshal([]byte(out), &many); err != nil || len(many) != 2 {
		t.Fatalf("%v, %d results in %s", err, len(many), out)
	}
	many[0].check(t, "piqa", 3, 6)
	many[1].check(t, "winogrande", 2, 4)
	// WinoGrande's choices share the scored suffix: length normalisation cannot change the argmax.
	if *many[1].Acc != *many[1].AccNorm {
		t.Errorf("winogrande acc %v != acc_norm %v", *many[1].Acc, *many[1].AccNorm)
	}

	out, err = run(t, "eval", "zeroshot", "--task", wino, "--task-type", "winogrande")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"acc_norm", "winogrande", "wino.jsonl", "±"} {
		if !strings.Contains(out, w) {
			t.Errorf("table lacks %q:\n%s", w, out)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "zeroshot"}, "no --task"},
		{[]string{"eval", "zeroshot", "--task", piqa, "--task-type", "mmlu"}, `unknown task type "mmlu"`},
		{[]string{"eval", "zeroshot", "--task", bad}, "bad.jsonl:4: piqa: field \"sol2\": missing"},
		{[]string{"eval", "zeroshot", "--task", piqa, "--task-type", "arc"}, "piqa_hand.jsonl:1: arc: field \"question\": missing"},
		{[]string{"eval", "zeroshot", "--task", filepath.Join(dir, "none.jsonl")}, "none.jsonl"},
		{[]string{"eval", "zeroshot", "--task", piqa, "--batch", "0"}, "--batch"},
	} {
		if _, err := run(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
