package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestBPEMerges(t *testing.T) {
	base := []string{"<unk>", "a", "b", "c", "d", "é"}
	cases := []struct {
		name   string
		vocab  []string
		merges []string
		model  map[string]any
		in     string
		want   string
	}{
		{"leftmost on ties", []string{"aa"}, []string{"a a"}, nil, "aaa", "aa|a"},
		{"lowest rank first", []string{"bc", "ab", "abc"}, []string{"b c", "a b", "a bc"}, nil, "abc", "abc"},
		{"rank beats position", []string{"bc", "ab"}, []string{"b c", "a b"}, nil, "abc", "a|bc"},
		{"repeated", []string{"ab", "abab"}, []string{"a b", "ab ab"}, nil, "ababab", "abab|ab"},
		{"fuse_unk", nil, nil, map[string]any{"unk_token": "<unk>", "fuse_unk": true}, "axyzaq", "a|<unk>|a|<unk>"},
		{"no fuse_unk", nil, nil, map[string]any{"unk_token": "<unk>", "fuse_unk": false}, "axya", "a|<unk>|<unk>|a"},
		{"no unk token drops", nil, nil, nil, "axya", "a|a"},
		{"ignore_merges", []string{"ab", "abc"}, []string{"a b"}, map[string]any{"ignore_merges": true}, "abc", "abc"},
		{"ignore_merges miss", []string{"ab", "abc"}, []string{"a b"}, map[string]any{"ignore_merges": true}, "abcd", "ab|c|d"},
		{"merges off", []string{"ab", "abc"}, []string{"a b"}, nil, "abc", "ab|c"},
		{"pair merges", []string{"ab"}, nil, map[string]any{"merges": [][]string{{"a", "b"}}}, "abab", "ab|ab"},
		{"suffix", []string{"b</w>", "ab</w>"}, []string{"a b</w>"}, map[string]any{"end_of_word_suffix": "</w>"}, "ab", "ab</w>"},
		{"prefix", []string{"##b", "ab"}, []string{"a ##b"}, map[string]any{"continuing_subword_prefix": "##"}, "ab", "ab"},
	}
	for _, c := range cases {
		s := synth{vocab: append(append([]string(nil), base...), c.vocab...), merges: c.merges, model: c.model}
		tk := s.build(t)
		got := strings.Join(toks(tk, tk.Encode(c.in, false)), "|")
		if got != c.want {
			t.Errorf("%s: Encode(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

func TestByteFallback(t *testing.T) {
	s := synth{
		vocab:  append([]string{"<unk>", "<s>", "</s>", "▁", "a", "▁a"}, byteVocab()...),
		merges: []string{"▁ a"},
		model:  map[string]any{"unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true},
		top:    map[string]any{"normalizer": spNormalizer, "decoder": spDecoder},
	}
	tk := s.build(t)
	ids := tk.Encode("a é\n", false)
	want := "▁a|▁|<0xC3>|<0xA9>|<0x0A>"
	if got := strings.Join(toks(tk, ids), "|"); got != want {
		t.Errorf("Encode = %q, want %q", got, want)
	}
	if got := tk.Decode(ids, false); got != "a é\n" {
		t.Errorf("Decode = %q", got)
	}
	if tk.TokenType(6+0xC3) != TokenByte || tk.TokenType(4) != TokenNormal || tk.TokenType(0) != TokenUnknown {
		t.Errorf("token types: %v %v %v", tk.TokenType(6+0xC3), tk.TokenType(4), tk.TokenType(0))
	}
	// Invalid UTF-8 input is replaced first (one U+FFFD per maximal subpart).
	if got := tk.Decode(tk.Encode("a\xe2\x82", false), false); got != "a\uFFFD" {
		t.Errorf("invalid UTF-8 round trip = %q", got)
	}
}

// TestMergeSmallEqualsHeap checks the quadratic loop against the heap on
// seeded random words and merge tables.
func TestMergeSmallEqualsHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 300; trial++ {
		m := randomModel(rng)
		for w := 0; w < 20; w++ {
			n := 1 + rng.IntN(smallWord)
			syms := make([]int32, n)
			for i := range syms {
				syms[i] = int32(rng.IntN(4))
			}
			a := m.mergeSmall(append([]int32(nil), syms...))
			b := m.mergeHeap(append([]int32(nil), syms...))
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatalf("word %v: small %v, heap %v", syms, a, b)
			}
		}
	}
}

// randomModel builds merges over a 4-letter alphabet with random ranks.
func randomModel(rng *rand.Rand) *bpeModel {
	tokens := []string{"a", "b", "c", "d"}
	vocab := map[string]int{"a": 0, "b": 1, "c": 2, "d": 3}
	m := &bpeModel{vocab: vocab, merges: map[uint64]uint64{}, unk: -1}
	for r := 0; r < 12; r++ {
		x, y := tokens[rng.IntN(len(tokens))], tokens[rng.IntN(len(tokens))]
		nt := x + y
		id, ok := vocab[nt]
		if !ok {
			id = len(tokens)
			vocab[nt] = id
			tokens = append(tokens, nt)
		}
		k := mergeKey(int32(vocab[x]), int32(vocab[y]))
		if _, dup := m.merges[k]; !dup {
			m.merges[k] = uint64(r)<<32 | uint64(id)
			m.mergeList = append(m.mergeList, [2]string{x, y})
		}
	}
	return m
}

// TestSplitMetaDecision checks when words may be cut at "▁" boundaries.
func TestSplitMetaDecision(t *testing.T) {
	base := []string{"<unk>", "▁", "a", "b", "▁a", "▁b", "▁▁", "a▁", "b▁", "▁▁a"}
	cases := []struct {
		merges []string
		model  map[string]any
		want   bool
	}{
		{[]string{"▁ a", "▁ ▁"}, nil, true},
		{[]string{"▁ a", "▁▁ a"}, nil, true}, // "▁▁" runs are never cut
		{[]string{"▁ a", "a ▁"}, nil, false}, // "a▁" would span the cut in "a▁"
		{[]string{"▁ a"}, map[string]any{"ignore_merges": true}, false},
		{[]string{"▁ a"}, map[string]any{"end_of_word_suffix": "</w>"}, false},
	}
	for _, c := range cases {
		tk := synth{vocab: base, merges: c.merges, model: c.model}.build(t)
		if tk.model.splitMeta != c.want {
			t.Errorf("merges %q model %v: splitMeta = %v, want %v", c.merges, c.model, tk.model.splitMeta, c.want)
		}
	}
	// With a crossing merge, encoding still is whole-word BPE (cutting
	// would give "▁b|▁b").
	tk := synth{vocab: base, merges: []string{"b ▁", "▁ b"}, top: map[string]any{"normalizer": spNormalizer}}.build(t)
	if got := strings.Join(toks(tk, tk.Encode("b b", false)), "|"); got != "▁|b▁|b" {
		t.Errorf("Encode(\"b b\") = %q, want \"▁|b▁|b\"", got)
	}
}

// TestSplitMetaEquivalence verifies on real tokenizers and text that
// cutting at "▁" boundaries gives the ids of whole-segment BPE (what
// Hugging Face runs).
func TestSplitMetaEquivalence(t *testing.T) {
	text := readPrefix(t, evalTextPath, 150_000) + " \t  x  \n日本語  🙂<0x41>▁▁a ▁"
	for _, name := range []string{"llama-pd-11m", "llama2"} {
		t.Run(name, func(t *testing.T) {
			tk := referenceTokenizer(t, name)
			if !tk.model.splitMeta {
				t.Fatalf("%s: splitMeta is off", name)
			}
			whole := *tk.model
			whole.splitMeta = false
			whole.cache = newWordCache()
			norm := tk.normalizer.normalize(text)
			got := tk.model.tokenize(norm, nil)
			want := whole.tokenizeWord(norm, nil) // one word: too long for the cache, heap merge
			if !equalInts(got, want) {
				n := 0
				for n < len(got) && n < len(want) && got[n] == want[n] {
					n++
				}
				t.Fatalf("ids differ at %d of %d/%d", n, len(got), len(want))
			}
		})
	}
}
