// Package treesnap records the files under folders (content and modification time) so that tests
// can check a command left everything it must not touch exactly as it was.
package treesnap

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// File is a file's content and modification time; a symbolic link's content is "link:" and
// its target (links are recorded, never followed).
type File struct {
	Data  []byte
	MTime time.Time
}

// Tree maps paths to their files.
type Tree map[string]File

// Take records every file under the roots; it fails the test on a walk error.
func Take(t testing.TB, roots ...string) Tree {
	t.Helper()
	out := Tree{}
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
			out[p] = File{data, fi.ModTime()}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Same fails the test (what names the situation) unless after holds exactly tr's files with the
// same contents and modification times.
func (tr Tree) Same(t testing.TB, what string, after Tree) {
	t.Helper()
	for p, b := range tr {
		a, ok := after[p]
		switch {
		case !ok:
			t.Errorf("%s: %s was removed", what, p)
		case !bytes.Equal(a.Data, b.Data) || !a.MTime.Equal(b.MTime):
			t.Errorf("%s: %s was changed", what, p)
		}
	}
	for p := range after {
		if _, ok := tr[p]; !ok {
			t.Errorf("%s: %s appeared", what, p)
		}
	}
}

// Under returns the entries of tr inside dir.
func (tr Tree) Under(dir string) Tree {
	out := Tree{}
	for p, s := range tr {
		if strings.HasPrefix(p, dir+string(filepath.Separator)) {
			out[p] = s
		}
	}
	return out
}
