package hf

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// File names of a Hugging Face checkpoint.
const (
	SafetensorsFileName = "model.safetensors"
	IndexFileName       = "model.safetensors.index.json"
)

// maxIndexSize bounds model.safetensors.index.json.
const maxIndexSize = 64 << 20

// readChunk is the size of the staging buffer used when converting 16-bit
// and 64-bit tensors.
const readChunk = 1 << 20

// shard is one open safetensors file.
type shard struct {
	name string // path used in messages
	r    io.ReaderAt
	c    io.Closer
	size int64
	meta map[string]string
	// osPath is the file's absolute path on the operating system's file system, and id what
	// identifies its content for the digest cache; osPath is "" for a file of an fs.FS, which
	// is not cached.
	osPath string
	id     fileID
	// headSum is the SHA-256 of the file's first 8 + header-length bytes.
	headSum [32]byte

	// mapOnce guards mapped, the whole file mapped read-only (nil when it cannot be).
	mapOnce sync.Once
	mapped  []byte
}

// mapping returns the shard's file mapped into memory, or nil when it is not an operating
// system file or cannot be mapped. The mapping is made once and never unmapped: slices of it
// may outlive the Checkpoint.
func (s *shard) mapping() []byte {
	s.mapOnce.Do(func() {
		if f, ok := s.r.(*os.File); ok {
			if b, err := mapFile(f, s.size); err == nil {
				s.mapped = b
			}
		}
	})
	return s.mapped
}

// tensorRef locates a tensor in a shard.
type tensorRef struct {
	info  TensorInfo
	shard int
}

// Checkpoint is the set of tensors of one model directory, read lazily from
// its safetensors file(s), which stay open until Close. Its methods are safe
// for concurrent use (Close aside).
type Checkpoint struct {
	dir     string // directory, for messages
	source  string // model.safetensors or the index file, for messages
	shards  []*shard
	tensors map[string]tensorRef
	names   []string
	config  []byte // config.json, nil when absent
	legacy  string // LegacyFingerprint

	fpOnce sync.Once
	fp     string
	fpErr  error
}

// openFile is a file of a model directory as an opener returns it.
type openFile struct {
	r    io.ReaderAt
	c    io.Closer
	size int64
	// osPath and id: see shard.
	osPath string
	id     fileID
}

// opener opens a file of the model directory by its base name and returns
// it with the path to use in messages (also on error).
type opener func(name string) (*openFile, string, error)

// OpenCheckpoint opens the checkpoint of a model directory:
// model.safetensors when present, else model.safetensors.index.json and the
// shard files its weight_map names (each opened once). All headers are read
// and validated (see ParseSafetensorsHeader); tensor data is read only by
// ReadFloat32/ReadRaw (and by the first call of Fingerprint). A tensor held
// by two shards, or a weight_map entry that names a shard not holding the
// tensor, is an error. config.json, when present, is read for the
// fingerprints.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	open := func(name string) (*openFile, string, error) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		f, err := os.Open(p)
		if err != nil {
			return nil, p, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, p, err
		}
		if !st.Mode().IsRegular() {
			f.Close()
			return nil, p, fmt.Errorf("%s: not a regular file", p)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			abs = ""
		}
		return &openFile{r: f, c: f, size: st.Size(), osPath: abs, id: identify(st)}, p, nil
	}
	return openCheckpoint(dir, open)
}

