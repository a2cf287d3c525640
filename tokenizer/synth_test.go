package tokenizer

import (
	"encoding/json"
	"fmt"
	"testing"
)

// synth describes a small tokenizer.json for unit tests.
type synth struct {
	vocab  []string       // tokens, id = index
	merges []string       // "a b"
	model  map[string]any // extra model fields
	top    map[string]any // top-level fields (normalizer, pre_tokenizer, ...)
	added  []map[string]any
}

// json renders the tokenizer.json.
func (s synth) json() []byte {
	vocab := map[string]int{}
	for i, v := range s.vocab {
		vocab[v] = i
	}
	model := map[string]any{"type": "BPE", "vocab": vocab, "merges": s.merges}
	if s.merges == nil {
		model["merges"] = []string{}
	}
	for k, v := range s.model {
		model[k] = v
	}
	top := map[string]any{"version": "1.0", "model": model, "added_tokens": s.added}
	if s.added == nil {
		top["added_tokens"] = []any{}
	}
	for k, v := range s.top {
		top[k] = v
	}
	b, err := json.Marshal(top)
	if err != nil {
		panic(err)
	}
	return b
}

// build parses the synthetic tokenizer, failing the test on error.
func (s synth) build(t testing.TB, config ...string) *Tokenizer {
	t.Helper()
	var cfg []byte
	if len(config) > 0 {
		cfg = []byte(config[0])
	}
	tk, err := Parse(s.json(), cfg, "tokenizer.json")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tk
}

// byteVocab returns the 256 byte-fallback tokens <0x00>..<0xFF>.
func byteVocab() []string {
	out := make([]string, 256)
	for b := range out {
		out[b] = fmt.Sprintf("<0x%02X>", b)
	}
	return out
}

// byteLevelAlphabet returns the 256 byte-level characters.
func byteLevelAlphabet() []string {
	out := make([]string, 256)
	for b := range out {
		out[b] = byteToString[b]
	}
	return out
}

// spNormalizer is the Llama-2 style normalizer.
var spNormalizer = map[string]any{"type": "Sequence", "normalizers": []any{
	map[string]any{"type": "Prepend", "prepend": "▁"},
	map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
}}

// spDecoder is the Llama-2 style decoder chain.
var spDecoder = map[string]any{"type": "Sequence", "decoders": []any{
	map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
	map[string]any{"type": "ByteFallback"},
	map[string]any{"type": "Fuse"},
	map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0},
}}

// toks maps ids to token strings.
func toks(tk *Tokenizer, ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tk.Token(id)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
