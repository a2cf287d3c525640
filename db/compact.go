package db

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/internal/kernels"
)

// Levels are held in memory as their files store them, not as float32: a level's payload (ggml
// blocks, GPTQ codes with their scales and zero points, a sparse bitmask with its values) behind
// a kernels.Decoder that expands any stretch of it to exactly the float32 values Decode writes.
// The matrix multiply expands a panel at a time while it packs (kernels.GemmW), so a candidate
// model holds its substituted layers at the level's size (LevelInfo.HeldBytes): the payload of
// its file — ggml's bits per weight for a gguf level, the codes, binary16 scales, packed zero
// points and g_idx of a quant level — and for a sparse level, besides its 1/8 byte of bitmask
// and stored non-zeros (2 or 4 bytes each), 4 bytes of running count per 64 weights.

// compactLevel is a level held compactly: a kernels.Decoder with its size in memory.
type compactLevel interface {
	kernels.Decoder
	// Bytes is the memory the level holds (its payload's arrays, not counting small headers).
	Bytes() int64
}

// newCompact builds the compact form of a level's payload, checking what Decode checks. The
// payload is copied (it lives in a pooled read buffer).
func newCompact(h *levelHeader, payload []byte) (compactLevel, error) {
	switch h.Kind {
	case ModeSparse:
		return newSparseLevel(h, payload)
	case ModeGGUF:
		return &ggufLevel{t: ggml.Type(h.Level), n: h.Rows * h.Cols, blocks: clone(payload, 0)}, nil
	}
	return newQuantLevel(h, payload)
}

// clone copies b with pad zero bytes after it (decoders read a byte past the last code).
func clone(b []byte, pad int) []byte {
	out := make([]byte, len(b)+pad)
	copy(out, b)
	return out
}

// ggufLevel is a gguf level: its ggml blocks, row by row (rows are whole blocks).
type ggufLevel struct {
	t      ggml.Type
	n      int
	blocks []byte
}

// Len is the number of weights.
func (g *ggufLevel) Len() int { return g.n }

// Decode writes weights [off, off+len(dst)) (ggml.DequantizeRange).
func (g *ggufLevel) Decode(dst []float32, off int) { ggml.DequantizeRange(dst, g.t, g.blocks, off) }

// Bytes is the size of the blocks.
func (g *ggufLevel) Bytes() int64 { return int64(len(g.blocks)) }

// quantLevel is a quant level as its file stores it: the codes bit-packed at bits (row-major),
// the binary16 scales and the bit-packed zero points of each row's groups, and g_idx when
// present (the packed arrays with one zero byte of padding).
type quantLevel struct {
	rows, cols, bits int
	g, ng            int // group size (cols for one group) and groups per row
	codes, zeros     []byte
	scales           []uint16
	gidx             []int32
}

// newQuantLevel checks and holds a quant payload (the checks of decodeQuant).
func newQuantLevel(h *levelHeader, p []byte) (*quantLevel, error) {
	codes, sc, zc, gi := quantSections(h, p)
	q := &quantLevel{rows: h.Rows, cols: h.Cols, bits: h.Bits, g: h.GroupSize, ng: h.Groups}
	if q.ng == 1 {
		q.g = h.Cols
	}
	q.scales = make([]uint16, h.Rows*q.ng)
	for i := range q.scales {
		b := binary.LittleEndian.Uint16(sc[2*i:])
		if s := compress.Float16Value(b); !(s > 0) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("scale %g of group %d is not positive and finite", s, i)
		}
		q.scales[i] = b
	}
	if err := unpackFloat(make([]float32, h.Rows*q.ng), zc, h.Bits); err != nil {
		return nil, fmt.Errorf("zero points: %w", err)
	}
	if h.GIdx {
		q.gidx = make([]int32, h.Cols)
		for j := range q.gidx {
			v := int32(binary.LittleEndian.Uint32(gi[4*j:]))
			if v < 0 || int(v) >= q.ng {
				return nil, fmt.Errorf("g_idx %d of column %d outside [0, %d)", v, j, q.ng)
			}
			q.gidx[j] = v
		}
	}
	if pad := len(codes)*8 - h.Rows*h.Cols*h.Bits; pad > 0 && codes[len(codes)-1]>>(8-pad) != 0 {
		return nil, fmt.Errorf("non-zero padding bits after the codes")
	}
	q.codes, q.zeros = clone(codes, 1), clone(zc, 1)
	return q, nil
}

