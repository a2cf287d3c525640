package tokenizer

import "unicode/utf8"

// The pre-tokenization regexes of GPT-2, Llama-3 (cl100k style) and Qwen2,
// byte for byte as they appear in tokenizer.json files. They need
// look-ahead, which Go's regexp lacks; regexp2 handles them but slowly, so
// these get the hand-written matcher below, which follows the backtracking
// semantics of each alternative exactly (checked against regexp2 by
// TestHandPatternsMatchRegexp2 and FuzzHandPatterns).
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// knownPatterns maps a regex source to its hand-written matcher.
var knownPatterns = map[string]pattern{
	gpt2Pattern:   handPattern{maxDigits: 0},
	llama3Pattern: handPattern{modern: true, maxDigits: 3},
	qwen2Pattern:  handPattern{modern: true, maxDigits: 1},
}

// handPattern matches the GPT-2 family of pre-tokenization regexes.
//
// GPT-2 (modern == false):
//
//	's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
//
// Llama-3 / Qwen2 (modern == true, digits in runs of at most maxDigits):
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,maxDigits} |
//	 ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
//
// Every character starts a match of one alternative, so the spans are
// consecutive matches.
type handPattern struct {
	modern    bool
	maxDigits int // 0 = unbounded
}

// runeAt decodes the rune at s[i] (i < len(s)).
func runeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// isPunctClass reports [^\s\p{L}\p{N}].
func isPunctClass(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r] == 0
	}
	return !isSpace(r) && !isLetter(r) && !isNumber(r)
}

func (h handPattern) each(s string, fn func(span)) {
	if s == "" {
		fn(span{0, 0, false})
		return
	}
	unmatched := -1 // start of a pending unmatched run
	for i := 0; i < len(s); {
		end := h.matchAt(s, i)
		if end <= i { // unreachable for valid input; keep the rune unmatched
			_, n := runeAt(s, i)
			if unmatched < 0 {
				unmatched = i
			}
			i += n
			continue
		}
		if unmatched >= 0 {
			fn(span{unmatched, i, false})
			unmatched = -1
		}
		fn(span{i, end, true})
		i = end
	}
	if unmatched >= 0 {
		fn(span{unmatched, len(s), false})
	}
}

// contraction matches 's 't 're 've 'm 'll 'd after the apostrophe at i.
// Case-insensitive (modern) matching follows Unicode simple case folding,
// as Oniguruma does: 'ſ' (U+017F) folds to 's'.
func (h handPattern) contraction(s string, i int) int {
	j := i + 1
	if j >= len(s) {
		return -1
	}
	r1, n1 := runeAt(s, j)
	if h.modern {
		r1 = foldASCII(r1)
	}
	switch r1 {
	case 's', 't', 'm', 'd':
		return j + n1
	case 'r', 'v', 'l':
		k := j + n1
		if k >= len(s) {
			return -1
		}
		r2, n2 := runeAt(s, k)
		if h.modern {
			r2 = foldASCII(r2)
		}
		if (r1 == 'l' && r2 == 'l') || (r1 != 'l' && r2 == 'e') {
			return k + n2
		}
	}
	return -1
}

// foldASCII case-folds the letters the contractions use.
func foldASCII(r rune) rune {
	switch {
	case r >= 'A' && r <= 'Z':
		return r + 'a' - 'A'
	case r == 'ſ':
		return 's'
	}
	return r
}

// run advances over runes satisfying f from i, at most max runes (0 = no
// limit), and returns the end.
func run(s string, i int, f func(rune) bool, max int) int {
	count := 0
	for i < len(s) && (max == 0 || count < max) {
		r, n := runeAt(s, i)
		if !f(r) {
			break
		}
		i += n
		count++
	}
	return i
}

// matchAt returns the end of the match starting at i, or -1.
func (h handPattern) matchAt(s string, i int) int {
	r, n := runeAt(s, i)
	if r == '\'' {
		if e := h.contraction(s, i); e > 0 {
			return e
		}
	}
	// Letters: GPT-2 " ?\p{L}+", modern "[^\r\n\p{L}\p{N}]?\p{L}+".
	if isLetter(r) {
		return run(s, i, isLetter, 0)
	}
	optPrefix := r == ' '
	if h.modern {
		optPrefix = r != '\r' && r != '\n' && !isNumber(r)
	}
	if optPrefix && i+n < len(s) {
		if r2, _ := runeAt(s, i+n); isLetter(r2) {
			return run(s, i+n, isLetter, 0)
		}
	}
	// Numbers: GPT-2 " ?\p{N}+", modern "\p{N}{1,k}".
	if isNumber(r) {
		return run(s, i, isNumber, h.maxDigits)
	}
	if !h.modern && r == ' ' && i+n < len(s) {
		if r2, _ := runeAt(s, i+n); isNumber(r2) {
			return run(s, i+n, isNumber, 0)
		}
	}
	// Punctuation and symbols: " ?[^\s\p{L}\p{N}]+", modern adds "[\r\n]*".
	end := -1
	if isPunctClass(r) {
		end = run(s, i, isPunctClass, 0)
	} else if r == ' ' && i+n < len(s) {
		if r2, _ := runeAt(s, i+n); isPunctClass(r2) {
			end = run(s, i+n, isPunctClass, 0)
		}
	}
	if end > 0 {
		if h.modern {
			end = run(s, end, isCRLF, 0)
		}
		return end
	}
	if !isSpace(r) {
		return -1
	}
	// Whitespace run [i, j).
	j := run(s, i, isSpace, 0)
	if h.modern {
		// \s*[\r\n]+ ends just after the last CR/LF of the run.
		for k := j - 1; k >= i; k-- {
			if s[k] == '\r' || s[k] == '\n' {
				return k + 1
			}
		}
	}
	// \s+(?!\S): the whole run at the end of the input, else all but its
	// last rune when that leaves at least one.
	if j == len(s) {
		return j
	}
	_, last := utf8.DecodeLastRuneInString(s[i:j])
	if j-last > i {
		return j - last
	}
	// \s+
	return j
}

func isCRLF(r rune) bool { return r == '\r' || r == '\n' }
