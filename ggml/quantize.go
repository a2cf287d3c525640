package ggml

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// rowQuantizer encodes one row x into y (RowBytes(len(x)) bytes); qw is the row's importance
// vector (len(x) values) or nil.
type rowQuantizer func(y []byte, x, qw []float32)

// blockDecoder decodes one block b into y (BlockSize values).
type blockDecoder func(y []float32, b []byte)

type codec struct {
	quantize rowQuantizer
	decode   blockDecoder
}

var codecs = map[Type]codec{
	F32:    {quantizeF32, dequantF32},
	F16:    {quantizeF16, dequantF16},
	BF16:   {quantizeBF16, dequantBF16},
	Q4_0:   {quantizeQ4_0, dequantQ4_0},
	Q4_1:   {quantizeQ4_1, dequantQ4_1},
	Q5_0:   {quantizeQ5_0, dequantQ5_0},
	Q5_1:   {quantizeQ5_1, dequantQ5_1},
	Q8_0:   {quantizeQ8_0, dequantQ8_0},
	Q2_K:   {quantizeQ2_K, dequantQ2_K},
	Q3_K:   {quantizeQ3_K, dequantQ3_K},
	Q4_K:   {quantizeQ4_K, dequantQ4_K},
	Q5_K:   {quantizeQ5_K, dequantQ5_K},
	Q6_K:   {quantizeQ6_K, dequantQ6_K},
	IQ4_NL: {quantizeIQ4_NL, dequantIQ4_NL},
	IQ4_XS: {quantizeIQ4_XS, dequantIQ4_XS},
}

// blockDecoders holds codecs' decoders indexed by type (nil where there is none), so that
// DequantizeRange, called for every short stretch GemmW packs, does no map lookup.
var blockDecoders = func() []blockDecoder {
	var n Type
	for t := range codecs {
		n = max(n, t+1)
	}
	d := make([]blockDecoder, n)
	for t, c := range codecs {
		d[t] = c.decode
	}
	return d
}()

func quantizeF32(y []byte, x, _ []float32) {
	for i, v := range x {
		binary.LittleEndian.PutUint32(y[4*i:], math.Float32bits(v))
	}
}

func quantizeF16(y []byte, x, _ []float32) {
	for i, v := range x {
		binary.LittleEndian.PutUint16(y[2*i:], FP32ToFP16(v))
	}
}

func quantizeBF16(y []byte, x, _ []float32) {
	for i, v := range x {
		binary.LittleEndian.PutUint16(y[2*i:], FP32ToBF16(v))
	}
}

// Quantize encodes src, rows of cols weights each (row-major, len(src) a multiple of cols),
// as type t and returns the bytes ggml_quantize_chunk writes for them — what llama-quantize
// stores in a GGUF file. imatrix is the importance vector of the tensor's input columns (cols
// values, as llama-imatrix computes them and llama-quantize passes them) or nil. Rows are
// encoded in parallel on GOMAXPROCS goroutines; the result does not depend on their number.
func Quantize(t Type, src []float32, cols int, imatrix []float32) ([]byte, error) {
	if err := check(t, len(src), cols, imatrix); err != nil {
		return nil, err
	}
	rb, _ := t.RowBytes(cols)
	dst := make([]byte, len(src)/cols*rb)
	quantizeRows(dst, t, src, cols, imatrix)
	return dst, nil
}

// QuantizeTo is Quantize writing into dst, which must hold exactly the encoded size
// (len(src)/cols rows of t.RowBytes(cols) bytes).
func QuantizeTo(dst []byte, t Type, src []float32, cols int, imatrix []float32) error {
	if err := check(t, len(src), cols, imatrix); err != nil {
		return err
	}
	rb, _ := t.RowBytes(cols)
	if want := len(src) / cols * rb; len(dst) != want {
		return fmt.Errorf("ggml: %d rows of %d weights as %s take %d bytes, the destination has %d", len(src)/cols, cols, t, want, len(dst))
	}
	quantizeRows(dst, t, src, cols, imatrix)
	return nil
}

func check(t Type, n, cols int, imatrix []float32) error {
	if !t.Codec() {
		return fmt.Errorf("ggml: no encoder for tensor type %s", t)
	}
	if _, err := t.RowBytes(cols); err != nil {
		return err
	}
	if n%cols != 0 {
		return fmt.Errorf("ggml: %d values are not whole rows of %d", n, cols)
	}
	if imatrix != nil && len(imatrix) != cols {
		return fmt.Errorf("ggml: the importance vector has %d values, the rows %d", len(imatrix), cols)
	}
	return nil
}

// minParallelBytes is the input size below which Quantize stays on the calling goroutine.
const minParallelBytes = 1 << 16

