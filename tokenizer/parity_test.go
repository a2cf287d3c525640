package tokenizer

import (
	"fmt"
	"testing"
)

// TestParity checks Encode against the ids Hugging Face produced for the
// 56 reference strings (add_special_tokens=false), and that Decode gives
// the strings back.
func TestParity(t *testing.T) {
	for _, name := range []string{"llama-pd-11m", "llama2", "llama3"} {
		t.Run(name, func(t *testing.T) {
			cases := loadCases(t)
			var want [][]int
			p := refDir + "/" + name + ".ids.json"
			requireFile(t, p)
			readJSON(t, p, &want)
			if len(want) != len(cases) {
				t.Fatalf("%s has %d cases, cases.json %d", p, len(want), len(cases))
			}
			tk := referenceTokenizer(t, name)
			bad := 0
			for i, s := range cases {
				got := tk.Encode(s, false)
				if !equalInts(got, want[i]) {
					bad++
					if bad <= 5 {
						t.Errorf("case %d %q:\n got %v\nwant %v\n got %s\nwant %s", i, clip(s), got, want[i], tokStrings(tk, got), tokStrings(tk, want[i]))
					}
				}
				wantDec := s
				if d, ok := decodeExceptions[name][s]; ok {
					wantDec = d
				}
				if dec := tk.Decode(want[i], false); dec != wantDec {
					t.Errorf("case %d: Decode(reference ids) = %q, want %q", i, clip(dec), clip(wantDec))
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d cases differ", bad, len(cases))
			}
		})
	}
}

// decodeExceptions lists the reference strings Hugging Face itself does not
// round-trip: after the added token <s>, the normalizer prepends "▁" to
// " not special " again, so decoding yields two spaces.
var decodeExceptions = map[string]map[string]string{
	"llama-pd-11m": {"<s> not special </s>": "<s>  not special </s>"},
	"llama2":       {"<s> not special </s>": "<s>  not special </s>"},
}

func equalInts(a, b []int) bool {
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

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func tokStrings(tk *Tokenizer, ids []int) string {
	out := "["
	for i, id := range ids {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%q", tk.Token(id))
		if i > 40 {
			out += " …"
			break
		}
	}
	return out + "]"
}
