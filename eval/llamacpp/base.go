package llamacpp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Magic opens a base-logits file.
const Magic = "_logits_"

// headerBytes is the size of the fixed header: the magic and three int32 (n_ctx, n_vocab, n_chunk).
const headerBytes = len(Magic) + 3*4

// Limits on what a base-logits file may declare, far above any real model, so that a corrupt
// header cannot make a reader allocate without bound.
const (
	MaxCtx   = 1 << 20
	MaxVocab = 1 << 22
)

// RowWidth is the number of uint16 one scored position occupies in a base-logits file: two
// float32 (scale, minimum log-probability) and n_vocab codes, padded to an even count
// (llama.cpp's nv = 2·⌈n_vocab/2⌉ + 4).
func RowWidth(nVocab int) int { return 2*((nVocab+1)/2) + 4 }

// ChunkBytes is the size of one chunk's rows in a base-logits file.
func ChunkBytes(nCtx, nVocab int) int64 {
	_, n := Scored(nCtx)
	return int64(n) * int64(RowWidth(nVocab)) * 2
}

// BaseSize is the size of a base-logits file of nChunk chunks of nCtx tokens over a vocabulary
// of nVocab tokens, or −1 when it would not fit in an int64.
func BaseSize(nCtx, nVocab, nChunk int) int64 {
	if nCtx < 0 || nVocab < 0 || nChunk < 0 {
		return -1
	}
	per := 4*int64(nCtx) + ChunkBytes(nCtx, nVocab)
	if per > 0 && int64(nChunk) > (math.MaxInt64-int64(headerBytes))/per {
		return -1
	}
	return int64(headerBytes) + int64(nChunk)*per
}

// BaseReader reads a base-logits file as llama-perplexity --kl-divergence-base writes it
// (docs/design.md, "llama.cpp's base-logits file"): the header and the token ids on opening,
// then the scored positions' compressed log-probabilities one chunk at a time (a real file can
// be gigabytes). Every declared size is checked against the file's length before anything is
// allocated.
type BaseReader struct {
	// Name names the file in errors.
	Name string
	// NCtx is the tokens per chunk, NVocab the vocabulary size, NChunk the chunks.
	NCtx, NVocab, NChunk int
	// Tokens holds the NChunk·NCtx token ids the base model was run on, the text's first
	// tokens as tokenized (the chunks' first tokens not yet replaced by BOS).
	Tokens []int

	r     io.Reader
	c     io.Closer
	next  int // the next chunk ReadChunk returns
	bytes []byte
}

