package db

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"

	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/ggml"
)

// Level file layout (little-endian):
//
//	magic      8 bytes  "EVPLVL\x00\x01"
//	hlen       uint32   length of the header
//	header     hlen bytes of JSON (levelHeader)
//	payload    sparse: bitmask ceil(numel/8) bytes (bit i of byte k is weight 8k+i, row-major),
//	                   then the stored values in row-major order (f32: 4 bytes, bf16/f16: 2 bytes)
//	           quant:  codes bit-packed at Bits (compress.PackCodes, row-major),
//	                   scales rows·groups IEEE binary16 (2 bytes each),
//	                   zero points rows·groups bit-packed at Bits,
//	                   g_idx cols int32 (only when the header says so)
//	           gguf:   the ggml blocks of type Level (ggml.Type), row by row: rows ×
//	                   ggml.Type.RowBytes(cols) bytes, exactly as a GGUF file stores the tensor
//	                   (rows in the model's order: a GGUF writer permutes q_proj and k_proj rows
//	                   as it does for float weights)
//
// The payload's length follows from the header exactly; anything else is an error.
const levelMagic = "EVPLVL\x00\x01"

// levelHeaderMin is the smallest possible level file: the magic, the header length and "{}".
const levelHeaderMin = int64(len(levelMagic) + 4 + 2)

// maxLevelHeader bounds the JSON header.
const maxLevelHeader = 1 << 16

// levelHeader is the JSON header of a level file.
type levelHeader struct {
	Layer string `json:"layer"`
	Level int    `json:"level"`
	Kind  string `json:"kind"` // "sparse", "quant" or "gguf"
	Rows  int    `json:"rows"`
	Cols  int    `json:"cols"`
	// sparse
	Values   string `json:"values,omitempty"`
	Nonzeros int64  `json:"nonzeros,omitempty"`
	// quant
	Bits      int  `json:"bits,omitempty"`
	GroupSize int  `json:"group_size,omitempty"`
	Groups    int  `json:"groups,omitempty"`
	GIdx      bool `json:"g_idx,omitempty"`
}

func valueSize(dtype string) int {
	switch dtype {
	case "f32":
		return 4
	case "bf16", "f16":
		return 2
	}
	return 0
}

// payloadLen is the exact payload length the header implies, or an error.
func (h *levelHeader) payloadLen() (int64, error) {
	if h.Rows < 1 || h.Cols < 1 || h.Rows > math.MaxInt32/h.Cols {
		return 0, fmt.Errorf("bad shape %d×%d", h.Rows, h.Cols)
	}
	n := int64(h.Rows) * int64(h.Cols)
	switch h.Kind {
	case ModeSparse:
		vs := valueSize(h.Values)
		if vs == 0 {
			return 0, fmt.Errorf("unknown value type %q", h.Values)
		}
		if h.Nonzeros < 0 || h.Nonzeros > n {
			return 0, fmt.Errorf("nonzeros %d outside [0, %d]", h.Nonzeros, n)
		}
		return (n+7)/8 + h.Nonzeros*int64(vs), nil
	case ModeQuant:
		if h.Bits < 1 || h.Bits > 8 {
			return 0, fmt.Errorf("bits %d outside 1..8", h.Bits)
		}
		q := compress.Quantized{Rows: h.Rows, Cols: h.Cols, GroupSize: h.GroupSize}
		if h.GroupSize < 0 || h.Groups != q.NumGroups() {
			return 0, fmt.Errorf("group size %d and %d groups disagree for %d columns", h.GroupSize, h.Groups, h.Cols)
		}
		g := int64(h.Rows) * int64(h.Groups)
		l := int64(compress.PackedCodesLen(int(n), h.Bits)) + 2*g + int64(compress.PackedCodesLen(int(g), h.Bits))
		if h.GIdx {
			l += 4 * int64(h.Cols)
		}
		return l, nil
	case ModeGGUF:
		t := ggml.Type(h.Level)
		if h.Level < 0 || !t.Codec() {
			return 0, fmt.Errorf("level %d is not a ggml type evopress decodes", h.Level)
		}
		rb, err := t.RowBytes(h.Cols)
		if err != nil {
			return 0, err
		}
		return int64(h.Rows) * int64(rb), nil
	}
	return 0, fmt.Errorf("unknown kind %q", h.Kind)
}

func appendHeader(buf []byte, h *levelHeader) []byte {
	hj, _ := json.Marshal(h)
	buf = append(buf, levelMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(hj)))
	return append(buf, hj...)
}

// chooseValues returns the narrowest value type that stores every value exactly.
func chooseValues(vals []float32) string {
	bf := true
	for _, v := range vals {
		if math.Float32bits(v)&0xffff != 0 {
			bf = false
			break
		}
	}
	if bf {
		return "bf16"
	}
	for _, v := range vals {
		if _, ok := compress.Float16Bits(v); !ok {
			return "f32"
		}
	}
	return "f16"
}

