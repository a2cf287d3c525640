// Package dirlock is an advisory, exclusive lock on a file, taken without waiting and released
// when the holder releases it or its process ends, however it ends (flock(2) on Linux, macOS and
// the BSDs, LockFileEx on Windows; elsewhere the lock is not enforced). The file records the
// holder's process id, so that a refused process can say who holds it. The file itself is left
// in place: removing a lock file while another process opens it would let two processes hold
// "the" lock.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// BusyError reports a lock held by another process (or another Lock of this one).
type BusyError struct {
	Path string
	// PID is the holder's process id (0: unknown).
	PID int
}

func (e *BusyError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("%s is locked by another process", e.Path)
	}
	return fmt.Sprintf("%s is locked by another process (pid %d)", e.Path, e.PID)
}

// errBusy is what lockFile returns when another holder has the lock.
var errBusy = errors.New("locked")

// Lock is a held lock.
type Lock struct {
	f *os.File
}

// Acquire takes the lock of path (created if needed) or returns a *BusyError at once when
// someone else holds it.
func Acquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errBusy) {
			return nil, &BusyError{Path: path, PID: readPID(path)}
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Check returns a *BusyError when someone holds the lock of path, without keeping it or
// creating path (nil when path does not exist): a command can refuse at once what it will lock
// later, before it creates anything.
func Check(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		if errors.Is(err, errBusy) {
			return &BusyError{Path: path, PID: readPID(path)}
		}
		return fmt.Errorf("locking %s: %w", path, err)
	}
	return unlockFile(f)
}

// Release clears the recorded process id and releases the lock. It may be called more than
// once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	f.Truncate(0)
	err := unlockFile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readPID returns the process id recorded in path (0 when there is none).
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid < 0 {
		return 0
	}
	return pid
}
