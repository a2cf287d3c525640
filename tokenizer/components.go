package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// ---------------------------------------------------------------- normalizers

// normalizer transforms a piece of text before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

type normSequence []normalizer

func (q normSequence) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}

// normPrepend prepends a string to non-empty text (normalizers::Prepend).
type normPrepend string

func (p normPrepend) normalize(s string) string {
	if s == "" {
		return s
	}
	return string(p) + s
}

// normReplace replaces a literal or a regex (normalizers::Replace).
type normReplace struct {
	literal string
	re      *regexp2.Regexp
	content string
}

func (r normReplace) normalize(s string) string {
	if r.re != nil {
		return regexReplace(r.re, s, r.content)
	}
	if r.literal == "" {
		return s
	}
	return strings.ReplaceAll(s, r.literal, r.content)
}

// normUnicode applies a Unicode normalization form.
type normUnicode struct{ form norm.Form }

func (u normUnicode) normalize(s string) string { return u.form.String(s) }

// normLowercase lowercases (Rust's str::to_lowercase).
type normLowercase struct{}

func (normLowercase) normalize(s string) string { return strings.ToLower(s) }

// normStrip strips whitespace at either end.
type normStrip struct{ left, right bool }

func (n normStrip) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

// normStripAccents removes combining marks (Mn), as normalizers::StripAccents.
type normStripAccents struct{}

func (normStripAccents) normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
}

// ------------------------------------------------------------ pre-tokenizers

// piece is a pre-token; first marks a piece that starts at offset 0 of the
// original text (Metaspace's prepend_scheme "first" needs it).
type piece struct {
	s     string
	first bool
}

// preTokenizer splits a piece and calls emit with each non-empty
// sub-piece in order (PreTokenizedString::split semantics: empty pieces
// are dropped). Pieces stream through the stages: a piece passed to emit
// is only valid during that call (it may view a scratch buffer), so
// consumers that keep a string must copy it (the word cache does).
type preTokenizer interface {
	preTokenize(p piece, st *encodeState, emit func(piece))
}

// encodeState holds scratch buffers of one Encode call.
type encodeState struct {
	bufs [][]byte
}

func (st *encodeState) getBuf() []byte {
	if n := len(st.bufs); n > 0 {
		b := st.bufs[n-1]
		st.bufs = st.bufs[:n-1]
		return b[:0]
	}
	return make([]byte, 0, 256)
}

func (st *encodeState) putBuf(b []byte) { st.bufs = append(st.bufs, b) }

// emitByteLevel maps every byte of y to its byte-level character in a
// scratch buffer and emits the result.
func (st *encodeState) emitByteLevel(y piece, emit func(piece)) {
	if y.s == "" {
		return
	}
	b := st.getBuf()
	for i := 0; i < len(y.s); i++ {
		b = append(b, byteToString[y.s[i]]...)
	}
	emit(piece{s: unsafe.String(unsafe.SliceData(b), len(b)), first: y.first})
	st.putBuf(b)
}

type preSequence []preTokenizer

func (q preSequence) preTokenize(p piece, st *encodeState, emit func(piece)) {
	if len(q) == 0 {
		if p.s != "" {
			emit(p)
		}
		return
	}
	next := emit
	for i := len(q) - 1; i >= 1; i-- {
		stage, after := q[i], next
		next = func(x piece) { stage.preTokenize(x, st, after) }
	}
	q[0].preTokenize(p, st, next)
}

// preSplit is pre_tokenizers::Split.
type preSplit struct {
	pat    pattern
	beh    behavior
	invert bool
}

func (p preSplit) preTokenize(x piece, _ *encodeState, emit func(piece)) {
	splitPiece(x, p.pat, p.beh, p.invert, emit)
}

// preByteLevel is pre_tokenizers::ByteLevel: optional prefix space, the
// GPT-2 regex split, then every byte mapped to its printable character.
type preByteLevel struct {
	addPrefixSpace bool
	useRegex       bool
}

var gpt2Hand = knownPatterns[gpt2Pattern]

func (p preByteLevel) preTokenize(x piece, st *encodeState, emit func(piece)) {
	if p.addPrefixSpace && !strings.HasPrefix(x.s, " ") {
		x.s = " " + x.s
	}
	if !p.useRegex {
		st.emitByteLevel(x, emit)
		return
	}
	splitPiece(x, gpt2Hand, behIsolated, false, func(y piece) { st.emitByteLevel(y, emit) })
}

// preDigits is pre_tokenizers::Digits: splits on char::is_numeric, i.e.
// the Unicode categories Nd, Nl and No.
type preDigits struct{ individual bool }

func (p preDigits) preTokenize(x piece, _ *encodeState, emit func(piece)) {
	beh := behContiguous
	if p.individual {
		beh = behIsolated
	}
	splitPiece(x, charPattern(isNumber), beh, false, emit)
}

// prepend schemes of Metaspace.
const (
	prependAlways = iota
	prependFirst
	prependNever
)

// preMetaspace is pre_tokenizers::Metaspace.
type preMetaspace struct {
	replacement string
	repRune     rune
	scheme      int
	split       bool
}