// encodeSparse encodes a sparse level (W holds the level's weights, +0 = pruned).
func encodeSparse(layer string, level, rows, cols int, W []float32) (data []byte, nonzeros int64, dtype string) {
	mask, vals := compress.PackSparse(W)
	dtype = chooseValues(vals)
	h := levelHeader{Layer: layer, Level: level, Kind: ModeSparse, Rows: rows, Cols: cols, Values: dtype, Nonzeros: int64(len(vals))}
	data = appendHeader(make([]byte, 0, 64+len(mask)+len(vals)*valueSize(dtype)), &h)
	data = append(data, mask...)
	for _, v := range vals {
		switch dtype {
		case "f32":
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
		case "bf16":
			data = binary.LittleEndian.AppendUint16(data, uint16(math.Float32bits(v)>>16))
		case "f16":
			b, _ := compress.Float16Bits(v)
			data = binary.LittleEndian.AppendUint16(data, b)
		}
	}
	return data, int64(len(vals)), dtype
}

// encodeQuant encodes a quantized level.
func encodeQuant(layer string, q *compress.Quantized) ([]byte, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	codes, err := compress.PackCodes(q.Codes, q.Bits)
	if err != nil {
		return nil, err
	}
	zc := make([]uint8, len(q.Zero))
	for i, z := range q.Zero {
		zc[i] = uint8(z)
	}
	zeros, err := compress.PackCodes(zc, q.Bits)
	if err != nil {
		return nil, err
	}
	h := levelHeader{Layer: layer, Level: q.Bits, Kind: ModeQuant, Rows: q.Rows, Cols: q.Cols, Bits: q.Bits,
		GroupSize: q.GroupSize, Groups: q.NumGroups(), GIdx: q.GIdx != nil}
	data := appendHeader(make([]byte, 0, 64+len(codes)+2*len(q.Scale)+len(zeros)+4*len(q.GIdx)), &h)
	data = append(data, codes...)
	for _, s := range q.Scale {
		b, _ := compress.Float16Bits(s) // exact: Validate checked it
		data = binary.LittleEndian.AppendUint16(data, b)
	}
	data = append(data, zeros...)
	for _, g := range q.GIdx {
		data = binary.LittleEndian.AppendUint32(data, uint32(g))
	}
	return data, nil
}

// encodeGGUF encodes a gguf level: the ggml blocks of type t of a rows × cols layer.
func encodeGGUF(layer string, t ggml.Type, rows, cols int, blocks []byte) []byte {
	h := levelHeader{Layer: layer, Level: int(t), Kind: ModeGGUF, Rows: rows, Cols: cols}
	return append(appendHeader(make([]byte, 0, 96+len(blocks)), &h), blocks...)
}

// parseLevel splits a level file into its header and payload, checking the magic, the header and
// the payload's exact length.
func parseLevel(data []byte) (*levelHeader, []byte, error) {
	if len(data) < len(levelMagic)+4 || string(data[:len(levelMagic)]) != levelMagic {
		return nil, nil, fmt.Errorf("not an evopress level file (bad magic)")
	}
	hl := binary.LittleEndian.Uint32(data[len(levelMagic):])
	off := int64(len(levelMagic)) + 4
	if hl > maxLevelHeader || int64(hl) > int64(len(data))-off {
		return nil, nil, fmt.Errorf("header length %d exceeds the file", hl)
	}
	var h levelHeader
	if err := json.Unmarshal(data[off:off+int64(hl)], &h); err != nil {
		return nil, nil, fmt.Errorf("header: %v", err)
	}
	want, err := h.payloadLen()
	if err != nil {
		return nil, nil, fmt.Errorf("header: %v", err)
	}
	payload := data[off+int64(hl):]
	if int64(len(payload)) != want {
		return nil, nil, fmt.Errorf("payload of %d bytes, the header implies %d", len(payload), want)
	}
	return &h, payload, nil
}

// decodeSparse writes the dense weights of a sparse payload into dst.
func decodeSparse(h *levelHeader, p []byte, dst []float32) error {
	n := len(dst)
	mlen := (n + 7) / 8
	mask, vals := p[:mlen], p[mlen:]
	set := 0
	for _, b := range mask {
		set += bits.OnesCount8(b)
	}
	if int64(set) != h.Nonzeros {
		return fmt.Errorf("bitmask holds %d entries, header says %d", set, h.Nonzeros)
	}
	if rem := n & 7; rem != 0 && mask[mlen-1]>>rem != 0 {
		return fmt.Errorf("padding bits set in the bitmask")
	}
	// One loop per value type; set bits are visited with TrailingZeros.
	k := 0
	for i := 0; i < n; i += 8 {
		out := dst[i:min(i+8, n)]
		clear(out)
		b := mask[i>>3]
		switch h.Values {
		case "f32":
			for ; b != 0; b &= b - 1 {
				out[bits.TrailingZeros8(b)] = math.Float32frombits(binary.LittleEndian.Uint32(vals[4*k:]))
				k++
			}
		case "bf16":
			for ; b != 0; b &= b - 1 {
				out[bits.TrailingZeros8(b)] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(vals[2*k:])) << 16)
				k++
			}
		default:
			for ; b != 0; b &= b - 1 {
				out[bits.TrailingZeros8(b)] = compress.Float16Value(binary.LittleEndian.Uint16(vals[2*k:]))
				k++
			}
		}
	}
	return nil
}

