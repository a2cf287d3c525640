package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// addedSynth is a character-level SentencePiece-style tokenizer with added
// tokens carrying the various flags.
func addedSynth(t *testing.T) *Tokenizer {
	vocab := []string{"<unk>", "<s>", "</s>", "▁"}
	for _, r := range "abcdefghijklmnopqrstuvwxyz<>/|" {
		vocab = append(vocab, string(r))
	}
	n := len(vocab)
	at := func(id int, content string, special bool, extra map[string]any) map[string]any {
		m := map[string]any{"id": id, "content": content, "special": special, "normalized": false,
			"lstrip": false, "rstrip": false, "single_word": false}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	return synth{
		vocab: vocab,
		model: map[string]any{"unk_token": "<unk>", "fuse_unk": true},
		top:   map[string]any{"normalizer": spNormalizer, "decoder": spDecoder},
		added: []map[string]any{
			at(0, "<unk>", true, nil), at(1, "<s>", true, nil), at(2, "</s>", true, nil),
			at(n, "<a>", false, nil),
			at(n+1, "<a><b>", false, nil),
			at(n+2, "<l>", false, map[string]any{"lstrip": true}),
			at(n+3, "<r>", false, map[string]any{"rstrip": true}),
			at(n+4, "<w>", false, map[string]any{"single_word": true}),
			at(n+5, "foo", false, map[string]any{"normalized": true}),
		},
	}.build(t)
}

func TestAddedTokens(t *testing.T) {
	tk := addedSynth(t)
	cases := []struct{ in, want string }{
		{"x<a><b>y", "▁|x|<a><b>|▁|y"}, // longest match first
		{"x<a>y", "▁|x|<a>|▁|y"},
		{"x  <l> y", "▁|x|<l>|▁|▁|y"},  // lstrip swallows the spaces before
		{"x <r>  y", "▁|x|▁|<r>|▁|y"},  // rstrip swallows the spaces after
		{"a<w>b", "▁|a|<|w|>|b"},       // single_word: inside a word, not matched
		{"a <w> b", "▁|a|▁|<w>|▁|▁|b"}, // ... between spaces it is
		{"x foo", "▁|x|foo"},           // normalized: matches "▁foo" after normalization
		{"xfoo", "▁|x|f|o|o"},          // ... not "foo" without the "▁"
		{"<s>x</s>", "<s>|▁|x|</s>"},   // special tokens are always recognised
		{"<s", "▁|<|s"},
	}
	for _, c := range cases {
		if got := strings.Join(toks(tk, tk.Encode(c.in, false)), "|"); got != c.want {
			t.Errorf("Encode(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	ids := tk.Encode("<s>ab</s>", false)
	if got := tk.Decode(ids, true); got != "ab" { // Strip removes the leading space
		t.Errorf("Decode(skip special) = %q, want %q", got, "ab")
	}
	if got := tk.Decode(ids, false); got != "<s> ab</s>" {
		t.Errorf("Decode = %q, want %q", got, "<s> ab</s>")
	}
	if !tk.IsSpecial(1) || tk.IsSpecial(tk.VocabSize()-1) || tk.IsSpecial(5) {
		t.Error("IsSpecial is wrong")
	}
	if tk.TokenType(1) != TokenControl || tk.TokenType(tk.VocabSize()-1) != TokenUserDefined {
		t.Error("TokenType of added tokens is wrong")
	}
	if len(tk.AddedTokens()) != 9 || !tk.AddedTokens()[8].Normalized {
		t.Errorf("AddedTokens = %+v", tk.AddedTokens())
	}
}

func TestSpecialsAndConfig(t *testing.T) {
	vocab := []string{"<unk>", "<s>", "</s>", "▁", "a", "▁a"}
	template := map[string]any{"type": "TemplateProcessing",
		"single": []any{
			map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}},
			map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
			map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}},
		},
		"pair": []any{},
		"special_tokens": map[string]any{
			"<s>":  map[string]any{"id": "<s>", "ids": []int{1}, "tokens": []string{"<s>"}},
			"</s>": map[string]any{"id": "</s>", "ids": []int{2}, "tokens": []string{"</s>"}},
		}}
	s := synth{vocab: vocab, merges: []string{"▁ a"}, model: map[string]any{"unk_token": "<unk>"},
		top: map[string]any{"normalizer": spNormalizer, "post_processor": template}}
	cases := []struct {
		name, config       string
		bos, eos           int
		withSpecial, plain string
	}{
		{"template only", "", 1, 2, "<s>|▁a|</s>", "▁a"},
		{"config flags", `{"add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": {"content": "</s>", "lstrip": false}}`, 1, 2, "<s>|▁a", "▁a"},
		{"config no bos", `{"add_bos_token": false}`, 1, 2, "▁a", "▁a"},
		{"config eos", `{"add_bos_token": false, "add_eos_token": true, "eos_token": "</s>"}`, 1, 2, "▁a|</s>", "▁a"},
		{"config names", `{"bos_token": "a", "eos_token": null}`, 4, 2, "<s>|▁a|</s>", "▁a"},
		{"unknown bos", `{"bos_token": "<nope>", "add_bos_token": true}`, -1, 2, "▁a", "▁a"},
	}
	for _, c := range cases {
		var tk *Tokenizer
		if c.config == "" {
			tk = s.build(t)
		} else {
			tk = s.build(t, c.config)
		}
		if tk.BOS() != c.bos || tk.EOS() != c.eos || tk.UNK() != 0 {
			t.Errorf("%s: BOS/EOS/UNK = %d/%d/%d, want %d/%d/0", c.name, tk.BOS(), tk.EOS(), tk.UNK(), c.bos, c.eos)
		}
		if got := strings.Join(toks(tk, tk.Encode("a", true)), "|"); got != c.withSpecial {
			t.Errorf("%s: Encode(a, true) = %q, want %q", c.name, got, c.withSpecial)
		}
		if got := strings.Join(toks(tk, tk.Encode("a", false)), "|"); got != c.plain {
			t.Errorf("%s: Encode(a, false) = %q, want %q", c.name, got, c.plain)
		}
	}
}

