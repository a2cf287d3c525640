//go:build !unix

package hf

import "os"

// mapFile is not available on this operating system: MapUint16 reads instead.
func mapFile(f *os.File, size int64) ([]byte, error) { return nil, errNoMap }