// OpenBase opens a base-logits file and reads its header and tokens.
func OpenBase(path string) (*BaseReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := NewBaseReader(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	b.c = f
	return b, nil
}

// NewBaseReader reads the header and tokens of a base-logits file of size bytes from r; name
// names it in errors. The file must be exactly as long as its header declares.
func NewBaseReader(r io.Reader, size int64, name string) (*BaseReader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var hdr [headerBytes]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("%s: not a llama.cpp base-logits file: %d bytes, shorter than its header", name, size)
	}
	if string(hdr[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%s: not a llama.cpp base-logits file (it does not start with %q; make one with llama-perplexity --kl-divergence-base or evopress ppl --save-kld-base)", name, Magic)
	}
	field := func(i int) int { return int(int32(binary.LittleEndian.Uint32(hdr[len(Magic)+4*i:]))) }
	b := &BaseReader{Name: name, NCtx: field(0), NVocab: field(1), NChunk: field(2), r: br}
	if b.NCtx < 3 || b.NCtx > MaxCtx {
		return nil, fmt.Errorf("%s: n_ctx %d outside [3, %d]", name, b.NCtx, MaxCtx)
	}
	if b.NVocab < 1 || b.NVocab > MaxVocab {
		return nil, fmt.Errorf("%s: n_vocab %d outside [1, %d]", name, b.NVocab, MaxVocab)
	}
	if b.NChunk < 1 {
		return nil, fmt.Errorf("%s: n_chunk %d: must be at least 1", name, b.NChunk)
	}
	if want := BaseSize(b.NCtx, b.NVocab, b.NChunk); want != size {
		return nil, fmt.Errorf("%s: %d bytes, but its header (n_ctx %d, n_vocab %d, n_chunk %d) declares %d: truncated or not a base-logits file",
			name, size, b.NCtx, b.NVocab, b.NChunk, want)
	}
	raw := make([]byte, 4*b.NCtx*b.NChunk)
	if _, err := io.ReadFull(br, raw); err != nil {
		return nil, fmt.Errorf("%s: reading the tokens: %w", name, unexpected(err))
	}
	b.Tokens = make([]int, b.NCtx*b.NChunk)
	for i := range b.Tokens {
		id := int(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		if id < 0 || id >= b.NVocab {
			return nil, fmt.Errorf("%s: token %d (chunk %d, position %d) is %d, outside the vocabulary [0, %d)", name, i, i/b.NCtx, i%b.NCtx, id, b.NVocab)
		}
		b.Tokens[i] = id
	}
	return b, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadChunk reads the next chunk's rows into dst (resized to Scored(NCtx) rows of
// RowWidth(NVocab) values) and returns it. Rows whose scale or minimum is not a finite number
// (or whose scale is negative) are refused.
func (b *BaseReader) ReadChunk(dst []uint16) ([]uint16, error) {
	if b.next >= b.NChunk {
		return dst, fmt.Errorf("%s: all %d chunks read", b.Name, b.NChunk)
	}
	_, rows := Scored(b.NCtx)
	nv := RowWidth(b.NVocab)
	n := rows * nv
	if cap(dst) < n {
		dst = make([]uint16, n)
	}
	dst = dst[:n]
	if cap(b.bytes) < 2*n {
		b.bytes = make([]byte, 2*n)
	}
	raw := b.bytes[:2*n]
	if _, err := io.ReadFull(b.r, raw); err != nil {
		return dst, fmt.Errorf("%s: reading the log-probabilities of chunk %d: %w", b.Name, b.next, unexpected(err))
	}
	for i := range dst {
		dst[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	for r := 0; r < rows; r++ {
		scale, minLP := RowHeader(dst[r*nv:])
		if !isFinite(scale) || scale < 0 || !isFinite(minLP) {
			return dst, fmt.Errorf("%s: chunk %d, scored position %d: scale %g, minimum log-probability %g: not a compressed log-probability row",
				b.Name, b.next, r, scale, minLP)
		}
	}
	b.next++
	return dst, nil
}

// Close closes the file OpenBase opened.
func (b *BaseReader) Close() error {
	if b.c != nil {
		return b.c.Close()
	}
	return nil
}

func isFinite(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }

// RowHeader returns the scale and minimum log-probability of a compressed row: the
// log-probability of token i is scale·row[4+i] + min.
func RowHeader(row []uint16) (scale, min float32) {
	return math.Float32frombits(uint32(row[0]) | uint32(row[1])<<16),
		math.Float32frombits(uint32(row[2]) | uint32(row[3])<<16)
}

func putRowHeader(row []uint16, scale, min float32) {
	s, m := math.Float32bits(scale), math.Float32bits(min)
	row[0], row[1], row[2], row[3] = uint16(s), uint16(s>>16), uint16(m), uint16(m>>16)
}

// BaseWriter writes a base-logits file in llama-perplexity's layout: the header and tokens
// first, then each chunk's rows (Compress) in order. It writes to any io.Writer; callers make
// the file atomic (internal/atomicfile).
type BaseWriter struct {
	w            *bufio.Writer
	nCtx, nVocab int
	nChunk, done int
	buf          []byte
}

// NewBaseWriter writes the header and the tokens (nChunk·nCtx ids, the text's first tokens as
// tokenized, BOS first when the model adds one) of a base-logits file to w.
func NewBaseWriter(w io.Writer, nCtx, nVocab int, tokens []int) (*BaseWriter, error) {
	if nCtx < 3 || nCtx > MaxCtx {
		return nil, fmt.Errorf("llamacpp: n_ctx %d outside [3, %d]", nCtx, MaxCtx)
	}
	if nVocab < 1 || nVocab > MaxVocab {
		return nil, fmt.Errorf("llamacpp: n_vocab %d outside [1, %d]", nVocab, MaxVocab)
	}
	if len(tokens) == 0 || len(tokens)%nCtx != 0 || len(tokens)/nCtx > math.MaxInt32 {
		return nil, fmt.Errorf("llamacpp: %d tokens: not a positive multiple of n_ctx %d", len(tokens), nCtx)
	}
	bw := &BaseWriter{w: bufio.NewWriterSize(w, 1<<16), nCtx: nCtx, nVocab: nVocab, nChunk: len(tokens) / nCtx}
	hdr := make([]byte, headerBytes, headerBytes+4*len(tokens))
	copy(hdr, Magic)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(nCtx))
	binary.LittleEndian.PutUint32(hdr[12:], uint32(nVocab))
	binary.LittleEndian.PutUint32(hdr[16:], uint32(bw.nChunk))
	for i, id := range tokens {
		if id < 0 || id >= nVocab {
			return nil, fmt.Errorf("llamacpp: token %d is %d, outside the vocabulary [0, %d)", i, id, nVocab)
		}
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(id))
	}
	if _, err := bw.w.Write(hdr); err != nil {
		return nil, err
	}
	return bw, nil
}

// WriteChunk appends one chunk's rows: Scored(nCtx) rows of RowWidth(nVocab) values.
func (bw *BaseWriter) WriteChunk(rows []uint16) error {
	_, n := Scored(bw.nCtx)
	if len(rows) != n*RowWidth(bw.nVocab) {
		return fmt.Errorf("llamacpp: chunk of %d values, want %d", len(rows), n*RowWidth(bw.nVocab))
	}
	if bw.done >= bw.nChunk {
		return fmt.Errorf("llamacpp: all %d chunks written", bw.nChunk)
	}
	bw.buf = bw.buf[:0]
	for _, v := range rows {
		bw.buf = binary.LittleEndian.AppendUint16(bw.buf, v)
	}
	if _, err := bw.w.Write(bw.buf); err != nil {
		return err
	}
	bw.done++
	return nil
}

// Close checks that every chunk the header declares was written and flushes.
func (bw *BaseWriter) Close() error {
	if bw.done != bw.nChunk {
		return fmt.Errorf("llamacpp: %d of %d chunks written", bw.done, bw.nChunk)
	}
	return bw.w.Flush()
}
