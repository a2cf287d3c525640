package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// jsonFile is the top level of tokenizer.json. truncation and padding are
// ignored: Encode never truncates or pads.
type jsonFile struct {
	AddedTokens, Normalizer, PreTokenizer, PostProcessor, Decoder, Model json.RawMessage
}

// jsonAddedToken is one "added_tokens" entry; normalized defaults to
// !special as in Hugging Face.
// maxTokenID bounds the token ids a tokenizer.json may use (ids are 0 ≤ id < maxTokenID).
const maxTokenID = 1<<31 - 1

type jsonAddedToken struct {
	ID         *int   `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

// jobj is a JSON object being read, with its path for error messages.
type jobj struct {
	file, path string
	m          map[string]json.RawMessage
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// readObj decodes raw as an object; null or absent gives nil.
func readObj(file, path string, raw json.RawMessage) (*jobj, error) {
	if isNull(raw) {
		return nil, nil
	}
	m, err := objectFields(raw)
	if err != nil || m == nil {
		return nil, fmt.Errorf("%s: %s is not a JSON object", file, path)
	}
	return &jobj{file: file, path: path, m: m}, nil
}

func (o *jobj) errorf(key, format string, a ...any) error {
	p := o.path
	if key != "" {
		p += "." + key
	}
	return fmt.Errorf("%s: %s %s", o.file, p, fmt.Sprintf(format, a...))
}

// sub returns the path of a field.
func (o *jobj) sub(key string) string { return o.path + "." + key }

func (o *jobj) str(key, def string) (string, error) {
	raw, ok := o.m[key]
	if !ok || isNull(raw) {
		return def, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", o.errorf(key, "must be a string")
	}
	return s, nil
}

func (o *jobj) optStr(key string) (*string, error) {
	raw, ok := o.m[key]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, o.errorf(key, "must be a string")
	}
	return &s, nil
}

func (o *jobj) boolean(key string, def bool) (bool, error) {
	raw, ok := o.m[key]
	if !ok || isNull(raw) {
		return def, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, o.errorf(key, "must be a boolean")
	}
	return b, nil
}

func (o *jobj) integer(key string, def int) (int, error) {
	raw, ok := o.m[key]
	if !ok || isNull(raw) {
		return def, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 || n > 1<<20 {
		return 0, o.errorf(key, "must be a small non-negative integer")
	}
	return n, nil
}

func (o *jobj) array(key string) ([]json.RawMessage, error) {
	raw, ok := o.m[key]
	if !ok || isNull(raw) {
		return nil, o.errorf(key, "is missing")
	}
	var a []json.RawMessage
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, o.errorf(key, "must be an array")
	}
	return a, nil
}

func (o *jobj) typ() (string, error) {
	t, err := o.str("type", "")
	if err != nil {
		return "", err
	}
	if t == "" {
		return "", o.errorf("type", "is missing")
	}
	return t, nil
}

// singleRune reads a one-character string field.
func (o *jobj) singleRune(key string, def rune) (rune, error) {
	s, err := o.str(key, string(def))
	if err != nil {
		return 0, err
	}
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || n != len(s) || r == utf8.RuneError {
		return 0, o.errorf(key, "must be exactly one character, got %q", s)
	}
	return r, nil
}

// stringOrRegex reads a {"String": s} or {"Regex": r} pattern.
func (o *jobj) stringOrRegex(key string) (lit string, re string, isRe bool, err error) {
	p, err := readObj(o.file, o.sub(key), o.m[key])
	if err != nil {
		return "", "", false, err
	}
	if p == nil {
		return "", "", false, o.errorf(key, "is missing")
	}
	if _, ok := p.m["Regex"]; ok {
		s, err := p.str("Regex", "")
		return "", s, true, err
	}
	if _, ok := p.m["String"]; ok {
		s, err := p.str("String", "")
		return s, "", false, err
	}
	return "", "", false, o.errorf(key, "must hold \"String\" or \"Regex\"")
}

// compileRegex compiles a tokenizer.json regex with regexp2.
func (o *jobj) compileRegex(key, expr string) (*regexp2.Regexp, error) {
	re, err := regexp2.Compile(expr, regexp2.None)
	if err != nil {
		return nil, o.errorf(key, "regex %q does not compile: %v", expr, err)
	}
	return re, nil
}

// ------------------------------------------------------------------ Parse

// Parse builds a Tokenizer from the bytes of a tokenizer.json and,
// optionally (nil), of its tokenizer_config.json. name labels error messages
// (Load passes the file path). Parse never panics on bad input: anything
// malformed or unsupported is an error naming the file and field, e.g.
// `tokenizer.json: model.type "Unigram" is not supported (BPE only)`.
func Parse(tokenizerJSON, tokenizerConfigJSON []byte, name string) (*Tokenizer, error) {
	if name == "" {
		name = "tokenizer.json"
	}
	top, err := objectFields(tokenizerJSON)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %v", name, err)
	}
	if top == nil {
		return nil, fmt.Errorf("%s: the top level must be a JSON object", name)
	}
	f := jsonFile{
		AddedTokens:   top["added_tokens"],
		Normalizer:    top["normalizer"],
		PreTokenizer:  top["pre_tokenizer"],
		PostProcessor: top["post_processor"],
		Decoder:       top["decoder"],
		Model:         top["model"],
	}
	t := &Tokenizer{name: name, bos: -1, eos: -1, unk: -1}
	if t.model, err = parseModel(name, f.Model); err != nil {
		return nil, err
	}
	if t.normalizer, err = parseNormalizer(name, "normalizer", f.Normalizer); err != nil {
		return nil, err
	}
	if t.pre, err = parsePreTokenizer(name, "pre_tokenizer", f.PreTokenizer); err != nil {
		return nil, err
	}
	if t.decoder, err = parseDecoder(name, "decoder", f.Decoder); err != nil {
		return nil, err
	}
	if err := t.parseAdded(name, f.AddedTokens); err != nil {
		return nil, err
	}
	if err := t.buildIDs(name); err != nil {
		return nil, err
	}
	tmpl, err := t.parsePost(name, "post_processor", f.PostProcessor)
	if err != nil {
		return nil, err
	}
	if err := t.applyConfig(name, tokenizerConfigJSON, tmpl); err != nil {
		return nil, err
	}
	t.kind = KindSentencePiece
	if hasByteLevel(t.pre, t.decoder) {
		t.kind = KindByteLevel
	}
	return t, nil
}

// parseModel reads the BPE model.
func parseModel(file string, raw json.RawMessage) (*bpeModel, error) {
	o, err := readObj(file, "model", raw)
	if err != nil {
		return nil, err
	}
	if o == nil {
		return nil, fmt.Errorf("%s: model is missing", file)
	}
	typ, err := o.str("type", "")
	if err != nil {
		return nil, err
	}
	if typ == "" {
		if _, ok := o.m["merges"]; !ok {
			return nil, o.errorf("type", "is missing and the model has no merges (BPE only)")
		}
		typ = "BPE"
	}
	if typ != "BPE" {
		return nil, o.errorf("type", "%q is not supported (BPE only)", typ)
	}
	if raw, ok := o.m["dropout"]; ok && !isNull(raw) {
		var d float64
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, o.errorf("dropout", "must be a number or null")
		}
		if d != 0 {
			return nil, o.errorf("dropout", "%v is not supported (encoding must be deterministic)", d)
		}
	}
	m := &bpeModel{unk: -1}
	if m.fuseUnk, err = o.boolean("fuse_unk", false); err != nil {
		return nil, err
	}
	if m.byteFallback, err = o.boolean("byte_fallback", false); err != nil {
		return nil, err
	}
	if m.ignoreMerges, err = o.boolean("ignore_merges", false); err != nil {
		return nil, err
	}
	if m.prefix, err = o.str("continuing_subword_prefix", ""); err != nil {
		return nil, err
	}
	if m.suffix, err = o.str("end_of_word_suffix", ""); err != nil {
		return nil, err
	}
	vraw, ok := o.m["vocab"]
	if !ok || isNull(vraw) {
		return nil, o.errorf("vocab", "is missing")
	}
	if m.vocab, err = scanVocab(vraw); err != nil {
		var re *rangeError
		if errors.As(err, &re) {
			return nil, o.errorf("vocab", "%v: out of range for a vocabulary (ids are 0 ≤ id < %d)", re, maxTokenID)
		}
		return nil, o.errorf("vocab", "must be an object of token → integer id (%v)", err)
	}
	for tok, id := range m.vocab {
		if id < 0 || id >= maxTokenID {
			return nil, o.errorf("vocab", "token %q has id %d: out of range for a vocabulary (ids are 0 ≤ id < %d)", tok, id, maxTokenID)
		}
	}
	if err := parseMerges(o, m); err != nil {
		return nil, err
	}
	unk, err := o.optStr("unk_token")
	if err != nil {
		return nil, err
	}
	if unk != nil {
		m.unkToken = *unk
		id, ok := m.vocab[*unk]
		if !ok {
			m.unk = -2 // resolved against the added tokens later
		} else {
			m.unk = id
		}
	}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteIDs[b] = id
		}
	}
	m.splitMeta = m.canSplitMeta()
	m.cache = newWordCache()
	return m, nil
}

// parseMerges reads "a b" strings or [a, b] pairs.
func parseMerges(o *jobj, m *bpeModel) error {
	raw, ok := o.m["merges"]
	if !ok || isNull(raw) {
		m.merges = map[uint64]uint64{}
		return nil
	}
	strs, arr, err := scanMerges(raw)
	if err != nil {
		return o.errorf("merges", "must be an array of \"a b\" strings or of [a, b] pairs (%v)", err)
	}
	var pairs [][2]string
	if arr == nil {
		pairs = make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return o.errorf(fmt.Sprintf("merges[%d]", i), "%q is not two tokens separated by one space", s)
			}
			pairs[i] = [2]string{a, b}
		}
	} else {
		pairs = make([][2]string, len(arr))
		for i, p := range arr {
			if len(p) != 2 {
				return o.errorf(fmt.Sprintf("merges[%d]", i), "must have exactly two tokens, has %d", len(p))
			}
			pairs[i] = [2]string{p[0], p[1]}
		}
	}
	m.mergeList = pairs
	m.merges = make(map[uint64]uint64, len(pairs))
	var buf []byte
	for i, p := range pairs {
		a, ok := m.vocab[p[0]]
		if !ok {
			return o.errorf(fmt.Sprintf("merges[%d]", i), "token %q is not in model.vocab", p[0])
		}
		b, ok := m.vocab[p[1]]
		if !ok {
			return o.errorf(fmt.Sprintf("merges[%d]", i), "token %q is not in model.vocab", p[1])
		}
		right := p[1]
		if m.prefix != "" {
			right = strings.TrimPrefix(right, m.prefix)
		}
		buf = append(append(buf[:0], p[0]...), right...)
		n, ok := m.vocab[string(buf)]
		if !ok {
			return o.errorf(fmt.Sprintf("merges[%d]", i), "merged token %q is not in model.vocab", p[0]+right)
		}
		m.merges[mergeKey(int32(a), int32(b))] = uint64(i)<<32 | uint64(uint32(n))
	}
	return nil
}

// parseNormalizer reads a normalizer (nil when absent).
func parseNormalizer(file, path string, raw json.RawMessage) (normalizer, error) {
	o, err := readObj(file, path, raw)
	if err != nil || o == nil {
		return nil, err
	}
	typ, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		items, err := o.array("normalizers")
		if err != nil {
			return nil, err
		}
		var seq normSequence
		for i, it := range items {
			n, err := parseNormalizer(file, fmt.Sprintf("%s.normalizers[%d]", path, i), it)
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "Prepend":
		s, err := o.str("prepend", "")
		return normPrepend(s), err
	case "Replace":
		r, err := parseReplace(o)
		return r, err
	case "NFC":
		return normUnicode{norm.NFC}, nil
	case "NFD":
		return normUnicode{norm.NFD}, nil
	case "NFKC":
		return normUnicode{norm.NFKC}, nil
	case "NFKD":
		return normUnicode{norm.NFKD}, nil
	case "Lowercase":
		return normLowercase{}, nil
	case "StripAccents":
		return normStripAccents{}, nil
	case "Strip":
		l, err := o.boolean("strip_left", true)
		if err != nil {
			return nil, err
		}
		r, err := o.boolean("strip_right", true)
		return normStrip{left: l, right: r}, err
	}
	return nil, o.errorf("type", "%q is not supported", typ)
}

// parseReplace reads a Replace normalizer or decoder.
func parseReplace(o *jobj) (normReplace, error) {
	lit, expr, isRe, err := o.stringOrRegex("pattern")
	if err != nil {
		return normReplace{}, err
	}
	content, err := o.str("content", "")
	if err != nil {
		return normReplace{}, err
	}
	r := normReplace{literal: lit, content: content}
	if isRe {
		if r.re, err = o.compileRegex("pattern", expr); err != nil {
			return normReplace{}, err
		}
	}
	return r, nil
}

// parsePrependScheme reads Metaspace's prepend_scheme / add_prefix_space.
func parsePrependScheme(o *jobj) (int, error) {
	s, err := o.optStr("prepend_scheme")
	if err != nil {
		return 0, err
	}
	scheme := prependAlways
	if s != nil {
		switch *s {
		case "always":
		case "first":
			scheme = prependFirst
		case "never":
			scheme = prependNever
		default:
			return 0, o.errorf("prepend_scheme", "%q is not one of always, first, never", *s)
		}
	}
	if raw, ok := o.m["add_prefix_space"]; ok && !isNull(raw) {
		ap, err := o.boolean("add_prefix_space", true)
		if err != nil {
			return 0, err
		}
		if !ap {
			if s != nil && scheme != prependNever {
				return 0, o.errorf("add_prefix_space", "false contradicts prepend_scheme %q", *s)
			}
			scheme = prependNever
		}
	}
	return scheme, nil
}

// parsePreTokenizer reads a pre-tokenizer (nil when absent).
func parsePreTokenizer(file, path string, raw json.RawMessage) (preTokenizer, error) {
	o, err := readObj(file, path, raw)
	if err != nil || o == nil {
		return nil, err
	}
	typ, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		items, err := o.array("pretokenizers")
		if err != nil {
			return nil, err
		}
		var seq preSequence
		for i, it := range items {
			p, err := parsePreTokenizer(file, fmt.Sprintf("%s.pretokenizers[%d]", path, i), it)
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "Split":
		lit, expr, isRe, err := o.stringOrRegex("pattern")
		if err != nil {
			return nil, err
		}
		bs, err := o.str("behavior", "")
		if err != nil {
			return nil, err
		}
		beh, ok := parseBehavior(bs)
		if !ok {
			return nil, o.errorf("behavior", "%q is not a split behavior", bs)
		}
		inv, err := o.boolean("invert", false)
		if err != nil {
			return nil, err
		}
		p := preSplit{pat: literalPattern(lit), beh: beh, invert: inv}
		if isRe {
			if p.pat, err = newRegexPattern(expr); err != nil {
				return nil, o.errorf("pattern", "regex %q does not compile: %v", expr, err)
			}
		}
		return p, nil
	case "ByteLevel":
		ap, err := o.boolean("add_prefix_space", true)
		if err != nil {
			return nil, err
		}
		ur, err := o.boolean("use_regex", true)
		return preByteLevel{addPrefixSpace: ap, useRegex: ur}, err
	case "Digits":
		ind, err := o.boolean("individual_digits", false)
		return preDigits{individual: ind}, err
	case "Metaspace":
		rep, err := o.singleRune("replacement", '▁')
		if err != nil {
			return nil, err
		}
		scheme, err := parsePrependScheme(o)
		if err != nil {
			return nil, err
		}
		split, err := o.boolean("split", true)
		return preMetaspace{replacement: string(rep), repRune: rep, scheme: scheme, split: split}, err
	case "Whitespace":
		re, err := o.compileRegex("type", `\w+|[^\w\s]+`)
		if err != nil {
			return nil, err
		}
		return preWhitespace{pat: regexPattern{re: re}}, nil
	case "WhitespaceSplit":
		return preCharSplit{pred: unicode.IsSpace, beh: behRemoved}, nil
	case "Punctuation":
		bs, err := o.str("behavior", "Isolated")
		if err != nil {
			return nil, err
		}
		beh, ok := parseBehavior(bs)
		if !ok {
			return nil, o.errorf("behavior", "%q is not a split behavior", bs)
		}
		return preCharSplit{pred: isPunctuation, beh: beh}, nil
	case "BertPreTokenizer":
		return preSequence{
			preCharSplit{pred: unicode.IsSpace, beh: behRemoved},
			preCharSplit{pred: isPunctuation, beh: behIsolated},
		}, nil
	}
	return nil, o.errorf("type", "%q is not supported", typ)
}

// parseDecoder reads a decoder (nil when absent).
func parseDecoder(file, path string, raw json.RawMessage) (decoder, error) {
	o, err := readObj(file, path, raw)
	if err != nil || o == nil {
		return nil, err
	}
	typ, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		items, err := o.array("decoders")
		if err != nil {
			return nil, err
		}
		var seq decSequence
		for i, it := range items {
			d, err := parseDecoder(file, fmt.Sprintf("%s.decoders[%d]", path, i), it)
			if err != nil {
				return nil, err
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return seq, nil
	case "Replace":
		r, err := parseReplace(o)
		return decReplace(r), err
	case "ByteFallback":
		return decByteFallback{}, nil
	case "Fuse":
		return decFuse{}, nil
	case "Strip":
		c, err := o.singleRune("content", ' ')
		if err != nil {
			return nil, err
		}
		start, err := o.integer("start", 0)
		if err != nil {
			return nil, err
		}
		stop, err := o.integer("stop", 0)
		return decStrip{content: c, start: start, stop: stop}, err
	case "ByteLevel":
		return decByteLevel{}, nil
	case "Metaspace":
		rep, err := o.singleRune("replacement", '▁')
		if err != nil {
			return nil, err
		}
		scheme, err := parsePrependScheme(o)
		return decMetaspace{rep: rep, scheme: scheme}, err
	case "BPEDecoder":
		s, err := o.str("suffix", "</w>")
		return decBPE{suffix: s}, err
	}
	return nil, o.errorf("type", "%q is not supported", typ)
}

// hasByteLevel reports a ByteLevel pre-tokenizer or decoder.
func hasByteLevel(p preTokenizer, d decoder) bool {
	switch x := p.(type) {
	case preByteLevel:
		return true
	case preSequence:
		for _, q := range x {
			if hasByteLevel(q, nil) {
				return true
			}
		}
	}
	switch x := d.(type) {
	case decByteLevel:
		return true
	case decSequence:
		for _, q := range x {
			if hasByteLevel(nil, q) {
				return true
			}
		}
	}
	return false
}

// parseAdded reads added_tokens and builds the two matchers.
func (t *Tokenizer) parseAdded(file string, raw json.RawMessage) error {
	t.addedByID = map[int]*AddedToken{}
	t.addedByContent = map[string]int{}
	var items []json.RawMessage
	if !isNull(raw) {
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("%s: added_tokens must be an array", file)
		}
	}
	t.added = make([]AddedToken, 0, len(items))
	for i, it := range items {
		var a jsonAddedToken
		if err := json.Unmarshal(it, &a); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field == "id" && strings.HasPrefix(te.Value, "number") {
				return fmt.Errorf("%s: added_tokens[%d].id is out of range for a vocabulary (ids are 0 ≤ id < %d)", file, i, maxTokenID)
			}
			return fmt.Errorf("%s: added_tokens[%d] is not a valid added token: %v", file, i, err)
		}
		if a.ID == nil {
			return fmt.Errorf("%s: added_tokens[%d].id is missing", file, i)
		}
		if *a.ID < 0 || *a.ID >= maxTokenID {
			return fmt.Errorf("%s: added_tokens[%d].id %d is out of range for a vocabulary (ids are 0 ≤ id < %d)", file, i, *a.ID, maxTokenID)
		}
		if a.Content == "" {
			return fmt.Errorf("%s: added_tokens[%d].content is empty", file, i)
		}
		if !utf8.ValidString(a.Content) {
			return fmt.Errorf("%s: added_tokens[%d].content is not valid UTF-8", file, i)
		}
		if prev, ok := t.addedByContent[a.Content]; ok && prev != *a.ID {
			return fmt.Errorf("%s: added_tokens[%d].content %q is also added with id %d", file, i, a.Content, prev)
		}
		if _, ok := t.addedByID[*a.ID]; ok {
			return fmt.Errorf("%s: added_tokens[%d].id %d is used by two added tokens", file, i, *a.ID)
		}
		nrm := !a.Special
		if a.Normalized != nil {
			nrm = *a.Normalized
		}
		t.added = append(t.added, AddedToken{ID: *a.ID, Content: a.Content, Special: a.Special,
			SingleWord: a.SingleWord, LStrip: a.LStrip, RStrip: a.RStrip, Normalized: nrm})
		t.addedByContent[a.Content] = *a.ID
		t.addedByID[*a.ID] = nil // placeholder, set below (slice may grow)
	}
	var raws, norms []addedEntry
	for i := range t.added {
		a := &t.added[i]
		t.addedByID[a.ID] = a
		if a.Normalized {
			c := a.Content
			if t.normalizer != nil {
				c = t.normalizer.normalize(c)
			}
			norms = append(norms, addedEntry{content: c, tok: a})
		} else {
			raws = append(raws, addedEntry{content: a.Content, tok: a})
		}
	}
	t.rawAdded = newAddedMatcher(raws)
	t.normAdded = newAddedMatcher(norms)
	return nil
}

// buildIDs fills the dense id table and token types, and resolves unk.
func (t *Tokenizer) buildIDs(file string) error {
	maxID := -1
	for _, id := range t.model.vocab {
		maxID = max(maxID, id)
	}
	for _, a := range t.added {
		maxID = max(maxID, a.ID)
	}
	count := len(t.model.vocab) + len(t.added)
	if maxID >= 4*count+1024 {
		return fmt.Errorf("%s: id %d is far beyond the %d tokens defined (sparse ids are not supported)", file, maxID, count)
	}
	t.idToToken = make([]string, maxID+1)
	t.tokenTypes = make([]TokenType, maxID+1)
	for i := range t.tokenTypes {
		t.tokenTypes[i] = TokenUnused
	}
	for tok, id := range t.model.vocab {
		if t.tokenTypes[id] != TokenUnused {
			a, b := t.idToToken[id], tok
			if b < a {
				a, b = b, a
			}
			return fmt.Errorf("%s: model.vocab tokens %q and %q share id %d", file, a, b, id)
		}
		t.idToToken[id] = tok
		t.tokenTypes[id] = TokenNormal
		if _, ok := byteToken(tok); ok && t.model.byteFallback && strings.ToUpper(tok[3:5]) == tok[3:5] && tok[3] != '+' {
			t.tokenTypes[id] = TokenByte
		}
	}
	for _, a := range t.added {
		t.idToToken[a.ID] = a.Content
		t.tokenTypes[a.ID] = TokenUserDefined
		if a.Special {
			t.tokenTypes[a.ID] = TokenControl
		}
	}
	if t.model.unk == -2 {
		// unk_token only among the added tokens: Hugging Face would fail at
		// encode time when it is needed; use the added token's id.
		id, ok := t.addedByContent[t.model.unkToken]
		if !ok {
			return fmt.Errorf("%s: model.unk_token %q is neither in model.vocab nor an added token", file, t.model.unkToken)
		}
		t.model.unk = id
	}
	if t.model.unk >= 0 {
		t.unk = t.model.unk
		t.tokenTypes[t.unk] = TokenUnknown
	}
	return nil
}

// template is the specials a post-processor puts around a single sequence.
type template struct {
	set            bool
	prefix, suffix []int
}

// parsePost reads the post-processor.
func (t *Tokenizer) parsePost(file, path string, raw json.RawMessage) (template, error) {
	o, err := readObj(file, path, raw)
	if err != nil || o == nil {
		return template{}, err
	}
	typ, err := o.typ()
	if err != nil {
		return template{}, err
	}
	switch typ {
	case "ByteLevel":
		return template{}, nil
	case "Sequence":
		items, err := o.array("processors")
		if err != nil {
			return template{}, err
		}
		var out template
		for i, it := range items {
			tp, err := t.parsePost(file, fmt.Sprintf("%s.processors[%d]", path, i), it)
			if err != nil {
				return template{}, err
			}
			if tp.set {
				out.set = true
				out.prefix = append(append([]int(nil), tp.prefix...), out.prefix...)
				out.suffix = append(out.suffix, tp.suffix...)
			}
		}
		return out, nil
	case "RobertaProcessing", "BertProcessing":
		get := func(key string) (int, error) {
			var pair []json.RawMessage
			if err := json.Unmarshal(o.m[key], &pair); err != nil || len(pair) != 2 {
				return 0, o.errorf(key, "must be a [token, id] pair")
			}
			var id int
			if err := json.Unmarshal(pair[1], &id); err != nil || id < 0 || id >= len(t.idToToken) {
				return 0, o.errorf(key, "has an invalid id")
			}
			return id, nil
		}
		cls, err := get("cls")
		if err != nil {
			return template{}, err
		}
		sep, err := get("sep")
		if err != nil {
			return template{}, err
		}
		return template{set: true, prefix: []int{cls}, suffix: []int{sep}}, nil
	case "TemplateProcessing":
		return t.parseTemplate(o)
	}
	return template{}, o.errorf("type", "%q is not supported", typ)
}

// parseTemplate reads TemplateProcessing's "single" template.
func (t *Tokenizer) parseTemplate(o *jobj) (template, error) {
	specials := map[string][]int{}
	if raw, ok := o.m["special_tokens"]; ok && !isNull(raw) {
		var st map[string]struct {
			IDs []int `json:"ids"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			return template{}, o.errorf("special_tokens", "must map names to {\"ids\": [...]}")
		}
		for k, v := range st {
			for _, id := range v.IDs {
				if id < 0 || id >= len(t.idToToken) {
					return template{}, o.errorf("special_tokens", "%q has id %d outside the vocabulary", k, id)
				}
			}
			specials[k] = v.IDs
		}
	}
	type item struct {
		special string
		seq     bool
	}
	var items []item
	raw := o.m["single"]
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		for _, f := range strings.Fields(str) {
			if strings.HasPrefix(f, "$") {
				items = append(items, item{seq: true})
				continue
			}
			name, _, _ := strings.Cut(f, ":")
			items = append(items, item{special: name})
		}
	} else {
		var list []map[string]struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return template{}, o.errorf("single", "must be a template list")
		}
		for i, it := range list {
			if s, ok := it["SpecialToken"]; ok {
				items = append(items, item{special: s.ID})
			} else if _, ok := it["Sequence"]; ok {
				items = append(items, item{seq: true})
			} else {
				return template{}, o.errorf(fmt.Sprintf("single[%d]", i), "must be a SpecialToken or a Sequence")
			}
		}
	}
	tp := template{set: true}
	seen := false
	for _, it := range items {
		if it.seq {
			seen = true
			continue
		}
		ids, ok := specials[it.special]
		if !ok {
			return template{}, o.errorf("single", "uses special token %q missing from special_tokens", it.special)
		}
		if seen {
			tp.suffix = append(tp.suffix, ids...)
		} else {
			tp.prefix = append(tp.prefix, ids...)
		}
	}
	return tp, nil
}

