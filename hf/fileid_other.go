//go:build !linux && !darwin

package hf

import "os"

// sysIdentity returns zeros where the platform's file information has no portable device,
// inode or status-change time: the cache keys on path, size and modification time only.
func sysIdentity(st os.FileInfo) (dev, ino uint64, ctimeNS int64) { return 0, 0, 0 }