func (p preMetaspace) preTokenize(x piece, _ *encodeState, emit func(piece)) {
	s := strings.ReplaceAll(x.s, " ", p.replacement)
	switch p.scheme {
	case prependAlways:
		if !strings.HasPrefix(s, p.replacement) {
			s = p.replacement + s
		}
	case prependFirst:
		if !strings.HasPrefix(s, p.replacement) && x.first {
			s = p.replacement + s
		}
	}
	y := piece{s: s, first: x.first}
	if p.split {
		rr := p.repRune
		splitPiece(y, charPattern(func(r rune) bool { return r == rr }), behMergedWithNext, false, emit)
	} else if s != "" {
		emit(y)
	}
}

// preWhitespace is pre_tokenizers::Whitespace (\w+|[^\w\s]+, gaps removed).
type preWhitespace struct{ pat pattern }

func (p preWhitespace) preTokenize(x piece, _ *encodeState, emit func(piece)) {
	splitPiece(x, p.pat, behRemoved, true, emit)
}

// preCharSplit splits on single characters (WhitespaceSplit, Punctuation,
// BertPreTokenizer's two steps).
type preCharSplit struct {
	pred charPattern
	beh  behavior
}

func (p preCharSplit) preTokenize(x piece, _ *encodeState, emit func(piece)) {
	splitPiece(x, p.pred, p.beh, false, emit)
}

// ------------------------------------------------------------------ decoders

// decoder is one step of a decoder chain (Decoder::decode_chain).
type decoder interface {
	decodeChain(tokens []string) []string
}

type decSequence []decoder

func (q decSequence) decodeChain(t []string) []string {
	for _, d := range q {
		t = d.decodeChain(t)
	}
	return t
}

// decReplace is decoders::Replace.
type decReplace normReplace

func (d decReplace) decodeChain(t []string) []string {
	for i := range t {
		t[i] = normReplace(d).normalize(t[i])
	}
	return t
}

// decByteFallback turns runs of <0xNN> tokens into text; an invalid UTF-8
// run becomes one U+FFFD per byte (decoders::ByteFallback).
type decByteFallback struct{}

// byteToken parses "<0xNN>" the way Hugging Face does (u8::from_str_radix on
// the two characters, which also accepts "+N").
func byteToken(tok string) (byte, bool) {
	if len(tok) != 6 || !strings.HasPrefix(tok, "<0x") || tok[5] != '>' {
		return 0, false
	}
	h := tok[3:5]
	if h[0] == '+' {
		h = h[1:]
	}
	v := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= '0' && c <= '9':
			v = v*16 + int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v*16 + int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v*16 + int(c-'A'+10)
		default:
			return 0, false
		}
	}
	return byte(v), true
}

func (decByteFallback) decodeChain(t []string) []string {
	out := make([]string, 0, len(t))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if s := string(pending); utf8.ValidString(s) {
			out = append(out, s)
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, tok := range t {
		if b, ok := byteToken(tok); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, tok)
	}
	flush()
	return out
}

// decFuse joins all tokens into one (decoders::Fuse).
type decFuse struct{}

func (decFuse) decodeChain(t []string) []string {
	return []string{strings.Join(t, "")}
}

// decStrip removes up to start leading and stop trailing content characters
// from every token (decoders::Strip).
type decStrip struct {
	content     rune
	start, stop int
}

func (d decStrip) decodeChain(t []string) []string {
	for i, tok := range t {
		rs := []rune(tok)
		a := 0
		for k := 0; k < d.start && k < len(rs) && rs[k] == d.content; k++ {
			a = k + 1
		}
		b := len(rs)
		for k := 0; k < d.stop && len(rs)-k-1 >= a; k++ {
			if rs[len(rs)-k-1] != d.content {
				break
			}
			b = len(rs) - k - 1
		}
		t[i] = string(rs[a:b])
	}
	return t
}

// decByteLevel maps byte-level characters back to bytes; a token with any
// character outside the table contributes its UTF-8 bytes as they are; the
// whole is decoded lossily (decoders::ByteLevel).
type decByteLevel struct{}

func (decByteLevel) decodeChain(t []string) []string {
	var buf []byte
	for _, tok := range t {
		mark := len(buf)
		ok := true
		for _, r := range tok {
			b, found := runeToByte[r]
			if !found {
				ok = false
				break
			}
			buf = append(buf, b)
		}
		if !ok {
			buf = append(buf[:mark], tok...)
		}
	}
	return []string{utf8LossyBytes(buf)}
}

// decMetaspace turns the replacement character back into spaces, dropping
// it in the first token unless prepend_scheme is "never" (decoders::Metaspace).
type decMetaspace struct {
	rep    rune
	scheme int
}

func (d decMetaspace) decodeChain(t []string) []string {
	for i, tok := range t {
		var b strings.Builder
		for _, r := range tok {
			if r == d.rep {
				if i == 0 && d.scheme != prependNever {
					continue
				}
				b.WriteByte(' ')
				continue
			}
			b.WriteRune(r)
		}
		t[i] = b.String()
	}
	return t
}

// decBPE replaces the end-of-word suffix by a space, except on the last
// token (decoders::BPEDecoder).
type decBPE struct{ suffix string }

func (d decBPE) decodeChain(t []string) []string {
	for i, tok := range t {
		rep := " "
		if i == len(t)-1 {
			rep = ""
		}
		t[i] = strings.ReplaceAll(tok, d.suffix, rep)
	}
	return t
}
