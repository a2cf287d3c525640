package main

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/profile"
)

// runBaselineDBCmd executes `baseline sparse|quant` in-process (through a parent of its own, so
// the test does not depend on where the commands are hooked in) and returns stdout and stderr.
func runBaselineDBCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"baseline"}, args...))
	err := root.Execute()
	return out.String(), err
}

// TestBaselineDBCLI builds small sparse and quant databases of the embedded model cut to 5 blocks and runs every
// baseline method over them, checking the budgets, the DP's optimality against uniform on the
// summed errors, and the determinism of random.
func TestBaselineDBCLI(t *testing.T) {
	tmp := t.TempDir()
	modelDir := smallModel(t)
	calibFile := embeddedCalib
	sparseDB, quantDB := filepath.Join(tmp, "sparse"), filepath.Join(tmp, "quant")
	for _, args := range [][]string{
		{"db", "build", "sparse", "--target", "0.6", "--levels", "2", "--method", "wanda", "--out", sparseDB},
		{"db", "build", "quant", "--bits", "2,3,4", "--method", "rtn", "--group-size", "64", "--out", quantDB},
	} {
		if out, err := run(t, append(args, "--model", modelDir, "--calib", calibFile, "--calib-tokens", "2048", "--seed", "3")...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	common := []string{"--model", modelDir, "--calib", calibFile, "--seq-len", "64", "--calib-tokens", "2048", "--tokens", "256", "--seed", "5"}
	baseline := func(mode, method, out string, extra ...string) *profile.Profile {
		t.Helper()
		dir := sparseDB
		if mode == db.ModeQuant {
			dir = quantDB
		}
		args := append([]string{mode, "--method", method, "--db", dir, "--out", out}, common...)
		if stdout, err := runBaselineDBCmd(t, append(args, extra...)...); err != nil {
			t.Fatalf("%s %s: %v\n%s", mode, method, err, stdout)
		}
		p, err := profile.Read(out, "")
		if err != nil {
			t.Fatal(err)
		}
		if p.Method != method || p.Mode != mode || p.DB == nil || p.Fitness == nil || len(p.Levels) != 35 || len(p.Values) != 35 {
			t.Fatalf("%s %s: profile method %q mode %q db %v fitness %v, %d levels, %d values", mode, method, p.Method, p.Mode, p.DB, p.Fitness, len(p.Levels), len(p.Values))
		}
		return p
	}
	sd, err := db.Open(sparseDB)
	if err != nil {
		t.Fatal(err)
	}
	sumErr := func(d *db.DB, p *profile.Profile) float64 {
		var s float64
		for _, l := range d.Manifest().Layers {
			for _, v := range l.Levels {
				if v.Level == p.Levels[l.Name] {
					s += v.Error
				}
			}
		}
		return s
	}
	sparseProfiles := map[string]*profile.Profile{}
	for _, m := range []string{"uniform", "dp", "owl", "random"} {
		p := baseline(db.ModeSparse, m, filepath.Join(tmp, "s-"+m+".json"), "--samples", "3")
		sum, nz := 0, 0
		for _, l := range sd.Manifest().Layers {
			sum += p.Levels[l.Name]
			if p.Levels[l.Name] != 0 {
				nz++
			}
			if want := 0.6 + float64(p.Levels[l.Name])*float64(sd.Manifest().Sparse.WeightsDiff)/float64(l.Numel); abs64(p.Values[l.Name]-want) > 1e-3 {
				t.Errorf("sparse %s: %s value %v, want sparsity %v", m, l.Name, p.Values[l.Name], want)
			}
		}
		if sum != 0 {
			t.Errorf("sparse %s: levels sum to %d, want 0 (the uniform non-zero count)", m, sum)
		}
		if m == "uniform" && nz != 0 {
			t.Errorf("sparse uniform: %d layers off level 0", nz)
		}
		sparseProfiles[m] = p
	}
	if u, d := sumErr(sd, sparseProfiles["uniform"]), sumErr(sd, sparseProfiles["dp"]); d > u {
		t.Errorf("sparse dp: summed error %v above uniform's %v", d, u)
	}
	if g := sparseProfiles["owl"].Search.OWLGrid; len(g) != 20 {
		t.Errorf("sparse owl: grid of %v points recorded, want 20", len(g))
	}
	again := baseline(db.ModeSparse, "random", filepath.Join(tmp, "s-random2.json"), "--samples", "3")
	if !reflect.DeepEqual(again.Levels, sparseProfiles["random"].Levels) {
		t.Error("sparse random: the same seed gave another profile")
	}

	qd, err := db.Open(quantDB)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target float64
		method string
	}{{3, "uniform"}, {3, "dp"}, {2.5, "uniform"}, {2.5, "dp"}, {2.5, "random"}} {
		ts := strconv.FormatFloat(tc.target, 'g', -1, 64)
		p := baseline(db.ModeQuant, tc.method, filepath.Join(tmp, "q-"+tc.method+ts+".json"), "--target", ts, "--samples", "4")
		var used, total int64
		for _, l := range qd.Manifest().Layers {
			used += int64(p.Levels[l.Name]) * l.Numel
			total += l.Numel
		}
		if float64(used) > tc.target*float64(total) {
			t.Errorf("quant %s %v: %d code bits over the budget %v", tc.method, tc.target, used, tc.target*float64(total))
		}
		if tc.method == "uniform" && tc.target == 3 {
			for u, b := range p.Levels {
				if b != 3 {
					t.Fatalf("quant uniform 3: %s at %d bits", u, b)
				}
			}
		}
		if tc.method == "uniform" && tc.target == 2.5 && p.Search.Candidates != 4 {
			t.Errorf("quant uniform 2.5: %v candidates, want the best of --samples 4 random profiles", p.Search.Candidates)
		}
		if bpw := p.Search.BitsPerWeight; bpw <= float64(used)/float64(total) {
			t.Errorf("quant %s: real bits per weight %v not above the code bits %v", tc.method, bpw, float64(used)/float64(total))
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sparse", "--db", sparseDB, "--out", filepath.Join(tmp, "x.json")}, "--method is required"},
		{[]string{"quant", "--method", "owl", "--db", quantDB, "--target", "3", "--out", filepath.Join(tmp, "x.json")}, "sparsity method"},
		{[]string{"sparse", "--method", "dp", "--db", sparseDB, "--target", "0.5", "--out", filepath.Join(tmp, "x.json"), "--model", modelDir}, "serves sparsity"},
		{[]string{"quant", "--method", "dp", "--db", sparseDB, "--target", "3", "--out", filepath.Join(tmp, "x.json"), "--model", modelDir}, "sparse database"},
		{[]string{"quant", "--method", "dp", "--db", quantDB, "--out", filepath.Join(tmp, "x.json")}, "--target is required"},
	} {
		if _, err := runBaselineDBCmd(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

func abs64(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
