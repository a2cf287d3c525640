package imatrix

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// The GGUF subset an importance matrix uses (ggml/docs/gguf.md; common/imatrix-loader.cpp and
// tools/imatrix/imatrix.cpp).
const (
	ggufMagic     = "GGUF"
	ggufVersion   = 3
	ggufAlignment = 32 // general.alignment's default
	ggufMaxDims   = 4  // GGML_MAX_DIMS
	ggufMaxName   = 64 // GGML_MAX_NAME: tensor names are shorter
	ggmlTypeF32   = 0

	keyType       = "general.type"
	keyAlignment  = "general.alignment"
	keyDatasets   = "imatrix.datasets"
	keyChunkCount = "imatrix.chunk_count"
	keyChunkSize  = "imatrix.chunk_size"

	suffixSums   = ".in_sum2"
	suffixCounts = ".counts"
)

// GGUF metadata value types.
const (
	gUint8 uint32 = iota
	gInt8
	gUint16
	gInt16
	gUint32
	gInt32
	gFloat32
	gBool
	gString
	gArray
	gUint64
	gInt64
	gFloat64
	gNumTypes
)

var gTypeNames = [gNumTypes]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool",
	"string", "array", "uint64", "int64", "float64"}

// gScalarSize is the size of a fixed-size value type (0 for string and array).
var gScalarSize = [gNumTypes]int64{1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8}

func gTypeName(t uint32) string {
	if t < gNumTypes {
		return gTypeNames[t]
	}
	return fmt.Sprintf("type %d", t)
}

