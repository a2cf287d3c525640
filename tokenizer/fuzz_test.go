package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// gpt2Synth is a small GPT-2 style byte-level tokenizer: the 256 byte
// characters, a few merges, ByteLevel pre-tokenizer and decoder.
func gpt2Synth() synth {
	vocab := append(byteLevelAlphabet(), "Ġt", "he", "Ġthe", "in", "Ġa", "er", "ĠĠ", "<|endoftext|>")
	return synth{
		vocab:  vocab,
		merges: []string{"Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "Ġ Ġ"},
		model:  map[string]any{"ignore_merges": false},
		top: map[string]any{
			"normalizer":     map[string]any{"type": "NFC"},
			"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
			"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
			"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		},
		added: []map[string]any{{"id": len(vocab) - 1, "content": "<|endoftext|>", "special": true, "normalized": true,
			"lstrip": false, "rstrip": false, "single_word": false}},
	}
}

// llama3Synth mimics the Llama-3 pipeline on a tiny vocabulary.
func llama3Synth() synth {
	s := gpt2Synth()
	s.model = map[string]any{"ignore_merges": true}
	s.top = map[string]any{
		"normalizer": nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": llama3Pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}},
		"decoder": map[string]any{"type": "ByteLevel"},
	}
	return s
}

func FuzzParse(f *testing.F) {
	for _, s := range []synth{gpt2Synth(), llama3Synth(), addedSynthDef()} {
		f.Add(s.json(), []byte(nil))
	}
	if data, err := os.ReadFile(babyDir + "/tokenizer.json"); err == nil {
		cfg, _ := os.ReadFile(babyDir + "/tokenizer_config.json")
		f.Add(data, cfg)
	}
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]], "unk_token": "a", "byte_fallback": true},
		"pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true},
		"decoder": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": true},
		"post_processor": {"type": "RobertaProcessing", "sep": ["b", 1], "cls": ["a", 0]}}`), []byte(`{"add_bos_token": true, "bos_token": {"content": "a"}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {}, "merges": []}, "normalizer": {"type": "Sequence", "normalizers": [{"type": "Replace", "pattern": {"Regex": "a+"}, "content": "b"}, {"type": "Strip"}]},
		"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"String": "x"}, "behavior": "MergedWithNext", "invert": true}, {"type": "Punctuation"}, {"type": "Digits"}]}}`), []byte(nil))
	f.Fuzz(func(t *testing.T, data, cfg []byte) {
		tk, err := Parse(data, cfg, "fuzz.json")
		if err != nil {
			return
		}
		for _, s := range []string{"", "Hello wörld 123!", " <s>ab\n\t日本 a  b ", "\xff"} {
			ids := tk.Encode(s, true)
			for _, id := range ids {
				if id < 0 || id >= tk.VocabSize() {
					t.Fatalf("Encode(%q) produced id %d outside [0, %d)", s, id, tk.VocabSize())
				}
			}
			tk.Decode(ids, false)
			tk.Decode(ids, true)
		}
		tk.Decode([]int{-1, 0, 1, 1 << 40}, false)
		_ = tk.Vocab()
		_ = tk.Merges()
	})
}

// addedSynthDef is addedSynth's description (for seeds).
func addedSynthDef() synth {
	vocab := append([]string{"<unk>", "<s>", "</s>", "▁", "a", "b", "▁a"}, byteVocab()...)
	return synth{
		vocab:  vocab,
		merges: []string{"▁ a"},
		model:  map[string]any{"unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true},
		top:    map[string]any{"normalizer": spNormalizer, "decoder": spDecoder},
		added: []map[string]any{
			{"id": 1, "content": "<s>", "special": true, "normalized": false},
			{"id": len(vocab), "content": "<x>", "special": false, "normalized": true, "lstrip": true, "rstrip": true, "single_word": true},
		},
	}
}

// cachedNPM returns the cached npm reference tokenizer, or nil when it is
// not cached (fuzzing never downloads).
func cachedNPM(t testing.TB, name string) *Tokenizer {
	cache, err := testdataCache()
	if err != nil {
		return nil
	}
	pkg := npmTokenizers[name]
	dir := filepath.Join(cache, strings.NewReplacer("/", "_", "@", "-").Replace(strings.TrimPrefix(pkg, "@")))
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		return nil
	}
	return referenceTokenizer(t, name)
}

