package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/profile"
)

// perturbedDown is the tensor perturbedCopy scales by −1.7.
const perturbedDown = "model.layers.1.mlp.down_proj.weight"

// perturbedCopy writes a copy of the model in src whose weights differ in one tensor
// (perturbedDown scaled by −1.7) and whose other files are byte-identical, and returns it.
func perturbedCopy(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	ck, err := hf.OpenCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var tensors []hf.TensorData
	for _, name := range ck.Names() {
		info, _ := ck.Info(name)
		td := hf.TensorData{Name: name, DType: info.DType, Shape: info.Shape}
		if name == perturbedDown {
			if td.F32, err = ck.ReadFloat32(name); err != nil {
				t.Fatal(err)
			}
			for i := range td.F32 {
				td.F32[i] *= -1.7
			}
		} else if td.Raw, err = ck.ReadRaw(name); err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, td)
	}
	if err := hf.WriteSafetensors(filepath.Join(dir, hf.SafetensorsFileName), tensors, ck.Metadata(ck.Files()[0])); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		if e.Name() != hf.SafetensorsFileName {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
		}
	}
	return dir
}

// fingerprintsOf returns a model directory's fingerprint and legacy fingerprint.
func fingerprintsOf(t *testing.T, dir string) (string, string) {
	t.Helper()
	ck, err := hf.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	fp, err := ck.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	return fp, ck.LegacyFingerprint()
}

// wantErr runs a command line that must fail with a message containing every want.
func wantErr(t *testing.T, want []string, args ...string) {
	t.Helper()
	out, err := run(t, args...)
	if err == nil {
		t.Errorf("%s: accepted\n%s", strings.Join(args, " "), out)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not contain %q", strings.Join(args, " "), err, w)
		}
	}
}