func TestParseErrors(t *testing.T) {
	ok := synth{vocab: []string{"a", "b", "ab"}, merges: []string{"a b"}}
	cases := []struct {
		name   string
		data   string
		config string
		want   string
	}{
		{"unigram", `{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}`, "", `tokenizer.json: model.type "Unigram" is not supported (BPE only)`},
		{"wordpiece", `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`, "", `tokenizer.json: model.type "WordPiece" is not supported (BPE only)`},
		{"no model", `{"version": "1.0"}`, "", "tokenizer.json: model is missing"},
		{"not json", `{"model": `, "", "tokenizer.json: invalid JSON"},
		{"top array", `[]`, "", "tokenizer.json: invalid JSON"},
		{"null", `null`, "", "top level must be a JSON object"},
		{"bad vocab", `{"model": {"type": "BPE", "vocab": {"a": 1.5}, "merges": []}}`, "", "tokenizer.json: model.vocab must be an object"},
		{"negative id", `{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}`, "", `model.vocab token "a" has id -1: out of range for a vocabulary`},
		{"id 2^62", `{"model": {"type": "BPE", "vocab": {"a": 4611686018427387904}, "merges": []}}`, "", `model.vocab token "a" has id 4611686018427387904 (offset 6): out of range for a vocabulary`},
		{"id 2^31-1", `{"model": {"type": "BPE", "vocab": {"a": 2147483647}, "merges": []}}`, "", `model.vocab token "a" has id 2147483647: out of range for a vocabulary`},
		{"added id 2^62", `{"added_tokens": [{"id": 4611686018427387904, "content": "x"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "", "added_tokens[0].id 4611686018427387904 is out of range for a vocabulary"},
		{"added id 2^70", `{"added_tokens": [{"id": 1180591620717411303424, "content": "x"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "", "added_tokens[0].id is out of range for a vocabulary"},
		{"shared id", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}`, "", `model.vocab tokens "a" and "b" share id 0`},
		{"sparse", `{"model": {"type": "BPE", "vocab": {"a": 99999999}, "merges": []}}`, "", "sparse ids are not supported"},
		{"merge token", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a x"]}}`, "", `model.merges[0] token "x" is not in model.vocab`},
		{"merge result", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a"]}}`, "", `model.merges[0] merged token "aa" is not in model.vocab`},
		{"merge shape", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}}`, "", `model.merges[0] "a" is not two tokens`},
		{"merge pair", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}}`, "", "model.merges[0] must have exactly two tokens"},
		{"dropout", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}}`, "", "model.dropout 0.1 is not supported"},
		{"unk", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}}`, "", `model.unk_token "<unk>" is neither in model.vocab nor an added token`},
		{"normalizer", `{"normalizer": {"type": "Precompiled", "precompiled_charsmap": ""}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "", `tokenizer.json: normalizer.type "Precompiled" is not supported`},
		{"nested pre", `{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits"}, {"type": "UnicodeScripts"}]}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "", `pre_tokenizer.pretokenizers[1].type "UnicodeScripts" is not supported`},
		{"bad regex", `{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "", "pre_tokenizer.pattern regex"},
		{"behavior", `{"pre_tokenizer": {"type": "Split", "pattern": {"String": "x"}, "behavior": "Sideways"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "", `pre_tokenizer.behavior "Sideways" is not a split behavior`},
		{"decoder", `{"decoder": {"type": "WordPiece"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "", `decoder.type "WordPiece" is not supported`},
		{"strip content", `{"decoder": {"type": "Strip", "content": "ab"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "", "decoder.content must be exactly one character"},
		{"post", `{"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>"}}], "special_tokens": {}}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "", `post_processor.single uses special token "<x>" missing`},
		{"added", `{"added_tokens": [{"content": "x"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "", "added_tokens[0].id is missing"},
		{"config", string(ok.json()), `{"bos_token": 5}`, `tokenizer_config.json: bos_token must be a string or an object with "content"`},
		{"config json", string(ok.json()), `{`, "tokenizer_config.json: invalid JSON"},
	}
	for _, c := range cases {
		var cfg []byte
		if c.config != "" {
			cfg = []byte(c.config)
		}
		_, err := Parse([]byte(c.data), cfg, "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
	if _, err := Parse(ok.json(), nil, ""); err != nil {
		t.Errorf("valid synthetic tokenizer: %v", err)
	}
}

func TestLoad(t *testing.T) {
	requireFile(t, pd11mDir+"/tokenizer.json")
	a, err := Load(pd11mDir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(pd11mDir + "/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if a.BOS() != 1 || b.BOS() != 1 || a.EOS() != 2 || a.UNK() != 0 {
		t.Errorf("BOS/EOS/UNK = %d/%d/%d", a.BOS(), a.EOS(), a.UNK())
	}
	if p, _ := a.SpecialIDs(); len(p) != 1 || p[0] != 1 {
		t.Errorf("SpecialIDs prefix = %v, want [1]", p)
	}
	// A directory without tokenizer_config.json works too.
	dir := t.TempDir()
	data, err := os.ReadFile(pd11mDir + "/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.BOS() != 1 || !equalInts(c.Encode("Call me Ishmael.", false), a.Encode("Call me Ishmael.", false)) {
		t.Error("tokenizer without config differs")
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Load(missing) error = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "tokenizer_config.json")) {
		t.Errorf("bad config error = %v, want it to name the file", err)
	}
}

func TestAccessors(t *testing.T) {
	tk := referenceTokenizer(t, "llama-pd-11m")
	if tk.Kind() != KindSentencePiece || tk.VocabSize() != 4096 || len(tk.Vocab()) != 4096 {
		t.Errorf("Kind/VocabSize = %s/%d", tk.Kind(), tk.VocabSize())
	}
	if tk.Token(1) != "<s>" || tk.Token(-1) != "" || tk.Token(4096) != "" {
		t.Errorf("Token: %q %q", tk.Token(1), tk.Token(-1))
	}
	if id, ok := tk.TokenID("<0x0A>"); !ok || tk.TokenType(id) != TokenByte || !tk.ByteFallback() {
		t.Errorf("<0x0A>: id %d ok %v type %v", id, ok, tk.TokenType(id))
	}
	if tk.TokenType(0) != TokenUnknown || tk.TokenType(1) != TokenControl || tk.TokenType(4095) != TokenNormal {
		t.Error("token types")
	}
	if m := tk.Merges(); len(m) != 5996 || m[0] != "▁ t" {
		t.Errorf("Merges: %d, first %q", len(m), m[0])
	}
	if _, ok := tk.TokenID("not a token"); ok {
		t.Error("TokenID of a non-token")
	}
	l3 := referenceTokenizer(t, "llama3")
	if l3.Kind() != KindByteLevel || l3.VocabSize() != 128256 || l3.BOS() != 128000 || l3.EOS() != 128001 || l3.UNK() != -1 {
		t.Errorf("llama3: kind %s size %d bos %d eos %d unk %d", l3.Kind(), l3.VocabSize(), l3.BOS(), l3.EOS(), l3.UNK())
	}
	if l3.TokenType(128255) != TokenControl || !l3.IsSpecial(128000) || l3.TokenType(0) != TokenNormal {
		t.Error("llama3 token types")
	}
	// The lenml Llama-3 file's post-processor is ByteLevel and its config
	// has no add_bos_token, so Hugging Face adds nothing.
	if got := l3.Encode("Hello", true); !equalInts(got, l3.Encode("Hello", false)) {
		t.Errorf("llama3 Encode(addSpecial) = %v", got)
	}
	if got := l3.Encode("<|begin_of_text|>Hello", false); len(got) != 2 || got[0] != 128000 {
		t.Errorf("llama3 special in text: %v", got)
	}
	if got := l3.Decode(append([]int{128000}, l3.Encode(" Hello world", false)...), true); got != " Hello world" {
		t.Errorf("llama3 Decode(skip) = %q", got)
	}
}

// TestBabyLlama: character level, no byte fallback, unknown characters
// fused into one <unk> as fuse_unk does; in-vocabulary text round-trips.
func TestBabyLlama(t *testing.T) {
	tk := referenceTokenizer(t, "babyllama-1m")
	if tk.VocabSize() != 105 || tk.ByteFallback() || tk.UNK() != 0 {
		t.Fatalf("vocab %d byteFallback %v unk %d", tk.VocabSize(), tk.ByteFallback(), tk.UNK())
	}
	story := "Once upon a time, there was a little girl named Lily. She liked to play outside in the sun!\n"
	story = strings.TrimSuffix(story, "\n") // "\n" is not in the vocabulary
	ids := tk.Encode(story, false)
	if len(ids) != utf8.RuneCountInString(story)+1 { // one id per character, plus the "▁" prefix
		t.Errorf("%d ids for %d characters", len(ids), utf8.RuneCountInString(story))
	}
	if got := tk.Decode(ids, false); got != story {
		t.Errorf("round trip: %q", got)
	}
	cases := []struct{ in, want string }{
		{"Hi 日本!", "▁|H|i|▁|<unk>|!"},
		{"x日y本z", "▁|x|<unk>|y|<unk>|z"},
		{"日本語\n\t", "▁|<unk>"},
		{"a 日 b", "▁|a|▁|<unk>|▁|b"},
	}
	for _, c := range cases {
		if got := strings.Join(toks(tk, tk.Encode(c.in, false)), "|"); got != c.want {
			t.Errorf("Encode(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := tk.Decode(tk.Encode("Hi 日本!", false), false); got != "Hi <unk>!" {
		t.Errorf("Decode with <unk> = %q", got)
	}
}

// TestConcurrentEncode encodes the reference cases from several
// goroutines at once (run with -race to check for data races).
func TestConcurrentEncode(t *testing.T) {
	// The reference strings when ../shared is there, else lines of the embedded evaluation text
	// and a few odd strings.
	var cases []string
	if _, err := os.Stat(refDir + "/cases.json"); err == nil {
		cases = loadCases(t)
	} else {
		cases = strings.Split(readPrefix(t, evalTextPath, 20_000), "\n")
		cases = append(cases, "", " ", "  x  \t\n日本語 🙂<0x41>▁▁a ▁", "<s></s><unk>")
	}
	for _, name := range []string{"llama-pd-11m", "llama3"} {
		t.Run(name, func(t *testing.T) {
			tk := referenceTokenizer(t, name)
			tk.model.cache = newWordCache() // start cold so goroutines race on inserts
			want := make([][]int, len(cases))
			fresh := *tk
			fresh.model = &bpeModel{}
			*fresh.model = *tk.model
			fresh.model.cache = newWordCache()
			for i, s := range cases {
				want[i] = fresh.Encode(s, false)
			}
			var wg sync.WaitGroup
			errs := make(chan string, 8)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for k := range cases {
						i := (k + g*7) % len(cases)
						if got := tk.Encode(cases[i], false); !equalInts(got, want[i]) {
							errs <- name + ": case differs under concurrency"
							return
						}
					}
				}(g)
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
		})
	}
}
