package db

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/evopress/evopress/internal/dirlock"
)

// LockFile is the file in a database directory that a build holds locked (dirlock) while it
// runs, so that two builds never write one database. It stays in the directory.
const LockFile = "build.lock"

// lockBuildDir refuses a non-empty directory that holds no database, then takes the build lock
// of dir (*BusyError when another build holds it).
func lockBuildDir(dir string) (*dirlock.Lock, error) {
	if err := checkBuildDir(dir); err != nil {
		return nil, err
	}
	lk, err := dirlock.Acquire(filepath.Join(dir, LockFile))
	var busy *dirlock.BusyError
	if errors.As(err, &busy) {
		return nil, &BusyError{Dir: dir, PID: busy.PID}
	}
	return lk, err
}

// BusyError reports a database directory that another build is writing.
type BusyError struct {
	Dir string
	// PID is the other build's process id (0: unknown).
	PID int
}

func (e *BusyError) Error() string {
	pid := "pid unknown"
	if e.PID != 0 {
		pid = fmt.Sprintf("pid %d", e.PID)
	}
	return fmt.Sprintf("db: database %s is being built by another process (%s)", e.Dir, pid)
}

// CheckBuildDir reports, before any work, whether Build could write the database dir: it must
// be new, an empty folder or a database (Force or not), and not being built by another process
// (*BusyError).
func CheckBuildDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("db: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("db: %s is not a directory; a level database is a folder", dir)
	}
	lk, err := lockBuildDir(dir)
	if err != nil {
		return err
	}
	return lk.Release()
}

// checkBuildDir refuses a directory that is neither empty nor a database (a manifest): a build
// writes only into its own database, whatever the Force setting.
func checkBuildDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("db: %w", err)
	}
	var other []string
	for _, e := range entries {
		switch n := e.Name(); {
		case n == ManifestFile:
			return nil
		case n == LockFile, isTempOf(n, ManifestFile), isTempOf(n, ImatrixFile):
		default:
			other = append(other, n)
		}
	}
	if len(other) == 0 {
		return nil
	}
	if len(other) > 3 {
		other = append(other[:3], "…")
	}
	return fmt.Errorf("db: %s is not empty and holds no level database (no %s; it holds %s): not built into, even when forced; choose an empty or new directory",
		dir, ManifestFile, strings.Join(other, ", "))
}

// isTempOf reports whether name is a temporary file of an atomic write of file.
func isTempOf(name, file string) bool {
	return strings.HasPrefix(name, "."+file+".tmp-")
}

// isLevelFile reports whether name is a level file a build writes (or its temporary file).
func isLevelFile(name string) bool {
	if strings.HasSuffix(name, ".evl") {
		return true
	}
	i := strings.Index(name, ".evl.tmp-")
	return strings.HasPrefix(name, ".") && i > 0
}

// discardLevels removes the level files of a database being replaced (the .evl files under
// levels/, with their temporary files, and, when old is a gguf database that computed it, its
// ImatrixFile) and the folders they leave empty: nothing else. The manifest is replaced
// afterwards.
func discardLevels(dir string, old *Manifest) error {
	computed := old != nil && old.GGUF != nil && old.GGUF.Imatrix.Source == ImatrixCalibration
	if fi, err := os.Lstat(filepath.Join(dir, ImatrixFile)); computed && err == nil && fi.Mode().IsRegular() {
		if err := os.Remove(filepath.Join(dir, ImatrixFile)); err != nil {
			return fmt.Errorf("db: removing the replaced database's %s: %w", ImatrixFile, err)
		}
	}
	root := filepath.Join(dir, "levels")
	var dirs []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		switch {
		case err != nil && p == root && errors.Is(err, fs.ErrNotExist):
			return fs.SkipAll
		case err != nil:
			return err
		case e.IsDir():
			dirs = append(dirs, p)
		case e.Type().IsRegular() && isLevelFile(e.Name()):
			return os.Remove(p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i]) // only an empty folder goes
	}
	if err != nil {
		return fmt.Errorf("db: removing the replaced database's level files: %w", err)
	}
	return nil
}