// quantSections splits a quant payload.
func quantSections(h *levelHeader, p []byte) (codes, scales, zeros, gidx []byte) {
	n := h.Rows * h.Cols
	g := h.Rows * h.Groups
	cl := compress.PackedCodesLen(n, h.Bits)
	zl := compress.PackedCodesLen(g, h.Bits)
	codes, p = p[:cl], p[cl:]
	scales, p = p[:2*g], p[2*g:]
	zeros, p = p[:zl], p[zl:]
	return codes, scales, zeros, p
}

// decodeQuant writes the dequantized weights of a quant payload into dst: each weight is
// scale·(code − zero) in float32, exactly as compress.Quantized.Dequantize computes it.
func decodeQuant(h *levelHeader, p []byte, dst []float32) error {
	codes, sc, zc, gi := quantSections(h, p)
	ng := h.Groups
	g := h.GroupSize
	if ng == 1 {
		g = h.Cols
	}
	maxq := uint64(1)<<h.Bits - 1
	scale := make([]float32, h.Rows*ng)
	zero := make([]float32, h.Rows*ng)
	for i := range scale {
		s := compress.Float16Value(binary.LittleEndian.Uint16(sc[2*i:]))
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("scale %g of group %d is not positive and finite", s, i)
		}
		scale[i] = s
	}
	if err := unpackFloat(zero, zc, h.Bits); err != nil {
		return fmt.Errorf("zero points: %w", err)
	}
	var gidx []int32
	if h.GIdx {
		gidx = make([]int32, h.Cols)
		for j := range gidx {
			v := int32(binary.LittleEndian.Uint32(gi[4*j:]))
			if v < 0 || int(v) >= ng {
				return fmt.Errorf("g_idx %d of column %d outside [0, %d)", v, j, ng)
			}
			gidx[j] = v
		}
	}
	if pad := len(codes)*8 - len(dst)*h.Bits; pad > 0 && codes[len(codes)-1]>>(8-pad) != 0 {
		return fmt.Errorf("non-zero padding bits after the codes")
	}
	// One pass over the bit stream, group by group (column j's group is j/g, or gidx[j]).
	var acc uint64
	nacc, pos := 0, 0
	w := uint(h.Bits)
	next := func() float32 {
		if nacc < int(w) {
			for nacc <= 56 && pos < len(codes) {
				acc |= uint64(codes[pos]) << nacc
				pos++
				nacc += 8
			}
		}
		c := acc & maxq
		acc >>= w
		nacc -= int(w)
		return float32(c)
	}
	for r := 0; r < h.Rows; r++ {
		out := dst[r*h.Cols : (r+1)*h.Cols]
		s := scale[r*ng : (r+1)*ng]
		z := zero[r*ng : (r+1)*ng]
		if gidx != nil {
			for j := range out {
				gr := gidx[j]
				out[j] = s[gr] * (next() - z[gr])
			}
			continue
		}
		for gr := 0; gr < ng; gr++ {
			sg, zg := s[gr], z[gr]
			seg := out[gr*g : min((gr+1)*g, h.Cols)]
			for j := range seg {
				seg[j] = sg * (next() - zg)
			}
		}
	}
	return nil
}

// unpackFloat unpacks bit-packed integers into float32s.
func unpackFloat(dst []float32, packed []byte, width int) error {
	u := make([]uint8, len(dst))
	if err := compress.UnpackCodes(u, packed, width); err != nil {
		return err
	}
	for i, v := range u {
		dst[i] = float32(v)
	}
	return nil
}

// decodeQuantized rebuilds the compress.Quantized of a quant payload.
func decodeQuantized(h *levelHeader, p []byte) (*compress.Quantized, error) {
	codes, sc, zc, gi := quantSections(h, p)
	q := &compress.Quantized{Rows: h.Rows, Cols: h.Cols, Bits: h.Bits, GroupSize: h.GroupSize,
		Codes: make([]uint8, h.Rows*h.Cols), Scale: make([]float32, h.Rows*h.Groups), Zero: make([]float32, h.Rows*h.Groups)}
	if err := compress.UnpackCodes(q.Codes, codes, h.Bits); err != nil {
		return nil, err
	}
	for i := range q.Scale {
		q.Scale[i] = compress.Float16Value(binary.LittleEndian.Uint16(sc[2*i:]))
	}
	if err := unpackFloat(q.Zero, zc, h.Bits); err != nil {
		return nil, err
	}
	if h.GIdx {
		q.GIdx = make([]int32, h.Cols)
		for j := range q.GIdx {
			q.GIdx[j] = int32(binary.LittleEndian.Uint32(gi[4*j:]))
		}
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	return q, nil
}
