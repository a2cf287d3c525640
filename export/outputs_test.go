package export

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// fileState is a file's content and modification time.
type fileState struct {
	data  []byte
	mtime time.Time
}

// treeState records every file under the roots (following no links).
func treeState(t *testing.T, roots ...string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			var data []byte
			if fi.Mode().IsRegular() {
				if data, err = os.ReadFile(p); err != nil {
					return err
				}
			} else if fi.Mode()&fs.ModeSymlink != 0 {
				l, _ := os.Readlink(p)
				data = []byte("link:" + l)
			}
			out[p] = fileState{data, fi.ModTime()}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameTree(t *testing.T, what string, before, after map[string]fileState) {
	t.Helper()
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			t.Errorf("%s: %s was removed", what, p)
		case !bytes.Equal(a.data, b.data) || !a.mtime.Equal(b.mtime):
			t.Errorf("%s: %s was changed", what, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s appeared", what, p)
		}
	}
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
	before := treeState(t, tmp)
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
			sameTree(t, tc.name, before, treeState(t, tmp))
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
	sameTree(t, "the model after the exports", under(before, model), treeState(t, model))
}

// under returns the entries of files under dir.
func under(files map[string]fileState, dir string) map[string]fileState {
	out := map[string]fileState{}
	for p, s := range files {
		if strings.HasPrefix(p, dir+string(filepath.Separator)) {
			out[p] = s
		}
	}
	return out
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
	before := treeState(t, tmp)
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
	sameTree(t, "after a failed replacement", before, treeState(t, tmp))
}