// FuzzEncode: Encode never panics, ids are in range, and for byte-fallback
// and byte-level tokenizers Decode(Encode(s)) == s for valid UTF-8 s (that
// holds no added-token text and, for SentencePiece style, no "▁", which
// decodes to a space; with an NFC normalizer, s must be in NFC).
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", " ", "Hello world", "  leading", "trailing  ", "tabs\tand\nnewlines\r\n",
		"émigré naïve — “quotes” 1,234.56", "日本語 テキスト", "🙂 emoji 👍🏽", "<s> not </s>", "I'm it's", "\xff\xfe", "▁x", "\u0085\u00a0\u3000"} {
		f.Add(s)
	}
	type target struct {
		name      string
		tk        *Tokenizer
		roundTrip bool
	}
	var targets []target
	if _, err := os.Stat(pd11mDir + "/tokenizer.json"); err == nil {
		targets = append(targets, target{"llama-pd-11m", referenceTokenizer(f, "llama-pd-11m"), true})
	}
	if _, err := os.Stat(babyDir + "/tokenizer.json"); err == nil {
		targets = append(targets, target{"babyllama-1m", referenceTokenizer(f, "babyllama-1m"), false})
	}
	if tk := cachedNPM(f, "llama3"); tk != nil {
		targets = append(targets, target{"llama3", tk, true})
	}
	for _, s := range []synth{gpt2Synth(), llama3Synth(), addedSynthDef()} {
		tk, err := Parse(s.json(), nil, "synth")
		if err != nil {
			f.Fatal(err)
		}
		targets = append(targets, target{"synth", tk, true})
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tg := range targets {
			ids := tg.tk.Encode(s, false)
			for _, id := range ids {
				if id < 0 || id >= tg.tk.VocabSize() {
					t.Fatalf("%s: Encode(%q) produced id %d", tg.name, s, id)
				}
			}
			dec := tg.tk.Decode(ids, false)
			if !tg.roundTrip || !utf8.ValidString(s) || hasAddedText(tg.tk, s) {
				continue
			}
			if tg.tk.Kind() == KindSentencePiece && strings.Contains(s, "▁") {
				continue
			}
			if _, ok := tg.tk.normalizer.(normUnicode); ok && !norm.NFC.IsNormalString(s) {
				continue // the NFC normalizer changes the text
			}
			if dec != s {
				t.Fatalf("%s: Decode(Encode(%q)) = %q (ids %v)", tg.name, s, dec, ids)
			}
		}
	})
}

// hasAddedText reports whether s contains the text of an added token (or,
// for normalized ones, a part of it could match after normalization).
func hasAddedText(tk *Tokenizer, s string) bool {
	for _, a := range tk.AddedTokens() {
		c := strings.TrimPrefix(a.Content, "▁")
		if strings.Contains(s, c) {
			return true
		}
	}
	return false
}

// FuzzMerge compares the quadratic merge loop with the heap.
func FuzzMerge(f *testing.F) {
	f.Add(uint64(1), []byte("abcabcabd"))
	f.Add(uint64(7), []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"))
	f.Fuzz(func(t *testing.T, seed uint64, word []byte) {
		if len(word) == 0 || len(word) > smallWord {
			return
		}
		m := randomModel(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
		syms := make([]int32, len(word))
		for i, c := range word {
			syms[i] = int32(c % 4)
		}
		a := m.mergeSmall(append([]int32(nil), syms...))
		b := m.mergeHeap(append([]int32(nil), syms...))
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("word %v: small %v, heap %v", syms, a, b)
		}
	})
}
