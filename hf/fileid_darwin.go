//go:build darwin

package hf

import (
	"os"
	"syscall"
)

// sysIdentity returns a file's device and inode numbers and status-change time (ns).
func sysIdentity(st os.FileInfo) (dev, ino uint64, ctimeNS int64) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0
	}
	return uint64(s.Dev), uint64(s.Ino), s.Ctimespec.Sec*1e9 + s.Ctimespec.Nsec
}
