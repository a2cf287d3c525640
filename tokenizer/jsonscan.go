package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// A small validating JSON scanner for the large parts of tokenizer.json
// (the vocabulary and the merges: 128k and 280k entries for Llama-3), which
// encoding/json decodes several times slower. Anything it does not handle
// on its fast path (escapes, invalid UTF-8 in a string) is handed to
// encoding/json, so the results are the same.

// errSyntax reports malformed JSON.
var errSyntax = errors.New("malformed JSON")

// rangeError reports an integer with more digits than the scanner reads (15): no token id is
// that large, so it is reported as out of range, not as malformed.
type rangeError struct {
	text   string // the integer as written
	offset int
	token  string // the vocabulary entry it is the id of ("" when not known)
}

func (e *rangeError) Error() string {
	if e.token != "" {
		return fmt.Sprintf("token %q has id %s (offset %d)", e.token, e.text, e.offset)
	}
	return fmt.Sprintf("integer %s at offset %d is out of range", e.text, e.offset)
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 512

type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte (0 at the end).
func (s *scanner) peek() byte {
	s.ws()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return fmt.Errorf("%w: expected %q at offset %d", errSyntax, c, s.pos)
	}
	s.pos++
	return nil
}

// str reads a string literal.
func (s *scanner) str() (string, error) {
	if s.peek() != '"' {
		return "", fmt.Errorf("%w: expected a string at offset %d", errSyntax, s.pos)
	}
	start := s.pos
	s.pos++
	simple := true
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			if simple {
				return string(s.data[start+1 : s.pos-1]), nil
			}
			var out string
			if err := json.Unmarshal(s.data[start:s.pos], &out); err != nil {
				return "", fmt.Errorf("%w: bad string at offset %d", errSyntax, start)
			}
			return out, nil
		case c == '\\':
			simple = false
			s.pos += 2
		case c < 0x20:
			return "", fmt.Errorf("%w: control character in string at offset %d", errSyntax, s.pos)
		case c < utf8.RuneSelf:
			s.pos++
		default:
			r, n := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && n == 1 {
				simple = false // encoding/json substitutes U+FFFD
			}
			s.pos += n
		}
	}
	return "", fmt.Errorf("%w: unterminated string at offset %d", errSyntax, start)
}

// integer reads a JSON number that must be an integer fitting in int.
func (s *scanner) integer() (int, error) {
	s.ws()
	start := s.pos
	if s.pos < len(s.data) && s.data[s.pos] == '-' {
		s.pos++
	}
	digits := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	if s.pos == digits {
		return 0, fmt.Errorf("%w: expected an integer at offset %d", errSyntax, start)
	}
	if s.pos < len(s.data) {
		if c := s.data[s.pos]; c == '.' || c == 'e' || c == 'E' {
			return 0, fmt.Errorf("%w: expected an integer at offset %d", errSyntax, start)
		}
	}
	if s.pos-digits > 15 {
		return 0, &rangeError{text: string(s.data[start:s.pos]), offset: start}
	}
	if s.data[digits] == '0' && s.pos-digits > 1 {
		return 0, fmt.Errorf("%w: leading zero at offset %d", errSyntax, start)
	}
	n := 0
	for _, c := range s.data[digits:s.pos] {
		n = n*10 + int(c-'0')
	}
	if digits > start {
		n = -n
	}
	return n, nil
}

