package profile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	p := New(ModeDrop)
	p.Target = 0.25
	p.Model = &Ref{Path: "m", Fingerprint: "abc"}
	p.Levels["model.layers.10.mlp"] = 1
	p.Levels["model.layers.2.mlp"] = 0
	f := 0.5
	p.Fitness = &f
	path := filepath.Join(t.TempDir(), "p.json")
	if err := p.Write(path); err != nil {
		t.Fatal(err)
	}
	q, err := Read(path, "")
	if err != nil {
		t.Fatal(err)
	}
	p.File = path // Read records where the profile came from
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip: %+v != %+v", q, p)
	}
	if got := p.Units(); !reflect.DeepEqual(got, []string{"model.layers.2.mlp", "model.layers.10.mlp"}) {
		t.Errorf("Units() = %v", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`[]`, "not a JSON object"},
		{`{"mode":"drop","levels":{}}`, `"format"`},
		{`{"format":"evopress-profile/v1","levels":{}}`, `"mode"`},
		{`{"format":"evopress-profile/v1","mode":"drop"}`, `"levels"`},
		{`{"format":"v0","mode":"drop","levels":{}}`, "field format"},
		{`{"format":"evopress-profile/v1","mode":"prune","levels":{}}`, "field mode"},
		{`{"format":"evopress-profile/v1","mode":"drop","levels":{"a":2}}`, "drop level"},
		{`{"format":"evopress-profile/v1","mode":"quant","levels":{"a":0}}`, "bits"},
		{`{"format":"evopress-profile/v1","mode":"drop","levels":{"a":"x"}}`, "p.json"},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.in), "p.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "p.json") {
			t.Errorf("Parse(%s): error %v, want one naming p.json and containing %q", tc.in, err, tc.want)
		}
	}
}

func TestText(t *testing.T) {
	in := "# comment\nmodel.layers.0.self_attn.q_proj: 3\n\nmodel.layers.0.mlp.up_proj: 4\n"
	p, err := ParseText([]byte(in), ModeQuant, "cfg.txt")
	if err != nil {
		t.Fatal(err)
	}
	if p.Levels["model.layers.0.self_attn.q_proj"] != 3 || p.Levels["model.layers.0.mlp.up_proj"] != 4 {
		t.Fatalf("levels %v", p.Levels)
	}
	q, err := ParseText(p.MarshalText(), ModeQuant, "again")
	if err != nil || !reflect.DeepEqual(p.Levels, q.Levels) {
		t.Fatalf("text round trip: %v %v", q, err)
	}
	for _, bad := range []string{"x 3\n", "x: y\n", "x: 1\nx: 2\n"} {
		if _, err := ParseText([]byte(bad), ModeQuant, "cfg.txt"); err == nil || !strings.Contains(err.Error(), "cfg.txt:") {
			t.Errorf("ParseText(%q): error %v, want one naming the line", bad, err)
		}
	}
}

func TestNaturalLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"layers.2", "layers.10", true},
		{"layers.10", "layers.2", false},
		{"a", "b", true},
		{"a", "a", false},
		{"a.1.mlp", "a.1.self_attn", true},
		{"a", "a1", true},
	}
	for _, tc := range tests {
		if got := NaturalLess(tc.a, tc.b); got != tc.want {
			t.Errorf("NaturalLess(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"format":"evopress-profile/v1","mode":"drop","levels":{"model.layers.0.mlp":1}}`))
	f.Add([]byte(`{"format":"evopress-profile/v1","mode":"quant","levels":{"a":3},"values":{"a":3.1}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.json")
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted profile fails Validate: %v", err)
		}
	})
}

func FuzzParseText(f *testing.F) {
	f.Add([]byte("a: 1\nb: 0\n"))
	f.Add([]byte("# x\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseText(data, ModeDrop, "fuzz.txt")
		if err != nil {
			return
		}
		q, err := ParseText(p.MarshalText(), ModeDrop, "again")
		if err != nil || !reflect.DeepEqual(p.Levels, q.Levels) {
			t.Fatalf("text round trip failed: %v", err)
		}
	})
}

// TestDatabaseDirRelativeToProfile: a relative db.path is resolved against the profile file's
// folder, whatever the working directory; Write stores a working-directory-relative path
// relative to the file's folder, so a profile written anywhere reads back the same database.
func TestDatabaseDirRelativeToProfile(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	for _, d := range []string{"runs", "dbs/s50", "elsewhere"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := New(ModeSparse)
	p.DB = &Ref{Path: "dbs/s50", Fingerprint: "f"} // as a search given --db dbs/s50 records it
	if err := p.Write("runs/p.json"); err != nil {
		t.Fatal(err)
	}
	if p.DB.Path != "dbs/s50" {
		t.Errorf("Write changed the profile in memory: db.path %q", p.DB.Path)
	}
	raw, err := os.ReadFile("runs/p.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"path": "../dbs/s50"`) {
		t.Errorf("written db.path is not relative to the profile's folder:\n%s", raw)
	}
	t.Chdir(filepath.Join(root, "elsewhere"))
	q, err := Read("../runs/p.json", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := q.DatabaseDir(""), filepath.Join("..", "dbs", "s50"); got != want {
		t.Errorf("DatabaseDir from another folder = %q, want %q", got, want)
	}
	if got := q.DatabaseDir("mine"); got != "mine" {
		t.Errorf("DatabaseDir with an explicit folder = %q", got)
	}
	// Written again elsewhere, the path follows the new file.
	if err := q.Write("copy.json"); err != nil {
		t.Fatal(err)
	}
	r, err := Read("copy.json", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.DB.Path != "../dbs/s50" || r.DatabaseDir("") != filepath.Join("..", "dbs", "s50") {
		t.Errorf("rewritten profile: db.path %q, DatabaseDir %q", r.DB.Path, r.DatabaseDir(""))
	}
	// Absolute paths stay as they are; a profile made in memory keeps its path.
	abs := filepath.Join(root, "dbs", "s50")
	p.DB.Path = abs
	if err := p.Write("abs.json"); err != nil {
		t.Fatal(err)
	}
	if a, err := Read("abs.json", ""); err != nil || a.DatabaseDir("") != abs {
		t.Errorf("absolute db.path: %v, %v", a, err)
	}
	if m := (&Profile{DB: &Ref{Path: "x"}}).DatabaseDir(""); m != "x" {
		t.Errorf("in-memory profile: %q", m)
	}
}

// TestDatabaseError: an error opening the profile's database says it came from db.path and how
// it was resolved, and points at an old-style path relative to the working directory.
func TestDatabaseError(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	if err := os.MkdirAll("db", 0o755); err != nil {
		t.Fatal(err)
	}
	base := errors.New("runs/db: not a level database")
	p := &Profile{DB: &Ref{Path: "db"}, File: "runs/p.json"}
	got := p.DatabaseError("", base).Error()
	for _, w := range []string{`db.path "db" (relative to the profile's folder)`, "runs/db: not a level database", "db relative to the working directory exists"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q does not contain %q", got, w)
		}
	}
	if got := p.DatabaseError("given", base); got != base {
		t.Errorf("explicit folder: %v", got)
	}
	if got := (&Profile{DB: &Ref{Path: "/abs/db"}}).DatabaseError("", base).Error(); got != `db.path "/abs/db": runs/db: not a level database` {
		t.Errorf("absolute: %q", got)
	}
}
