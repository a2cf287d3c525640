package tokenizer

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSplitBehaviors uses the example of Hugging Face's documentation of
// SplitDelimiterBehavior ("the-final--countdown" split on "-").
func TestSplitBehaviors(t *testing.T) {
	cases := []struct {
		beh    behavior
		invert bool
		want   string
	}{
		{behRemoved, false, "the|final|countdown"},
		{behIsolated, false, "the|-|final|-|-|countdown"},
		{behMergedWithPrevious, false, "the-|final-|-|countdown"},
		{behMergedWithNext, false, "the|-final|-|-countdown"},
		{behContiguous, false, "the|-|final|--|countdown"},
		{behRemoved, true, "-|-|-"},
		{behIsolated, true, "the|-|final|-|-|countdown"},
		{behMergedWithPrevious, true, "the|-final|-|-countdown"},
		{behMergedWithNext, true, "the-|final-|-|countdown"},
	}
	for _, pat := range []pattern{literalPattern("-"), charPattern(func(r rune) bool { return r == '-' })} {
		for _, c := range cases {
			var got []string
			splitPiece(piece{s: "the-final--countdown"}, pat, c.beh, c.invert, func(p piece) { got = append(got, p.s) })
			if g := strings.Join(got, "|"); g != c.want {
				t.Errorf("%T behavior %d invert %v: got %q, want %q", pat, c.beh, c.invert, g, c.want)
			}
		}
	}
}

// preTokens runs a pre-tokenizer given as JSON.
func preTokens(t *testing.T, preJSON, s string, first bool) string {
	t.Helper()
	p, err := parsePreTokenizer("tokenizer.json", "pre_tokenizer", json.RawMessage(preJSON))
	if err != nil {
		t.Fatalf("%s: %v", preJSON, err)
	}
	var out []string
	var st encodeState
	p.preTokenize(piece{s: s, first: first}, &st, func(x piece) { out = append(out, strings.Clone(x.s)) })
	return strings.Join(out, "|")
}

func TestPreTokenizers(t *testing.T) {
	cases := []struct {
		json, in string
		first    bool
		want     string
	}{
		{`{"type":"Digits","individual_digits":true}`, "ab123c4", true, "ab|1|2|3|c|4"},
		{`{"type":"Digits","individual_digits":false}`, "ab123c4", true, "ab|123|c|4"},
		{`{"type":"Digits"}`, "x٣4½y", true, "x|٣4½|y"}, // char::is_numeric: Nd, Nl, No
		{`{"type":"Digits","individual_digits":true}`, "Ⅻ٣", true, "Ⅻ|٣"},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}`, "Hello world", false, "▁Hello|▁world"},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":false}`, "Hello world", false, "▁Hello▁world"},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true}`, "Hello world", true, "▁Hello|▁world"},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true}`, "Hello world", false, "Hello|▁world"},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"never"}`, " a  b", true, "▁a|▁|▁b"},
		{`{"type":"Metaspace","replacement":"▁","add_prefix_space":false}`, "a b", true, "a|▁b"},
		{`{"type":"Metaspace","replacement":"▁","add_prefix_space":true}`, "a b", false, "▁a|▁b"},
		{`{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}`, "Hello world", true, "ĠHello|Ġworld"},
		{`{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}`, "Hi  there\n", true, "Hi|Ġ|Ġthere|Ċ"},
		{`{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}`, "é x", true, "Ã©Ġx"},
		{`{"type":"Whitespace"}`, "Hey man!! How's it going?", true, "Hey|man|!!|How|'|s|it|going|?"},
		{`{"type":"WhitespaceSplit"}`, "Hey man!!  x\t", true, "Hey|man!!|x"},
		{`{"type":"Punctuation"}`, "Hey, man!", true, "Hey|,| man|!"},
		{`{"type":"Punctuation","behavior":"Removed"}`, "Hey, man!", true, "Hey| man"},
		{`{"type":"BertPreTokenizer"}`, "Hey, man!", true, "Hey|,|man|!"},
		{`{"type":"Split","pattern":{"Regex":"\\d+"},"behavior":"Isolated","invert":false}`, "a12b3", true, "a|12|b|3"},
		{`{"type":"Split","pattern":{"String":"ab"},"behavior":"Removed","invert":false}`, "xabyabab", true, "x|y"},
		{`{"type":"Split","pattern":{"Regex":"x*"},"behavior":"Isolated","invert":false}`, "axxb", true, "a|xx|b"},
		{`{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}]}`, "ab 12", true, "ab|Ġ|1|2"},
		{`{"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Metaspace","prepend_scheme":"first"}]}`, "a b", true, "▁a|b"},
	}
	for _, c := range cases {
		if got := preTokens(t, c.json, c.in, c.first); got != c.want {
			t.Errorf("%s on %q: got %q, want %q", c.json, c.in, got, c.want)
		}
	}
}

func TestNormalizers(t *testing.T) {
	cases := []struct{ json, in, want string }{
		{`{"type":"Prepend","prepend":"▁"}`, "", ""},
		{`{"type":"Prepend","prepend":"▁"}`, "▁a", "▁▁a"},
		{`{"type":"Replace","pattern":{"String":" "},"content":"▁"}`, " a  b ", "▁a▁▁b▁"},
		{`{"type":"Replace","pattern":{"Regex":" {2,}"},"content":" "}`, "a  b    c d", "a b c d"},
		{`{"type":"NFC"}`, "e\u0301", "é"},
		{`{"type":"NFD"}`, "é", "e\u0301"},
		{`{"type":"NFKC"}`, "ﬁ½", "fi1⁄2"},
		{`{"type":"NFKD"}`, "é", "e\u0301"},
		{`{"type":"Lowercase"}`, "ÀB", "àb"},
		{`{"type":"Strip","strip_left":true,"strip_right":false}`, "  a  ", "a  "},
		{`{"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"StripAccents"}]}`, "émigré", "emigre"},
	}
	for _, c := range cases {
		n, err := parseNormalizer("tokenizer.json", "normalizer", json.RawMessage(c.json))
		if err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		if got := n.normalize(c.in); got != c.want {
			t.Errorf("%s on %q: got %q, want %q", c.json, c.in, got, c.want)
		}
	}
}

