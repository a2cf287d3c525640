//go:build unix

package hf

import (
	"os"
	"syscall"
)

// mapFile maps a whole file read-only and shared (its pages are the page cache's).
func mapFile(f *os.File, size int64) ([]byte, error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, errNoMap
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}
