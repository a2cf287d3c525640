// Package tokenizer reads Hugging Face tokenizer.json BPE tokenizers and
// encodes text to exactly the ids Hugging Face's tokenizers library gives.
//
// Two families are supported:
//
//   - SentencePiece style (Llama-2, Mistral, llama-pd-11m, babyllama-1m): a
//     Prepend("▁")+Replace(" "→"▁") normalizer or a Metaspace pre-tokenizer,
//     BPE with byte_fallback (<0xNN> tokens), unk_token and fuse_unk;
//   - byte level (GPT-2, Llama-3, Qwen2): Split/ByteLevel/Digits
//     pre-tokenizers with GPT-2-style regexes, NFC normalization, the
//     byte↔unicode mapping and ignore_merges.
//
// The pipeline is Hugging Face's: added tokens are cut out of the raw text
// first (special or not, longest match first, honouring lstrip, rstrip,
// single_word and normalized), the text between them is normalized,
// pre-tokenized and run through the BPE model. Special tokens are never
// added unless Encode is asked to. A Tokenizer is immutable once built and
// safe for concurrent use.
//
// Speed: BPE results are cached per word (a sharded, bounded cache), merges
// use a rank map with a quadratic loop for short words and Hugging Face's
// heap algorithm for long ones, the GPT-2/Llama-3/Qwen2 split regexes run on
// a hand-written matcher (regexp2 handles any other regex), and pieces
// stream through the pre-tokenizers without intermediate lists.
// SentencePiece-style files have no pre-tokenizer, so Hugging Face runs BPE
// over the whole text between added tokens; here that text is cut before
// each "▁" that follows a non-"▁" character when the merge table provably
// makes this exact (see bpeModel.canSplitMeta), which holds for Llama-2,
// llama-pd-11m and babyllama-1m.
//
// Known differences from Hugging Face, all outside what real files and
// text exercise:
//   - Encode accepts invalid UTF-8 and first replaces it by U+FFFD
//     (Hugging Face only takes valid strings);
//   - regexes other than the three known ones run on regexp2 (.NET syntax
//     and semantics) instead of Oniguruma; the hand-written matcher follows
//     Oniguruma, including (?i) folding 'ſ' to 's';
//   - Lowercase is Go's strings.ToLower (no final-sigma rule);
//   - truncation and padding are ignored, BPE dropout must be 0 or null;
//   - an unk_token that exists only as an added token is used by its id
//     (Hugging Face fails when it needs it).
package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Kinds reported by Tokenizer.Kind.
const (
	KindSentencePiece = "sentencepiece"
	KindByteLevel     = "bytelevel"
)

// TokenType classifies a token the way GGUF's tokenizer.ggml.token_type
// does; the numeric values are GGUF's.
type TokenType int

// Token types (GGUF values).
const (
	TokenNormal      TokenType = 1 // an ordinary vocabulary token
	TokenUnknown     TokenType = 2 // the unk token
	TokenControl     TokenType = 3 // a special added token (BOS, EOS, ...)
	TokenUserDefined TokenType = 4 // a non-special added token
	TokenUnused      TokenType = 5 // an id no token uses
	TokenByte        TokenType = 6 // a byte-fallback token <0xNN>
)

// Tokenizer is a parsed tokenizer.json (plus optional tokenizer_config.json).
type Tokenizer struct {
	name       string
	kind       string
	model      *bpeModel
	normalizer normalizer   // nil: none
	pre        preTokenizer // nil: none
	decoder    decoder      // nil: tokens joined with " "

	added          []AddedToken
	rawAdded       *addedMatcher // tokens matched in the raw text
	normAdded      *addedMatcher // tokens matched in normalized text
	addedByID      map[int]*AddedToken
	addedByContent map[string]int
	idToToken      []string // dense by id, model vocabulary and added tokens
	tokenTypes     []TokenType

	bos, eos, unk int

	// Special tokens Encode(text, true) adds.
	prefixIDs, suffixIDs []int
}

// Load reads a tokenizer from path: a tokenizer.json file, or a directory
// holding tokenizer.json and optionally tokenizer_config.json (the config is
// also read when it sits next to a tokenizer.json file given directly).
func Load(path string) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	file := path
	if st.IsDir() {
		file = filepath.Join(path, "tokenizer.json")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var cfg []byte
	cfgPath := filepath.Join(filepath.Dir(file), "tokenizer_config.json")
	if c, err := os.ReadFile(cfgPath); err == nil {
		cfg = c
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return Parse(data, cfg, file)
}

// Name returns the name given to Parse (the file path for Load).
func (t *Tokenizer) Name() string { return t.name }

// Kind returns KindByteLevel for byte-level tokenizers (a ByteLevel
// pre-tokenizer or decoder) and KindSentencePiece otherwise.
func (t *Tokenizer) Kind() string { return t.kind }

// VocabSize returns the number of ids: one more than the largest id of the
// model vocabulary and the added tokens.
func (t *Tokenizer) VocabSize() int { return len(t.idToToken) }

// TokenID returns the id of a token string (added tokens first, then the
// model vocabulary).
func (t *Tokenizer) TokenID(tok string) (int, bool) {
	if id, ok := t.addedByContent[tok]; ok {
		return id, true
	}
	id, ok := t.model.vocab[tok]
	return id, ok
}

// Token returns the token string of id, or "" when no token has that id.
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.idToToken) {
		return ""
	}
	return t.idToToken[id]
}

