package hf

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/evopress/evopress/internal/atomicfile"
	"io"
	"math"
	"sort"
	"strconv"
)

// TensorData is a tensor to write with WriteSafetensors.
type TensorData struct {
	// Name is the tensor's name; it must be unique and not "__metadata__".
	Name string
	// DType is the stored type. F32 values are converted to F16 or BF16 with
	// round-to-nearest-even.
	DType DType
	// Shape is the tensor's shape; its product must equal the number of
	// elements supplied.
	Shape []int
	// F32 holds the values in row-major order (DType F32, F16 or BF16).
	F32 []float32
	// Bits, when non-nil (and Raw is nil), holds the values' bits in DType (F16 or BF16), written
	// as they are instead of F32: a 16-bit tensor kept in its dtype (model.Linear.Stored) is
	// written without a float32 copy, and with the bits F32 would have given it.
	Bits []uint16
	// Raw, when non-nil, is written verbatim instead of F32 (any known
	// DType; little-endian; length numel·DType.Size()), e.g. a tensor copied
	// unchanged with Checkpoint.ReadRaw.
	Raw []byte
}

// WriteSafetensors writes tensors to a safetensors file at path, atomically:
// it writes a temporary file in the same directory, syncs it and renames it
// over path (then syncs the directory where the platform allows). Tensors
// are laid out in name order and the header (with metadata, if any, as
// "__metadata__") is padded with spaces to a multiple of 8 bytes, as the
// format requires. The output is deterministic.
func WriteSafetensors(path string, tensors []TensorData, metadata map[string]string) error {
	header, order, err := buildHeader(path, tensors, metadata)
	if err != nil {
		return err
	}
	return writeAtomic(path, func(w *bufio.Writer) {
		var lenBuf [8]byte
		binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(header)))
		w.Write(lenBuf[:])
		w.Write(header)
		chunk := make([]byte, 64<<10)
		for _, t := range order {
			if t.Raw != nil {
				w.Write(t.Raw)
				continue
			}
			if t.Bits != nil {
				for done := 0; done < len(t.Bits); done += len(chunk) / 2 {
					bits := t.Bits[done:min(done+len(chunk)/2, len(t.Bits))]
					b := chunk[:2*len(bits)]
					for i, v := range bits {
						binary.LittleEndian.PutUint16(b[2*i:], v)
					}
					w.Write(b)
				}
				continue
			}
			es := t.DType.Size()
			per := len(chunk) / es
			for done := 0; done < len(t.F32); done += per {
				vals := t.F32[done:min(done+per, len(t.F32))]
				b := chunk[:len(vals)*es]
				encodeFloats(t.DType, vals, b)
				w.Write(b)
			}
		}
	})
}

// WriteFileAtomic writes data to path atomically, as WriteSafetensors does
// (temporary file in the same directory, sync, rename; mode 0644), e.g. for
// the config.json of an exported model.
func WriteFileAtomic(path string, data []byte) error {
	return writeAtomic(path, func(w *bufio.Writer) { w.Write(data) })
}

// writeAtomic writes path through a temporary file in the same directory;
// write errors are sticky in the bufio.Writer and reported by Flush.
func writeAtomic(path string, fill func(w *bufio.Writer)) error {
	err := atomicfile.Write(path, 0o644, func(f io.Writer) error {
		w := bufio.NewWriterSize(f, 1<<20)
		fill(w)
		return w.Flush() // write errors are sticky in the bufio.Writer
	})
	if err != nil {
		return fmt.Errorf("hf: %s: %w", path, err)
	}
	return nil
}

