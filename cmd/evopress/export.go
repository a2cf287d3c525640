package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/export"
	"github.com/evopress/evopress/profile"
)

type exportOptions struct {
	model, profile, db  string
	format, typ, out    string
	packed, force, json bool
	shardMB             int64
}

func newExportCmd() *cobra.Command {
	var o exportOptions
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export a profile as a Hugging Face model or GGUF",
		Long: `export applies a compression profile to a model and writes the result for other tools.

--format hf writes a Hugging Face model directory (config.json, safetensors in the model's dtype,
tokenizer files, evopress.json with the profile and its provenance) that transformers loads with
AutoModelForCausalLM.from_pretrained(DIR). Blocks with both sub-blocks dropped are removed; a block
with one dropped sub-block keeps its shape with o_proj or down_proj zeroed (exactly equivalent).
Sparse profiles are written as dense tensors with their zeros, quant profiles as dequantized
weights, or with --packed as GPTQ tensors (qweight, qzeros, scales, g_idx) whose
quantization_config carries the per-module bit-widths (GPTQModel "dynamic").

--format gguf writes a GGUF v3 file for llama.cpp and ollama (llama architecture, the tokenizer,
weight matrices in --type f32, f16 or q8_0; norms stay F32).

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
	f.StringVar(&o.profile, "profile", "", "compression profile (JSON) to apply (required)")
	f.StringVar(&o.db, "db", "", "level database for sparse and quant profiles (default: the profile's db.path)")
	f.StringVar(&o.format, "format", "", "output format: hf or gguf (required)")
	f.StringVar(&o.typ, "type", "", "GGUF weight type: f32, f16 (default) or q8_0")
	f.BoolVar(&o.packed, "packed", false, "quant profiles, hf format: write GPTQ-packed tensors")
	f.StringVar(&o.out, "out", "", "output directory (hf) or file (gguf) (required)")
	f.BoolVar(&o.force, "force", false, "replace an earlier evopress export at --out")
	f.Int64Var(&o.shardMB, "shard-mb", export.DefaultShardBytes>>20, "hf format: largest safetensors shard in MiB")
	f.BoolVar(&o.json, "json", false, "print one JSON object")
	return cmd
}

func runExport(cmd *cobra.Command, o exportOptions) error {
	for _, req := range []struct{ flag, val string }{{"--model", o.model}, {"--profile", o.profile}, {"--format", o.format}, {"--out", o.out}} {
		if req.val == "" {
			return fmt.Errorf("export: %s is required", req.flag)
		}
	}
	if o.shardMB <= 0 {
		return fmt.Errorf("export: --shard-mb must be positive, got %d", o.shardMB)
	}
	p, err := profile.Read(o.profile, "")
	if err != nil {
		return err
	}
	res, err := export.Run(export.Options{ModelDir: o.model, Profile: p, ProfilePath: o.profile, DBDir: o.db, Format: o.format,
		Type: o.typ, Packed: o.packed, Out: o.out, Force: o.force, ShardBytes: o.shardMB << 20, Warn: cmd.ErrOrStderr()})
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
