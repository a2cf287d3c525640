package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/db"
)

// TestDBBuildCLI builds small sparse and quant databases of the embedded model cut to 5 blocks through the CLI, checks
// the JSON summary, verifies them, and checks that a rerun resumes (reuses every layer).
func TestDBBuildCLI(t *testing.T) {
	modelDir := smallModel(t)
	calibFile := embeddedCalib
	tmp := t.TempDir()
	for _, tc := range []struct {
		args   []string
		mode   string
		levels int
	}{
		{[]string{"db", "build", "sparse", "--target", "0.6", "--levels", "2", "--method", "wanda"}, db.ModeSparse, 5},
		{[]string{"db", "build", "quant", "--bits", "4,2", "--method", "rtn", "--group-size", "64"}, db.ModeQuant, 2},
	} {
		out := filepath.Join(tmp, tc.mode)
		args := append(tc.args, "--model", modelDir, "--calib", calibFile, "--calib-tokens", "2048", "--seed", "3", "--out", out, "--json")
		stdout, err := run(t, args...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		var res struct {
			Fingerprint string
			Layers      int
			Computed    int
			Reused      int
			Calibration db.CalibInfo
			Levels      []struct {
				Level          int
				BytesPerWeight float64 `json:"bytes_per_weight"`
			}
		}
		if err := json.Unmarshal([]byte(jsonPart(stdout)), &res); err != nil {
			t.Fatalf("output is not one JSON object: %v\n%s", err, stdout)
		}
		if res.Layers != 35 || res.Computed != 35 || res.Reused != 0 || len(res.Levels) != tc.levels {
			t.Errorf("%s: %+v", tc.mode, res)
		}
		if c := res.Calibration; c.Sequences != 8 || c.SeqLen != 256 || c.Seed != 3 || c.Source != filepath.Clean(calibFile) {
			t.Errorf("%s: calibration %+v", tc.mode, c)
		}
		d, err := db.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if d.Fingerprint() != res.Fingerprint {
			t.Error("printed fingerprint differs from the database's")
		}
		if _, err := run(t, "db", "verify", out, "--model", modelDir); err != nil {
			t.Errorf("verify: %v", err)
		}
		// Rerunning resumes: nothing is computed again.
		stdout, err = run(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		json.Unmarshal([]byte(jsonPart(stdout)), &res)
		if res.Computed != 0 || res.Reused != 35 {
			t.Errorf("%s rerun: computed %d, reused %d", tc.mode, res.Computed, res.Reused)
		}
	}
	// The embedded model is not the database's model.
	if _, err := run(t, "db", "verify", filepath.Join(tmp, db.ModeQuant), "--check-model"); err == nil || !strings.Contains(err.Error(), "built for model") {
		t.Errorf("verify against another model: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"db", "build", "sparse", "--target", "0.5"}, "--out"},
		{[]string{"db", "build", "sparse", "--out", tmp + "/x"}, "--target"},
		{[]string{"db", "build", "quant", "--bits", "2,9", "--out", tmp + "/x"}, "--bits"},
		{[]string{"db", "build", "quant", "--method", "awq", "--out", tmp + "/x", "--model", modelDir, "--calib", calibFile, "--calib-tokens", "256"}, "method"},
		{[]string{"db", "build", "quant", "--out", filepath.Join(tmp, db.ModeQuant), "--model", modelDir, "--calib", calibFile, "--calib-tokens", "2048", "--seed", "3", "--method", "rtn", "--bits", "3"}, "other settings"},
		{[]string{"db", "verify", tmp}, "not a level database"},
	} {
		if _, err := run(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

// jsonPart drops the progress lines ("db: …", on stderr, which run captures with stdout).
func jsonPart(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "db: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