// OpenCheckpointFS is OpenCheckpoint for a directory of an fs.FS, such as
// an embed.FS holding the default model (dir uses forward slashes; "." is
// the root). The safetensors files must implement io.ReaderAt, as embed.FS,
// fstest.MapFS and os.DirFS files do, so that tensors are converted straight
// from the embedded bytes without a second copy of the file.
func OpenCheckpointFS(fsys fs.FS, dir string) (*Checkpoint, error) {
	open := func(name string) (*openFile, string, error) {
		p := path.Join(dir, name)
		f, err := fsys.Open(p)
		if err != nil {
			return nil, p, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, p, err
		}
		if st.IsDir() {
			f.Close()
			return nil, p, fmt.Errorf("%s: is a directory", p)
		}
		ra, ok := f.(io.ReaderAt)
		if !ok {
			f.Close()
			return nil, p, fmt.Errorf("%s: file of %T does not implement io.ReaderAt", p, fsys)
		}
		return &openFile{r: ra, c: f, size: st.Size()}, p, nil
	}
	return openCheckpoint(dir, open)
}

func openCheckpoint(dir string, open opener) (c *Checkpoint, err error) {
	c = &Checkpoint{dir: dir, tensors: map[string]tensorRef{}}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()

	sh, err := openShard(open, SafetensorsFileName)
	switch {
	case err == nil:
		c.source = sh.name
		c.shards = append(c.shards, sh.shard)
		for name, t := range sh.tensorsTmp {
			c.tensors[name] = tensorRef{info: t, shard: 0}
		}
	case errors.Is(err, fs.ErrNotExist):
		found, err := c.openSharded(open)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("hf: %s: no %s or %s", dir, SafetensorsFileName, IndexFileName)
		}
	default:
		return nil, err
	}

	c.names = make([]string, 0, len(c.tensors))
	for name := range c.tensors {
		c.names = append(c.names, name)
	}
	sort.Strings(c.names)

	if f, p, err := open(ConfigFileName); err == nil {
		if f.size > maxConfigSize {
			f.c.Close()
			return nil, fmt.Errorf("hf: %s: larger than %d bytes", p, maxConfigSize)
		}
		c.config = make([]byte, f.size)
		_, err := readFull(f.r, c.config, 0)
		f.c.Close()
		if err != nil {
			return nil, fmt.Errorf("hf: %s: %v", p, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("hf: %v", err)
	}
	c.legacy = c.fingerprintV1()
	return c, nil
}

// openedShard is a shard plus its parsed tensors (before they are merged).
type openedShard struct {
	*shard
	tensorsTmp map[string]TensorInfo
}

// openShard opens one safetensors file and parses its header.
func openShard(open opener, name string) (*openedShard, error) {
	f, p, err := open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("hf: %s: %v", p, err)
	}
	r, cl, size := f.r, f.c, f.size
	fail := func(err error) (*openedShard, error) {
		cl.Close()
		return nil, err
	}
	var lenBuf [8]byte
	if size < 8 {
		return fail(fmt.Errorf("hf: %s: too short for a safetensors file (%d bytes)", p, size))
	}
	if _, err := readFull(r, lenBuf[:], 0); err != nil {
		return fail(fmt.Errorf("hf: %s: reading the header length: %v", p, err))
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHead {
		return fail(fmt.Errorf("hf: %s: header length %d exceeds the limit of %d bytes", p, n, MaxHead))
	}
	if int64(n) > size-8 {
		return fail(fmt.Errorf("hf: %s: header length %d beyond the end of the file (size %d)", p, n, size))
	}
	head := make([]byte, 8+n)
	if _, err := readFull(r, head, 0); err != nil {
		return fail(fmt.Errorf("hf: %s: reading the header: %v", p, err))
	}
	tensors, meta, err := ParseSafetensorsHeader(head, size, p)
	if err != nil {
		return fail(err)
	}
	sh := &shard{name: p, r: r, c: cl, size: size, meta: meta, osPath: f.osPath, id: f.id, headSum: sha256.Sum256(head)}
	return &openedShard{shard: sh, tensorsTmp: tensors}, nil
}

// indexFile is model.safetensors.index.json.
type indexFile struct {
	WeightMap map[string]string `json:"weight_map"`
}

// openSharded opens a sharded checkpoint; found is false when there is no
// index file.
func (c *Checkpoint) openSharded(open opener) (found bool, err error) {
	f, p, err := open(IndexFileName)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return true, fmt.Errorf("hf: %s: %v", p, err)
	}
	c.source = p
	if f.size > maxIndexSize {
		f.c.Close()
		return true, fmt.Errorf("hf: %s: larger than %d bytes", p, maxIndexSize)
	}
	data := make([]byte, f.size)
	_, err = readFull(f.r, data, 0)
	f.c.Close()
	if err != nil {
		return true, fmt.Errorf("hf: %s: %v", p, err)
	}
	var idx indexFile
	if err := json.Unmarshal(data, &idx); err != nil {
		return true, fmt.Errorf("hf: %s: invalid index JSON: %v", p, err)
	}
	if len(idx.WeightMap) == 0 {
		return true, fmt.Errorf("hf: %s: field \"weight_map\": missing or empty", p)
	}
	var files []string
	seenFile := map[string]bool{}
	for tensor, f := range idx.WeightMap {
		if !fs.ValidPath(f) || f == "." || strings.Contains(f, `\`) {
			return true, fmt.Errorf("hf: %s: weight_map: tensor %q: invalid shard file name %q", p, tensor, f)
		}
		if !seenFile[f] {
			seenFile[f] = true
			files = append(files, f)
		}
	}
	sort.Strings(files)
	shardIndex := map[string]int{}
	for _, f := range files {
		sh, err := openShard(open, f)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return true, fmt.Errorf("hf: %s: weight_map names shard %q, which is missing: %v", p, f, err)
			}
			return true, err
		}
		shardIndex[f] = len(c.shards)
		c.shards = append(c.shards, sh.shard)
		for name, t := range sh.tensorsTmp {
			if prev, dup := c.tensors[name]; dup {
				return true, fmt.Errorf("hf: %s: tensor %q is in two shards: %s and %s", p, name, c.shards[prev.shard].name, sh.name)
			}
			c.tensors[name] = tensorRef{info: t, shard: shardIndex[f]}
		}
	}
	for tensor, f := range idx.WeightMap {
		ref, ok := c.tensors[tensor]
		if !ok || ref.shard != shardIndex[f] {
			return true, fmt.Errorf("hf: %s: weight_map: tensor %q mapped to shard %q, which does not hold it", p, tensor, f)
		}
	}
	return true, nil
}

// readFull reads len(buf) bytes at off, treating a full read with io.EOF as
// success.
func readFull(r io.ReaderAt, buf []byte, off int64) (int, error) {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return n, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Dir returns the model directory the checkpoint was opened from.
func (c *Checkpoint) Dir() string { return c.dir }

// Names returns the tensor names, sorted.
func (c *Checkpoint) Names() []string { return append([]string(nil), c.names...) }

// Len returns the number of tensors.
func (c *Checkpoint) Len() int { return len(c.names) }

// Info returns a tensor's description and whether it exists.
func (c *Checkpoint) Info(name string) (TensorInfo, bool) {
	ref, ok := c.tensors[name]
	if !ok {
		return TensorInfo{}, false
	}
	t := ref.info
	t.Shape = append(make([]int, 0, len(t.Shape)), t.Shape...)
	return t, true
}

// Files returns the safetensors files of the checkpoint (one, or the shards
// in name order).
func (c *Checkpoint) Files() []string {
	out := make([]string, len(c.shards))
	for i, s := range c.shards {
		out[i] = s.name
	}
	return out
}

// Metadata returns a copy of the "__metadata__" map of a file listed by
// Files (nil when it has none or is not part of the checkpoint).
func (c *Checkpoint) Metadata(file string) map[string]string {
	for _, s := range c.shards {
		if s.name == file && s.meta != nil {
			out := make(map[string]string, len(s.meta))
			for k, v := range s.meta {
				out[k] = v
			}
			return out
		}
	}
	return nil
}

// lookup finds a tensor and checks its shape when want is given.
func (c *Checkpoint) lookup(name string, want []int) (tensorRef, error) {
	if c.shards == nil {
		return tensorRef{}, fmt.Errorf("hf: %s: checkpoint is closed", c.dir)
	}
	ref, ok := c.tensors[name]
	if !ok {
		return tensorRef{}, fmt.Errorf("hf: %s: no tensor %q", c.source, name)
	}
	if len(want) > 0 && !equalInts(ref.info.Shape, want) {
		return tensorRef{}, fmt.Errorf("hf: %s: tensor %s: shape %v, want %v", ref.info.File, name, ref.info.Shape, want)
	}
	return ref, nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ReadRaw returns a tensor's bytes as stored (little-endian, its DType),
// checking its shape when shape is given.
func (c *Checkpoint) ReadRaw(name string, shape ...int) ([]byte, error) {
	ref, err := c.lookup(name, shape)
	if err != nil {
		return nil, err
	}
	t := ref.info
	buf := make([]byte, t.Size)
	if _, err := readFull(c.shards[ref.shard].r, buf, t.Offset); err != nil {
		return nil, fmt.Errorf("hf: %s: tensor %s: reading %d bytes at %d: %v", t.File, name, t.Size, t.Offset, err)
	}
	return buf, nil
}

// ReadFloat32 reads a tensor and converts it to float32 (F32 as is; F16 and
// BF16 exactly; F64 rounded to nearest), in row-major order. When shape is
// given it must equal the tensor's shape, e.g.
// "hf: dir/model.safetensors: tensor model.layers.0.self_attn.q_proj.weight:
// shape [256 128], want [256 256]". Only the tensor's byte range is read.
// A NaN or an infinity (after conversion) is an error naming the file, the
// tensor and the first such element: these are weights, and no model computes
// anything meaningful through them (ReadRaw returns the bytes unchecked).
func (c *Checkpoint) ReadFloat32(name string, shape ...int) ([]float32, error) {
	ref, err := c.lookup(name, shape)
	if err != nil {
		return nil, err
	}
	t := ref.info
	if !t.DType.Float() {
		return nil, fmt.Errorf("hf: %s: tensor %s: dtype %s cannot be read as float32 (supported: F32, F16, BF16, F64)", t.File, name, t.DType)
	}
	r := c.shards[ref.shard].r
	out := make([]float32, t.Numel())
	fail := func(err error) ([]float32, error) {
		return nil, fmt.Errorf("hf: %s: tensor %s: reading %d bytes at %d: %v", t.File, name, t.Size, t.Offset, err)
	}
	if t.DType == F32 && littleEndian && len(out) > 0 {
		b := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(out)*4)
		if _, err := readFull(r, b, t.Offset); err != nil {
			return fail(err)
		}
		return out, checkFinite(t, name, out)
	}
	es := t.DType.Size()
	per := readChunk / es
	buf := make([]byte, min(int64(per*es), t.Size))
	for done := 0; done < len(out); {
		k := min(per, len(out)-done)
		b := buf[:k*es]
		if _, err := readFull(r, b, t.Offset+int64(done*es)); err != nil {
			return fail(err)
		}
		decodeFloats(t.DType, b, out[done:done+k])
		done += k
	}
	return out, checkFinite(t, name, out)
}

// checkFinite returns an error naming the tensor, its file and the first element of v that is
// a NaN or an infinity: such a weight makes every forward through it NaN, so a model holding one
// is refused when it is read rather than reported as "perplexity NaN" later.
func checkFinite(t TensorInfo, name string, v []float32, base ...int) error {
	j := firstNonFinite(v)
	if j < 0 {
		return nil
	}
	what := fmt.Sprint(v[j])
	i := j
	if len(base) > 0 {
		i += base[0] // v starts at element base[0] of the tensor
	}
	at := fmt.Sprint(i)
	if len(t.Shape) > 1 {
		idx := make([]int, len(t.Shape))
		for d, r := len(t.Shape)-1, i; d >= 0; d-- {
			idx[d] = r % t.Shape[d]
			r /= t.Shape[d]
		}
		at = fmt.Sprintf("%d %v", i, idx)
	}
	if t.DType == F64 {
		what += " in float32 (F64 values beyond ±3.4e38 overflow)"
	}
	return fmt.Errorf("hf: %s: tensor %s: element %s is %s: the weights must be finite numbers", t.File, name, at, what)
}

// firstNonFinite returns the index of the first NaN or infinity in v (exponent bits all ones), or
// −1. It costs one pass over values the conversion has just written, two values per 64-bit word
// (see BenchmarkFirstNonFinite).
func firstNonFinite(v []float32) int {
	const (
		exp   = 0x7f800000
		exp2  = exp<<32 | exp
		carry = 0x00800000<<32 | 0x00800000 // the exponent plus this reaches bit 31 only when all ones
		sign2 = 0x80000000<<32 | 0x80000000
	)
	const block = 1024
	for lo := 0; lo < len(v); lo += block {
		hi := min(lo+block, len(v))
		bad := false
		if w := v[lo:hi]; len(w)%8 == 0 && uintptr(unsafe.Pointer(&w[0]))%8 == 0 {
			u := unsafe.Slice((*uint64)(unsafe.Pointer(&w[0])), len(w)/2)
			var a, b, c, d uint64
			for k := 0; k < len(u); k += 4 {
				a |= (u[k]&exp2 + carry) & sign2
				b |= (u[k+1]&exp2 + carry) & sign2
				c |= (u[k+2]&exp2 + carry) & sign2
				d |= (u[k+3]&exp2 + carry) & sign2
			}
			bad = a|b|c|d != 0
		} else {
			bad = true // short or unaligned block: search it value by value
		}
		if bad {
			for j := lo; j < hi; j++ {
				if math.Float32bits(v[j])&exp == exp {
					return j
				}
			}
		}
	}
	return -1
}

// decodeFloats converts little-endian elements of dtype dt to float32.
func decodeFloats(dt DType, b []byte, dst []float32) {
	switch dt {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case F16:
		b = b[:2*len(dst)]
		for i := range dst {
			dst[i] = Float16ToFloat32(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
		}
	case BF16:
		b = b[:2*len(dst)]
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(b[2*i])<<16 | uint32(b[2*i+1])<<24)
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	}
}

// littleEndian reports whether the machine stores integers little-endian,
// so that F32 data can be read straight into a []float32.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Close closes the checkpoint's files. Reads after Close fail.
func (c *Checkpoint) Close() error {
	if c == nil {
		return nil
	}
	var first error
	for _, s := range c.shards {
		if err := s.c.Close(); err != nil && first == nil {
			first = fmt.Errorf("hf: %s: %v", s.name, err)
		}
	}
	c.shards = nil
	return first
}

// ReadUint16 reads a BF16 or F16 tensor without converting it: its elements' bits, in row-major
// order, and its dtype. The shape is checked as ReadFloat32 checks it, and so is every element: a
// NaN or an infinity is an error naming the file, the tensor and the element. Tensors of other
// dtypes are refused (read them with ReadFloat32).
func (c *Checkpoint) ReadUint16(name string, shape ...int) ([]uint16, DType, error) {
	ref, err := c.lookup(name, shape)
	if err != nil {
		return nil, "", err
	}
	t := ref.info
	if t.DType != BF16 && t.DType != F16 {
		return nil, "", fmt.Errorf("hf: %s: tensor %s: dtype %s is not a 16-bit float (BF16 or F16)", t.File, name, t.DType)
	}
	out := make([]uint16, t.Numel())
	if len(out) > 0 {
		b := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(out)*2)
		if _, err := readFull(c.shards[ref.shard].r, b, t.Offset); err != nil {
			return nil, "", fmt.Errorf("hf: %s: tensor %s: reading %d bytes at %d: %v", t.File, name, t.Size, t.Offset, err)
		}
		if !littleEndian {
			for i, v := range out {
				out[i] = v>>8 | v<<8
			}
		}
	}
	if err := checkFinite16(t, name, out); err != nil {
		return nil, "", err
	}
	return out, t.DType, nil
}

// checkFinite16 is checkFinite for a tensor's BF16 or F16 bits: an error naming the file, the
// tensor and the first element that is a NaN or an infinity, or nil.
func checkFinite16(t TensorInfo, name string, v []uint16) error {
	i := firstNonFinite16(v, t.DType)
	if i < 0 {
		return nil
	}
	f := BFloat16ToFloat32(v[i])
	if t.DType == F16 {
		f = Float16ToFloat32(v[i])
	}
	return checkFinite(t, name, []float32{f}, i)
}

// errNoMap says that a file cannot be memory-mapped here.
var errNoMap = errors.New("hf: memory mapping not available")

// MapUint16 is ReadUint16 without a copy where the file allows: the tensor's bits are a
// read-only view of the safetensors file mapped into memory (its pages are the page cache's,
// which the kernel can drop and re-read under memory pressure, so a model's weights cost no
// memory of their own). The slice must never be written to, and the file must not be changed
// while the slice is in use (as with llama.cpp's mmap); the mapping outlives Close. Where the
// file cannot be mapped (another operating system, an fs.FS, a big-endian host, an odd
// offset), it reads as ReadUint16 does. Every element is checked for NaN and infinity either way.
func (c *Checkpoint) MapUint16(name string, shape ...int) ([]uint16, DType, error) {
	ref, err := c.lookup(name, shape)
	if err != nil {
		return nil, "", err
	}
	t := ref.info
	if t.DType != BF16 && t.DType != F16 || !littleEndian || t.Offset%2 != 0 || t.Numel() == 0 {
		return c.ReadUint16(name, shape...)
	}
	m := c.shards[ref.shard].mapping()
	if m == nil || t.Offset+t.Size > int64(len(m)) {
		return c.ReadUint16(name, shape...)
	}
	out := unsafe.Slice((*uint16)(unsafe.Pointer(&m[t.Offset])), t.Numel())
	if err := checkFinite16(t, name, out); err != nil {
		return nil, "", err
	}
	return out, t.DType, nil
}

// firstNonFinite16 returns the index of the first infinity or NaN among BF16 or F16 bits (exponent
// bits all ones), or −1; four values per 64-bit word, as firstNonFinite does.
func firstNonFinite16(v []uint16, dt DType) int {
	exp := uint64(0x7f80) // BF16: the 8 bits under the sign
	if dt == F16 {
		exp = 0x7c00
	}
	carry := exp &^ (exp << 1) // the exponent's lowest bit: the sum reaches bit 15 only when all ones
	exp4, carry4, sign4 := exp*0x0001000100010001, carry*0x0001000100010001, uint64(0x8000800080008000)
	const block = 1024
	for lo := 0; lo < len(v); lo += block {
		hi := min(lo+block, len(v))
		bad := true
		if w := v[lo:hi]; len(w)%16 == 0 && uintptr(unsafe.Pointer(&w[0]))%8 == 0 {
			u := unsafe.Slice((*uint64)(unsafe.Pointer(&w[0])), len(w)/4)
			var a, b, c, d uint64
			for k := 0; k < len(u); k += 4 {
				a |= (u[k]&exp4 + carry4) & sign4
				b |= (u[k+1]&exp4 + carry4) & sign4
				c |= (u[k+2]&exp4 + carry4) & sign4
				d |= (u[k+3]&exp4 + carry4) & sign4
			}
			bad = a|b|c|d != 0
		}
		if bad {
			for j := lo; j < hi; j++ {
				if uint64(v[j])&exp == exp {
					return j
				}
			}
		}
	}
	return -1
}
