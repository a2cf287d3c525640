package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// utf8Lossy returns s with every maximal invalid UTF-8 subpart replaced by
// U+FFFD, exactly like Rust's String::from_utf8_lossy (and Python's
// errors="replace"): a truncated multi-byte sequence becomes one replacement
// character, a stray byte becomes one. Valid input is returned unchanged.
func utf8Lossy(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			b.WriteByte(c)
			i++
			continue
		}
		n := validPrefix(s[i:])
		if n > 0 {
			b.WriteString(s[i : i+n])
			i += n
			continue
		}
		b.WriteRune(utf8.RuneError)
		i += maximalSubpart(s[i:])
	}
	return b.String()
}

// utf8LossyBytes is utf8Lossy for a byte slice.
func utf8LossyBytes(p []byte) string {
	return utf8Lossy(string(p))
}

// seqBounds gives, for a UTF-8 lead byte, the total sequence length and the
// allowed range of the second byte (Unicode Table 3-7). n == 0 means the byte
// can never start a sequence.
func seqBounds(c byte) (n int, lo, hi byte) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 2, 0x80, 0xBF
	case c == 0xE0:
		return 3, 0xA0, 0xBF
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		return 3, 0x80, 0xBF
	case c == 0xED:
		return 3, 0x80, 0x9F
	case c == 0xF0:
		return 4, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		return 4, 0x80, 0xBF
	case c == 0xF4:
		return 4, 0x80, 0x8F
	}
	return 0, 0, 0
}

// validPrefix returns the length of the complete, valid multi-byte sequence
// at the start of s, or 0 when it is not one.
func validPrefix(s string) int {
	n, lo, hi := seqBounds(s[0])
	if n == 0 || len(s) < n {
		return 0
	}
	if s[1] < lo || s[1] > hi {
		return 0
	}
	for k := 2; k < n; k++ {
		if s[k] < 0x80 || s[k] > 0xBF {
			return 0
		}
	}
	return n
}

// maximalSubpart returns the length of the maximal subpart of an
// ill-formed sequence starting at s[0] (at least 1).
func maximalSubpart(s string) int {
	n, lo, hi := seqBounds(s[0])
	if n == 0 {
		return 1
	}
	k := 1
	if k < len(s) && s[k] >= lo && s[k] <= hi {
		k++
		for k < n && k < len(s) && s[k] >= 0x80 && s[k] <= 0xBF {
			k++
		}
	}
	return k
}

// isSpace reports Unicode White_Space, which is what \s means for the
// Oniguruma regexes Hugging Face uses and what Rust's char::is_whitespace is.
func isSpace(r rune) bool { return unicode.IsSpace(r) }

// isLetter reports \p{L}.
func isLetter(r rune) bool {
	if r < 0x80 {
		return asciiClass[r]&clsLetter != 0
	}
	return unicode.IsLetter(r)
}

// isNumber reports \p{N}.
func isNumber(r rune) bool {
	if r < 0x80 {
		return asciiClass[r]&clsNumber != 0
	}
	return unicode.IsNumber(r)
}

const (
	clsLetter = 1 << iota
	clsNumber
	clsSpace
)

var asciiClass = func() (t [128]uint8) {
	for c := 0; c < 128; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			t[c] = clsLetter
		case c >= '0' && c <= '9':
			t[c] = clsNumber
		case c == ' ', c >= '\t' && c <= '\r':
			t[c] = clsSpace
		}
	}
	return t
}()

// isWordChar reports \w of Rust's regex crate (Alphabetic, marks, Nd, Pc,
// Join_Control), which Hugging Face's added vocabulary uses for the
// single_word flag.
func isWordChar(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || asciiClass[r]&(clsLetter|clsNumber) != 0
	}
	return unicode.IsLetter(r) || unicode.In(r, unicode.Nl, unicode.M, unicode.Nd, unicode.Pc) ||
		r == 0x200C || r == 0x200D
}

// isPunctuation mirrors tokenizers' is_punc: ASCII punctuation or any
// Unicode punctuation category.
func isPunctuation(r rune) bool {
	if r < 0x80 {
		return (r >= '!' && r <= '/') || (r >= ':' && r <= '@') || (r >= '[' && r <= '`') || (r >= '{' && r <= '~')
	}
	return unicode.IsPunct(r)
}

// byteToRune is GPT-2's bytes_to_unicode table: printable Latin-1 bytes map
// to themselves, the other 68 bytes to U+0100 onwards in byte order.
var byteToRune, runeToByte = func() (b2r [256]rune, r2b map[rune]byte) {
	r2b = make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = rune(256 + n)
			n++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}()

// byteToString holds the UTF-8 encoding of byteToRune[b].
var byteToString = func() (t [256]string) {
	for b := range t {
		t[b] = string(byteToRune[b])
	}
	return t
}()

// byteLevelMap maps every byte of s to its byte-level character.
func byteLevelMap(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteString(byteToString[s[i]])
	}
	return b.String()
}