// wantOK runs a command line that must succeed and returns its output.
func wantOK(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// replaceInFile replaces every pair (old, new) of pairs in a file.
func replaceInFile(t *testing.T, path string, pairs ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(pairs); i += 2 {
		b = bytes.ReplaceAll(b, []byte(pairs[i]), []byte(pairs[i+1]))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A model whose weights differ from another's in one tensor (same config.json, tensor names,
// dtypes and shapes: the legacy fingerprint cannot tell them apart) is refused by the other's
// level database, by a profile made for it, and by a search on it as a cluster worker.
// Databases, profiles and run folders stamped with the legacy fingerprint are refused with
// advice, and `evopress restamp` makes them current.
func TestWeightsFingerprint(t *testing.T) {
	small := smallModel(t)
	pert := perturbedCopy(t, small)
	fp, legacy := fingerprintsOf(t, small)
	pfp, plegacy := fingerprintsOf(t, pert)
	if plegacy != legacy || pfp == fp {
		t.Fatalf("perturbed copy: legacy fingerprint equal %v (want true), fingerprint equal %v (want false)", plegacy == legacy, pfp == fp)
	}
	tmp := t.TempDir()
	dbDir, prof := filepath.Join(tmp, "db-q"), filepath.Join(tmp, "q.json")
	run := filepath.Join(tmp, "q.run")
	wantOK(t, "db", "build", "quant", "--model", small, "--bits", "2,3", "--method", "rtn", "--group-size", "64", "--calib-tokens", "2048", "--out", dbDir)
	searchQ := []string{"search", "quant", "--model", small, "--db", dbDir, "--target", "2.5", "--seq-len", "64", "--calib-tokens", "2048",
		"--preset", "fast", "--offspring", "4", "--stages", "1:64", "--init-tokens", "64", "--seed", "3", "--out", prof}
	wantOK(t, append(searchQ, "--generations", "1")...)
	dropProf := filepath.Join(tmp, "drop.json")
	p := profile.New(profile.ModeDrop)
	p.Model = &profile.Ref{Path: small, Fingerprint: fp}
	p.Levels["model.layers.2.mlp"] = 1
	if err := p.Write(dropProf); err != nil {
		t.Fatal(err)
	}
	ppl := []string{"ppl", "--seq-len", "64", "--max-seqs", "2"}

	t.Run("inspect", func(t *testing.T) {
		var d hf.Description
		if err := json.Unmarshal([]byte(wantOK(t, "inspect", pert, "--json")), &d); err != nil {
			t.Fatal(err)
		}
		if d.Fingerprint != pfp || d.LegacyFingerprint != legacy {
			t.Errorf("inspect: fingerprint %s legacy %s, want %s %s", d.Fingerprint, d.LegacyFingerprint, pfp, legacy)
		}
	})
	t.Run("perturbed weights refused", func(t *testing.T) {
		wantOK(t, "db", "verify", dbDir, "--model", small)
		wantOK(t, append(ppl, "--model", small, "--profile", prof)...)
		wantOK(t, append(ppl, "--model", small, "--profile", dropProf)...)
		built := "database " + dbDir + " was built for model"
		wantErr(t, []string{built}, "db", "verify", dbDir, "--model", pert)
		wantErr(t, []string{prof, built}, append(ppl, "--model", pert, "--profile", prof)...)
		wantErr(t, []string{dropProf, "profile field model.fingerprint", "made for another model"}, append(ppl, "--model", pert, "--profile", dropProf)...)
		wantErr(t, []string{built}, "search", "quant", "--model", pert, "--db", dbDir, "--target", "2.5", "--out", filepath.Join(t.TempDir(), "x.json"))
	})
	t.Run("perturbed worker refused", func(t *testing.T) {
		port := freePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			root := newRootCmd()
			root.SetOut(io.Discard)
			root.SetErr(io.Discard)
			root.SetArgs(clusterSearchArgs(filepath.Join(t.TempDir(), "p.json"), "--model", small, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", port)))
			root.ExecuteContext(ctx)
		}()
		defer func() { cancel(); <-done }()
		cmd := exec.Command(os.Args[0], "worker", "--nats", fmt.Sprintf("nats://127.0.0.1:%d", port), "--once", "--model", pert)
		cmd.Env = append(os.Environ(), "EVOPRESS_TEST_CLI=1")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "refused by the search") || !strings.Contains(string(out), "model fingerprint "+pfp[:12]) {
			t.Fatalf("worker with perturbed weights: err %v\n%s", err, out)
		}
	})

	// What an older evopress wrote: the legacy model fingerprint in the manifest and the
	// profiles, and the database's fingerprint of that manifest in the profile and the run.
	newDB := sha256File(t, filepath.Join(dbDir, db.ManifestFile))
	replaceInFile(t, filepath.Join(dbDir, db.ManifestFile), fp, legacy)
	oldDB := sha256File(t, filepath.Join(dbDir, db.ManifestFile))
	replaceInFile(t, prof, fp, legacy, newDB, oldDB)
	replaceInFile(t, dropProf, fp, legacy)
	ckpt := filepath.Join(run, "checkpoint.json")
	replaceInFile(t, ckpt, newDB, oldDB)
	if b, _ := os.ReadFile(ckpt); !bytes.Contains(b, []byte("db="+oldDB)) {
		t.Fatalf("%s does not name the database as db=%s", ckpt, oldDB)
	}
	older := "older versions of evopress gave this model"

	t.Run("legacy stamps refused with advice", func(t *testing.T) {
		wantErr(t, []string{"database " + dbDir, older, "evopress restamp --model " + small + " " + dbDir}, "db", "verify", dbDir, "--model", small)
		wantErr(t, []string{prof, older, "evopress restamp --model " + small + " " + dbDir}, append(ppl, "--model", small, "--profile", prof)...)
		wantErr(t, []string{dropProf, "profile field model.fingerprint", older, "evopress restamp --model " + small + " " + dropProf},
			append(ppl, "--model", small, "--profile", dropProf)...)
		wantErr(t, []string{older, "evopress restamp --model " + small + " " + dbDir}, "search", "quant", "--model", small, "--db", dbDir,
			"--target", "2.5", "--out", filepath.Join(t.TempDir(), "x.json"))
		wantErr(t, []string{prof, older}, "export", "--model", small, "--profile", prof, "--format", "hf", "--out", filepath.Join(t.TempDir(), "x"))
		// The perturbed model shares the legacy fingerprint: it gets the same advice, which is
		// why restamp is for files known to belong to the model.
		wantErr(t, []string{older}, "db", "verify", dbDir, "--model", pert)
	})
	t.Run("restamp refuses another model", func(t *testing.T) {
		before := sha256File(t, filepath.Join(dbDir, db.ManifestFile)) + sha256File(t, prof)
		wantErr(t, []string{"nothing re-stamped", "built for another model", "made for another model"},
			"restamp", "--model", embeddedModelDir, dbDir, prof)
		if sha256File(t, filepath.Join(dbDir, db.ManifestFile))+sha256File(t, prof) != before {
			t.Error("a refused restamp changed files")
		}
	})
	t.Run("restamp", func(t *testing.T) {
		out := wantOK(t, "restamp", "--model", small, dbDir)
		if !strings.Contains(out, "re-stamped "+filepath.Join(dbDir, db.ManifestFile)+": model.fingerprint "+legacy+" → "+fp) ||
			!strings.Contains(out, "re-stamped "+dbDir+": fingerprint "+oldDB+" → "+newDB) {
			t.Errorf("restamp output:\n%s", out)
		}
		wantOK(t, "db", "verify", dbDir, "--model", small)
		// The run folder's checkpoint names the database as it was: a resume says to re-stamp it.
		resume := append(slices.Clone(searchQ), "--generations", "2", "--resume")
		wantErr(t, []string{"run folder " + run, "database fingerprint " + oldDB[:16], "before `evopress restamp` re-stamped it",
			"evopress restamp --model " + small + " " + dbDir + " " + run}, resume...)
		// A profile whose model stamp is current but which names the database as it was.
		half := filepath.Join(tmp, "half.json")
		b, _ := os.ReadFile(prof)
		os.WriteFile(half, bytes.ReplaceAll(b, []byte(legacy), []byte(fp)), 0o644)
		wantErr(t, []string{half, "db.fingerprint", "before `evopress restamp` re-stamped it", "evopress restamp --model " + small + " " + dbDir + " " + half},
			append(ppl, "--model", small, "--profile", half)...)
		// The profile and the run find the re-stamped database through the profile's db.path.
		out = wantOK(t, "restamp", "--model", small, prof, run, dropProf, half)
		for _, want := range []string{
			prof + ": model.fingerprint " + legacy + " → " + fp, prof + ": db.fingerprint " + oldDB + " → " + newDB,
			ckpt + ": database fingerprint " + oldDB + " → " + newDB, dropProf + ": model.fingerprint",
			half + ": db.fingerprint " + oldDB + " → " + newDB,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("restamp output lacks %q:\n%s", want, out)
			}
		}
		wantOK(t, append(ppl, "--model", small, "--profile", prof)...)
		wantOK(t, append(ppl, "--model", small, "--profile", half)...)
		wantOK(t, append(ppl, "--model", small, "--profile", dropProf)...)
		if b, _ := os.ReadFile(ckpt); !bytes.Contains(b, []byte("db="+newDB)) {
			t.Errorf("%s does not name the re-stamped database", ckpt)
		}
		if out := wantOK(t, "restamp", "--model", small, dbDir, prof, run); strings.Contains(out, "re-stamped") {
			t.Errorf("a second restamp changed something:\n%s", out)
		}
		if out := wantOK(t, resume...); !strings.Contains(out, "resuming") {
			t.Errorf("the re-stamped run does not resume:\n%s", out)
		}
	})
}
