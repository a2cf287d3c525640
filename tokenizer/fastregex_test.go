package tokenizer

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// collect returns the spans a pattern produces.
func collect(p pattern, s string) []span {
	var out []span
	p.each(s, func(x span) { out = append(out, x) })
	return out
}

// regexp2Spans are the spans of the same regex run by regexp2.
var regexp2Compiled = map[string]*regexp2.Regexp{}

func regexp2Spans(t testing.TB, expr, s string) []span {
	re, ok := regexp2Compiled[expr]
	if !ok {
		var err error
		if re, err = regexp2.Compile(expr, regexp2.None); err != nil {
			t.Fatal(err)
		}
		regexp2Compiled[expr] = re
	}
	return collect(regexPattern{re: re}, s)
}

// handCases exercise every alternative and the backtracking corners.
var handCases = []string{
	"", " ", "  ", "a", "Hello world", "Hello  world", "  leading spaces", "trailing  ",
	"tabs\tand\nnewlines\r\n", "a\n\nb", "a \n \n b", " \n", "\n ", "x \t\n\r\n  y",
	"I'm you're they've we'll she'd it's can't", "I'M YOU'RE THEY'VE WE'LL SHE'D IT'S CAN'T",
	"'s 't 're 've 'm 'll 'd '", "'x 'sx 'lle 'rev", "don'T", "''s",
	"12345678 1 22 333 4444", "x1y22z333", " 12", "a 12", "١٢٣ Ⅷ ½",
	"émigré naïve façade — “quotes” 1,234.56", "日本語 テキスト", "🙂 emoji 👍🏽",
	"...!!! ?? , .\n\n", " !!\n", "$$$\r\n\r\nx", "a.b", "a .b", "a\t.b", "\u00a0a", "a\u00a0 b",
	"\u2003\u2003x", "x\u3000", "\u0085x", "foo\u200bbar", "a_b", "x - y", "<s> not special </s>",
	"ID 0042 in 1999", strings.Repeat("a", 100), strings.Repeat(" ", 10) + "x",
}

// TestHandPatternsMatchRegexp2 checks the hand-written matchers against
// regexp2 running the original regexes.
func TestHandPatternsMatchRegexp2(t *testing.T) {
	for expr, h := range knownPatterns {
		for _, s := range handCases {
			got, want := collect(h, s), regexp2Spans(t, expr, s)
			if !equalSpans(got, want) {
				t.Errorf("pattern %.30q on %q:\n got %v\nwant %v", expr, s, pieces(s, got), pieces(s, want))
			}
		}
	}
}

// TestHandPatternFoldsLongS: under (?i) Oniguruma (Hugging Face's regex
// engine) folds 'ſ' (U+017F) to 's', as Unicode case folding says, so
// Llama-3's contraction alternative matches "'ſ"; regexp2 does not fold
// it (it sees "'" + letters). GPT-2's pattern is case-sensitive.
func TestHandPatternFoldsLongS(t *testing.T) {
	cases := []struct{ expr, want string }{
		{llama3Pattern, "x|'ſ|t"},
		{qwen2Pattern, "x|'ſ|t"},
		{gpt2Pattern, "x|'|ſt"},
	}
	for _, c := range cases {
		s := "x'ſt"
		got := strings.Join(pieces(s, collect(knownPatterns[c.expr], s)), "|")
		if got != c.want {
			t.Errorf("%.20q: got %q, want %q", c.expr, got, c.want)
		}
	}
}

func equalSpans(a, b []span) bool {
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

func pieces(s string, sp []span) []string {
	var out []string
	for _, x := range sp {
		p := s[x.start:x.end]
		if !x.match {
			p = "!" + p
		}
		out = append(out, p)
	}
	return out
}

// FuzzHandPatterns compares the hand-written matchers with regexp2 on
// arbitrary valid UTF-8 without 'ſ' (see TestHandPatternFoldsLongS).
func FuzzHandPatterns(f *testing.F) {
	for _, s := range handCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 'ſ') {
			return
		}
		for expr, h := range knownPatterns {
			got, want := collect(h, s), regexp2Spans(t, expr, s)
			if !equalSpans(got, want) {
				t.Fatalf("pattern %.30q on %q:\n got %v\nwant %v", expr, s, pieces(s, got), pieces(s, want))
			}
		}
	})
}

// TestHandPatternsRandom compares the matchers with regexp2 on seeded
// random strings over an alphabet of the characters that matter ('ſ'
// aside, see TestHandPatternFoldsLongS).
func TestHandPatternsRandom(t *testing.T) {
	alphabet := []rune("aZé日'sStTrReEvVlLmMdD 0159١½\t\n\r \u00a0\u3000\u2028\u0085.,!?-—“🙂👍\u200b_")
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 3000; n++ {
		var b strings.Builder
		for k := rng.IntN(24); k >= 0; k-- {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		for expr, h := range knownPatterns {
			got, want := collect(h, s), regexp2Spans(t, expr, s)
			if !equalSpans(got, want) {
				t.Fatalf("pattern %.30q on %q:\n got %v\nwant %v", expr, s, pieces(s, got), pieces(s, want))
			}
		}
	}
}