// str reads a GGUF string: a uint64 length and the bytes.
func (r *reader) str(field string) (string, error) {
	n, err := r.u64(field + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(r.left()) {
		return "", r.errf(field, "length %d, the file has %d bytes left (truncated or corrupt)", n, r.left())
	}
	b, err := r.bytes(int64(n), field)
	return string(b), err
}

// skipValue skips a metadata value of type t.
func (r *reader) skipValue(t uint32, field string, inArray bool) error {
	switch {
	case t < gNumTypes && gScalarSize[t] > 0:
		return r.skip(gScalarSize[t], field)
	case t == gString:
		n, err := r.u64(field + " length")
		if err != nil {
			return err
		}
		if n > uint64(r.left()) {
			return r.errf(field, "string length %d, the file has %d bytes left", n, r.left())
		}
		return r.skip(int64(n), field)
	case t == gArray && !inArray:
		et, err := r.u32(field + " element type")
		if err != nil {
			return err
		}
		n, err := r.u64(field + " element count")
		if err != nil {
			return err
		}
		switch {
		case et < gNumTypes && gScalarSize[et] > 0:
			if n > uint64(r.left()/gScalarSize[et]) {
				return r.errf(field, "%d elements of %s exceed the file", n, gTypeName(et))
			}
			return r.skip(int64(n)*gScalarSize[et], field)
		case et == gString:
			if n > uint64(r.left()/8) {
				return r.errf(field, "%d strings exceed the file", n)
			}
			for i := uint64(0); i < n; i++ {
				if err := r.skipValue(gString, field, true); err != nil {
					return err
				}
			}
			return nil
		}
		return r.errf(field, "arrays of %s are not valid GGUF", gTypeName(et))
	}
	return r.errf(field, "invalid value type %s", gTypeName(t))
}

// wantType checks a metadata value's type.
func (r *reader) wantType(key string, got, want uint32) error {
	if got != want {
		return r.errf(key, "is a %s, want a %s", gTypeName(got), gTypeName(want))
	}
	return nil
}

// ggufInfo is a tensor of interest: its element count, type and data offset.
type ggufInfo struct {
	name   string
	n      int64
	typ    uint32
	offset uint64
}

// decodeGGUF reads a GGUF importance matrix as common_imatrix_load does: the metadata it knows,
// and every pair of F32 tensors NAME.in_sum2 and NAME.counts; other tensors are ignored.
func decodeGGUF(r *reader) (*Matrix, error) {
	if err := r.skip(4, "magic"); err != nil {
		return nil, err
	}
	ver, err := r.u32("version")
	if err != nil {
		return nil, err
	}
	if ver != 2 && ver != 3 {
		return nil, r.errf("version", "GGUF version %d is not supported (llama.cpp reads versions 2 and 3; a byte-swapped number means a big-endian file)", ver)
	}
	nt, err := r.u64("tensor count")
	if err != nil {
		return nil, err
	}
	if nt > uint64(r.left()/24) { // a tensor's info takes at least 24 bytes
		return nil, r.errf("tensor count", "%d tensors cannot fit in %d bytes", nt, r.left())
	}
	nkv, err := r.u64("metadata count")
	if err != nil {
		return nil, err
	}
	if nkv > uint64(r.left()/13) { // a key/value takes at least 13 bytes
		return nil, r.errf("metadata count", "%d keys cannot fit in %d bytes", nkv, r.left())
	}
	m := New()
	align := int64(ggufAlignment)
	keys := map[string]bool{}
	for i := uint64(0); i < nkv; i++ {
		key, err := r.str(fmt.Sprintf("metadata key %d", i))
		if err != nil {
			return nil, err
		}
		if keys[key] {
			return nil, r.errf(key, "duplicate metadata key")
		}
		keys[key] = true
		t, err := r.u32(key + " value type")
		if err != nil {
			return nil, err
		}
		switch key {
		case keyAlignment, keyChunkCount, keyChunkSize:
			if err := r.wantType(key, t, gUint32); err != nil {
				return nil, err
			}
			v, err := r.u32(key)
			if err != nil {
				return nil, err
			}
			switch key {
			case keyAlignment:
				if v == 0 || v&(v-1) != 0 {
					return nil, r.errf(key, "%d is not a power of two", v)
				}
				align = int64(v)
			case keyChunkCount:
				m.ChunkCount = int(v)
			case keyChunkSize:
				m.ChunkSize = int(v)
			}
		case keyType:
			if err := r.wantType(key, t, gString); err != nil {
				return nil, err
			}
			v, err := r.str(key)
			if err != nil {
				return nil, err
			}
			if v != "imatrix" {
				return nil, r.errf(key, "is %q: this GGUF file is not an importance matrix (\"imatrix\")", v)
			}
		case keyDatasets:
			if err := r.wantType(key, t, gArray); err != nil {
				return nil, err
			}
			et, err := r.u32(key + " element type")
			if err != nil {
				return nil, err
			}
			if et != gString {
				return nil, r.errf(key, "is an array of %s, want strings", gTypeName(et))
			}
			n, err := r.u64(key + " element count")
			if err != nil {
				return nil, err
			}
			if n > uint64(r.left()/8) {
				return nil, r.errf(key, "%d strings cannot fit in %d bytes", n, r.left())
			}
			for j := uint64(0); j < n; j++ {
				s, err := r.str(fmt.Sprintf("%s[%d]", key, j))
				if err != nil {
					return nil, err
				}
				m.Datasets = append(m.Datasets, s)
			}
		default:
			if err := r.skipValue(t, key, false); err != nil {
				return nil, err
			}
		}
	}

	sums, counts := map[string]ggufInfo{}, map[string]ggufInfo{}
	names := map[string]bool{}
	var order []string // entry names in file order
	for i := uint64(0); i < nt; i++ {
		field := fmt.Sprintf("tensor %d", i)
		name, err := r.str(field + " name")
		if err != nil {
			return nil, err
		}
		field = "tensor " + name
		if names[name] {
			return nil, r.errf(field, "duplicate tensor name")
		}
		names[name] = true
		nd, err := r.u32(field + " dimension count")
		if err != nil {
			return nil, err
		}
		if nd == 0 || nd > ggufMaxDims {
			return nil, r.errf(field, "%d dimensions, want 1 to %d", nd, ggufMaxDims)
		}
		n := int64(1)
		for d := uint32(0); d < nd; d++ {
			ne, err := r.u64(fmt.Sprintf("%s dimension %d", field, d))
			if err != nil {
				return nil, err
			}
			if ne > math.MaxInt64 || (ne > 0 && n > math.MaxInt64/int64(ne)) {
				return nil, r.errf(field, "dimension %d = %d overflows the element count", d, ne)
			}
			n *= int64(ne)
		}
		typ, err := r.u32(field + " type")
		if err != nil {
			return nil, err
		}
		off, err := r.u64(field + " offset")
		if err != nil {
			return nil, err
		}
		info := ggufInfo{name: name, n: n, typ: typ, offset: off}
		if base, ok := strings.CutSuffix(name, suffixSums); ok && base != "" {
			if _, ok := counts[base]; !ok {
				order = append(order, base)
			}
			sums[base] = info
		} else if base, ok := strings.CutSuffix(name, suffixCounts); ok && base != "" {
			if _, ok := sums[base]; !ok {
				order = append(order, base)
			}
			counts[base] = info
		}
	}
	data := (r.pos + align - 1) / align * align
	if data > r.size && len(order) > 0 {
		return nil, r.errf("tensor data", "starts at byte %d, past the end of the file", data)
	}
	if len(order) == 0 {
		return nil, r.errf("tensors", "no importance data (no NAME%s and NAME%s tensors)", suffixSums, suffixCounts)
	}
	loaded := int64(0) // bytes read so far: tensors do not overlap, so at most the data section
	load := func(ti ggufInfo) ([]float32, error) {
		field := "tensor " + ti.name
		if ti.typ != ggmlTypeF32 {
			return nil, r.errf(field, "has ggml type %d, want F32 (0)", ti.typ)
		}
		if ti.offset%uint64(align) != 0 {
			return nil, r.errf(field, "data offset %d is not a multiple of the alignment %d", ti.offset, align)
		}
		if ti.offset > uint64(r.size-data) || ti.n > (r.size-data-int64(ti.offset))/4 {
			return nil, r.errf(field, "%d float32 values at data offset %d run past the end of the file (%d bytes)", ti.n, ti.offset, r.size)
		}
		if loaded += 4 * ti.n; loaded > r.size-data {
			return nil, r.errf(field, "the tensors' data add up to more than the file holds (overlapping tensors)")
		}
		r.seek(data + int64(ti.offset))
		return r.floats(ti.n, field)
	}
	for _, base := range order {
		si, ok1 := sums[base]
		ci, ok2 := counts[base]
		if !ok1 || !ok2 {
			return nil, r.errf("tensor "+base, "has only one of %s and %s", suffixSums, suffixCounts)
		}
		s, err := load(si)
		if err != nil {
			return nil, err
		}
		c, err := load(ci)
		if err != nil {
			return nil, err
		}
		e := &Entry{Sums: s, Counts: make([]int64, len(c))}
		for j, v := range c {
			if !(v >= 0) || v > 1<<53 {
				return nil, r.errf("tensor "+ci.name, "count %d is %g, want a whole number of tokens ≥ 0", j, v)
			}
			e.Counts[j] = int64(math.Round(float64(v))) // lround
		}
		if len(c) == 0 || len(s)%len(c) != 0 {
			return nil, r.errf("tensor "+base, "%d sums are not a whole number of rows for %d counts", len(s), len(c))
		}
		m.Entries[base] = e
	}
	return m, nil
}

// gguf tensor dimensions as ggml_n_dims counts them: trailing dimensions of 1 dropped, at least one.
func ggufDims(ne ...int64) []int64 {
	n := len(ne)
	for n > 1 && ne[n-1] == 1 {
		n--
	}
	return ne[:n]
}

func ggufPad(n int64) int64 { return (n + ggufAlignment - 1) / ggufAlignment * ggufAlignment }

// encodeGGUF writes m as llama-imatrix's save_imatrix does (gguf_write_to_file): the four
// metadata keys, then per entry in name order NAME.in_sum2 [cols, experts] and NAME.counts
// [1, experts], each tensor's data padded to 32 bytes.
func encodeGGUF(w *bufio.Writer, m *Matrix) error {
	names := m.Names()
	for _, n := range names {
		if len(n)+len(suffixSums) >= ggufMaxName {
			return fmt.Errorf("imatrix: entry %s: the tensor name %s%s is longer than GGUF's %d bytes", n, n, suffixSums, ggufMaxName-1)
		}
	}
	le := binary.LittleEndian
	var b []byte
	u32 := func(v uint32) { b = le.AppendUint32(b, v) }
	u64 := func(v uint64) { b = le.AppendUint64(b, v) }
	str := func(s string) { u64(uint64(len(s))); b = append(b, s...) }

	b = append(b, ggufMagic...)
	u32(ggufVersion)
	u64(uint64(2 * len(names)))
	u64(4)
	str(keyType)
	u32(gString)
	str("imatrix")
	str(keyDatasets)
	u32(gArray)
	u32(gString)
	u64(uint64(len(m.Datasets)))
	for _, d := range m.Datasets {
		str(d)
	}
	str(keyChunkCount)
	u32(gUint32)
	u32(uint32(m.ChunkCount))
	str(keyChunkSize)
	u32(gUint32)
	u32(uint32(m.ChunkSize))

	off := int64(0)
	info := func(name string, dims []int64, n int64) {
		str(name)
		u32(uint32(len(dims)))
		for _, d := range dims {
			u64(uint64(d))
		}
		u32(ggmlTypeF32)
		u64(uint64(off))
		off += ggufPad(4 * n)
	}
	for _, n := range names {
		e := m.Entries[n]
		rows := int64(len(e.Counts))
		info(n+suffixSums, ggufDims(int64(e.Cols()), rows), int64(len(e.Sums)))
		info(n+suffixCounts, ggufDims(1, rows), rows)
	}
	for int64(len(b))%ggufAlignment != 0 {
		b = append(b, 0)
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	put := func(vals []float32) error {
		b = b[:0]
		for _, v := range vals {
			b = le.AppendUint32(b, math.Float32bits(v))
		}
		for int64(len(b))%ggufAlignment != 0 {
			b = append(b, 0)
		}
		_, err := w.Write(b)
		return err
	}
	for _, n := range names {
		e := m.Entries[n]
		if err := put(e.Sums); err != nil {
			return err
		}
		c := make([]float32, len(e.Counts))
		for j, v := range e.Counts {
			c[j] = float32(v)
		}
		if err := put(c); err != nil {
			return err
		}
	}
	return nil
}