// Len is the number of weights.
func (q *quantLevel) Len() int { return q.rows * q.cols }

// Bytes is the size of the codes, scales, zero points and g_idx: the payload's.
func (q *quantLevel) Bytes() int64 {
	return int64(len(q.codes)+len(q.zeros)) + 2*int64(len(q.scales)) + 4*int64(len(q.gidx))
}

// unpack returns integer i of a stream bit-packed at w ≤ 8 bits, little-endian (packed has a
// byte of padding after the stream).
func unpack(packed []byte, i int, w uint) float32 {
	pos := uint(i) * w
	return float32((uint16(packed[pos>>3]) | uint16(packed[pos>>3+1])<<8) >> (pos & 7) & (1<<w - 1))
}

// group returns the scale and zero point of group i (of all rows).
func (q *quantLevel) group(i int) (float32, float32) {
	return compress.Float16Value(q.scales[i]), unpack(q.zeros, i, uint(q.bits))
}

// Decode writes weights [off, off+len(dst)): scale·(code − zero) in float32, decodeQuant's
// arithmetic on the same float32 operands. Without g_idx each row's stretch is decoded a group
// at a time (decodeRun); with g_idx weight by weight (decodeGIdx).
func (q *quantLevel) Decode(dst []float32, off int) {
	if off < 0 || off+len(dst) > q.Len() {
		panic(fmt.Sprintf("db: quant level: weights [%d, %d) outside [0, %d)", off, off+len(dst), q.Len()))
	}
	for len(dst) > 0 {
		r, c := off/q.cols, off%q.cols
		n := min(len(dst), q.cols-c)
		out := dst[:n]
		if q.gidx != nil {
			q.decodeGIdx(out, off, c, r*q.ng)
		} else {
			for i := 0; i < n; {
				gr := (c + i) / q.g
				end := min(n, (gr+1)*q.g-c)
				sg, zg := q.group(r*q.ng + gr)
				q.decodeRun(out[i:end], off+i, sg, zg)
				i = end
			}
		}
		dst, off = dst[n:], off+n
	}
}

// decodeGIdx writes sg·(code − zg) for codes [i, i+len(out)) of one row with g_idx, from
// column c on, base the row's first group: each weight's group looked up through g_idx, the
// codes taken eight at a time from a word load once i is a multiple of 8. When the row has at
// most 256 groups and no more than the stretch has weights, the row's scales and zero points
// are converted once into small arrays first, which quantGIdxAVX512 gathers from.
func (q *quantLevel) decodeGIdx(out []float32, i, c, base int) {
	var sgs, zgs [256]float32
	if q.ng > len(sgs) || q.ng > len(out) {
		w := uint(q.bits)
		for j := range out {
			sg, zg := q.group(base + int(q.gidx[c+j]))
			out[j] = sg * (unpack(q.codes, i+j, w) - zg)
		}
		return
	}
	for g := range q.ng {
		sgs[g], zgs[g] = q.group(base + g)
	}
	w := uint(q.bits)
	gidx := q.gidx[c : c+len(out)]
	j := 0
	for ; j < len(out) && (i+j)&7 != 0; j++ {
		g := uint8(gidx[j])
		out[j] = sgs[g] * (unpack(q.codes, i+j, w) - zgs[g])
	}
	if p := (i + j) >> 3 * int(w); useAVX512 && len(q.codes)-8-p >= 0 {
		if n8 := min((len(out)-j)/8, (len(q.codes)-8-p)/int(w)+1); n8 > 0 {
			quantGIdxAVX512(&out[j], n8, &q.codes[p], &quantShifts[w], int(w), &gidx[j], &sgs[0], &zgs[0])
			j += 8 * n8
		}
	}
	mask := uint64(1)<<w - 1
	for p := (i + j) >> 3 * int(w); j+8 <= len(out) && p+8 <= len(q.codes); j, p = j+8, p+int(w) {
		v := binary.LittleEndian.Uint64(q.codes[p:])
		gs := gidx[j : j+8 : j+8]
		o := out[j : j+8 : j+8]
		for k, gi := range gs {
			g := uint8(gi)
			o[k] = sgs[g] * (float32(v>>(uint(k)*w)&mask) - zgs[g])
		}
	}
	for ; j < len(out); j++ {
		g := uint8(gidx[j])
		out[j] = sgs[g] * (unpack(q.codes, i+j, w) - zgs[g])
	}
}