// BOS returns the beginning-of-sequence token id, or -1.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the end-of-sequence token id, or -1.
func (t *Tokenizer) EOS() int { return t.eos }

// UNK returns the unknown token id, or -1.
func (t *Tokenizer) UNK() int { return t.unk }

// Vocab returns every token string by id (VocabSize entries; "" for ids no
// token uses). The slice is a copy.
func (t *Tokenizer) Vocab() []string { return append([]string(nil), t.idToToken...) }

// Merges returns the BPE merges in rank order as "left right" strings (the
// form GGUF's tokenizer.ggml.merges uses).
func (t *Tokenizer) Merges() []string {
	out := make([]string, len(t.model.mergeList))
	for i, m := range t.model.mergeList {
		out[i] = m[0] + " " + m[1]
	}
	return out
}

// IsSpecial reports whether id is a special added token.
func (t *Tokenizer) IsSpecial(id int) bool {
	a := t.addedByID[id]
	return a != nil && a.Special
}

// AddedTokens returns a copy of the added tokens, in file order.
func (t *Tokenizer) AddedTokens() []AddedToken { return append([]AddedToken(nil), t.added...) }

// TokenType returns the GGUF token type of id (TokenUnused out of range).
func (t *Tokenizer) TokenType(id int) TokenType {
	if id < 0 || id >= len(t.tokenTypes) {
		return TokenUnused
	}
	return t.tokenTypes[id]
}

// ByteFallback reports whether the model encodes unknown characters as
// <0xNN> byte tokens.
func (t *Tokenizer) ByteFallback() bool { return t.model.byteFallback }

// SpecialIDs returns the ids Encode(text, true) puts before and after the
// text (from tokenizer_config.json's add_bos_token/add_eos_token when it
// sets either, else from the post-processor).
func (t *Tokenizer) SpecialIDs() (prefix, suffix []int) {
	return append([]int(nil), t.prefixIDs...), append([]int(nil), t.suffixIDs...)
}

// Encode returns the ids of text exactly as Hugging Face's
// tokenizer.encode(text, add_special_tokens=addSpecial). Special tokens
// written in the text are always recognised; addSpecial only controls the
// BOS/EOS (post-processor) tokens. Invalid UTF-8 is first replaced by U+FFFD
// (one per maximal invalid subpart), as Python's decode(errors="replace").
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	if !utf8.ValidString(text) {
		text = utf8Lossy(text)
	}
	ids := make([]int, 0, len(text)/3+4)
	if addSpecial {
		ids = append(ids, t.prefixIDs...)
	}
	var segs, nsegs []segment
	var st encodeState
	emit := func(w piece) { ids = t.model.tokenize(w.s, ids) }
	segs = t.rawAdded.split(text, segs)
	for _, sg := range segs {
		if sg.tok != nil {
			ids = append(ids, sg.tok.ID)
			continue
		}
		s := text[sg.start:sg.end]
		if t.normalizer != nil {
			s = t.normalizer.normalize(s)
		}
		nsegs = t.normAdded.split(s, nsegs[:0])
		for _, ns := range nsegs {
			if ns.tok != nil {
				ids = append(ids, ns.tok.ID)
				continue
			}
			p := piece{s: s[ns.start:ns.end], first: sg.start == 0 && ns.start == 0}
			if p.s == "" {
				continue
			}
			if t.pre == nil {
				ids = t.model.tokenize(p.s, ids)
			} else {
				t.pre.preTokenize(p, &st, emit)
			}
		}
	}
	if addSpecial {
		ids = append(ids, t.suffixIDs...)
	}
	return ids
}

// Decode returns the text of ids, as Hugging Face's
// tokenizer.decode(ids, skip_special_tokens=skipSpecial): unknown ids are
// dropped, the tokens go through the decoder chain (or are joined with
// spaces when the file has no decoder).
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id < 0 || id >= len(t.idToToken) || t.tokenTypes[id] == TokenUnused {
			continue
		}
		if skipSpecial && t.IsSpecial(id) {
			continue
		}
		toks = append(toks, t.idToToken[id])
	}
	if t.decoder == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(t.decoder.decodeChain(toks), "")
}
