package llamarecipe

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/ggml"
)

func TestParseFileType(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want FileType
		base ggml.Type
		name string
	}{
		{"Q4_K_M", MostlyQ4_K_M, ggml.Q4_K, "Q4_K_M"},
		{"q3_k_s", MostlyQ3_K_S, ggml.Q3_K, "Q3_K_S"},
		{"Q4_K", MostlyQ4_K_M, ggml.Q4_K, "Q4_K_M"}, // llama-quantize's alias
		{"q5_k", MostlyQ5_K_M, ggml.Q5_K, "Q5_K_M"},
		{"Q3_K", MostlyQ3_K_M, ggml.Q3_K, "Q3_K_M"},
		{"IQ2_S", MostlyIQ2_S, ggml.IQ2_XS, "IQ2_S"}, // IQ2_S files are mostly IQ2_XS
		{"IQ2_M", MostlyIQ2_M, ggml.IQ2_S, "IQ2_M"},
		{"f16", MostlyF16, ggml.F16, "F16"},
		{"F32", AllF32, ggml.F32, "F32"},
		{"15", MostlyQ4_K_M, ggml.Q4_K, "Q4_K_M"},
		{"MXFP4_MOE", MostlyMXFP4, ggml.MXFP4, "MXFP4_MOE"},
	} {
		got, err := ParseFileType(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseFileType(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		if b, ok := got.BaseType(); !ok || b != tc.base {
			t.Errorf("%v.BaseType() = %v, %v; want %v", got, b, ok, tc.base)
		}
		if got.String() != tc.name {
			t.Errorf("%v.String() = %q, want %q", uint32(got), got.String(), tc.name)
		}
	}
	for _, bad := range []string{"", "Q4_K_X", "4", "39", "COPY", "q4"} {
		if f, err := ParseFileType(bad); err == nil {
			t.Errorf("ParseFileType(%q) = %v, want an error", bad, f)
		}
	}
	if _, ok := MostlyNVFP4.BaseType(); ok || MostlyNVFP4.String() != "NVFP4" || FileType(4).String() != "ftype(4)" {
		t.Errorf("NVFP4 / removed file types")
	}
}

func TestFileTypeOf(t *testing.T) {
	for typ, want := range map[ggml.Type]FileType{
		ggml.F32: AllF32, ggml.F16: MostlyF16, ggml.BF16: MostlyBF16, ggml.Q4_0: MostlyQ4_0,
		ggml.Q4_1: MostlyQ4_1, ggml.Q5_0: MostlyQ5_0, ggml.Q5_1: MostlyQ5_1, ggml.Q8_0: MostlyQ8_0,
		ggml.Q2_K: MostlyQ2_K, ggml.Q3_K: MostlyQ3_K_M, ggml.Q4_K: MostlyQ4_K_M, ggml.Q5_K: MostlyQ5_K_M,
		ggml.Q6_K: MostlyQ6_K, ggml.IQ4_NL: MostlyIQ4_NL, ggml.IQ4_XS: MostlyIQ4_XS, ggml.IQ3_S: MostlyIQ3_S,
		ggml.IQ2_S: MostlyIQ2_M,
	} {
		if got, ok := FileTypeOf(typ); !ok || got != want {
			t.Errorf("FileTypeOf(%v) = %v, %v; want %v", typ, got, ok, want)
		}
	}
	// Every type package ggml encodes has a file type (what general.file_type says of an
	// export of one type).
	for _, typ := range ggml.Types() {
		if _, ok := FileTypeOf(typ); typ.Codec() && !ok {
			t.Errorf("no file type for %v", typ)
		}
	}
	if _, ok := FileTypeOf(ggml.Q8_K); ok {
		t.Errorf("FileTypeOf(q8_K) found one")
	}
}

func TestUseMoreBits(t *testing.T) {
	// llama.cpp's use_more_bits for 12 and 32 layers, written out.
	for n, want := range map[int][]int{
		12: {0, 3, 6, 9, 10, 11},
		32: {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31},
		5:  {2, 4},
	} {
		var got []int
		for i := range n {
			if useMoreBits(i, n) {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("use_more_bits over %d layers: %v, want %v", n, got, want)
		}
	}
}

func TestOrderAndLayer(t *testing.T) {
	names := []string{"blk.10.attn_v.weight", "token_embd.weight", "blk.2.ffn_down.weight", "output.weight",
		"blk.2.attn_v.weight", "blk.x.weight", "output_norm.weight", "blk.-1.a", "blk.+3.b"}
	ts := make([]Tensor, len(names))
	for i, n := range names {
		ts[i] = Tensor{Name: n}
	}
	var got []string
	for _, i := range order(ts) {
		got = append(got, names[i])
	}
	// Block -1 (no block number, or "blk.-1.") first by name, then blocks 2, 3, 10.
	want := []string{"blk.-1.a", "blk.x.weight", "output.weight", "output_norm.weight", "token_embd.weight",
		"blk.2.attn_v.weight", "blk.2.ffn_down.weight", "blk.+3.b", "blk.10.attn_v.weight"}
	if !slices.Equal(got, want) {
		t.Errorf("order:\n got %v\nwant %v", got, want)
	}
}

func TestQuantized(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dims  []int
		leave bool
		want  bool
	}{
		{"blk.0.attn_q.weight", []int{256, 256}, false, true},
		{"blk.0.attn_norm.weight", []int{256}, false, false},
		{"blk.0.attn_q.weight", []int{256, 1}, false, false}, // one dimension for ggml
		{"blk.0.attn_q.weight", []int{256, 1, 4}, false, true},
		{"blk.0.attn_q.bias", []int{256, 2}, false, false},
		{"blk.0.ffn_gate_inp.weight", []int{256, 8}, false, false},
		{"blk.0.ffn_norm.weight", []int{256, 2}, false, false},
		{"output.weight", []int{256, 100}, false, true},
		{"output.weight", []int{256, 100}, true, false},
		{"token_embd.weight", []int{256, 100}, true, true},
		{"position_embd.weight", []int{256, 100}, false, false},
		{"rope_freqs.weight", []int{32}, false, false},
	} {
		if got := Quantized(tc.name, tc.dims, tc.leave); got != tc.want {
			t.Errorf("Quantized(%s, %v, %v) = %v", tc.name, tc.dims, tc.leave, got)
		}
	}
}

// llamaTensors lists a Llama model's tensors as llama.cpp's converter names them: n blocks,
// hidden size h, MLP size ff, kv rows, vocabulary v, with or without output.weight.
func llamaTensors(n, h, kv, ff, v int, tied bool) []Tensor {
	ts := []Tensor{{"token_embd.weight", []int{h, v}, ggml.F32}, {"output_norm.weight", []int{h}, ggml.F32}}
	if !tied {
		ts = append(ts, Tensor{"output.weight", []int{h, v}, ggml.F32})
	}
	for i := range n {
		p := fmt.Sprintf("blk.%d.", i)
		ts = append(ts,
			Tensor{p + "attn_norm.weight", []int{h}, ggml.F32},
			Tensor{p + "attn_q.weight", []int{h, h}, ggml.F32},
			Tensor{p + "attn_k.weight", []int{h, kv}, ggml.F32},
			Tensor{p + "attn_v.weight", []int{h, kv}, ggml.F32},
			Tensor{p + "attn_output.weight", []int{h, h}, ggml.F32},
			Tensor{p + "ffn_norm.weight", []int{h}, ggml.F32},
			Tensor{p + "ffn_gate.weight", []int{h, ff}, ggml.F32},
			Tensor{p + "ffn_up.weight", []int{h, ff}, ggml.F32},
			Tensor{p + "ffn_down.weight", []int{ff, h}, ggml.F32})
	}
	return ts
}

// typesOf returns the types by tensor name.
func typesOf(t *testing.T, m Model, ts []Tensor, o Options) map[string]ggml.Type {
	t.Helper()
	types, err := Types(m, ts, o)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]ggml.Type{}
	for i, x := range ts {
		out[x.Name] = types[i]
	}
	return out
}

