package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImatrixCLI(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pd.imatrix.dat")
	stdout, err := run(t, "imatrix", "--seq-len", "32", "--chunks", "2", "--out", out, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Out, Format     string
		Chunks, Entries int
		SeqLen          int  `json:"seq_len"`
		BOS             bool `json:"bos"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if res.Out != out || res.Format != "dat" || res.Chunks != 2 || res.SeqLen != 32 || !res.BOS || res.Entries != 84 {
		t.Errorf("outcome %+v", res)
	}
	before, _ := os.ReadFile(out)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", out}, "--force"},
		{[]string{"--out", out + "2", "--chunks", "-1"}, "--chunks -1"},
		{[]string{"--out", out + "2", "--format", "bin"}, "--format bin"},
		{[]string{"--seq-len", "1", "--out", out + "2"}, "--seq-len 1"},
		{nil, "--out is required"},
	} {
		if _, err := run(t, append([]string{"imatrix"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("imatrix %v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if after, _ := os.ReadFile(out); string(after) != string(before) {
		t.Error("a refused command changed --out")
	}
}
