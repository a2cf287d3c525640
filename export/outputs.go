package export

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/evopress/evopress/internal/outpath"
	"github.com/evopress/evopress/profile"
)

// ExportFormat marks what this package writes: the "format" of a Hugging Face export's
// evopress.json, and the value of the GGUFMarkerKey of a GGUF export. Options.Force replaces only
// an output carrying it.
const ExportFormat = "evopress-export/v1"

// GGUFMarkerKey is the GGUF metadata key (a string, ExportFormat) marking a GGUF file written by
// this package.
const GGUFMarkerKey = "evopress.export"

// existing is what an output path holds before an export.
type existing int

const (
	absent   existing = iota // nothing
	empty                    // an empty folder (hf) or file (gguf): nothing to lose
	previous                 // an earlier export
)

// shardName matches the safetensors shards a Hugging Face export writes.
var shardName = regexp.MustCompile(`^model(-[0-9]{5}-of-[0-9]{5})?\.safetensors$`)

// exportFiles reports whether name is a file a Hugging Face export writes.
func exportFiles(name string) bool {
	switch name {
	case "config.json", ProvenanceFile, "model.safetensors.index.json":
		return true
	}
	return shardName.MatchString(name) || slices.Contains(copiedFiles, name)
}

// checkOut refuses, before any work and again just before the output is replaced, an output
// that would write into, over or around an input (the model directory, the level database, the
// profile), and an existing output that this package did not write (even with Force) or that
// Force does not allow replacing.
func checkOut(o *Options) (existing, error) {
	inputs := []struct{ path, what string }{{o.ModelDir, "the model directory"}, {o.ProfilePath, "the profile"}}
	if o.ModelFS != nil { // a directory of ModelFS is not on the disk
		inputs = inputs[1:]
	}
	if o.Profile != nil && o.Profile.Mode != profile.ModeDrop {
		inputs = append(inputs, struct{ path, what string }{o.Profile.DatabaseDir(o.DBDir), "the level database"})
	}
	for _, in := range inputs {
		if in.path == "" {
			continue
		}
		rel, err := outpath.Relate(o.Out, in.path)
		if err != nil {
			return absent, optionError("Out", "{} %s: %v", o.Out, err)
		}
		if rel != outpath.Apart {
			return absent, optionError("Out", "{} %s %s %s %s: an export never writes into, over or around its input", o.Out, rel, in.what, in.path)
		}
	}
	ex, why, err := inspectOut(o.Out, o.Format)
	switch {
	case err != nil:
		return absent, err
	case why != "" && o.Force:
		return absent, optionError("Force", "{} does not replace %s: %s; it replaces only an earlier export", o.Out, why)
	case why != "":
		return absent, optionError("Out", "{} %s exists: %s; choose another path", o.Out, why)
	case ex == previous && !o.Force:
		return absent, optionError("Force", "%s exists (use {} to replace it)", o.Out)
	}
	return ex, nil
}

// inspectOut says what out holds: nothing, an empty folder or file, an earlier export of format,
// or (why ≠ "") something this package did not write.
func inspectOut(out, format string) (ex existing, why string, err error) {
	fi, err := os.Lstat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return absent, "", nil
	}
	if err != nil {
		return absent, "", optionError("Out", "{} %s: %v", out, err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return absent, "it is a symbolic link", nil
	case format == FormatHF && !fi.IsDir():
		return absent, "it is not a directory (the hf format writes a directory)", nil
	case format == FormatGGUF && !fi.Mode().IsRegular():
		return absent, "it is not a regular file (the gguf format writes a file)", nil
	case format == FormatGGUF && fi.Size() == 0:
		return empty, "", nil
	case format == FormatGGUF:
		if !IsGGUFExport(out) {
			return absent, fmt.Sprintf("it is not a GGUF file written by evopress export (no %s key)", GGUFMarkerKey), nil
		}
		return previous, "", nil
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return absent, "", optionError("Out", "{} %s: %v", out, err)
	}
	if len(entries) == 0 {
		return empty, "", nil
	}
	var pv struct {
		Format string `json:"format"`
	}
	if data, err := os.ReadFile(filepath.Join(out, ProvenanceFile)); err != nil || json.Unmarshal(data, &pv) != nil || pv.Format != ExportFormat {
		return absent, fmt.Sprintf("it is a non-empty directory that is not an evopress export (no %s of format %s)", ProvenanceFile, ExportFormat), nil
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !exportFiles(e.Name()) {
			return absent, fmt.Sprintf("it holds %s, which no export writes", e.Name()), nil
		}
	}
	return previous, "", nil
}

// IsGGUFExport reports whether path is a GGUF file this package wrote: its metadata carries
// GGUFMarkerKey = ExportFormat (it reads the header and the metadata up to that key, at most
// 1 MiB). Such a file is what Options.Force replaces.
func IsGGUFExport(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, 1<<20))
	var hdr struct {
		Magic   [4]byte
		Version uint32
		Tensors uint64
		KVs     uint64
	}
	if binary.Read(r, binary.LittleEndian, &hdr) != nil || string(hdr.Magic[:]) != "GGUF" || hdr.Version < 2 {
		return false
	}
	str := func() (string, bool) {
		var n uint64
		if binary.Read(r, binary.LittleEndian, &n) != nil || n > 1<<16 {
			return "", false
		}
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return string(b), err == nil
	}
	// The sizes of the scalar value types (ggml/docs/gguf.md: uint8 0, int8 1, uint16 2, int16 3,
	// uint32 4, int32 5, float32 6, bool 7, uint64 10, int64 11, float64 12).
	scalar := map[uint32]int{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
	for range min(hdr.KVs, 64) {
		key, ok := str()
		if !ok {
			return false
		}
		var typ uint32
		if binary.Read(r, binary.LittleEndian, &typ) != nil {
			return false
		}
		switch size, isScalar := scalar[typ]; {
		case typ == ggufString:
			v, ok := str()
			if !ok {
				return false
			}
			if key == GGUFMarkerKey {
				return v == ExportFormat
			}
		case isScalar:
			if _, err := r.Discard(size); err != nil {
				return false
			}
		default:
			return false // arrays come after the marker in what this package writes
		}
	}
	return false
}