// jsonConfig is the part of tokenizer_config.json used here.
type jsonConfig struct {
	AddBOS *bool           `json:"add_bos_token"`
	AddEOS *bool           `json:"add_eos_token"`
	BOS    json.RawMessage `json:"bos_token"`
	EOS    json.RawMessage `json:"eos_token"`
	UNK    json.RawMessage `json:"unk_token"`
}

// configToken reads a token given as a string or an AddedToken object.
func configToken(file, key string, raw json.RawMessage) (string, bool, error) {
	if isNull(raw) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", false, fmt.Errorf("%s: %s must be a string or an object with \"content\"", file, key)
	}
	return *obj.Content, true, nil
}

// applyConfig resolves BOS/EOS/UNK and the specials Encode adds.
func (t *Tokenizer) applyConfig(name string, data []byte, tmpl template) error {
	file := "tokenizer_config.json"
	if strings.ContainsRune(name, filepath.Separator) {
		file = filepath.Join(filepath.Dir(name), file)
	}
	var cfg jsonConfig
	if data != nil {
		if err := json.Unmarshal(data, &cfg); err != nil {
			return fmt.Errorf("%s: invalid JSON: %v", file, err)
		}
	}
	lookup := func(key string, raw json.RawMessage) (int, bool, error) {
		s, ok, err := configToken(file, key, raw)
		if err != nil || !ok {
			return -1, ok, err
		}
		id, found := t.TokenID(s)
		if !found {
			return -1, true, nil
		}
		return id, true, nil
	}
	bos, ok, err := lookup("bos_token", cfg.BOS)
	if err != nil {
		return err
	}
	if ok {
		t.bos = bos
	} else if len(tmpl.prefix) > 0 {
		t.bos = tmpl.prefix[0]
	}
	eos, ok, err := lookup("eos_token", cfg.EOS)
	if err != nil {
		return err
	}
	if ok {
		t.eos = eos
	} else if len(tmpl.suffix) > 0 {
		t.eos = tmpl.suffix[len(tmpl.suffix)-1]
	}
	unk, ok, err := lookup("unk_token", cfg.UNK)
	if err != nil {
		return err
	}
	if t.unk < 0 && ok {
		t.unk = unk
	}
	if cfg.AddBOS != nil || cfg.AddEOS != nil {
		// LlamaTokenizerFast semantics: the flags rebuild the template.
		if cfg.AddBOS != nil && *cfg.AddBOS && t.bos >= 0 {
			t.prefixIDs = []int{t.bos}
		}
		if cfg.AddEOS != nil && *cfg.AddEOS && t.eos >= 0 {
			t.suffixIDs = []int{t.eos}
		}
	} else if tmpl.set {
		t.prefixIDs, t.suffixIDs = tmpl.prefix, tmpl.suffix
	}
	return nil
}