// TestTypesByHand checks the rules on cases worked out by hand from llama-quant.cpp.
func TestTypesByHand(t *testing.T) {
	llama12 := Model{Arch: "llama", Layers: 12, Heads: 4, KVHeads: 2}
	ts := llamaTensors(12, 256, 128, 704, 4096, false)
	// Q4_K_M on llama-pd-11m's shapes: attn_v and ffn_down get Q6_K in layers 0, 3, 6, 9, 10,
	// 11 (use_more_bits); ffn_down's 704 columns then fall back from Q6_K to Q8_0 and from Q4_K
	// to Q5_0; output Q6_K; the untied token embedding the base Q4_K.
	got := typesOf(t, llama12, ts, Options{FileType: MostlyQ4_K_M})
	more := map[int]bool{0: true, 3: true, 6: true, 9: true, 10: true, 11: true}
	for i := range 12 {
		p := fmt.Sprintf("blk.%d.", i)
		wantV, wantDown := ggml.Q4_K, ggml.Q5_0
		if more[i] {
			wantV, wantDown = ggml.Q6_K, ggml.Q8_0
		}
		if got[p+"attn_v.weight"] != wantV || got[p+"ffn_down.weight"] != wantDown || got[p+"attn_q.weight"] != ggml.Q4_K ||
			got[p+"attn_norm.weight"] != ggml.F32 {
			t.Errorf("Q4_K_M block %d: attn_v %v, ffn_down %v, attn_q %v, attn_norm %v", i, got[p+"attn_v.weight"],
				got[p+"ffn_down.weight"], got[p+"attn_q.weight"], got[p+"attn_norm.weight"])
		}
	}
	if got["output.weight"] != ggml.Q6_K || got["token_embd.weight"] != ggml.Q4_K {
		t.Errorf("Q4_K_M output %v, token_embd %v", got["output.weight"], got["token_embd.weight"])
	}
	// Q3_K_M: attn_v Q5_K for the first two, Q4_K after; ffn_down Q5_K below n/16 = 0 (none),
	// Q4_K otherwise (→ Q5_0 for 704 columns); attn_output Q4_K.
	got = typesOf(t, llama12, ts, Options{FileType: MostlyQ3_K_M})
	for i := range 12 {
		p := fmt.Sprintf("blk.%d.", i)
		wantV := ggml.Q4_K
		if i < 2 {
			wantV = ggml.Q5_K
		}
		if got[p+"attn_v.weight"] != wantV || got[p+"ffn_down.weight"] != ggml.Q5_0 || got[p+"attn_output.weight"] != ggml.Q4_K ||
			got[p+"ffn_up.weight"] != ggml.Q3_K {
			t.Errorf("Q3_K_M block %d: %v %v %v %v", i, got[p+"attn_v.weight"], got[p+"ffn_down.weight"], got[p+"attn_output.weight"], got[p+"ffn_up.weight"])
		}
	}
	// Tied embeddings (no output.weight): the token embedding follows the output rules — Q6_K,
	// or Q8_0 when its 128-weight rows do not fit a 256-weight block; --pure gives it the base
	// type with the fallback (Q4_K → Q5_0).
	tied := llamaTensors(5, 128, 64, 352, 105, true)
	baby := Model{Arch: "llama", Layers: 5, Heads: 8, KVHeads: 4}
	if got := typesOf(t, baby, tied, Options{FileType: MostlyQ4_K_M}); got["token_embd.weight"] != ggml.Q8_0 {
		t.Errorf("tied Q4_K_M token_embd %v, want q8_0", got["token_embd.weight"])
	}
	if got := typesOf(t, baby, tied, Options{FileType: MostlyQ4_0}); got["token_embd.weight"] != ggml.Q8_0 || got["blk.0.attn_q.weight"] != ggml.Q4_0 {
		t.Errorf("tied Q4_0: token_embd %v (Q6_K falls back to q8_0), attn_q %v", got["token_embd.weight"], got["blk.0.attn_q.weight"])
	}
	if got := typesOf(t, baby, tied, Options{FileType: MostlyQ4_K_M, Pure: true}); got["token_embd.weight"] != ggml.Q5_0 || got["blk.4.attn_v.weight"] != ggml.Q5_0 {
		t.Errorf("pure Q4_K: token_embd %v, attn_v %v, want q5_0", got["token_embd.weight"], got["blk.4.attn_v.weight"])
	}
	// Overrides win without a fallback; the output override reaches a tied embedding through
	// the output rules (with the fallback).
	q4 := ggml.Q4_K
	q80 := ggml.Q8_0
	got = typesOf(t, llama12, ts, Options{FileType: MostlyQ2_K, TokenEmbeddingType: &q80, OutputTensorType: &q4})
	if got["token_embd.weight"] != ggml.Q8_0 || got["output.weight"] != ggml.Q4_K || got["blk.0.attn_v.weight"] != ggml.Q3_K ||
		got["blk.0.ffn_down.weight"] != ggml.Q4_0 || got["blk.0.attn_output.weight"] != ggml.Q3_K || got["blk.0.attn_q.weight"] != ggml.Q2_K {
		t.Errorf("Q2_K with overrides: %v", got)
	}
	if got := typesOf(t, baby, tied, Options{FileType: MostlyQ6_K, OutputTensorType: &q4}); got["token_embd.weight"] != ggml.Q5_0 {
		t.Errorf("tied with an output override: token_embd %v, want q5_0", got["token_embd.weight"])
	}
	// Grouped-query factor 4 and the 70B type.
	gqa4 := Model{Arch: "llama", Layers: 80, Heads: 64, KVHeads: 8}
	gqa4.Is70B = Is70B(gqa4.Arch, gqa4.Layers, gqa4.Heads, gqa4.KVHeads, 0)
	big := llamaTensors(80, 256, 256, 256, 1000, false)
	got = typesOf(t, gqa4, big, Options{FileType: MostlyQ2_K})
	if !gqa4.Is70B || got["blk.5.attn_v.weight"] != ggml.Q5_K { // Q4_K for n_gqa ≥ 4, then Q5_K for 70B
		t.Errorf("70B Q2_K attn_v: %v (70B: %v)", got["blk.5.attn_v.weight"], gqa4.Is70B)
	}
	// Leave the output tensor alone; F16 keeps every matrix F16.
	if got := typesOf(t, llama12, ts, Options{FileType: MostlyQ4_K_M, LeaveOutputTensor: true}); got["output.weight"] != ggml.F32 {
		t.Errorf("--leave-output-tensor: output %v", got["output.weight"])
	}
	if got := typesOf(t, llama12, ts, Options{FileType: MostlyF16}); got["output.weight"] != ggml.F16 || got["blk.0.ffn_down.weight"] != ggml.F16 || got["output_norm.weight"] != ggml.F32 {
		t.Errorf("F16: %v", got)
	}
	// The result does not depend on the order the tensors are given in.
	rev := slices.Clone(ts)
	slices.Reverse(rev)
	a := typesOf(t, llama12, ts, Options{FileType: MostlyQ5_K_M})
	b := typesOf(t, llama12, rev, Options{FileType: MostlyQ5_K_M})
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("the order of the tensors changed the types")
	}
}

