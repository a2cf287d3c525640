package tokenizer

import (
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// span is a piece of a string, flagged when it is a pattern match.
type span struct {
	start, end int
	match      bool
}

// pattern finds non-overlapping matches left to right, as Hugging Face's
// Pattern::find_matches: each calls fn with spans that cover the whole
// input in order (an empty input gives one empty, unmatched span).
type pattern interface {
	each(s string, fn func(span))
}

// behavior is a SplitDelimiterBehavior.
type behavior int

const (
	behRemoved behavior = iota
	behIsolated
	behMergedWithPrevious
	behMergedWithNext
	behContiguous
)

// parseBehavior maps a tokenizer.json behavior name.
func parseBehavior(s string) (behavior, bool) {
	switch s {
	case "Removed":
		return behRemoved, true
	case "Isolated":
		return behIsolated, true
	case "MergedWithPrevious":
		return behMergedWithPrevious, true
	case "MergedWithNext":
		return behMergedWithNext, true
	case "Contiguous":
		return behContiguous, true
	}
	return 0, false
}

// splitter applies a split behavior to a stream of spans and emits the
// resulting non-empty pieces, as NormalizedString::split followed by
// PreTokenizedString::split's removal of empty pieces. It streams: the
// folds of the behaviors only ever need the previous span.
type splitter struct {
	p      piece
	beh    behavior
	invert bool
	emit   func(piece)

	pending   span // a piece not yet emitted (valid when hasPend)
	hasPend   bool
	prevMatch bool
}

func (s *splitter) out(sp span) {
	if sp.end > sp.start {
		s.emit(piece{s: s.p.s[sp.start:sp.end], first: s.p.first && sp.start == 0})
	}
}

func (s *splitter) add(sp span) {
	if s.invert {
		sp.match = !sp.match
	}
	switch s.beh {
	case behIsolated:
		s.out(sp)
	case behRemoved:
		if !sp.match {
			s.out(sp)
		}
	case behContiguous:
		if s.hasPend && sp.match == s.prevMatch {
			s.pending.end = sp.end
		} else {
			s.flush()
			s.pending, s.hasPend = sp, true
		}
	case behMergedWithPrevious:
		if s.hasPend && sp.match && !s.prevMatch {
			s.pending.end = sp.end
		} else {
			s.flush()
			s.pending, s.hasPend = sp, true
		}
	case behMergedWithNext:
		// Hugging Face folds from the right: a match joins the non-match
		// that follows it.
		if s.hasPend { // pending is a match
			if !sp.match {
				s.out(span{s.pending.start, sp.end, false})
				s.hasPend = false
				s.prevMatch = sp.match
				return
			}
			s.flush()
		}
		if sp.match {
			s.pending, s.hasPend = sp, true
		} else {
			s.out(sp)
		}
	}
	s.prevMatch = sp.match
}

func (s *splitter) flush() {
	if s.hasPend {
		s.out(s.pending)
		s.hasPend = false
	}
}

// splitPiece splits p by pat with behavior b (invert flips what counts as a
// match) and emits the non-empty pieces in order.
func splitPiece(p piece, pat pattern, b behavior, invert bool, emit func(piece)) {
	s := splitter{p: p, beh: b, invert: invert, emit: emit}
	pat.each(p.s, s.add)
	s.flush()
}

// charPattern matches single characters satisfying a predicate (each one
// a separate match), like tokenizers' `impl Pattern for Fn(char) -> bool`.
type charPattern func(r rune) bool

func (f charPattern) each(s string, fn func(span)) {
	if s == "" {
		fn(span{0, 0, false})
		return
	}
	last := 0
	for i, r := range s {
		if f(r) {
			if last < i {
				fn(span{last, i, false})
			}
			n := utf8.RuneLen(r) // input is valid UTF-8
			fn(span{i, i + n, true})
			last = i + n
		}
	}
	if last < len(s) {
		fn(span{last, len(s), false})
	}
}

// literalPattern matches a fixed string (non-overlapping, left to right).
type literalPattern string

func (lit literalPattern) each(s string, fn func(span)) {
	if s == "" || lit == "" {
		fn(span{0, len(s), false})
		return
	}
	prev := 0
	for {
		k := strings.Index(s[prev:], string(lit))
		if k < 0 {
			break
		}
		start := prev + k
		if start > prev {
			fn(span{prev, start, false})
		}
		fn(span{start, start + len(lit), true})
		prev = start + len(lit)
	}
	if prev < len(s) {
		fn(span{prev, len(s), false})
	}
}

// regexPattern is a general regex (look-around included) run by regexp2,
// the fallback for patterns without a hand-written matcher.
type regexPattern struct {
	re *regexp2.Regexp
}

// newRegexPattern compiles a tokenizer.json regex; a known GPT-2 / Llama-3
// / Qwen2 pattern gets the fast hand-written matcher instead.
func newRegexPattern(expr string) (pattern, error) {
	if h, ok := knownPatterns[expr]; ok {
		return h, nil
	}
	re, err := regexp2.Compile(expr, regexp2.None)
	if err != nil {
		return nil, err
	}
	return regexPattern{re: re}, nil
}

func (p regexPattern) each(s string, fn func(span)) {
	if s == "" {
		fn(span{0, 0, false})
		return
	}
	// regexp2 reports rune indices; map them to byte offsets.
	runes := []rune(s)
	offs := make([]int, len(runes)+1)
	o := 0
	for i, r := range runes {
		offs[i] = o
		o += utf8.RuneLen(r)
	}
	offs[len(runes)] = o
	prev := 0
	m, err := p.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		start, end := offs[m.Index], offs[m.Index+m.Length]
		if start != prev {
			fn(span{prev, start, false})
		}
		fn(span{start, end, true})
		prev = end
		m, err = p.re.FindNextMatch(m)
	}
	if prev != len(s) {
		fn(span{prev, len(s), false})
	}
}

// regexReplace replaces every match of re in s by repl (no group syntax).
func regexReplace(re *regexp2.Regexp, s, repl string) string {
	var b strings.Builder
	regexPattern{re: re}.each(s, func(x span) {
		if x.match {
			b.WriteString(repl)
		} else {
			b.WriteString(s[x.start:x.end])
		}
	})
	return b.String()
}
