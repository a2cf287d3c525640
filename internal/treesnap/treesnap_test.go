package treesnap

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recorder collects Errorf messages instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}

func TestSameSeesEveryChange(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "1")
	write("sub/b", "2")
	write("c", "3")
	if err := os.Symlink("a", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	before := Take(t, dir)
	if len(before) != 4 || string(before[filepath.Join(dir, "l")].Data) != "link:a" {
		t.Fatalf("Take: %v", before)
	}
	r := &recorder{TB: t}
	before.Same(r, "unchanged", Take(t, dir))
	if len(r.errs) != 0 {
		t.Fatalf("unchanged tree reported: %v", r.errs)
	}

	write("a", "changed")
	old := time.Now().Add(-time.Hour)
	write("c", "3") // same content, new time
	if err := os.Chtimes(filepath.Join(dir, "c"), old, old); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "sub", "b"))
	write("new", "x")
	before.Same(r, "step", Take(t, dir))
	got := strings.Join(r.errs, "\n")
	for _, want := range []string{"a was changed", "c was changed", "b was removed", "new appeared"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if len(r.errs) != 4 {
		t.Errorf("%d reports, want 4:\n%s", len(r.errs), got)
	}
	if u := before.Under(filepath.Join(dir, "sub")); len(u) != 1 {
		t.Errorf("Under(sub) = %v", u)
	}
}
