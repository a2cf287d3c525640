// Package gguf reads GGUF files, the model format of llama.cpp and ollama (ggml/docs/gguf.md):
// a header, typed metadata key/value pairs, tensor descriptions, and aligned tensor data whose
// blocks package ggml encodes and decodes.
//
// GGUF files come from outside, so the reader trusts nothing in them: every count, length,
// dimension and offset is checked against the file's size and against overflow before anything
// is allocated or read, and a malformed file is an error naming the field, never a panic or an
// oversized allocation. Versions 2 and 3 (little-endian) are read; metadata is kept in file
// order; tensor data is read on demand.
package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/evopress/evopress/ggml"
)

// Magic is "GGUF" read as a little-endian uint32.
const Magic = 0x46554747

// DefaultAlignment is the alignment of tensor data when general.alignment is absent.
const DefaultAlignment = 32

// ValueType is the type tag of a metadata value (enum gguf_type).
type ValueType uint32

// The metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

// scalarSize is the encoded size of a fixed-size value type (0 for string and array).
func (t ValueType) scalarSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// KV is one metadata pair. Value holds uint8, int8, uint16, int16, uint32, int32, float32,
// bool, string, uint64, int64 or float64, or for an array a slice of one of those ([]string,
// []int32, …); arrays of arrays are refused.
type KV struct {
	Key   string
	Type  ValueType // the value's type; TypeArray for arrays
	Value any
}

// Tensor describes one tensor of a file.
type Tensor struct {
	Name string
	// Dims are the dimensions in GGUF order: Dims[0] (ggml's ne0) is the contiguous one, the
	// length of a row; a Hugging Face [out, in] weight has Dims [in, out].
	Dims []uint64
	Type ggml.Type
	// Offset is the position of the data relative to the file's data section; Size its length
	// in bytes.
	Offset uint64
	Size   int64
}

// Elements is the number of values of the tensor.
func (t *Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= int64(d)
	}
	return n
}

// File is a parsed GGUF file.
type File struct {
	Version   uint32
	Alignment int
	KV        []KV
	Tensors   []Tensor
	// DataOffset is the position of the data section in the file.
	DataOffset int64

	r      io.ReaderAt
	size   int64
	closer io.Closer
	name   string
	index  map[string]int
}

// Open opens and parses the GGUF file at path; Close releases it.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %v", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("gguf: %v", err)
	}
	f, err := parse(fh, st.Size(), path)
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
}

// Parse parses a GGUF file of size bytes read through r; name identifies it in errors.
func Parse(r io.ReaderAt, size int64, name string) (*File, error) {
	return parse(r, size, name)
}

// Close closes a file opened with Open.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// Lookup returns the metadata value of key.
func (f *File) Lookup(key string) (any, bool) {
	for i := range f.KV {
		if f.KV[i].Key == key {
			return f.KV[i].Value, true
		}
	}
	return nil, false
}

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (*Tensor, bool) {
	i, ok := f.index[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// ReadTensor reads the data of t, a tensor of f, as stored (ggml blocks for a quantized type).
func (f *File) ReadTensor(t *Tensor) ([]byte, error) {
	b := make([]byte, t.Size)
	if _, err := f.r.ReadAt(b, f.DataOffset+int64(t.Offset)); err != nil {
		return nil, fmt.Errorf("gguf: %s: tensor %s: %v", f.name, t.Name, err)
	}
	return b, nil
}

// ReadFloat32 reads t and decodes it to float32 (ggml.Dequantize; F32, F16, BF16 and the types
// package ggml decodes).
func (f *File) ReadFloat32(t *Tensor) ([]float32, error) {
	b, err := f.ReadTensor(t)
	if err != nil {
		return nil, err
	}
	v, err := ggml.Dequantize(t.Type, b)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: tensor %s: %v", f.name, t.Name, err)
	}
	return v, nil
}

// reader reads the header sequentially, tracking the position and the bytes left.
type reader struct {
	br   *bufio.Reader
	pos  int64
	size int64
	err  error
}

var errShort = errors.New("unexpected end of file")

func (r *reader) left() int64 { return r.size - r.pos }

func (r *reader) bytes(n int64) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.left() {
		r.err = errShort
		return nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.br, b); err != nil {
		r.err = err
		return nil
	}
	r.pos += n
	return b
}