func quantizeRows(dst []byte, t Type, src []float32, cols int, imatrix []float32) {
	q := codecs[t].quantize
	rb, _ := t.RowBytes(cols)
	rows := len(src) / cols
	one := func(r int) { q(dst[r*rb:(r+1)*rb], src[r*cols:(r+1)*cols], imatrix) }
	workers := runtime.GOMAXPROCS(0)
	if workers < 2 || rows < 2 || 4*len(src) < minParallelBytes {
		for r := 0; r < rows; r++ {
			one(r)
		}
		return
	}
	// Hand out chunks of rows: several per worker, so that uneven progress balances out.
	chunk := max(1, rows/(8*workers))
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for range min(workers, rows) {
		wg.Go(func() {
			for {
				mu.Lock()
				lo := next
				next += chunk
				mu.Unlock()
				if lo >= rows {
					return
				}
				for r := lo; r < min(lo+chunk, rows); r++ {
					one(r)
				}
			}
		})
	}
	wg.Wait()
}

// Dequantize decodes data, whole blocks of type t, to float32 as ggml's to_float
// (dequantize_row_*) does.
func Dequantize(t Type, data []byte) ([]float32, error) {
	if !t.Codec() {
		return nil, fmt.Errorf("ggml: no decoder for tensor type %s", t)
	}
	bb := t.BlockBytes()
	if len(data)%bb != 0 {
		return nil, fmt.Errorf("ggml: %d bytes are not whole %s blocks of %d bytes", len(data), t, bb)
	}
	dst := make([]float32, len(data)/bb*t.BlockSize())
	dequantize(dst, t, data)
	return dst, nil
}

// DequantizeTo is Dequantize writing into dst, which must hold exactly the decoded values.
func DequantizeTo(dst []float32, t Type, data []byte) error {
	if !t.Codec() {
		return fmt.Errorf("ggml: no decoder for tensor type %s", t)
	}
	bb, bs := t.BlockBytes(), t.BlockSize()
	if len(data)%bb != 0 {
		return fmt.Errorf("ggml: %d bytes are not whole %s blocks of %d bytes", len(data), t, bb)
	}
	if len(dst) != len(data)/bb*bs {
		return fmt.Errorf("ggml: %d %s blocks decode to %d values, the destination has %d", len(data)/bb, t, len(data)/bb*bs, len(dst))
	}
	dequantize(dst, t, data)
	return nil
}

func dequantize(dst []float32, t Type, data []byte) {
	dec := codecs[t].decode
	bb, bs := t.BlockBytes(), t.BlockSize()
	for i := 0; i < len(data)/bb; i++ {
		dec(dst[i*bs:(i+1)*bs], data[i*bb:(i+1)*bb])
	}
}

// DequantizeRange writes values [first, first+len(dst)) of data — whole blocks of type t, the
// values numbered across the blocks as Dequantize returns them — into dst, decoding only the
// blocks the range touches (a block the range cuts is decoded whole into a scratch): the values
// are exactly Dequantize's. It is how a matrix of ggml blocks is expanded a stretch of a row at
// a time (rows are whole blocks, so the row-major element index is the value index). It panics
// when t has no decoder or the range is outside data's values.
func DequantizeRange(dst []float32, t Type, data []byte, first int) {
	var dec blockDecoder
	if int(t) < len(blockDecoders) {
		dec = blockDecoders[t]
	}
	if dec == nil {
		panic(fmt.Sprintf("ggml: no decoder for tensor type %s", t))
	}
	bb, bs := t.BlockBytes(), t.BlockSize()
	if first < 0 || first+len(dst) > len(data)/bb*bs {
		panic(fmt.Sprintf("ggml: DequantizeRange: values [%d, %d) outside the %d of %d %s blocks", first, first+len(dst), len(data)/bb*bs, len(data)/bb, t))
	}
	// Whole blocks straight into dst (GemmW's stretches: kc values from a block boundary), a
	// block cut by the range's ends through a pooled scratch block (a local array would escape
	// through the indirect call and be allocated on every call).
	for len(dst) > 0 {
		b, in := first/bs, first%bs
		blk := data[b*bb : (b+1)*bb]
		if in == 0 && len(dst) >= bs {
			dec(dst[:bs], blk)
			dst, first = dst[bs:], first+bs
			continue
		}
		tmp := blockPool.Get().(*[QK_K]float32)
		dec(tmp[:bs], blk)
		n := copy(dst, tmp[in:bs])
		blockPool.Put(tmp)
		dst, first = dst[n:], first+n
	}
}

// blockPool holds DequantizeRange's scratch blocks (the largest block of a decoded type).
var blockPool = sync.Pool{New: func() any { return new([QK_K]float32) }}
