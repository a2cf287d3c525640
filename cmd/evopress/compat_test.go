package main

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/profile"
)

// compatDir holds the profiles and database manifests written by main at 946a529 (see its
// README.md for how they were made).
const compatDir = "testdata/main-946a529"

// compatOldBinary is the binary the README's commands name.
const compatOldBinary = "/tmp/evopress-old"

// compatDBCommands build the two level databases, keyed by their folder (relative to the scratch
// folder, as in the README).
var compatDBCommands = []struct{ dir, cmd string }{
	{"sparse-db", "db build sparse --target 0.5 --levels 2 --calib-tokens 2048 --out sparse-db"},
	{"quant-db", "db build quant --bits 2,3,4 --calib-tokens 2048 --out quant-db"},
}

// compatCommands wrote the profile fixtures; each one's --out names its fixture. "sparse-db" and
// "quant-db" are the databases built by compatDBCommands.
var compatCommands = []string{
	"search drop --target 0.25 --seq-len 64 --calib-tokens 4096 --preset fast --generations 2 --offspring 6 --stages 2:64,1:128 --init-tokens 64 --seed 3 --out search-drop.json",
	"search drop --target 0.25 --whole-blocks --seq-len 64 --calib-tokens 4096 --preset fast --generations 2 --offspring 6 --stages 2:64,1:128 --init-tokens 64 --seed 3 --out search-drop-whole-blocks.json",
	"search sparse --db sparse-db --target 0.5 --seq-len 64 --calib-tokens 4096 --preset fast --generations 2 --offspring 6 --stages 2:64,1:128 --init-tokens 64 --seed 3 --out search-sparse.json",
	"search quant --db quant-db --target 3 --seq-len 64 --calib-tokens 4096 --preset fast --generations 2 --offspring 6 --stages 2:64,1:128 --init-tokens 64 --seed 3 --out search-quant-3.json",
	"search quant --db quant-db --target 2.5 --seq-len 64 --calib-tokens 4096 --preset fast --generations 2 --offspring 6 --stages 2:64,1:128 --init-tokens 64 --seed 3 --out search-quant-2.5.json",
	"baseline drop --method shortgpt --target 0.25 --seq-len 64 --calib-tokens 4096 --tokens 1024 --out baseline-drop-shortgpt.json",
	"baseline drop --method window-cosine --target 0.25 --seq-len 64 --calib-tokens 4096 --tokens 1024 --out baseline-drop-window-cosine.json",
	"baseline drop --method shortened-ppl --target 0.25 --seq-len 64 --calib-tokens 4096 --tokens 256 --out baseline-drop-shortened-ppl.json",
	"baseline drop --method norm-ratio --target 0.25 --seq-len 64 --calib-tokens 4096 --tokens 1024 --out baseline-drop-norm-ratio.json",
	"baseline drop --method random --target 0.25 --seq-len 64 --calib-tokens 4096 --samples 4 --survivors 2 --tokens 128 --seed 3 --out baseline-drop-random.json",
	"baseline drop --method exhaustive --whole-blocks --target 0.2 --seq-len 64 --calib-tokens 4096 --tokens 64 --seed 3 --out baseline-drop-exhaustive-whole-blocks.json",
	"baseline sparse --db sparse-db --method uniform --seq-len 64 --calib-tokens 4096 --tokens 64 --seed 3 --out baseline-sparse-uniform.json",
	"baseline sparse --db sparse-db --method owl --seq-len 64 --calib-tokens 4096 --tokens 64 --seed 3 --out baseline-sparse-owl.json",
	"baseline sparse --db sparse-db --method dp --seq-len 64 --calib-tokens 4096 --tokens 64 --seed 3 --out baseline-sparse-dp.json",
	"baseline sparse --db sparse-db --method random --seq-len 64 --calib-tokens 4096 --tokens 64 --samples 4 --seed 3 --out baseline-sparse-random.json",
	"baseline quant --db quant-db --method uniform --target 3 --seq-len 64 --calib-tokens 4096 --tokens 64 --seed 3 --out baseline-quant-uniform-3.json",
	"baseline quant --db quant-db --method uniform --target 2.5 --seq-len 64 --calib-tokens 4096 --tokens 64 --samples 4 --seed 3 --out baseline-quant-uniform-2.5.json",
	"baseline quant --db quant-db --method dp --target 3 --seq-len 64 --calib-tokens 4096 --tokens 64 --seed 3 --out baseline-quant-dp-3.json",
	"baseline quant --db quant-db --method dp --target 2.5 --seq-len 64 --calib-tokens 4096 --tokens 64 --seed 3 --out baseline-quant-dp-2.5.json",
	"baseline quant --db quant-db --method random --target 2.5 --seq-len 64 --calib-tokens 4096 --tokens 64 --samples 4 --seed 3 --out baseline-quant-random-2.5.json",
}

