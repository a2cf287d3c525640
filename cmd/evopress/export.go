package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/export"
	"github.com/evopress/evopress/profile"
)

type exportOptions struct {
	model, profile, db     string
	format, typ, out       string
	ftype, imatrix         string
	tokEmbType, outputType string
	packed, force, json    bool
	shardMB                int64
}

func newExportCmd() *cobra.Command {
	var o exportOptions
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export a model, or a profile applied to it, as a Hugging Face model or GGUF",
		Long: `export applies a compression profile to a model (without --profile: the dense model) and writes
the result for other tools.

--format hf writes a Hugging Face model directory (config.json, safetensors in the model's dtype,
tokenizer files, evopress.json with the profile and its provenance) that transformers loads with
AutoModelForCausalLM.from_pretrained(DIR). Blocks with both sub-blocks dropped are removed; a block
with one dropped sub-block keeps its shape with o_proj or down_proj zeroed (exactly equivalent).
Sparse profiles are written as dense tensors with their zeros, quant profiles as dequantized
weights, or with --packed as GPTQ tensors (qweight, qzeros, scales, g_idx) whose
quantization_config carries the per-module bit-widths (GPTQModel "dynamic").

--format gguf writes a GGUF v3 file for llama.cpp and ollama (llama architecture, the tokenizer;
norms stay F32). The weight matrices, token embedding and output head included, are written in one
--type (default f16; f32, bf16, or any block type: q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k
q6_k iq4_nl iq4_xs) as llama-quantize --pure does, a matrix whose rows do not fit the type's
blocks falling back as in llama.cpp (q4_k → q5_0 …); or with --ftype (Q2_K, Q3_K_S, Q3_K_M,
Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, Q4_0, Q8_0, IQ4_XS …) in the types llama-quantize's
rules give each tensor for that file type. --imatrix weights the quantization with an importance
matrix (evopress imatrix or llama-imatrix; legacy .dat too), and --token-embedding-type and
--output-tensor-type set those two tensors as llama-quantize's flags do (default: --type itself,
or the --ftype rules). From the same weights and importance matrix the tensors are byte for byte
those llama-quantize writes from evopress's --type f32 export.

The output is written to a temporary path and renamed; an existing output is replaced only with
--force, and only when it is an earlier evopress export (anything else is refused, as is an --out
that is, is inside or contains the model directory, the profile or the level database).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runExport(cmd, o)
		},
	}
	f := cmd.Flags()
	modelFlag(f, &o.model, "Hugging Face model directory (required)")
	f.StringVar(&o.profile, "profile", "", "compression profile (JSON) to apply (default: none, the dense model)")
	f.StringVar(&o.db, "db", "", "level database for sparse and quant profiles (default: the profile's db.path)")
	f.StringVar(&o.format, "format", "", "output format: hf or gguf (required)")
	f.StringVar(&o.typ, "type", "", "GGUF: one type for every weight matrix, as llama-quantize --pure (f32, f16 (default), bf16, q8_0, q4_k, iq4_xs …)")
	f.StringVar(&o.ftype, "ftype", "", "GGUF: llama.cpp file type whose per-tensor rules to apply (Q4_K_M, Q3_K_S, Q6_K …; excludes --type)")
	f.StringVar(&o.imatrix, "imatrix", "", "GGUF: importance matrix for the quantized types (llama.cpp's GGUF or .dat format)")
	f.StringVar(&o.tokEmbType, "token-embedding-type", "", "GGUF: type of token_embd.weight (default: as llama-quantize, see above)")
	f.StringVar(&o.outputType, "output-tensor-type", "", "GGUF: type of output.weight (default: as llama-quantize, see above)")
	f.BoolVar(&o.packed, "packed", false, "quant profiles, hf format: write GPTQ-packed tensors")
	f.StringVar(&o.out, "out", "", "output directory (hf) or file (gguf) (required)")
	f.BoolVar(&o.force, "force", false, "replace an earlier evopress export at --out")
	f.Int64Var(&o.shardMB, "shard-mb", export.DefaultShardBytes>>20, "hf format: largest safetensors shard in MiB")
	f.BoolVar(&o.json, "json", false, "print one JSON object")
	return cmd
}

func runExport(cmd *cobra.Command, o exportOptions) error {
	for _, req := range []struct{ flag, val string }{{"--model", o.model}, {"--format", o.format}, {"--out", o.out}} {
		if req.val == "" {
			return fmt.Errorf("export: %s is required", req.flag)
		}
	}
	if o.shardMB <= 0 {
		return fmt.Errorf("export: --shard-mb must be positive, got %d", o.shardMB)
	}
	var p *profile.Profile
	if o.profile != "" {
		var err error
		if p, err = profile.Read(o.profile, ""); err != nil {
			return err
		}
	}
	res, err := export.Run(export.Options{ModelDir: o.model, Profile: p, ProfilePath: o.profile, DBDir: o.db, Format: o.format,
		Type: o.typ, FileType: o.ftype, Imatrix: o.imatrix, TokenEmbeddingType: o.tokEmbType, OutputTensorType: o.outputType,
		Packed: o.packed, Out: o.out, Force: o.force, ShardBytes: o.shardMB << 20, Warn: cmd.ErrOrStderr()})
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(cmd.OutOrStdout(), res)
	}
	w := cmd.OutOrStdout()
	kind := res.Format
	if res.Type != "" {
		kind += " " + res.Type
	}
	fmt.Fprintf(w, "wrote %s (%s, %d files, %.2f MB): %d of %d blocks", res.Out, kind, len(res.Files), float64(res.Bytes)/1e6, res.Blocks, res.SourceBlocks)
	if len(res.Removed) > 0 {
		fmt.Fprintf(w, ", removed %v", res.Removed)
	}
	if len(res.ZeroedAttn) > 0 {
		fmt.Fprintf(w, ", attention zeroed in %v", res.ZeroedAttn)
	}
	if len(res.ZeroedMLP) > 0 {
		fmt.Fprintf(w, ", MLP zeroed in %v", res.ZeroedMLP)
	}
	fmt.Fprintln(w)
	return nil
}