// quantShifts[w] is 0, w, …, 7w: the bit offsets of eight w-bit codes (quantNAVX512).
var quantShifts = func() (s [9][8]uint64) {
	for w := range s {
		for k := range s[w] {
			s[w][k] = uint64(k * w)
		}
	}
	return s
}()

// decodeRun writes sg·(code − zg) for codes [i, i+len(out)), all of one group. Codes are taken
// eight at a time (whole bytes: eight codes of w bits are w bytes) once i is a multiple of 8;
// for w ≤ 6 the 2^w values of the group are computed once, into a table, when the run is long
// enough to repay it. Every value is the same float32 expression of the same operands as
// unpack's per-code path, hence the same bits.
func (q *quantLevel) decodeRun(out []float32, i int, sg, zg float32) {
	w := uint(q.bits)
	codes := q.codes
	for len(out) > 0 && i&7 != 0 {
		out[0] = sg * (unpack(codes, i, w) - zg)
		out, i = out[1:], i+1
	}
	if useAVX512 {
		if w == 4 && len(out) >= 16 {
			n16 := len(out) / 16
			quant4AVX512(&out[0], n16, &codes[i>>1], sg, zg)
			out, i = out[16*n16:], i+16*n16
		}
		// Chunks of eight codes whose eight-byte load stays inside codes.
		p := i >> 3 * int(w)
		if n8 := min(len(out)/8, (len(codes)-8-p)/int(w)+1); len(codes)-8-p >= 0 && n8 > 0 {
			quantNAVX512(&out[0], n8, &codes[p], &quantShifts[w], int(w), sg, zg)
			out, i = out[8*n8:], i+8*n8
		}
	}
	if w == 8 {
		src := codes[i : i+len(out)]
		for j, b := range src {
			out[j] = sg * (float32(b) - zg)
		}
		return
	}
	mask := uint64(1)<<w - 1
	var t [64]float32
	table := w <= 6 && len(out) >= 2<<w
	if table {
		for c := range 1 << w {
			t[c] = sg * (float32(c) - zg)
		}
	}
	// p: the byte of code i; a uint64 load from p must stay inside codes.
	p := i >> 3 * int(w)
	for len(out) >= 8 && p+8 <= len(codes) {
		v := binary.LittleEndian.Uint64(codes[p:])
		o := out[:8:8]
		if table {
			for k := range o {
				o[k] = t[v>>(uint(k)*w)&mask&63]
			}
		} else {
			for k := range o {
				o[k] = sg * (float32(v>>(uint(k)*w)&mask) - zg)
			}
		}
		out, i, p = out[8:], i+8, p+int(w)
	}
	for j := range out {
		out[j] = sg * (unpack(codes, i+j, w) - zg)
	}
}

// sparseLevel is a sparse level: the bitmask (one zero byte of padding), the count of set bits
// before each 64 weights, and the stored values (f32, bf16 or f16 little-endian).
type sparseLevel struct {
	n      int
	mask   []byte
	before []int32
	vals   []byte
	values string
}

// newSparseLevel checks and holds a sparse payload (the checks of decodeSparse).
func newSparseLevel(h *levelHeader, p []byte) (*sparseLevel, error) {
	n := h.Rows * h.Cols
	mlen := (n + 7) / 8
	mask := p[:mlen]
	s := &sparseLevel{n: n, values: h.Values, before: make([]int32, (n+63)/64)}
	set := 0
	for i, b := range mask {
		if i%8 == 0 {
			s.before[i/8] = int32(set)
		}
		set += bits.OnesCount8(b)
	}
	if int64(set) != h.Nonzeros {
		return nil, fmt.Errorf("bitmask holds %d entries, header says %d", set, h.Nonzeros)
	}
	if rem := n & 7; rem != 0 && mask[mlen-1]>>rem != 0 {
		return nil, fmt.Errorf("padding bits set in the bitmask")
	}
	s.mask = clone(mask, 1)
	s.vals = clone(p[mlen:], sparsePad)
	return s, nil
}

