package hf

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// DType is a safetensors element type, as written in the header ("F32", …).
type DType string

// Element types. F32, F16, BF16 and F64 can be read as float32; the others
// are recognised in headers (so checkpoints holding them open) but cannot be
// converted.
const (
	F64    DType = "F64"
	F32    DType = "F32"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I64    DType = "I64"
	I32    DType = "I32"
	I16    DType = "I16"
	I8     DType = "I8"
	U64    DType = "U64"
	U32    DType = "U32"
	U16    DType = "U16"
	U8     DType = "U8"
	Bool   DType = "BOOL"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
	F8E8M0 DType = "F8_E8M0"
)

// MaxHead is the largest safetensors header (JSON) accepted, in bytes, the
// same limit as the reference implementation's.
const MaxHead = 100_000_000

var dtypeSizes = map[DType]int{
	F64: 8, F32: 4, F16: 2, BF16: 2,
	I64: 8, I32: 4, I16: 2, I8: 1,
	U64: 8, U32: 4, U16: 2, U8: 1,
	Bool: 1, F8E4M3: 1, F8E5M2: 1, F8E8M0: 1,
}

// Size returns the size of one element in bytes, or 0 for an unknown dtype.
func (d DType) Size() int { return dtypeSizes[d] }

// Known reports whether d is a dtype the header parser recognises.
func (d DType) Known() bool { return dtypeSizes[d] != 0 }

// Float reports whether ReadFloat32 can convert tensors of this dtype.
func (d DType) Float() bool { return d == F32 || d == F16 || d == BF16 || d == F64 }

