package export

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/internal/treesnap"
)

// linkedModel returns a scratch model directory whose files are symbolic links to the embedded
// model's: writing into it cannot damage the repository's copy.
func linkedModel(t *testing.T) string {
	t.Helper()
	src, err := filepath.Abs(embeddedModel)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Skipf("no symbolic links here: %v", err)
		}
	}
	return dir
}

// TestExportNeverDestroys checks that an export refuses outputs that are, are inside or contain
// its inputs, and existing outputs it did not write (even with Force), leaving every file as it
// was; and that Force replaces an earlier export.
func TestExportNeverDestroys(t *testing.T) {
	model := linkedModel(t)
	tmp := filepath.Dir(model)
	notes := filepath.Join(tmp, "notes")
	if err := os.Mkdir(notes, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(notes, "todo.txt"), []byte("my notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	profPath := filepath.Join(tmp, "p.json")
	p := dropProfile("")
	if err := p.Write(profPath); err != nil {
		t.Fatal(err)
	}
	linkToModel := filepath.Join(tmp, "link-to-model")
	if err := os.Symlink(model, linkToModel); err != nil {
		t.Fatal(err)
	}
	afile := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(afile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An earlier export with a file of the user's added.
	prev := filepath.Join(tmp, "prev")
	if _, err := Run(Options{ModelDir: model, Profile: p, ProfilePath: profPath, Format: FormatHF, Out: prev}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(prev, "my-notes.md"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := treesnap.Take(t, tmp)
	for _, tc := range []struct {
		name, format, out string
		force             bool
		option, want      string
	}{
		{"the model directory", FormatHF, model, true, "Out", "is the model directory"},
		{"inside the model", FormatHF, filepath.Join(model, "sub"), true, "Out", "is inside the model directory"},
		{"gguf inside the model", FormatGGUF, filepath.Join(model, "m.gguf"), true, "Out", "is inside the model directory"},
		{"around the model", FormatHF, tmp, true, "Out", "contains the model directory"},
		{"a link to the model", FormatHF, linkToModel, true, "Out", "is the model directory"},
		{"the model's weights", FormatGGUF, filepath.Join(model, "model.safetensors"), true, "Out", "is inside the model directory"},
		{"the profile", FormatGGUF, profPath, true, "Out", "is the profile"},
		{"notes", FormatHF, notes, false, "Out", "not an evopress export"},
		{"notes with force", FormatHF, notes, true, "Force", "not an evopress export"},
		{"notes, gguf", FormatGGUF, notes, true, "Force", "not a regular file"},
		{"a file", FormatHF, afile, true, "Force", "not a directory"},
		{"an export holding a user's file", FormatHF, prev, true, "Force", "my-notes.md"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(Options{ModelDir: model, Profile: p, ProfilePath: profPath, Format: tc.format, Out: tc.out, Force: tc.force})
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option() != tc.option || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), filepath.Base(tc.out)) {
				t.Errorf("err = %v, want an error on option %s naming %s and saying %q", err, tc.option, tc.out, tc.want)
			}
			before.Same(t, tc.name, treesnap.Take(t, tmp))
		})
	}

	// Force replaces an earlier export (the user's file gone first), and an empty folder takes an
	// export without it.
	if err := os.Remove(filepath.Join(prev, "my-notes.md")); err != nil {
		t.Fatal(err)
	}
	cfgBefore, _ := os.ReadFile(filepath.Join(prev, "config.json"))
	q := dropProfile("")
	q.Levels["model.layers.5.self_attn"], q.Levels["model.layers.5.mlp"] = 1, 1
	if _, err := Run(Options{ModelDir: model, Profile: q, Format: FormatHF, Out: prev}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("an earlier export without Force: %v", err)
	}
	if _, err := Run(Options{ModelDir: model, Profile: q, Format: FormatHF, Out: prev, Force: true}); err != nil {
		t.Fatal(err)
	}
	if cfgAfter, _ := os.ReadFile(filepath.Join(prev, "config.json")); bytes.Equal(cfgAfter, cfgBefore) {
		t.Error("Force did not replace the earlier export")
	}
	emptyDir := filepath.Join(tmp, "empty")
	if err := os.Mkdir(emptyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(Options{ModelDir: model, Profile: q, Format: FormatHF, Out: emptyDir}); err != nil {
		t.Errorf("an empty folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(emptyDir, ProvenanceFile)); err != nil {
		t.Error(err)
	}
	before.Under(model).Same(t, "the model after the exports", treesnap.Take(t, model))
}

// TestReplaceKeepsTheOldExportOnFailure checks that an export failing while it writes leaves the
// earlier export as it was, and no temporary folder behind.
func TestReplaceKeepsTheOldExportOnFailure(t *testing.T) {
	model := linkedModel(t)
	tmp := filepath.Dir(model)
	out := filepath.Join(tmp, "out")
	if _, err := Run(Options{ModelDir: model, Profile: dropProfile(""), Format: FormatHF, Out: out}); err != nil {
		t.Fatal(err)
	}
	before := treesnap.Take(t, tmp)
	boom := errors.New("disk full")
	err := writeDirAtomic(&Options{ModelDir: model, Format: FormatHF, Out: out, Force: true}, func(dir string) error {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the fill's error", err)
	}
	before.Same(t, "after a failed replacement", treesnap.Take(t, tmp))
}
