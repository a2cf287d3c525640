package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/profile"
)

// TestGGUFCLI builds a gguf database of the 5-block embedded model through the CLI (q/k/v/o/
// gate/up rows of 256 take the K-quants, down_proj's 704 the fallbacks), then checks the
// database commands and the searches and baselines over it.
func TestGGUFCLI(t *testing.T) {
	model := smallModel(t)
	dir := filepath.Join(t.TempDir(), "db")
	out, err := run(t, "db", "build", "gguf", "--model", model, "--calib", embeddedCalib, "--calib-tokens", "2048", "--out", dir, "--json")
	if err != nil {
		t.Fatalf("db build gguf: %v\n%s", err, out)
	}
	t.Run("database", func(t *testing.T) { ggufDatabaseCLI(t, model, dir, out) })
	t.Run("search", func(t *testing.T) { ggufSearchCLI(t, model, dir) })
}

// ggufDatabaseCLI checks db build gguf: the JSON summary (every type with its bits per weight),
// verify, a resumed rerun, a build from the written importance matrix (the same blocks), and
// flag errors.
func ggufDatabaseCLI(t *testing.T, model, dir, out string) {
	var res struct {
		Mode     string
		Layers   int
		Computed int
		Levels   []db.LevelRow
	}
	if err := json.Unmarshal([]byte(jsonPart(out)), &res); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	var types []string
	for _, r := range res.Levels {
		types = append(types, r.Type)
		if r.Value != r.Bits {
			t.Errorf("%s: value %v, bits %v", r.Type, r.Value, r.Bits)
		}
	}
	if res.Mode != db.ModeGGUF || res.Layers != 35 || res.Computed != 35 ||
		!slices.Equal(types, []string{"q4_0", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"}) {
		t.Fatalf("build: %+v", res)
	}
	bits := map[string]float64{"q4_0": 4.5, "q5_0": 5.5, "q5_1": 6, "q8_0": 8.5, "q2_K": 2.625, "q3_K": 3.4375, "q4_K": 4.5, "q5_K": 5.5, "q6_K": 6.5625}
	for _, r := range res.Levels {
		if r.Bits != bits[r.Type] {
			t.Errorf("%s: %v bits per weight, want %v", r.Type, r.Bits, bits[r.Type])
		}
	}
	if out, err := run(t, "db", "verify", dir, "--model", model); err != nil || !strings.Contains(out, "gguf database (ggml) of 35 layers") {
		t.Errorf("verify: %v\n%s", err, out)
	}
	again, err := run(t, "db", "build", "gguf", "--model", model, "--calib", embeddedCalib, "--calib-tokens", "2048", "--out", dir, "--json")
	if err != nil || !strings.Contains(again, `"reused": 35`) {
		t.Errorf("rerun: %v\n%s", err, again)
	}
	// The importance matrix the build wrote gives the same blocks.
	other := filepath.Join(t.TempDir(), "file")
	if out, err := run(t, "db", "build", "gguf", "--model", model, "--calib", embeddedCalib, "--calib-tokens", "2048",
		"--types", "q4_k,q8_0", "--imatrix", filepath.Join(dir, db.ImatrixFile), "--out", other); err != nil {
		t.Fatalf("build with --imatrix: %v\n%s", err, out)
	}
	a, _ := db.Open(dir)
	b, _ := db.Open(other)
	for i, l := range b.Manifest().Layers {
		for _, v := range l.Levels {
			k := slices.IndexFunc(a.Manifest().Layers[i].Levels, func(w db.LevelInfo) bool { return w.Level == v.Level })
			if a.Manifest().Layers[i].Levels[k].SHA256 != v.SHA256 {
				t.Errorf("%s %s: other blocks with the database's own importance matrix file", l.Name, v.Type)
			}
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"db", "build", "gguf", "--types", "q4_k,q9_k"}, "--types q9_k: not a ggml type"},
		{[]string{"db", "build", "gguf", "--imatrix", filepath.Join(dir, "missing.gguf")}, "--imatrix " + filepath.Join(dir, "missing.gguf")},
		{[]string{"db", "build", "gguf", "--imatrix", filepath.Join(dir, db.ManifestFile)}, "--imatrix"},
	} {
		args := append(c.args, "--model", model, "--calib-tokens", "512", "--out", filepath.Join(t.TempDir(), "x"))
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

// ggufSearchCLI runs search quant and baseline quant over the gguf database with a file size
// and a target in bits per weight, checks that the profiles' files fit, and the flag errors.
func ggufSearchCLI(t *testing.T, model, dir string) {
	tmp := t.TempDir()
	common := []string{"--model", model, "--calib", embeddedCalib, "--db", dir, "--seq-len", "64", "--calib-tokens", "2048"}
	readProfile := func(path string) *profile.Profile {
		t.Helper()
		p, err := profile.Read(path, "")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	uni := filepath.Join(tmp, "uniform.json")
	if out, err := run(t, append([]string{"baseline", "quant", "--method", "uniform", "--type", "q4_k", "--tokens", "256", "--out", uni}, common...)...); err != nil {
		t.Fatalf("uniform: %v\n%s", err, out)
	}
	u := readProfile(uni)
	size := u.Search.FileBytes
	if u.Levels["model.layers.0.mlp.down_proj"] != 6 || u.Levels["model.layers.0.mlp.up_proj"] != 12 || u.Search.TokenEmbeddingType != "q4_K" || u.Search.OutputTensorType != "q6_K" {
		t.Fatalf("uniform q4_k: %v, %+v", u.Levels, u.Search)
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"dp", []string{"baseline", "quant", "--method", "dp", "--target-size", strconv.FormatInt(size, 10), "--tokens", "256"}},
		{"random", []string{"baseline", "quant", "--method", "random", "--target", "4.2", "--samples", "4", "--tokens", "256"}},
		{"search", []string{"search", "quant", "--target-size", strconv.FormatInt(size, 10), "--offspring", "4", "--stages", "2:64,1:128", "--init-tokens", "64", "--generations", "3"}},
	} {
		out := filepath.Join(tmp, c.name+".json")
		if o, err := run(t, append(append(c.args, "--out", out), common...)...); err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, o)
		}
		p := readProfile(out)
		if c.name == "random" {
			if p.Search.BitsPerWeight > 4.2 || p.Search.FileBytes == 0 {
				t.Errorf("random at 4.2 bits: %+v", p.Search)
			}
			continue
		}
		if p.Search.TargetBytes != size || p.Search.FileBytes > size || p.Search.FileBytes < size-size/100 {
			t.Errorf("%s at %d bytes: target %d, file %d", c.name, size, p.Search.TargetBytes, p.Search.FileBytes)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"search", "quant", "--target", "4", "--target-size", "1MB"}, "--target-size 1000000: give one budget"},
		{[]string{"search", "quant", "--target-size", "100kB"}, "--target-size 100000: the file's metadata and other tensors"},
		{[]string{"search", "quant", "--target-size", "5.2XB"}, `invalid argument "5.2XB" for "--target-size"`},
		{[]string{"search", "quant", "--target", "9"}, "--target 9: quant: target = 9.0000 bits per weight allows every layer its last level"},
		{[]string{"search", "quant", "--target", "4", "--output-tensor-type", "q9"}, "--output-tensor-type q9: not a ggml type"},
		{[]string{"baseline", "quant", "--method", "uniform", "--type", "q4_k", "--target", "4"}, "--type q4_k: the uniform baseline's size follows from its type"},
		{[]string{"baseline", "quant", "--method", "uniform", "--target", "4"}, "--type is required"},
		{[]string{"baseline", "quant", "--method", "dp", "--type", "q4_k"}, "--type q4_k: a type is the uniform baseline's"},
		{[]string{"baseline", "quant", "--method", "uniform", "--type", "iq4_xs"}, "--type iq4_xs:"},
	} {
		args := append(append(c.args, "--out", filepath.Join(t.TempDir(), "p.json")), common...)
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