func knownDTypes() string {
	names := make([]string, 0, len(dtypeSizes))
	for d := range dtypeSizes {
		names = append(names, string(d))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// TensorInfo describes one tensor of a safetensors file.
type TensorInfo struct {
	// Name is the tensor's name, e.g. model.layers.0.self_attn.q_proj.weight (see package arch).
	Name string
	// DType is the element type.
	DType DType
	// Shape is the tensor's shape (empty for a scalar).
	Shape []int
	// File is the safetensors file holding the tensor (as named to the parser).
	File string
	// Begin and End are the header's data_offsets, relative to the data
	// section that follows the header.
	Begin, End int64
	// Offset is the absolute file offset of the tensor's first byte
	// (8 + header length + Begin); Size = End − Begin bytes.
	Offset, Size int64
}

// Numel returns the number of elements (product of Shape; 1 for a scalar).
func (t TensorInfo) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// ParseSafetensorsHeader parses and validates the header of a safetensors
// file. data is the beginning of the file: the 8-byte little-endian header
// length N followed by at least N bytes of JSON (bytes beyond 8+N are
// ignored); fileSize is the size of the whole file; file names it in errors
// and in TensorInfo.File. It returns the tensors by name and the
// "__metadata__" string map (nil when absent).
//
// It checks that N ≤ MaxHead and 8+N ≤ fileSize, that the JSON is one object
// (trailing spaces allowed) without duplicate names, that each entry has a
// known dtype, a shape of non-negative integers and data_offsets [begin,
// end] with begin ≤ end inside the data section, that end − begin equals
// numel·dtype size, and that no two tensors' byte ranges overlap. Errors
// name the file and the tensor.
func ParseSafetensorsHeader(data []byte, fileSize int64, file string) (map[string]TensorInfo, map[string]string, error) {
	if len(data) < 8 || fileSize < 8 {
		return nil, nil, fmt.Errorf("hf: %s: too short for a safetensors file (need the 8-byte header length)", file)
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > MaxHead {
		return nil, nil, fmt.Errorf("hf: %s: header length %d exceeds the limit of %d bytes", file, n, MaxHead)
	}
	if int64(n) > fileSize-8 {
		return nil, nil, fmt.Errorf("hf: %s: header length %d beyond the end of the file (size %d)", file, n, fileSize)
	}
	if uint64(len(data)-8) < n {
		return nil, nil, fmt.Errorf("hf: %s: header truncated: have %d of %d bytes", file, len(data)-8, n)
	}
	hdr := data[8 : 8+n]
	base := int64(8 + n)
	dataLen := fileSize - base

	if len(bytes.TrimLeft(hdr, " \t\r\n")) == 0 || bytes.TrimLeft(hdr, " \t\r\n")[0] != '{' {
		return nil, nil, fmt.Errorf("hf: %s: header is not a JSON object", file)
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // '{'
		return nil, nil, fmt.Errorf("hf: %s: header JSON: %v", file, err)
	}
	tensors := map[string]TensorInfo{}
	var meta map[string]string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("hf: %s: header JSON: %v", file, err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("hf: %s: header JSON: expected a name, got %v", file, tok)
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("hf: %s: tensor %q: listed twice in the header", file, name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("hf: %s: header JSON at %q: %v", file, name, err)
		}
		if name == "__metadata__" {
			if err := json.Unmarshal(raw, &meta); err != nil {
				return nil, nil, fmt.Errorf("hf: %s: __metadata__: must map strings to strings: %v", file, err)
			}
			continue
		}
		ti, err := parseTensorEntry(raw, name, file, dataLen)
		if err != nil {
			return nil, nil, err
		}
		ti.Offset = base + ti.Begin
		tensors[name] = ti
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, nil, fmt.Errorf("hf: %s: header JSON: %v", file, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("hf: %s: header JSON: unexpected data after the object", file)
	}

	// Non-overlap: sort non-empty ranges by begin.
	ranges := make([]TensorInfo, 0, len(tensors))
	for _, t := range tensors {
		if t.Size > 0 {
			ranges = append(ranges, t)
		}
	}
	sort.Slice(ranges, func(i, j int) bool {
		if ranges[i].Begin != ranges[j].Begin {
			return ranges[i].Begin < ranges[j].Begin
		}
		return ranges[i].Name < ranges[j].Name
	})
	for i := 1; i < len(ranges); i++ {
		if ranges[i].Begin < ranges[i-1].End {
			return nil, nil, fmt.Errorf("hf: %s: tensor %q: data_offsets [%d, %d] overlap tensor %q [%d, %d]",
				file, ranges[i].Name, ranges[i].Begin, ranges[i].End, ranges[i-1].Name, ranges[i-1].Begin, ranges[i-1].End)
		}
	}
	return tensors, meta, nil
}

// parseTensorEntry validates one header entry.
func parseTensorEntry(raw json.RawMessage, name, file string, dataLen int64) (TensorInfo, error) {
	fail := func(format string, args ...any) (TensorInfo, error) {
		return TensorInfo{}, fmt.Errorf("hf: %s: tensor %q: %s", file, name, fmt.Sprintf(format, args...))
	}
	var e map[string]json.RawMessage
	if err := json.Unmarshal(raw, &e); err != nil || e == nil {
		return fail("entry must be an object with dtype, shape and data_offsets")
	}
	ti := TensorInfo{Name: name, File: file}
	var dt string
	if v, ok := e["dtype"]; !ok || json.Unmarshal(v, &dt) != nil {
		return fail("missing or non-string dtype")
	}
	ti.DType = DType(dt)
	if !ti.DType.Known() {
		return fail("unknown dtype %q (known: %s)", dt, knownDTypes())
	}
	shape, err := nonNegInts(e["shape"])
	if err != nil {
		return fail("shape: %v", err)
	}
	offs, err := nonNegInts(e["data_offsets"])
	if err != nil {
		return fail("data_offsets: %v", err)
	}
	if len(offs) != 2 {
		return fail("data_offsets must have 2 entries, got %d", len(offs))
	}
	ti.Begin, ti.End = offs[0], offs[1]
	if ti.Begin > ti.End {
		return fail("data_offsets [%d, %d]: begin after end", ti.Begin, ti.End)
	}
	if ti.End > dataLen {
		return fail("data_offsets [%d, %d] beyond the data section (%d bytes)", ti.Begin, ti.End, dataLen)
	}
	ti.Size = ti.End - ti.Begin
	// numel · size must equal Size; multiply with an overflow guard.
	total := int64(ti.DType.Size())
	for _, d := range shape {
		if d > math.MaxInt32 {
			return fail("shape %v: dimension %d too large", shape, d)
		}
		if d != 0 && total > math.MaxInt64/d {
			return fail("shape %v too large", shape)
		}
		total *= d
	}
	if total != ti.Size {
		return fail("shape %v of %s needs %d bytes, data_offsets [%d, %d] hold %d", shape, dt, total, ti.Begin, ti.End, ti.Size)
	}
	ti.Shape = make([]int, len(shape))
	for i, d := range shape {
		ti.Shape[i] = int(d)
	}
	return ti, nil
}

// nonNegInts parses a JSON array of non-negative integers.
func nonNegInts(raw json.RawMessage) ([]int64, error) {
	if raw == nil {
		return nil, errors.New("missing")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var items []any
	if err := dec.Decode(&items); err != nil || (items == nil && !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("["))) {
		return nil, fmt.Errorf("must be a list of non-negative integers, got %s", describe(raw))
	}
	out := make([]int64, len(items))
	for i, it := range items {
		num, ok := it.(json.Number)
		if !ok {
			return nil, fmt.Errorf("entry %d is not an integer", i)
		}
		v, err := strconv.ParseInt(num.String(), 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("entry %d (%s) is not a non-negative integer", i, num)
		}
		out[i] = v
	}
	return out, nil
}
