package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportGGUFFlags exports the dense model (no --profile) with --ftype and an output
// override, and checks that bad GGUF type flags are reported by their flag names.
func TestExportGGUFFlags(t *testing.T) {
	model := smallModel(t)
	tmp := t.TempDir()
	o, err := run(t, "export", "--model", model, "--format", "gguf", "--ftype", "q4_k_m", "--output-tensor-type", "q8_0",
		"--out", filepath.Join(tmp, "m.gguf"), "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	var res struct {
		FileType    string         `json:"file_type"`
		TensorTypes map[string]int `json:"tensor_types"`
		Blocks      int            `json:"blocks"`
	}
	if err := json.Unmarshal([]byte(o), &res); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	// Five blocks: Q4_K_M gives attn_v and ffn_down Q6_K in blocks 2 and 4 (use_more_bits),
	// ffn_down's 704 columns turn that into Q8_0; output.weight is Q8_0 as asked.
	if res.FileType != "Q4_K_M" || res.TensorTypes["q8_0"] != 3 || res.TensorTypes["q6_K"] != 2 || res.Blocks != 5 {
		t.Errorf("export result %+v", res)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ftype", "Q9"}, `--ftype "Q9": not one of llama-quantize's file types`},
		{[]string{"--ftype", "Q4_K_M", "--type", "q4_k"}, "--ftype Q4_K_M and the single weight type q4_k exclude each other"},
		{[]string{"--type", "iq2_xxs"}, `--type "iq2_xxs": want a type evopress encodes`},
		{[]string{"--imatrix", filepath.Join(tmp, "none.dat")}, "--imatrix " + filepath.Join(tmp, "none.dat")},
		{[]string{"--token-embedding-type", "q4"}, `--token-embedding-type "q4"`},
		{[]string{"--format", "hf", "--ftype", "Q4_K_M"}, "--ftype Q4_K_M applies to the gguf format only"},
	} {
		args := append([]string{"export", "--model", model, "--format", "gguf", "--out", filepath.Join(tmp, "x")}, tc.args...)
		if o, err := run(t, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q\n%s", tc.args, err, tc.want, o)
		}
	}
}
