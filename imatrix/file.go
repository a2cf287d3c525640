package imatrix

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/evopress/evopress/internal/atomicfile"
)

// Format is an importance matrix file format.
type Format string

// The file formats llama.cpp's tools read and write (see the package documentation).
const (
	// FormatGGUF is llama-imatrix's default format: a GGUF file of raw sums and counts.
	FormatGGUF Format = "gguf"
	// FormatDat is the legacy binary format (llama-imatrix --output-format dat).
	FormatDat Format = "dat"
)

// ParseFormat checks a format name: "gguf" or "dat".
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatGGUF, FormatDat:
		return f, nil
	}
	return "", fmt.Errorf("unknown imatrix format %q (want gguf or dat)", s)
}

// FormatForPath is the format a file name suggests: FormatDat for a ".dat" extension, else
// FormatGGUF (llama-imatrix's default).
func FormatForPath(path string) Format {
	if strings.EqualFold(filepath.Ext(path), ".dat") {
		return FormatDat
	}
	return FormatGGUF
}

// ErrFormat marks a file that is not a readable importance matrix; Read's errors wrap it and
// name the file and the field.
var ErrFormat = errors.New("not a valid importance matrix")

// Read reads the importance matrix file path in either format (a GGUF file is recognised by its
// magic bytes, anything else is read as the legacy format, as llama.cpp does) and checks it
// (Matrix.Check). Errors name the file and the field at fault and wrap ErrFormat; sizes written
// in the file are checked against the file's length before anything is allocated for them.
func Read(path string) (*Matrix, Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("imatrix: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("imatrix: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, "", fmt.Errorf("imatrix: %s: not a regular file", path)
	}
	return Decode(f, st.Size(), path)
}

// Decode reads an importance matrix of size bytes from r; name names it in errors (see Read).
func Decode(r io.ReaderAt, size int64, name string) (*Matrix, Format, error) {
	var magic [4]byte
	n, _ := r.ReadAt(magic[:], 0)
	var m *Matrix
	var f Format
	var err error
	if n == 4 && string(magic[:]) == ggufMagic {
		f = FormatGGUF
		m, err = decodeGGUF(newReader(r, size, name))
	} else {
		f = FormatDat
		m, err = decodeDat(newReader(r, size, name))
	}
	if err != nil {
		return nil, "", err
	}
	if err := m.Check(); err != nil {
		return nil, "", fmt.Errorf("%s: %w: %w", name, err, ErrFormat)
	}
	return m, f, nil
}

// Write writes m to path in format f atomically (a temporary file renamed into place), after
// checking it (Matrix.Check).
func Write(path string, m *Matrix, f Format) error {
	var buf bytes.Buffer
	if err := Encode(&buf, m, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes(), 0o644)
}

// Encode writes m to w in format f, byte for byte as llama-imatrix writes the same data.
func Encode(w io.Writer, m *Matrix, f Format) error {
	if err := m.Check(); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	var err error
	switch f {
	case FormatGGUF:
		err = encodeGGUF(bw, m)
	case FormatDat:
		err = encodeDat(bw, m)
	default:
		return fmt.Errorf("imatrix: unknown format %q (want gguf or dat)", f)
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// reader reads little-endian fields from a file of known size, naming the file, the field and
// the offset in its errors; every length read from the file is checked against what is left of
// it before anything is allocated.
type reader struct {
	ra   io.ReaderAt
	r    *bufio.Reader
	pos  int64
	size int64
	name string
	buf  [8]byte
}

func newReader(r io.ReaderAt, size int64, name string) *reader {
	return &reader{ra: r, r: bufio.NewReader(io.NewSectionReader(r, 0, size)), size: size, name: name}
}

// seek moves to offset pos (0 ≤ pos ≤ size).
func (r *reader) seek(pos int64) {
	r.r.Reset(io.NewSectionReader(r.ra, pos, r.size-pos))
	r.pos = pos
}

// errf makes an error about field at the current offset.
func (r *reader) errf(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s (byte %d): %s: %w", r.name, field, r.pos, fmt.Sprintf(format, args...), ErrFormat)
}

func (r *reader) left() int64 { return r.size - r.pos }

// need checks that n more bytes are in the file.
func (r *reader) need(n int64, field string) error {
	if n < 0 || n > r.left() {
		return r.errf(field, "needs %d bytes, the file has %d left (truncated or corrupt)", n, r.left())
	}
	return nil
}

func (r *reader) read(p []byte, field string) error {
	if err := r.need(int64(len(p)), field); err != nil {
		return err
	}
	if _, err := io.ReadFull(r.r, p); err != nil {
		return r.errf(field, "%v", err)
	}
	r.pos += int64(len(p))
	return nil
}

func (r *reader) skip(n int64, field string) error {
	if err := r.need(n, field); err != nil {
		return err
	}
	if _, err := r.r.Discard(int(n)); err != nil {
		return r.errf(field, "%v", err)
	}
	r.pos += n
	return nil
}

func (r *reader) u32(field string) (uint32, error) {
	if err := r.read(r.buf[:4], field); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(r.buf[:4]), nil
}

func (r *reader) i32(field string) (int32, error) {
	v, err := r.u32(field)
	return int32(v), err
}

func (r *reader) u64(field string) (uint64, error) {
	if err := r.read(r.buf[:8], field); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(r.buf[:8]), nil
}

// bytes reads n bytes (n checked against the file's length first).
func (r *reader) bytes(n int64, field string) ([]byte, error) {
	if err := r.need(n, field); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	return b, r.read(b, field)
}

// floats reads n little-endian float32 values.
func (r *reader) floats(n int64, field string) ([]float32, error) {
	if n < 0 || n > r.left()/4 {
		return nil, r.errf(field, "%d float32 values need %d bytes, the file has %d left (truncated or corrupt)", n, 4*n, r.left())
	}
	out := make([]float32, n)
	var chunk [4096]byte
	for i := int64(0); i < n; {
		k := min(n-i, int64(len(chunk)/4))
		if err := r.read(chunk[:4*k], field); err != nil {
			return nil, err
		}
		for j := int64(0); j < k; j++ {
			out[i+j] = math.Float32frombits(binary.LittleEndian.Uint32(chunk[4*j:]))
		}
		i += k
	}
	return out, nil
}