func (r *reader) skip(n int64) {
	if r.err != nil {
		return
	}
	if n < 0 || n > r.left() {
		r.err = errShort
		return
	}
	if _, err := r.br.Discard(int(n)); err != nil {
		r.err = err
		return
	}
	r.pos += n
}

func (r *reader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// maxStringLen bounds keys, names and string values (ggml refuses none, but nothing real
// comes near it).
const maxStringLen = 1 << 24

func (r *reader) str() string {
	n := r.u64()
	if r.err != nil {
		return ""
	}
	if n > maxStringLen || int64(n) > r.left() {
		r.err = fmt.Errorf("string of %d bytes with %d left in the file", n, r.left())
		return ""
	}
	return string(r.bytes(int64(n)))
}

func (r *reader) scalar(t ValueType) any {
	b := r.bytes(int64(t.scalarSize()))
	if b == nil {
		return nil
	}
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return b[0]
	case TypeInt8:
		return int8(b[0])
	case TypeBool:
		return b[0] != 0
	case TypeUint16:
		return le.Uint16(b)
	case TypeInt16:
		return int16(le.Uint16(b))
	case TypeUint32:
		return le.Uint32(b)
	case TypeInt32:
		return int32(le.Uint32(b))
	case TypeFloat32:
		return math.Float32frombits(le.Uint32(b))
	case TypeUint64:
		return le.Uint64(b)
	case TypeInt64:
		return int64(le.Uint64(b))
	case TypeFloat64:
		return math.Float64frombits(le.Uint64(b))
	}
	return nil
}

// array reads an array of n elements of type t (not an array).
func (r *reader) array(t ValueType, n uint64) (any, error) {
	minSize := int64(t.scalarSize())
	if t == TypeString {
		minSize = 8
	}
	if minSize == 0 {
		return nil, fmt.Errorf("array of element type %d", t)
	}
	if n > uint64(r.left()/minSize) {
		return nil, fmt.Errorf("array of %d elements with %d bytes left in the file", n, r.left())
	}
	switch t {
	case TypeString:
		v := make([]string, n)
		for i := range v {
			v[i] = r.str()
		}
		return v, r.err
	case TypeUint8:
		return r.bytes(int64(n)), r.err
	}
	raw := r.bytes(int64(n) * minSize)
	if r.err != nil {
		return nil, r.err
	}
	le := binary.LittleEndian
	switch t {
	case TypeInt8:
		v := make([]int8, n)
		for i := range v {
			v[i] = int8(raw[i])
		}
		return v, nil
	case TypeBool:
		v := make([]bool, n)
		for i := range v {
			v[i] = raw[i] != 0
		}
		return v, nil
	case TypeUint16:
		v := make([]uint16, n)
		for i := range v {
			v[i] = le.Uint16(raw[2*i:])
		}
		return v, nil
	case TypeInt16:
		v := make([]int16, n)
		for i := range v {
			v[i] = int16(le.Uint16(raw[2*i:]))
		}
		return v, nil
	case TypeUint32:
		v := make([]uint32, n)
		for i := range v {
			v[i] = le.Uint32(raw[4*i:])
		}
		return v, nil
	case TypeInt32:
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(le.Uint32(raw[4*i:]))
		}
		return v, nil
	case TypeFloat32:
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
		return v, nil
	case TypeUint64:
		v := make([]uint64, n)
		for i := range v {
			v[i] = le.Uint64(raw[8*i:])
		}
		return v, nil
	case TypeInt64:
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(le.Uint64(raw[8*i:]))
		}
		return v, nil
	default: // TypeFloat64
		v := make([]float64, n)
		for i := range v {
			v[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
		return v, nil
	}
}

// maxDims is ggml's GGML_MAX_DIMS.
const maxDims = 4

