package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is an entry of tokenizer.json's "added_tokens": a token matched
// verbatim in the input before the model sees it.
type AddedToken struct {
	ID      int    // token id
	Content string // the text matched
	// Special tokens (BOS, EOS, chat markers, ...) are skipped by
	// Decode(ids, true); GGUF calls them control tokens.
	Special bool
	// SingleWord: match only when not inside a word.
	SingleWord bool
	// LStrip / RStrip: the match swallows the whitespace on its left / right.
	LStrip, RStrip bool
	// Normalized: matched in the normalized text (its content normalized
	// the same way) instead of the raw input.
	Normalized bool
}

// addedEntry is a pattern of an addedMatcher.
type addedEntry struct {
	content string // as matched (normalized for normalized tokens)
	tok     *AddedToken
}

// addedMatcher finds added tokens leftmost-longest, as the aho-corasick
// automaton (MatchKind::LeftmostLongest) Hugging Face builds.
type addedMatcher struct {
	entries []addedEntry
	byFirst [256][]int32 // entry indices by first byte, longest first
}

func newAddedMatcher(entries []addedEntry) *addedMatcher {
	m := &addedMatcher{entries: entries}
	for i, e := range entries {
		if e.content == "" {
			continue
		}
		m.byFirst[e.content[0]] = append(m.byFirst[e.content[0]], int32(i))
	}
	for b := range m.byFirst {
		l := m.byFirst[b]
		sort.SliceStable(l, func(i, j int) bool {
			return len(entries[l[i]].content) > len(entries[l[j]].content)
		})
	}
	return m
}

// segment is a part of the input: plain text (tok == nil) or an added token.
type segment struct {
	start, end int
	tok        *AddedToken
}

// find returns the next match at or after from: start, end of the content.
func (m *addedMatcher) find(s string, from int) (int, int, *AddedToken) {
	for i := from; i < len(s); i++ {
		for _, k := range m.byFirst[s[i]] {
			e := &m.entries[k]
			if strings.HasPrefix(s[i:], e.content) {
				return i, i + len(e.content), e.tok
			}
		}
	}
	return -1, -1, nil
}

// split cuts s into text and added-token segments, following
// AddedVocabulary::find_matches (single_word, lstrip, rstrip included).
func (m *addedMatcher) split(s string, dst []segment) []segment {
	if m == nil || len(m.entries) == 0 || s == "" {
		return append(dst, segment{0, len(s), nil})
	}
	startOffset := 0
	for pos := 0; pos < len(s); {
		start, stop, tok := m.find(s, pos)
		if tok == nil {
			break
		}
		pos = stop
		if start < startOffset { // inside a previous rstrip: skip
			continue
		}
		if tok.SingleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if tok.LStrip {
			ns := len(strings.TrimRightFunc(s[:start], unicode.IsSpace))
			start = max(ns, startOffset)
		}
		if tok.RStrip {
			stop += len(s[stop:]) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
		}
		if startOffset < start {
			dst = append(dst, segment{startOffset, start, nil})
		}
		dst = append(dst, segment{start, stop, tok})
		startOffset = stop
	}
	if startOffset != len(s) {
		dst = append(dst, segment{startOffset, len(s), nil})
	}
	return dst
}

func endsWithWord(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWordChar(r)
}

func startsWithWord(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return n > 0 && isWordChar(r)
}
