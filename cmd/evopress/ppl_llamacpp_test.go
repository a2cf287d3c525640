package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPPLLlamaCpp runs ppl under llama.cpp's protocol on the embedded model and text: the JSON
// contract, a base-logits file written and read back (the dense model against itself), the
// statistics printed as llama-perplexity prints them, and the flags named in errors.
func TestPPLLlamaCpp(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "pd.kld-base")
	out, err := run(t, "ppl", "--protocol", "llamacpp", "--seq-len", "64", "--max-seqs", "4", "--save-kld-base", base, "--json")
	if err != nil {
		t.Fatal(err, out)
	}
	var res struct {
		PPL      float64  `json:"ppl"`
		PPLError *float64 `json:"ppl_error"`
		Tokens   int      `json:"tokens"`
		Seqs     int      `json:"seqs"`
		SeqLen   int      `json:"seq_len"`
		Protocol string   `json:"protocol"`
		KLD      *struct {
			Count   int     `json:"count"`
			PPLQ    float64 `json:"ppl_q"`
			KLDMean float64 `json:"kld_mean"`
			SameTop float64 `json:"same_top_p"`
		} `json:"kld"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err, out)
	}
	if res.Protocol != "llamacpp" || res.Tokens != 4*31 || res.Seqs != 4 || res.SeqLen != 64 || res.PPLError == nil ||
		*res.PPLError <= 0 || res.PPL < 1 || res.KLD != nil {
		t.Fatalf("--json: %s", out)
	}
	if st, err := os.Stat(base); err != nil || st.Size() != 20+4*4*64+4*31*(4096+4)*2 {
		t.Fatalf("base-logits file: %v %v", st, err)
	}
	dense := res.PPL
	out, err = run(t, "ppl", "--kld-base", base, "--json")
	if err != nil {
		t.Fatal(err, out)
	}
	res.KLD = nil
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err, out)
	}
	if res.KLD == nil || res.KLD.Count != 4*31 || math.Abs(res.KLD.KLDMean) > 1e-4 || res.KLD.SameTop != 1 ||
		math.Abs(res.KLD.PPLQ-dense) > 1e-4*dense || math.Abs(res.PPL-dense) > 1e-4*dense {
		t.Errorf("the dense model against its own base file: %s (dense PPL %g)", out, dense)
	}
	out, err = run(t, "ppl", "--kld-base", base)
	if err != nil {
		t.Fatal(err, out)
	}
	for _, want := range []string{"Final estimate: PPL = ", "====== Perplexity statistics ======\nMean PPL(Q)                   : ",
		"====== KL divergence statistics ======\nMean    KLD: ", "Same top p: 100.000 ± 0.000 %\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--protocol", "hf"}, "--protocol hf: want evopress or llamacpp"},
		{[]string{"--kld-base", base, "--data", "x.txt"}, "--data x.txt: the tokens come from the base-logits file"},
		{[]string{"--save-kld-base", base}, "(use --force to replace it)"},
		{[]string{"--kld-base", base, "--seq-len", "128"}, "--seq-len 128: the base-logits file"},
		{[]string{"--protocol", "llamacpp", "--kl"}, "--kl true: "},
		{[]string{"--protocol", "evopress", "--kld-base", base}, "--protocol evopress: base-logits files"},
	} {
		out, err := run(t, append([]string{"ppl"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ppl %s: error %v, want %q\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
}
