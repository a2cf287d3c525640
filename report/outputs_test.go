package report

import (
	"bytes"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evopress/evopress/profile"
)

// TestWriteReplacesOnlyItsOwnFiles writes a report over files of the same names: a file this
// package did not write is refused (even with Force) and left as it was, before anything is
// written; an earlier report is replaced only with Force; the marks survive in every file; and
// a report written before the marks existed is recognised.
func TestWriteReplacesOnlyItsOwnFiles(t *testing.T) {
	h := synthHistory(3, 0.5, 0.1, 6)
	in := func(force bool) Input {
		return Input{Runs: []*Run{{Name: "run", Profile: synthProfile(profile.ModeDrop, 4, 3, h), History: h}},
			Generated: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Force: force}
	}
	dir := t.TempDir()
	files, err := Write(dir, in(false))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{MarkdownFile, HTMLFile}
	for _, img := range files.Images {
		names = append(names, filepath.Base(img))
		data, _ := os.ReadFile(img)
		if _, err := png.Decode(bytes.NewReader(data)); err != nil || pngGenerator(data) != Generator {
			t.Errorf("%s: decodes with %v; marker %q", img, err, pngGenerator(data))
		}
		if !slices.Contains(RunImages("run"), filepath.Base(img)) {
			t.Errorf("image %s is not among RunImages %v", img, RunImages("run"))
		}
	}
	for _, n := range names {
		if why := ownFile(dir, n); why != "" {
			t.Errorf("%s is not recognised as the report's: %s", n, why)
		}
	}

	// An earlier report: refused without Force, replaced with it.
	var oe *OutputError
	if _, err := Write(dir, in(false)); !errors.As(err, &oe) || oe.Foreign || !strings.Contains(err.Error(), "Force") {
		t.Errorf("a second report without Force: %v", err)
	}
	if _, err := Write(dir, in(true)); err != nil {
		t.Errorf("a second report with Force: %v", err)
	}

	// Foreign files of each name: refused even with Force, nothing written.
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{MarkdownFile, []byte("# My notes\n\nNot a report.\n")},
		{HTMLFile, []byte("<!DOCTYPE html>\n<p>my page</p>\n")},
		{names[2], []byte("not an image")},
		{names[2], markPNG(nil)},                                                            // empty
		{names[3], append(slices.Clone(pngSignature), "\x00\x00\x00\x00IEND\xaeB`\x82"...)}, // a PNG without the marker
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			var oe *OutputError
			_, err := Write(dir, in(true))
			if !errors.As(err, &oe) || !oe.Foreign || oe.Path != p || !strings.Contains(err.Error(), p) {
				t.Fatalf("report over a foreign %s: %v", tc.name, err)
			}
			entries, _ := os.ReadDir(dir)
			if got, _ := os.ReadFile(p); !bytes.Equal(got, tc.data) || len(entries) != 1 {
				t.Errorf("the foreign %s changed, or other files were written (%d entries)", tc.name, len(entries))
			}
		})
	}

	// A directory of the name is refused too.
	sub := t.TempDir()
	if err := os.Mkdir(filepath.Join(sub, HTMLFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(sub, in(true)); !errors.As(err, &oe) || !oe.Foreign || !strings.Contains(err.Error(), "a directory") {
		t.Errorf("report over a directory: %v", err)
	}

	// A report written before the marks: its report.md, report.html and the images its
	// report.md shows are replaced with Force; a PNG it does not show is not.
	old := t.TempDir()
	img := names[2]
	legacy := map[string]string{
		MarkdownFile: "# EvoPress drop search\n\nGenerated 2026-01-01 10:00 UTC by evopress.\n\n![plot](" + img + ")\n",
		HTMLFile:     "<!DOCTYPE html>\n<html><body>\n<p>Generated 2026-01-01 10:00 UTC by evopress.</p>\n</body></html>\n",
		img:          string(pngSignature) + "old image",
	}
	for n, s := range legacy {
		if err := os.WriteFile(filepath.Join(old, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Write(old, in(true)); err != nil {
		t.Errorf("report over an unmarked earlier report: %v", err)
	}
	if why := ownFile(old, img); why != "" {
		t.Errorf("the replaced image: %s", why)
	}
	if err := os.WriteFile(filepath.Join(old, names[3]), []byte(string(pngSignature)+"other"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, MarkdownFile), []byte(legacy[MarkdownFile]), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(old, in(true)); !errors.As(err, &oe) || oe.Path != filepath.Join(old, names[3]) {
		t.Errorf("an unmarked PNG the earlier report does not show: %v", err)
	}
}

// TestWriteRunForce: a run's report replaces the run folder's earlier report, but one in
// another folder only with force.
func TestWriteRunForce(t *testing.T) {
	h := synthHistory(3, 0.5, 0.1, 6)
	runDir := filepath.Join(t.TempDir(), "p.run")
	if err := os.Mkdir(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(filepath.Dir(runDir), "p.json")
	if err := synthProfile(profile.ModeDrop, 4, 3, h).Write(prof); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := WriteRun(runDir, "", "", false); err != nil {
			t.Fatalf("report %d into the run folder: %v", i+1, err)
		}
	}
	out := t.TempDir()
	if _, err := WriteRun(runDir, "", out, false); err != nil {
		t.Fatal(err)
	}
	var oe *OutputError
	if _, err := WriteRun(runDir, "", out, false); !errors.As(err, &oe) || oe.Foreign {
		t.Errorf("a second report into --out without force: %v", err)
	}
	if _, err := WriteRun(runDir, "", out, true); err != nil {
		t.Errorf("with force: %v", err)
	}
}
