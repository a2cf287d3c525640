package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/profile"
)

// TestComputeFlag checks --compute end to end: bf16 changes the numbers only a little (the
// perplexity of the embedded model moves by less than 1%), is named in ppl's output and in a
// search's profile, a checkpoint written under one compute kind is not resumed under the other,
// and the next command computes in float32 again. Without AVX512_BF16, bf16 is refused by name.
func TestComputeFlag(t *testing.T) {
	ppl := func(args ...string) (res struct {
		PPL     float64 `json:"ppl"`
		NLL     float64 `json:"nll"`
		Kernels string  `json:"kernels"`
	}) {
		t.Helper()
		out, err := run(t, append([]string{"ppl", "--max-seqs", "4", "--json"}, args...)...)
		if err != nil {
			t.Fatalf("ppl %v: %v\n%s", args, err, out)
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("ppl %v: %v\n%s", args, err, out)
		}
		return res
	}
	if !kernels.HasBF16Compute() {
		out, err := run(t, "ppl", "--max-seqs", "1", "--compute", "bf16")
		if err == nil || !strings.Contains(err.Error()+out, "AVX512_BF16") {
			t.Fatalf("ppl --compute bf16 without AVX512_BF16: err %v, output %s", err, out)
		}
		t.Skip("no AVX512_BF16 on this CPU: only the refusal is checked")
	}
	f32 := ppl()
	bf := ppl("--compute", "bf16")
	again := ppl("--compute", "fp32")
	if bf.Kernels != "avx512-bf16/amd64" || f32.Kernels == bf.Kernels {
		t.Errorf("kernels: fp32 %q, bf16 %q", f32.Kernels, bf.Kernels)
	}
	if bf.NLL == f32.NLL {
		t.Errorf("bf16 compute gave the float32 NLL %v exactly: not in use?", bf.NLL)
	}
	if r := math.Abs(bf.PPL/f32.PPL - 1); r > 0.01 {
		t.Errorf("bf16 perplexity %v vs fp32 %v: %.3g apart", bf.PPL, f32.PPL, r)
	}
	if again != f32 {
		t.Errorf("fp32 after bf16: %+v, first %+v", again, f32)
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "p.json")
	args := []string{"search", "drop", "--target", "0.25", "--calib-tokens", "4096", "--offspring", "2",
		"--stages", "1:256", "--init-tokens", "256", "--generations", "1", "--seed", "1", "--out", out}
	if o, err := run(t, append(args, "--compute", "bf16")...); err != nil {
		t.Fatalf("search --compute bf16: %v\n%s", err, o)
	}
	p, err := profile.Read(out, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Search == nil || p.Search.Kernels != "avx512-bf16/amd64" {
		t.Fatalf("profile search record %+v: want kernels avx512-bf16/amd64", p.Search)
	}
	o, err := run(t, append(args, "--resume", "--generations", "2")...)
	if err == nil || !strings.Contains(err.Error()+o, "avx512-bf16/amd64") {
		t.Fatalf("resume under fp32 of a bf16 checkpoint: err %v\n%s", err, o)
	}
}
