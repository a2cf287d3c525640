package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportCommand runs a small real drop search, then writes its report into the run folder
// (default profile) and elsewhere (--out, --profile), and checks a bad folder's error.
func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "p.json")
	if _, err := run(t, searchArgs(t, prof, "--generations", "3")...); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(dir, "p.run")

	out, err := run(t, "report", runDir, "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got struct {
		Markdown, HTML string
		Images         []string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if got.Markdown != filepath.Join(runDir, "report.md") || len(got.Images) != 3 {
		t.Errorf("report files %+v, want report.md and 3 images in %s", got, runDir)
	}
	md, err := os.ReadFile(got.Markdown)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# EvoPress drop search", "generations completed | 3 of 3", "evopress-small-model", "| seed | 7 |", "--calib-tokens 8192"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	for _, img := range got.Images {
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(bytes.NewReader(data)); err != nil {
			t.Errorf("%s: %v", img, err)
		}
	}

	other := filepath.Join(dir, "elsewhere")
	if out, err := run(t, "report", runDir, "--out", other, "--profile", prof); err != nil || !strings.Contains(out, "report written to "+filepath.Join(other, "report.md")) {
		t.Errorf("report --out: %v\n%s", err, out)
	}

	_, err = run(t, "report", filepath.Join(dir, "missing.run"))
	if err == nil || !strings.Contains(err.Error(), "missing.run") {
		t.Errorf("report of a missing folder: error %v, want one naming it", err)
	}
}