// Len is the number of weights.
func (s *sparseLevel) Len() int { return s.n }

// Bytes is the size of the bitmask, the counts and the values.
func (s *sparseLevel) Bytes() int64 {
	return int64(len(s.mask)) + 4*int64(len(s.before)) + int64(len(s.vals)-sparsePad)
}

// Decode writes weights [off, off+len(dst)): the stored values where the bitmask is set, +0
// elsewhere (decodeSparse's values).
func (s *sparseLevel) Decode(dst []float32, off int) {
	if off < 0 || off+len(dst) > s.n {
		panic(fmt.Sprintf("db: sparse level: weights [%d, %d) outside [0, %d)", off, off+len(dst), s.n))
	}
	if len(dst) == 0 {
		return // off may be Len, past the last running count
	}
	// k: the values stored before weight off.
	k := int(s.before[off>>6])
	for b := off >> 6 << 3; b < off>>3; b++ {
		k += bits.OnesCount8(s.mask[b])
	}
	k += bits.OnesCount8(s.mask[off>>3] & (1<<(off&7) - 1))
	f32, bf16 := s.values == "f32", s.values == "bf16"
	if useAVX512 && (f32 || bf16) && len(dst) >= 32 {
		// The Go loop up to a multiple of 16 weights, then whole chunks of 16 (two mask bytes).
		h := -off & 15
		if f32 {
			k = sparseF32(dst[:h], s.mask, s.vals, off, k)
		} else {
			k = sparseBF16(dst[:h], s.mask, s.vals, off, k)
		}
		dst, off = dst[h:], off+h
		n16 := len(dst) / 16
		if f32 {
			k += sparseExpandF32(&dst[0], n16, &s.mask[off>>3], &s.vals[4*k])
		} else {
			k += sparseExpandBF16(&dst[0], n16, &s.mask[off>>3], &s.vals[2*k])
		}
		dst, off = dst[16*n16:], off+16*n16
	}
	switch {
	case f32:
		sparseF32(dst, s.mask, s.vals, off, k)
	case bf16:
		sparseBF16(dst, s.mask, s.vals, off, k)
	default:
		sparseF16(dst, s.mask, s.vals, off, k)
	}
}

// sparsePad is the zero bytes after a sparse level's values: the branch-free decoders below
// read the value at the running count k for every weight, set or not, so k may be the number of
// values, and sparseExpandBF16 reads 16 values (32 bytes) from the chunk's first.
const sparsePad = 32

// sparseF32 writes weights [off, off+len(dst)) of a level with float32 values, k of them stored
// before weight off, and returns the count after them: each weight takes the next value's bits
// ANDed with all ones where its mask bit is set and with zero (+0) where it is not, without a
// branch on the bit.
func sparseF32(dst []float32, mask, vals []byte, off, k int) int {
	for i := range dst {
		e := off + i
		bit := uint32(mask[e>>3]>>(e&7)) & 1
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(vals[4*k:]) & -bit)
		k += int(bit)
	}
	return k
}

// sparseBF16 is sparseF32 for bfloat16 values.
func sparseBF16(dst []float32, mask, vals []byte, off, k int) int {
	for i := range dst {
		e := off + i
		bit := uint32(mask[e>>3]>>(e&7)) & 1
		dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(vals[2*k:])) << 16 & -bit)
		k += int(bit)
	}
	return k
}

// sparseF16 is sparseF32 for binary16 values (kernels.F16ToFloat32 gives compress.Float16Value's
// values, bit for bit, from a table).
func sparseF16(dst []float32, mask, vals []byte, off, k int) int {
	for i := range dst {
		e := off + i
		bit := uint32(mask[e>>3]>>(e&7)) & 1
		dst[i] = math.Float32frombits(math.Float32bits(kernels.F16ToFloat32(binary.LittleEndian.Uint16(vals[2*k:]))) & -bit)
		k += int(bit)
	}
	return k
}
