package stamp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/profile"
)

// fixtures are files written by evopress at 946a529 for the embedded model, with the legacy
// fingerprint (see their README).
const fixtures = "../cmd/evopress/testdata/main-946a529"

// embedded returns the embedded model's identity.
func embedded(t *testing.T) Model {
	t.Helper()
	ck, err := hf.OpenCheckpoint("../assets/llama-pd-11m")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	fp, err := ck.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	return Model{Fingerprint: fp, Legacy: ck.LegacyFingerprint()}
}

// scratch copies the sparse database's manifest (as sparse-db/manifest.json) and the named
// profile fixtures into a new folder, and returns it.
func scratch(t *testing.T, profiles ...string) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, filepath.Join(fixtures, "sparse-db.manifest.json"), filepath.Join(dir, "sparse-db", db.ManifestFile))
	for _, p := range profiles {
		copyFile(t, filepath.Join(fixtures, p), filepath.Join(dir, p))
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot reads every file under dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out[p], _ = os.ReadFile(p)
		}
		return nil
	})
	return out
}

// The fixtures' stamps are the embedded model's legacy fingerprint and the database's
// fingerprint; re-stamping them changes exactly those digits, is idempotent, and leaves files
// that check as current.
func TestRestampFixtures(t *testing.T) {
	m := embedded(t)
	dir := scratch(t, "search-sparse.json", "search-drop.json", "baseline-sparse-owl.json")
	in := func(p string) string { return filepath.Join(dir, p) }
	before := snapshot(t, dir)
	oldDB := sha256Hex(before[in("sparse-db/manifest.json")])
	sp, err := profile.Read(in("search-sparse.json"), "")
	if err != nil {
		t.Fatal(err)
	}
	if sp.Model.Fingerprint != m.Legacy || sp.DB.Fingerprint != oldDB {
		t.Fatalf("fixture stamps %s/%s, want the legacy fingerprint %s and the database's %s", sp.Model.Fingerprint, sp.DB.Fingerprint, m.Legacy, oldDB)
	}

	// A dry run reports and writes nothing.
	paths := []string{in("search-sparse.json"), in("sparse-db"), in("search-drop.json"), in("baseline-sparse-owl.json")}
	dry, err := Restamp(m, paths, true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(snapshot(t, dir), before) {
		t.Error("a dry run changed files")
	}
	res, err := Restamp(m, paths, false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dry, res) {
		t.Errorf("dry run %+v, real %+v", dry, res)
	}
	after := snapshot(t, dir)
	newDB := sha256Hex(after[in("sparse-db/manifest.json")])
	want := []Change{ // databases first, then profiles in the order given
		{in("sparse-db/manifest.json"), "model.fingerprint", m.Legacy, m.Fingerprint},
		{in("sparse-db"), "fingerprint", oldDB, newDB},
		{in("search-sparse.json"), "model.fingerprint", m.Legacy, m.Fingerprint},
		{in("search-sparse.json"), "db.fingerprint", oldDB, newDB},
		{in("search-drop.json"), "model.fingerprint", m.Legacy, m.Fingerprint},
		{in("baseline-sparse-owl.json"), "model.fingerprint", m.Legacy, m.Fingerprint},
		{in("baseline-sparse-owl.json"), "db.fingerprint", oldDB, newDB},
	}
	if !reflect.DeepEqual(res.Changes, want) {
		t.Errorf("changes\n%+v\nwant\n%+v", res.Changes, want)
	}
	// Byte for byte the same files but for the fingerprints' digits.
	for p, b := range before {
		got := bytes.ReplaceAll(bytes.ReplaceAll(after[p], []byte(m.Fingerprint), []byte(m.Legacy)), []byte(newDB), []byte(oldDB))
		if !bytes.Equal(got, b) {
			t.Errorf("%s: changed beyond its fingerprints", p)
		}
	}
	if prev, err := PreviousDBFingerprint(in("sparse-db"), m); err != nil || prev != oldDB {
		t.Errorf("previous database fingerprint %s (%v), want %s", prev, err, oldDB)
	}
	// Again: nothing to do.
	res, err = Restamp(m, paths, false)
	if err != nil || len(res.Changes) != 0 || len(res.Notes) != 4 {
		t.Errorf("second run: %+v, %v", res, err)
	}
	if !reflect.DeepEqual(snapshot(t, dir), after) {
		t.Error("the second run changed files")
	}
}

// A profile re-stamped after its database (in another call) finds it through db.path, relative
// to the profile's folder; before the database is re-stamped, its reference is left alone.
func TestRestampProfileLater(t *testing.T) {
	m := embedded(t)
	dir := scratch(t, "search-sparse.json")
	prof := filepath.Join(dir, "search-sparse.json")
	res, err := Restamp(m, []string{prof}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 1 || res.Changes[0].Field != "model.fingerprint" || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "stamped by an older evopress too") {
		t.Fatalf("profile before its database: %+v", res)
	}
	if _, err := Restamp(m, []string{filepath.Join(dir, "sparse-db")}, false); err != nil {
		t.Fatal(err)
	}
	res, err = Restamp(m, []string{prof}, false)
	if err != nil {
		t.Fatal(err)
	}
	newDB := sha256Hex(snapshot(t, dir)[filepath.Join(dir, "sparse-db", db.ManifestFile)])
	if len(res.Changes) != 1 || res.Changes[0].Field != "db.fingerprint" || res.Changes[0].New != newDB {
		t.Fatalf("profile after its database: %+v", res)
	}
}

// Refusals: a stamp of another model (anything but the model's fingerprint or legacy one)
// aborts the whole call before anything is written; so do unknown paths.
func TestRestampRefusals(t *testing.T) {
	m := embedded(t)
	other := Model{Fingerprint: strings.Repeat("1", 64), Legacy: strings.Repeat("2", 64)}
	tests := []struct {
		name  string
		m     Model
		paths func(dir string) []string
		want  string
	}{
		{"another model's database", other, func(dir string) []string { return []string{filepath.Join(dir, "sparse-db")} },
			"the database was built for another model"},
		{"another model's profile", other, func(dir string) []string { return []string{filepath.Join(dir, "search-drop.json")} },
			"the profile was made for another model"},
		{"one foreign file among good ones", m, func(dir string) []string {
			b, _ := os.ReadFile(filepath.Join(dir, "search-drop.json"))
			os.WriteFile(filepath.Join(dir, "foreign.json"), bytes.ReplaceAll(b, []byte(m.Legacy), []byte(strings.Repeat("3", 64))), 0o644)
			return []string{filepath.Join(dir, "sparse-db"), filepath.Join(dir, "search-drop.json"), filepath.Join(dir, "foreign.json")}
		}, "foreign.json: field model.fingerprint 3333333333333333… is neither"},
		{"not a profile", m, func(dir string) []string {
			os.WriteFile(filepath.Join(dir, "notes.json"), []byte(`{"a": 1}`), 0o644)
			return []string{filepath.Join(dir, "search-drop.json"), filepath.Join(dir, "notes.json")}
		}, `notes.json: missing required field "format"`},
		{"a folder that is none of them", m, func(dir string) []string {
			os.Mkdir(filepath.Join(dir, "empty"), 0o755)
			return []string{filepath.Join(dir, "empty")}
		}, "not a level database (no manifest.json), a search run folder"},
		{"missing path", m, func(dir string) []string { return []string{filepath.Join(dir, "nothing")} }, "no such file"},
		{"no model", Model{}, func(dir string) []string { return []string{dir} }, "fingerprint and legacy fingerprint are both needed"},
		{"no paths", m, func(dir string) []string { return nil }, "no database, profile or run folder"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := scratch(t, "search-drop.json")
			paths := tc.paths(dir)
			before := snapshot(t, dir)
			_, err := Restamp(tc.m, paths, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if !reflect.DeepEqual(snapshot(t, dir), before) {
				t.Error("files changed")
			}
		})
	}
}

// A run folder: the legacy model fingerprint and old database fingerprints are replaced in the
// files evopress writes there, and nothing else; an unknown database reference is reported.
func TestRestampRunFolder(t *testing.T) {
	m := embedded(t)
	dir := scratch(t)
	oldDB := sha256Hex(snapshot(t, dir)[filepath.Join(dir, "sparse-db", db.ManifestFile)])
	unknown := strings.Repeat("4", 64)
	run := filepath.Join(dir, "p.run")
	files := map[string]string{
		"checkpoint.json": fmt.Sprintf(`{"mode":"sparse","signature":"sparse db=%s","x":"db=%s"}`, oldDB, unknown),
		"report.md":       fmt.Sprintf("model fingerprint `%s`, database `%s`\n", m.Legacy, oldDB),
		"notes.md":        m.Legacy, // not a file evopress writes: left alone
		"log.jsonl":       `{"generation":0}` + "\n",
	}
	for name, body := range files {
		os.MkdirAll(run, 0o755)
		os.WriteFile(filepath.Join(run, name), []byte(body), 0o644)
	}
	res, err := Restamp(m, []string{run, filepath.Join(dir, "sparse-db")}, false)
	if err != nil {
		t.Fatal(err)
	}
	newDB := sha256Hex(snapshot(t, dir)[filepath.Join(dir, "sparse-db", db.ManifestFile)])
	read := func(name string) string { b, _ := os.ReadFile(filepath.Join(run, name)); return string(b) }
	if got, want := read("checkpoint.json"), fmt.Sprintf(`{"mode":"sparse","signature":"sparse db=%s","x":"db=%s"}`, newDB, unknown); got != want {
		t.Errorf("checkpoint.json %s, want %s", got, want)
	}
	if got, want := read("report.md"), fmt.Sprintf("model fingerprint `%s`, database `%s`\n", m.Fingerprint, newDB); got != want {
		t.Errorf("report.md %s, want %s", got, want)
	}
	if read("notes.md") != m.Legacy || read("log.jsonl") != files["log.jsonl"] {
		t.Error("files without stamps, or not written by evopress, changed")
	}
	if len(res.Changes) != 5 { // manifest, database, checkpoint (db), report (model, db)
		t.Errorf("changes %+v", res.Changes)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "4444444444444444") {
		t.Errorf("notes %q, want one about the unknown database", res.Notes)
	}
}

// TestCheckRun: a checkpoint recording the legacy model fingerprint, or a re-stamped database's
// previous fingerprint, is refused with the restamp command for the run folder (and the
// database); a current one passes.
func TestCheckRun(t *testing.T) {
	m := embedded(t)
	m.Dir = "/models/m"
	dir := scratch(t)
	dbDir := filepath.Join(dir, "sparse-db")
	if _, err := Restamp(m, []string{dbDir}, false); err != nil {
		t.Fatal(err)
	}
	cur := sha256Hex(snapshot(t, dir)[filepath.Join(dbDir, db.ManifestFile)])
	prev, err := PreviousDBFingerprint(dbDir, m)
	if err != nil || prev == "" {
		t.Fatalf("previous fingerprint %q, %v", prev, err)
	}
	run := filepath.Join(dir, "p.run")
	for _, tc := range []struct {
		name     string
		recorded []string
		dbDir    string
		want     []string
	}{
		{"current", []string{"sparse db=" + cur, m.Fingerprint}, dbDir, nil},
		{"legacy model", []string{"drop", m.Legacy}, "", []string{"run folder " + run, "model fingerprint " + m.Legacy[:16], "evopress restamp --model /models/m " + run}},
		{"legacy model with a database", []string{"sparse db=" + cur, m.Legacy}, dbDir,
			[]string{"evopress restamp --model /models/m " + dbDir + " " + run}},
		{"database before re-stamping", []string{"sparse db=" + prev, m.Fingerprint}, dbDir,
			[]string{"run folder " + run, "database fingerprint " + prev[:16], "before `evopress restamp` re-stamped it", "(it is now " + cur[:16],
				"evopress restamp --model /models/m " + dbDir + " " + run}},
	} {
		err := m.CheckRun(run, tc.recorded, tc.dbDir)
		var le *LegacyError
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != nil && !errors.As(err, &le):
			t.Errorf("%s: %v, want a LegacyError", tc.name, err)
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to say %q", tc.name, err, w)
			}
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"db-q": "db-q", "/a/b c": "'/a/b c'", "it's": `'it'\''s'`, "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