// buildHeader validates the tensors and returns the padded header JSON and
// the tensors in name order.
func buildHeader(path string, tensors []TensorData, metadata map[string]string) ([]byte, []*TensorData, error) {
	order := make([]*TensorData, len(tensors))
	seen := make(map[string]bool, len(tensors))
	for i := range tensors {
		t := &tensors[i]
		fail := func(format string, args ...any) ([]byte, []*TensorData, error) {
			return nil, nil, fmt.Errorf("hf: %s: tensor %q: %s", path, t.Name, fmt.Sprintf(format, args...))
		}
		if t.Name == "" || t.Name == "__metadata__" {
			return fail("invalid tensor name")
		}
		if seen[t.Name] {
			return fail("given twice")
		}
		seen[t.Name] = true
		numel := int64(1)
		for _, d := range t.Shape {
			if d < 0 || d > math.MaxInt32 {
				return fail("invalid shape %v", t.Shape)
			}
			if d != 0 && numel > math.MaxInt64/8/int64(d) {
				return fail("shape %v too large", t.Shape)
			}
			numel *= int64(d)
		}
		if t.Raw != nil {
			if !t.DType.Known() {
				return fail("unknown dtype %q (known: %s)", t.DType, knownDTypes())
			}
			if int64(len(t.Raw)) != numel*int64(t.DType.Size()) {
				return fail("shape %v of %s needs %d bytes, Raw has %d", t.Shape, t.DType, numel*int64(t.DType.Size()), len(t.Raw))
			}
		} else if t.Bits != nil {
			if t.DType != F16 && t.DType != BF16 {
				return fail("dtype %q: 16-bit values (Bits) are F16 or BF16", t.DType)
			}
			if t.F32 != nil {
				return fail("both F32 and Bits given")
			}
			if int64(len(t.Bits)) != numel {
				return fail("shape %v has %d elements, got %d values", t.Shape, numel, len(t.Bits))
			}
		} else {
			if t.DType != F32 && t.DType != F16 && t.DType != BF16 {
				return fail("dtype %q cannot be written from float32 (supported: F32, F16, BF16)", t.DType)
			}
			if int64(len(t.F32)) != numel {
				return fail("shape %v has %d elements, got %d values", t.Shape, numel, len(t.F32))
			}
		}
		order[i] = t
	}
	sort.Slice(order, func(i, j int) bool { return order[i].Name < order[j].Name })

	var buf bytes.Buffer
	enc := func(v any) {
		e := json.NewEncoder(&buf)
		e.SetEscapeHTML(false)
		e.Encode(v)
		buf.Truncate(buf.Len() - 1) // Encode appends a newline
	}
	buf.WriteByte('{')
	first := true
	if len(metadata) > 0 {
		buf.WriteString(`"__metadata__":`)
		enc(metadata) // encoding/json sorts map keys
		first = false
	}
	var off int64
	for _, t := range order {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		enc(t.Name)
		buf.WriteString(`:{"dtype":`)
		enc(string(t.DType))
		buf.WriteString(`,"shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(strconv.Itoa(d))
		}
		size := int64(len(t.Raw))
		switch {
		case t.Raw != nil:
		case t.Bits != nil:
			size = 2 * int64(len(t.Bits))
		default:
			size = int64(len(t.F32) * t.DType.Size())
		}
		fmt.Fprintf(&buf, `],"data_offsets":[%d,%d]}`, off, off+size)
		off += size
	}
	buf.WriteByte('}')
	for buf.Len()%8 != 0 {
		buf.WriteByte(' ')
	}
	if buf.Len() > MaxHead {
		return nil, nil, fmt.Errorf("hf: %s: header of %d bytes exceeds the limit of %d", path, buf.Len(), MaxHead)
	}
	return buf.Bytes(), order, nil
}

// encodeFloats writes vals as little-endian elements of dt (F32, F16 or BF16) into b.
func encodeFloats(dt DType, vals []float32, b []byte) {
	switch dt {
	case F32:
		for i, v := range vals {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range vals {
			binary.LittleEndian.PutUint16(b[2*i:], Float32ToFloat16(v))
		}
	case BF16:
		for i, v := range vals {
			binary.LittleEndian.PutUint16(b[2*i:], Float32ToBFloat16(v))
		}
	}
}