// skip validates and skips one value.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nesting deeper than %d", errSyntax, maxDepth)
	}
	switch c := s.peek(); {
	case c == '"':
		_, err := s.str()
		return err
	case c == '{':
		s.pos++
		if s.peek() == '}' {
			s.pos++
			return nil
		}
		for {
			if _, err := s.str(); err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			if s.peek() == ',' {
				s.pos++
				continue
			}
			return s.expect('}')
		}
	case c == '[':
		s.pos++
		if s.peek() == ']' {
			s.pos++
			return nil
		}
		for {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			if s.peek() == ',' {
				s.pos++
				continue
			}
			return s.expect(']')
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return fmt.Errorf("%w: unexpected byte at offset %d", errSyntax, s.pos)
}

func (s *scanner) literal(w string) error {
	if len(s.data)-s.pos < len(w) || string(s.data[s.pos:s.pos+len(w)]) != w {
		return fmt.Errorf("%w: bad literal at offset %d", errSyntax, s.pos)
	}
	s.pos += len(w)
	return nil
}

// number validates a JSON number.
func (s *scanner) number() error {
	start := s.pos
	d := s.data
	i := s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	intStart := i
	for i < len(d) && d[i] >= '0' && d[i] <= '9' {
		i++
	}
	if i == intStart || (d[intStart] == '0' && i-intStart > 1) {
		return fmt.Errorf("%w: bad number at offset %d", errSyntax, start)
	}
	if i < len(d) && d[i] == '.' {
		i++
		k := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == k {
			return fmt.Errorf("%w: bad number at offset %d", errSyntax, start)
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		k := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == k {
			return fmt.Errorf("%w: bad number at offset %d", errSyntax, start)
		}
	}
	s.pos = i
	return nil
}

// end checks that only white space follows.
func (s *scanner) end() error {
	if s.peek() != 0 || s.pos != len(s.data) {
		return fmt.Errorf("%w: trailing data at offset %d", errSyntax, s.pos)
	}
	return nil
}

// objectFields validates a JSON object and returns its members as raw
// values (the last duplicate wins, as with encoding/json). A null value
// gives a nil map.
func objectFields(data []byte) (map[string]json.RawMessage, error) {
	s := &scanner{data: data}
	if s.peek() == 'n' {
		if err := s.literal("null"); err != nil {
			return nil, err
		}
		return nil, s.end()
	}
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	m := map[string]json.RawMessage{}
	if s.peek() == '}' {
		s.pos++
		return m, s.end()
	}
	for {
		k, err := s.str()
		if err != nil {
			return nil, err
		}
		if err := s.expect(':'); err != nil {
			return nil, err
		}
		s.ws()
		start := s.pos
		if err := s.skip(1); err != nil {
			return nil, err
		}
		m[k] = data[start:s.pos]
		if s.peek() == ',' {
			s.pos++
			continue
		}
		if err := s.expect('}'); err != nil {
			return nil, err
		}
		return m, s.end()
	}
}

// scanVocab reads a {"token": id, ...} object.
func scanVocab(data []byte) (map[string]int, error) {
	s := &scanner{data: data}
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	m := make(map[string]int, len(data)/16)
	if s.peek() == '}' {
		s.pos++
		return m, s.end()
	}
	for {
		k, err := s.str()
		if err != nil {
			return nil, err
		}
		if err := s.expect(':'); err != nil {
			return nil, err
		}
		v, err := s.integer()
		if re, ok := err.(*rangeError); ok {
			re.token = k
		}
		if err != nil {
			return nil, err
		}
		m[k] = v
		if s.peek() == ',' {
			s.pos++
			continue
		}
		if err := s.expect('}'); err != nil {
			return nil, err
		}
		return m, s.end()
	}
}

// scanStringList reads an array of strings, or (pairs) an array of arrays
// of strings; inner arrays of another length are reported through
// badPair (their index and length).
func scanMerges(data []byte) (strs []string, pairs [][]string, err error) {
	s := &scanner{data: data}
	if err := s.expect('['); err != nil {
		return nil, nil, err
	}
	if s.peek() == ']' {
		s.pos++
		return []string{}, nil, s.end()
	}
	asPairs := s.peek() == '['
	for {
		if asPairs {
			if err := s.expect('['); err != nil {
				return nil, nil, err
			}
			var p []string
			if s.peek() == ']' {
				s.pos++
			} else {
				for {
					x, err := s.str()
					if err != nil {
						return nil, nil, err
					}
					p = append(p, x)
					if s.peek() == ',' {
						s.pos++
						continue
					}
					if err := s.expect(']'); err != nil {
						return nil, nil, err
					}
					break
				}
			}
			pairs = append(pairs, p)
		} else {
			x, err := s.str()
			if err != nil {
				return nil, nil, err
			}
			strs = append(strs, x)
		}
		if s.peek() == ',' {
			s.pos++
			continue
		}
		if err := s.expect(']'); err != nil {
			return nil, nil, err
		}
		return strs, pairs, s.end()
	}
}