func TestTypesErrors(t *testing.T) {
	ts := llamaTensors(2, 256, 128, 256, 100, false)
	m := Model{Arch: "llama", Layers: 2, Heads: 4, KVHeads: 2}
	for _, tc := range []struct {
		m    Model
		ts   []Tensor
		o    Options
		want string
	}{
		{m, ts, Options{FileType: MostlyNVFP4}, "no base tensor type"},
		{Model{Arch: "llama"}, ts, Options{FileType: MostlyQ4_K_M}, "0 blocks"},
		{m, []Tensor{{"blk.0.attn_q.weight", []int{100, 4}, ggml.F32}}, Options{FileType: MostlyQ1_0}, "no fallback type"},
		{m, []Tensor{{"x", nil, ggml.F32}}, Options{FileType: MostlyQ4_K_M}, "no dimensions"},
		{Model{Arch: "llama", Layers: 2, Experts: 8}, []Tensor{{"ffn_down_exps.weight", []int{256, 4, 8}, ggml.F32}}, Options{FileType: MostlyQ4_K_M}, "failed to determine the block"},
		{Model{Arch: "llama", Layers: 2, Experts: 8}, []Tensor{{"blk.7.ffn_down_exps.weight", []int{256, 4, 8}, ggml.F32}}, Options{FileType: MostlyQ4_K_M}, "bad block 7"},
	} {
		if _, err := Types(tc.m, tc.ts, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.o.FileType, err, tc.want)
		}
	}
}

func TestNeedsImatrix(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    ggml.Type
		f    FileType
		want bool
	}{
		{"blk.0.attn_q.weight", ggml.Q2_K, MostlyQ2_K_S, true},
		{"blk.0.attn_q.weight", ggml.Q2_K, MostlyQ2_K, false},
		{"blk.0.attn_q.weight", ggml.IQ2_XXS, MostlyIQ2_XXS, true},
		{"token_embd.weight", ggml.IQ2_XXS, MostlyIQ2_XXS, false},
		{"output.weight", ggml.IQ1_S, MostlyIQ1_S, false},
		{"blk.0.attn_q.weight", ggml.IQ3_S, MostlyIQ3_M, false},
	} {
		if got := NeedsImatrix(tc.name, tc.t, tc.f); got != tc.want {
			t.Errorf("NeedsImatrix(%s, %v, %v) = %v", tc.name, tc.t, tc.f, got)
		}
	}
}