func TestDecoders(t *testing.T) {
	cases := []struct {
		json string
		in   []string
		want string
	}{
		{`{"type":"ByteFallback"}`, []string{"<0xE2>", "<0x96>", "<0x81>", "a"}, "▁a"},
		// An invalid run gives one U+FFFD per byte.
		{`{"type":"ByteFallback"}`, []string{"<0xE2>", "<0x82>", "a", "<0xFF>"}, "\uFFFD\uFFFDa\uFFFD"},
		{`{"type":"ByteFallback"}`, []string{"<0x4G>", "<0x+A>"}, "<0x4G>\n"},
		{`{"type":"Strip","content":" ","start":1,"stop":1}`, []string{"  a  "}, " a "},
		{`{"type":"Strip","content":" ","start":1,"stop":0}`, []string{"a "}, "a "},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"always"}`, []string{"▁Hey", "▁friend▁"}, "Hey friend "},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"never"}`, []string{"▁Hey"}, " Hey"},
		// Byte level: the whole is decoded lossily (maximal subparts).
		{`{"type":"ByteLevel"}`, []string{"ĠHello", "âĤ", "Ġ"}, " Hello\uFFFD "},
		{`{"type":"ByteLevel"}`, []string{"<|x|>", "日"}, "<|x|>日"},
		{`{"type":"BPEDecoder","suffix":"</w>"}`, []string{"hel", "lo</w>", "you</w>"}, "hello you"},
		{`{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}`, []string{"▁a", "▁b"}, "a b"},
	}
	for _, c := range cases {
		d, err := parseDecoder("tokenizer.json", "decoder", json.RawMessage(c.json))
		if err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		if got := strings.Join(d.decodeChain(append([]string(nil), c.in...)), ""); got != c.want {
			t.Errorf("%s on %q: got %q, want %q", c.json, c.in, got, c.want)
		}
	}
}

// TestUTF8Lossy checks Rust's from_utf8_lossy replacement (maximal subparts).
func TestUTF8Lossy(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc", "abc"},
		{"a\xffb", "a\uFFFDb"},
		{"\xe2\x82", "\uFFFD"},                 // truncated 3-byte sequence: one
		{"\xe2\x82a", "\uFFFDa"},               // ... also before ASCII
		{"\xf0\x9f\x99", "\uFFFD"},             // truncated 4-byte sequence
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogate: each byte
		{"\xe0\x80\x80", "\uFFFD\uFFFD\uFFFD"}, // overlong
		{"\xc0\xaf", "\uFFFD\uFFFD"},
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"}, // > U+10FFFF
		{"\x80\x80", "\uFFFD\uFFFD"},
		{"é\xe6\x97", "é\uFFFD"},
	}
	for _, c := range cases {
		if got := utf8Lossy(c.in); got != c.want {
			t.Errorf("utf8Lossy(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