func parse(ra io.ReaderAt, size int64, name string) (*File, error) {
	fail := func(format string, args ...any) (*File, error) {
		return nil, fmt.Errorf("gguf: %s: "+format, append([]any{name}, args...)...)
	}
	r := &reader{br: bufio.NewReaderSize(io.NewSectionReader(ra, 0, size), 1<<16), size: size}
	if magic := r.u32(); r.err != nil || magic != Magic {
		return fail("not a GGUF file (magic %08x)", magic)
	}
	f := &File{r: ra, size: size, name: name, Alignment: DefaultAlignment}
	f.Version = r.u32()
	if r.err == nil && f.Version != 2 && f.Version != 3 {
		return fail("GGUF version %d (2 and 3 are read)", f.Version)
	}
	nTensors, nKV := r.u64(), r.u64()
	if r.err != nil {
		return fail("header: %v", r.err)
	}
	// A metadata pair takes at least 12 bytes, a tensor description at least 24.
	if nKV > uint64(r.left()/12) {
		return fail("header: %d metadata pairs cannot fit in %d bytes", nKV, size)
	}
	if nTensors > uint64(r.left()/24) {
		return fail("header: %d tensors cannot fit in %d bytes", nTensors, size)
	}
	f.KV = make([]KV, 0, nKV)
	seen := map[string]bool{}
	for i := range nKV {
		kv := KV{Key: r.str()}
		kv.Type = ValueType(r.u32())
		if r.err != nil {
			return fail("metadata pair %d: %v", i, r.err)
		}
		if seen[kv.Key] {
			return fail("metadata key %q appears twice", kv.Key)
		}
		seen[kv.Key] = true
		switch {
		case kv.Type == TypeString:
			kv.Value = r.str()
		case kv.Type == TypeArray:
			et := ValueType(r.u32())
			n := r.u64()
			if r.err != nil {
				break
			}
			v, err := r.array(et, n)
			if err != nil {
				return fail("metadata %q: %v", kv.Key, err)
			}
			kv.Value = v
		case kv.Type.scalarSize() > 0:
			kv.Value = r.scalar(kv.Type)
		default:
			return fail("metadata %q: unknown value type %d", kv.Key, kv.Type)
		}
		if r.err != nil {
			return fail("metadata %q: %v", kv.Key, r.err)
		}
		f.KV = append(f.KV, kv)
	}
	if v, ok := f.Lookup("general.alignment"); ok {
		a, isU32 := v.(uint32)
		if !isU32 || a == 0 || a&(a-1) != 0 || a > 1<<20 {
			return fail("metadata general.alignment: %v is not a power of two (as a uint32)", v)
		}
		f.Alignment = int(a)
	}
	f.Tensors = make([]Tensor, 0, nTensors)
	f.index = make(map[string]int, nTensors)
	for i := range nTensors {
		t := Tensor{Name: r.str()}
		nd := r.u32()
		if r.err != nil {
			return fail("tensor %d: %v", i, r.err)
		}
		if nd == 0 || nd > maxDims {
			return fail("tensor %s: %d dimensions (1 to %d)", t.Name, nd, maxDims)
		}
		t.Dims = make([]uint64, nd)
		elems := int64(1)
		for j := range t.Dims {
			d := r.u64()
			if r.err != nil {
				return fail("tensor %s: %v", t.Name, r.err)
			}
			if elems > 0 && d > math.MaxInt64/uint64(elems) {
				return fail("tensor %s: dimension %d is %d: the tensor has more than 2^63 values", t.Name, j, d)
			}
			t.Dims[j] = d
			elems *= int64(d)
		}
		t.Type = ggml.Type(r.u32())
		t.Offset = r.u64()
		if r.err != nil {
			return fail("tensor %s: %v", t.Name, r.err)
		}
		if _, dup := f.index[t.Name]; dup {
			return fail("tensor %s appears twice", t.Name)
		}
		if !t.Type.Valid() {
			return fail("tensor %s: unknown ggml type %d", t.Name, uint32(t.Type))
		}
		bs := uint64(t.Type.BlockSize())
		if t.Dims[0]%bs != 0 {
			return fail("tensor %s: rows of %d values do not fit %s's blocks of %d", t.Name, t.Dims[0], t.Type, bs)
		}
		blocks := uint64(elems) / bs
		if blocks > uint64(size)/uint64(t.Type.BlockBytes()) {
			return fail("tensor %s: %d %s values take more than the file's %d bytes", t.Name, elems, t.Type, size)
		}
		t.Size = int64(blocks) * int64(t.Type.BlockBytes())
		if t.Offset%uint64(f.Alignment) != 0 {
			return fail("tensor %s: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)
		}
		f.index[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	a := int64(f.Alignment)
	f.DataOffset = (r.pos + a - 1) / a * a
	if f.DataOffset > size {
		return fail("the data section starts at %d, past the end (%d bytes)", f.DataOffset, size)
	}
	dataSize := uint64(size - f.DataOffset)
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if t.Offset > dataSize || uint64(t.Size) > dataSize-t.Offset {
			return fail("tensor %s: data [%d, +%d) past the end of the data section (%d bytes)", t.Name, t.Offset, t.Size, dataSize)
		}
	}
	return f, nil
}