// compatArgs splits a command of the README into arguments whose --db and --out point into dir,
// and returns the --out value as given (the fixture's name).
func compatArgs(t *testing.T, cmd, dir string) (args []string, out string) {
	t.Helper()
	args = strings.Fields(cmd)
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--db" || args[i] == "--out" {
			if args[i] == "--out" {
				out = args[i+1]
			}
			args[i+1] = filepath.Join(dir, args[i+1])
		}
	}
	if out == "" {
		t.Fatalf("command without --out: %s", cmd)
	}
	return args, out
}

// TestSameProfilesAsMain946a529 reruns the commands that wrote the fixtures of main at 946a529
// (embedded model and calibration text) and requires the same profiles bit for bit, and
// databases with the same layers and levels.
func TestSameProfilesAsMain946a529(t *testing.T) {
	if testing.Short() {
		t.Skip("short: rebuilds two databases and reruns 20 commands (about a minute)")
	}
	readme, err := os.ReadFile(filepath.Join(compatDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The README lists exactly these commands, and every profile fixture has one.
	all := make([]string, 0, len(compatDBCommands)+len(compatCommands))
	for _, c := range compatDBCommands {
		all = append(all, c.cmd)
	}
	all = append(all, compatCommands...)
	for _, c := range all {
		if !strings.Contains(string(readme), "\n"+compatOldBinary+" "+c+"\n") {
			t.Errorf("README.md does not list the command %q", compatOldBinary+" "+c)
		}
	}
	// The fixtures record the embedded model's legacy fingerprint (946a529 predates fingerprints
	// of the weights): they must hold exactly it, and the rebuilt files the current one.
	fp, legacy := fingerprintsOf(t, embeddedModelDir)
	restamped := func(t *testing.T, rec string) string {
		t.Helper()
		if rec != legacy {
			t.Errorf("fixture model fingerprint %s, want the embedded model's legacy fingerprint %s", rec, legacy)
		}
		return fp
	}
	tmp := t.TempDir()
	covered := map[string]bool{}
	for _, c := range compatCommands {
		_, out := compatArgs(t, c, tmp)
		covered[out] = true
	}
	files, err := filepath.Glob(filepath.Join(compatDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b := filepath.Base(f); !strings.HasSuffix(b, ".manifest.json") && !covered[b] {
			t.Errorf("fixture %s has no command", b)
		}
	}

	// The databases, built once for every subtest.
	dbs := map[string]*db.DB{}
	for _, c := range compatDBCommands {
		args, _ := compatArgs(t, c.cmd, tmp)
		if out, err := run(t, args...); err != nil {
			t.Fatalf("%s: %v\n%s", c.cmd, err, out)
		}
		d, err := db.Open(filepath.Join(tmp, c.dir))
		if err != nil {
			t.Fatal(err)
		}
		dbs[c.dir] = d
	}
	for _, c := range compatDBCommands {
		t.Run(c.dir+".manifest.json", func(t *testing.T) {
			name := filepath.Join(compatDir, c.dir+".manifest.json")
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			want, err := db.ParseManifest(data, name)
			if err != nil {
				t.Fatal(err)
			}
			want.Model.Fingerprint = restamped(t, want.Model.Fingerprint)
			compareManifests(t, want, dbs[c.dir].Manifest())
		})
	}

	for _, c := range compatCommands {
		args, fixture := compatArgs(t, c, tmp)
		t.Run(fixture, func(t *testing.T) {
			want, err := profile.Read(filepath.Join(compatDir, fixture), "")
			if err != nil {
				t.Fatalf("the fixture no longer loads: %v", err)
			}
			if want.Model != nil {
				want.Model.Fingerprint = restamped(t, want.Model.Fingerprint)
			}
			if out, err := run(t, args...); err != nil {
				t.Fatalf("%s: %v\n%s", c, err, out)
			}
			got, err := profile.Read(filepath.Join(tmp, fixture), "")
			if err != nil {
				t.Fatal(err)
			}
			compareProfiles(t, want, got)
			if got.DB != nil {
				for dir, d := range dbs {
					if strings.Contains(c, " --db "+dir+" ") && got.DB.Fingerprint != d.Fingerprint() {
						t.Errorf("db fingerprint %q, the database used has %q", got.DB.Fingerprint, d.Fingerprint())
					}
				}
			}
		})
	}
}

// compareProfiles requires got to equal want bit for bit in everything but paths, timings and
// the free-form search record.
func compareProfiles(t *testing.T, want, got *profile.Profile) {
	t.Helper()
	if got.Mode != want.Mode || got.Method != want.Method {
		t.Errorf("mode/method %s/%s, want %s/%s", got.Mode, got.Method, want.Mode, want.Method)
	}
	if math.Float64bits(got.Target) != math.Float64bits(want.Target) {
		t.Errorf("target %v, want %v", got.Target, want.Target)
	}
	switch {
	case (got.Model == nil) != (want.Model == nil):
		t.Errorf("model %v, want %v", got.Model, want.Model)
	case want.Model != nil && got.Model.Fingerprint != want.Model.Fingerprint:
		t.Errorf("model fingerprint %q, want %q", got.Model.Fingerprint, want.Model.Fingerprint)
	}
	if (got.DB == nil) != (want.DB == nil) {
		t.Errorf("db %v, want %v", got.DB, want.DB)
	}
	switch {
	case (got.Fitness == nil) != (want.Fitness == nil):
		t.Errorf("fitness %v, want %v", ptrString(got.Fitness), ptrString(want.Fitness))
	case want.Fitness != nil && math.Float64bits(*got.Fitness) != math.Float64bits(*want.Fitness):
		t.Errorf("fitness %v (bits %#x), want %v (bits %#x)", *got.Fitness, math.Float64bits(*got.Fitness),
			*want.Fitness, math.Float64bits(*want.Fitness))
	}
	if !reflect.DeepEqual(got.Levels, want.Levels) {
		for _, u := range unionKeys(got.Levels, want.Levels) {
			g, gok := got.Levels[u]
			w, wok := want.Levels[u]
			if g != w || gok != wok {
				t.Errorf("level of %s: %d (present %v), want %d (present %v)", u, g, gok, w, wok)
			}
		}
	}
	if len(got.Values) != len(want.Values) {
		t.Errorf("%d values, want %d", len(got.Values), len(want.Values))
	}
	for _, u := range unionKeys(got.Values, want.Values) {
		g, gok := got.Values[u]
		w, wok := want.Values[u]
		if gok != wok || math.Float64bits(g) != math.Float64bits(w) {
			t.Errorf("value of %s: %v (present %v), want %v (present %v)", u, g, gok, w, wok)
		}
	}
}

// compareManifests requires the rebuilt manifest got to describe the same database as want: the
// same model, calibration (but its source) and parameters, and the same layers and levels (level
// files, sizes and checksums aside).
func compareManifests(t *testing.T, want, got *db.Manifest) {
	t.Helper()
	if got.Mode != want.Mode || got.Method != want.Method || got.Model.Fingerprint != want.Model.Fingerprint ||
		got.Model.Blocks != want.Model.Blocks || got.Model.Hidden != want.Model.Hidden {
		t.Errorf("mode %s method %s model %+v, want %s %s %+v", got.Mode, got.Method, got.Model, want.Mode, want.Method, want.Model)
	}
	gc, wc := got.Calibration, want.Calibration
	gc.Source, wc.Source = "", ""
	if gc != wc {
		t.Errorf("calibration %+v, want %+v", got.Calibration, want.Calibration)
	}
	if !reflect.DeepEqual(got.Sparse, want.Sparse) || !reflect.DeepEqual(got.Quant, want.Quant) ||
		got.Sequential != want.Sequential || got.SequentialLevel != want.SequentialLevel || got.Complete != want.Complete {
		t.Errorf("parameters %+v %+v sequential %v/%d complete %v, want %+v %+v %v/%d %v", got.Sparse, got.Quant, got.Sequential,
			got.SequentialLevel, got.Complete, want.Sparse, want.Quant, want.Sequential, want.SequentialLevel, want.Complete)
	}
	if len(got.Layers) != len(want.Layers) {
		t.Fatalf("%d layers, want %d", len(got.Layers), len(want.Layers))
	}
	for i := range want.Layers {
		g, w := &got.Layers[i], &want.Layers[i]
		if g.Name != w.Name || g.Block != w.Block || g.Kind != w.Kind || g.Rows != w.Rows || g.Cols != w.Cols || g.Numel != w.Numel {
			t.Errorf("layer %d: %s (block %d %s, %d×%d = %d), want %s (block %d %s, %d×%d = %d)", i, g.Name, g.Block, g.Kind, g.Rows, g.Cols,
				g.Numel, w.Name, w.Block, w.Kind, w.Rows, w.Cols, w.Numel)
			continue
		}
		if len(g.Levels) != len(w.Levels) {
			t.Errorf("%s: %d levels, want %d", w.Name, len(g.Levels), len(w.Levels))
			continue
		}
		for j := range w.Levels {
			gv, wv := g.Levels[j], w.Levels[j]
			if gv.Level != wv.Level || gv.Zeros != wv.Zeros || gv.Values != wv.Values ||
				math.Float64bits(gv.Sparsity) != math.Float64bits(wv.Sparsity) || math.Float64bits(gv.Bits) != math.Float64bits(wv.Bits) ||
				math.Float64bits(gv.Error) != math.Float64bits(wv.Error) || math.Float64bits(gv.ErrorAbs) != math.Float64bits(wv.ErrorAbs) {
				t.Errorf("%s level %d: zeros %d sparsity %v bits %v values %q error %v/%v, want level %d: %d %v %v %q %v/%v", w.Name, gv.Level,
					gv.Zeros, gv.Sparsity, gv.Bits, gv.Values, gv.Error, gv.ErrorAbs, wv.Level, wv.Zeros, wv.Sparsity, wv.Bits, wv.Values, wv.Error, wv.ErrorAbs)
			}
		}
	}
}

func unionKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range []map[string]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

func ptrString(f *float64) string {
	if f == nil {
		return "none"
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}
