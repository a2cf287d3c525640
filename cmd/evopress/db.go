package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/calib"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/pipeline"
)

// dbBuildOptions are the flags of `evopress db build sparse|quant`.
type dbBuildOptions struct {
	req                 pipeline.DBRequest
	blockSize, seqLevel int
	percDamp            float64
	json                bool
}

func newDBCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Build and check level databases (SparseGPT/Wanda/magnitude sparsity levels, GPTQ/RTN bit-widths)",
		Long: `A level database holds, for every linear layer of the model, the layer compressed to each level:
sparsities on the EvoPress grid (db build sparse) or bit-widths (db build quant), packed (bitmask and
values; bit-packed codes with per-group float16 scales and zero points), with a manifest recording
the model fingerprint, calibration data, method, each level's exact sparsity or bits per weight,
its normalised layer error and the file's SHA-256. Sparse and quant searches, baselines, ppl and
export read it.`,
		Args: cobra.NoArgs,
	}
	build := &cobra.Command{
		Use:   "build sparse|quant|gguf",
		Short: "Build a level database",
		Args:  cobra.NoArgs,
	}
	build.AddCommand(newDBBuildCmd(db.ModeSparse), newDBBuildCmd(db.ModeQuant), newDBBuildCmd(db.ModeGGUF))
	cmd.AddCommand(build, newDBVerifyCmd())
	return cmd
}

func newDBBuildCmd(mode string) *cobra.Command {
	var o dbBuildOptions
	cmd := &cobra.Command{Args: cobra.NoArgs}
	if mode == db.ModeSparse {
		cmd.Use = "sparse --target S --out DIR"
		cmd.Short = "Build a sparsity level database for one target sparsity"
		cmd.Long = `Builds the unstructured-sparsity levels of every linear layer. Level ℓ of a layer of numel weights
prunes exactly round(S·numel) + ℓ·D weights, D (--weights-diff) being the same for every layer, so a
profile whose levels sum to zero keeps the uniform number of non-zeros; levels run over
[−min(floor(S/δ), L), +min(floor((1−S)/δ), L)] with δ = D/numel and L = --levels. The database
serves the target S it was built for. Sparse levels store a bitmask and the kept values as the
narrowest of bf16, f16 or f32 that holds them exactly (SparseGPT's updated weights need f32;
magnitude and Wanda keep a bf16 model's values in bf16).`
	} else if mode == db.ModeGGUF {
		cmd.Use = "gguf --out DIR"
		cmd.Short = "Build a database of llama.cpp tensor types (the ggml blocks a GGUF file holds)"
		cmd.Long = `Builds every linear layer in each of the --types llama.cpp encodes (ggml's blocks, byte for byte
what llama-quantize writes), or in the type llama-quantize falls back to where a layer's rows do
not fit the type's blocks (Q2_K, Q3_K → Q4_0; Q4_K → Q5_0; Q5_K → Q5_1; Q6_K → Q8_0), once per
distinct type. The default types, q2_k,q3_k,q4_k,q5_k,q6_k,q8_0, are those llama.cpp's own Q2_K … Q6_K
mixes are made of (2.625 … 8.5 bits per weight). Each level records its bits per weight
(bytes·8/weights, block scales included) and normalised error on the calibration Hessians. The
quantizers use an importance matrix: --imatrix FILE (llama-imatrix's or evopress imatrix's), or by
default one computed from this build's calibration pass and written into the database as
imatrix.gguf (give it to llama-quantize --imatrix for a like-for-like comparison); --imatrix none
for none. "search quant" and "baseline quant" read it with a target in bits per weight or a file
size.`
	} else {
		cmd.Use = "quant --out DIR"
		cmd.Short = "Build a bit-width level database"
		cmd.Long = `Builds the quantized levels (one per bit-width) of every linear layer: asymmetric min–max grids per
output row and group of --group-size input columns, codes bit-packed at the level's width, scales
in float16 and zero points at the level's width (and g_idx with --act-order). With --sequential,
as in the reference, each block is calibrated on the outputs of the earlier blocks quantized to
--sequential-bits.`
	}
	cmd.Long += `

Calibration: the --calib text (default: the embedded pd-english calib.txt) is tokenized without
special tokens and cut into chunks of --seq-len tokens; the database uses --calib-tokens/--seq-len
of them (default 131072 tokens = 512 chunks of 256), drawn without repetition by a generator seeded
with --seed (0 or more than the file: every chunk). H = 2XᵀX/N is accumulated per layer block by
block in float32. Progress goes to stderr. Writes are atomic and the manifest is rewritten after
every layer: rerunning an interrupted build with the same settings resumes it, recomputing only
the missing layers.`
	f := cmd.Flags()
	r, b := &o.req, &o.req.Build
	modelFlag(f, &r.ModelDir, "")
	f.StringVar(&r.CalibFile, "calib", "", "calibration text file (default: the embedded pd-english calib.txt)")
	f.StringVar(&b.Out, "out", "", "database directory (required)")
	f.IntVar(&r.SeqLen, "seq-len", pipeline.DefaultSeqLen, "tokens per calibration sequence")
	f.IntVar(&r.CalibTokens, "calib-tokens", pipeline.DefaultCalibTokens, "calibration tokens (0: the whole file)")
	f.Uint64Var(&r.Seed, "seed", 0, "seed of the choice of calibration sequences")
	f.IntVar(&b.Batch, "batch", calib.DefaultBatch, "sequences per calibration forward batch")
	if mode != db.ModeGGUF {
		f.BoolVar(&b.Sequential, "sequential", false, "calibrate each block on the compressed earlier blocks")
	}
	f.BoolVar(&b.Force, "force", false, "replace a database with other settings in --out (its level files only) instead of failing")
	f.BoolVar(&o.json, "json", false, "print one JSON object")
	if mode == db.ModeSparse {
		f.StringVar(&b.Method, "method", db.MethodSparseGPT, "compressor: sparsegpt, wanda or magnitude")
		f.Float64Var(&b.Sparse.Target, "target", 0, "target sparsity S in (0, 1) (required)")
		f.IntVar(&b.Sparse.Levels, "levels", 8, "levels each way, L")
		f.Int64Var(&b.Sparse.WeightsDiff, "weights-diff", 0, "weights per level D (0: the reference's floor(0.5·min(S, 1−S)/L·hidden²))")
		f.IntVar(&o.seqLevel, "sequential-level", 0, "level that feeds later blocks with --sequential")
		atLeast(f, 0, "levels", "weights-diff")
		f.StringVar(&b.Sparse.Values, "values", "", "round kept weights to f16 or bf16 (lossy, like the reference's float16 copies; default: lossless)")
	} else if mode == db.ModeGGUF {
		f.StringSliceVar(&b.GGUF.Types, "types", db.DefaultGGUFTypes(), "ggml types (comma-separated; q4_0, q4_1, q5_0, q5_1, q8_0, q2_k … q6_k, iq4_nl, iq4_xs, f16, bf16)")
		f.StringVar(&r.ImatrixFile, "imatrix", "", "importance matrix file (llama.cpp's GGUF or .dat format), or none (default: computed from the calibration pass)")
	} else {
		f.StringVar(&b.Method, "method", db.MethodGPTQ, "compressor: gptq or rtn")
		f.IntSliceVar(&b.Quant.Bits, "bits", []int{2, 3, 4, 5, 6}, "bit-widths (comma-separated, 1..8)")
		f.IntVar(&b.Quant.GroupSize, "group-size", 128, "input columns per scale/zero group (0: one group per row)")
		f.BoolVar(&b.Quant.ActOrder, "act-order", false, "GPTQ: quantize columns by decreasing Hessian diagonal (stores g_idx)")
		f.IntVar(&o.seqLevel, "sequential-bits", 3, "bit-width that feeds later blocks with --sequential")
		atLeast(f, 0, "group-size")
		atLeast(f, 1, "sequential-bits")
	}
	if mode != db.ModeGGUF {
		f.Float64Var(&o.percDamp, "perc-damp", 0.01, "relative Hessian damping")
		f.IntVar(&o.blockSize, "block-size", 128, "columns per lazy-update block")
		atLeast(f, 1, "block-size")
	}
	atLeast(f, 2, "seq-len")
	atLeast(f, 0, "calib-tokens")
	atLeast(f, 1, "batch")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return runDBBuild(cmd, mode, o) }
	return cmd
}

func runDBBuild(cmd *cobra.Command, mode string, o dbBuildOptions) error {
	r, b := &o.req, &o.req.Build
	if b.Out == "" {
		return fmt.Errorf("--out: the database directory is required")
	}
	b.Mode = mode
	if b.Sequential {
		b.SequentialLevel = o.seqLevel
	}
	switch mode {
	case db.ModeSparse:
		if !(b.Sparse.Target > 0 && b.Sparse.Target < 1) {
			return fmt.Errorf("--target %v: a sparse database needs a target sparsity in (0, 1)", b.Sparse.Target)
		}
		b.Sparse.BlockSize, b.Sparse.PercDamp = o.blockSize, o.percDamp
	case db.ModeQuant:
		if len(b.Quant.Bits) == 0 {
			return fmt.Errorf("--bits: no bit-widths given")
		}
		for _, n := range b.Quant.Bits {
			if n < 1 || n > 8 {
				return fmt.Errorf("--bits: %d is not a bit-width in 1..8", n)
			}
		}
		b.Quant.BlockSize, b.Quant.PercDamp = o.blockSize, o.percDamp
	case db.ModeGGUF:
		b.Method = db.MethodGGML
	}
	r.Progress = dbProgress(cmd)
	start := time.Now()
	res, err := pipeline.BuildDB(cmd.Context(), o.req)
	if err != nil {
		return err
	}
	prep := time.Since(start) - time.Duration(res.Seconds*float64(time.Second))
	rows := db.LevelSummary(res.Manifest)
	if o.json {
		out := map[string]any{
			"out": b.Out, "mode": mode, "method": b.Method, "fingerprint": res.Fingerprint,
			"model": res.Manifest.Model.Path, "model_fingerprint": res.Manifest.Model.Fingerprint,
			"calibration": res.Manifest.Calibration, "layers": len(res.Manifest.Layers),
			"computed": len(res.Computed), "reused": len(res.Reused),
			"seconds": res.Seconds, "compress_seconds": res.CompressSeconds, "load_seconds": prep.Seconds(),
			"bytes": res.Bytes, "weights": res.Weights, "levels": rows,
		}
		return printJSON(cmd.OutOrStdout(), out)
	}
	w := cmd.OutOrStdout()
	c := res.Manifest.Calibration
	fmt.Fprintf(w, "database   %s (%s, %s), fingerprint %.16s…\n", b.Out, mode, b.Method, res.Fingerprint)
	fmt.Fprintf(w, "model      %s (%d layers, %d weights)\n", res.Manifest.Model.Path, len(res.Manifest.Layers), res.Weights)
	fmt.Fprintf(w, "calibration %s: %d sequences × %d tokens of %d (seed %d)\n", c.Source, c.Sequences, c.SeqLen, c.FileTokens, c.Seed)
	fmt.Fprintf(w, "built      %d layers computed, %d reused, in %.1f s (%.1f s compressing, %.1f s loading)\n",
		len(res.Computed), len(res.Reused), res.Seconds, res.CompressSeconds, prep.Seconds())
	fmt.Fprintf(w, "size       %.1f MB on disk for %d levels per layer\n", float64(res.Bytes)/1e6, len(rows))
	fmt.Fprintf(w, "\n| level | %s | bits/weight | bytes/weight | dense fp16 | mean error |\n|---|---|---|---|---|---|\n",
		map[string]string{db.ModeSparse: "sparsity", db.ModeQuant: "bits", db.ModeGGUF: "type"}[mode])
	for _, r := range rows {
		v := fmt.Sprintf("%.4g", r.Value)
		if r.Type != "" {
			v = r.Type
		}
		fmt.Fprintf(w, "| %d | %s | %.3f | %.3f | 2.000 | %.4g |\n", r.Level, v, r.Bits, r.BytesPerWeight, r.MeanError)
	}
	return nil
}

// dbProgress prints build progress on stderr: a line per layer, and on a terminal the
// calibration passes rewritten in place.
func dbProgress(cmd *cobra.Command) func(db.Event) {
	w := cmd.ErrOrStderr()
	term := isTerminal(w)
	start := time.Now()
	return func(e db.Event) {
		el := time.Since(start).Round(time.Second)
		switch e.Phase {
		case "calib":
			if term {
				fmt.Fprintf(w, "\rdb: block %d: %d/%d calibration sequences (%s)   ", e.Block, e.Done, e.Total, el)
			} else if e.Done == e.Total {
				fmt.Fprintf(w, "db: block %d: %d calibration sequences through the block (%s elapsed)\n", e.Block, e.Total, el)
			}
		case "reuse":
			fmt.Fprintf(w, "db: [%d/%d] %s: %d levels kept from the earlier build\n", e.Done, e.Total, e.Layer, e.Levels)
		case "layer":
			if term {
				fmt.Fprint(w, "\r\033[K")
			}
			fmt.Fprintf(w, "db: [%d/%d] %s: %d levels in %.2f s (%s elapsed)\n", e.Done, e.Total, e.Layer, e.Levels, e.Seconds, el)
		}
	}
}

func newDBVerifyCmd() *cobra.Command {
	var modelDir string
	var asJSON, useModel bool
	cmd := &cobra.Command{
		Use:   "verify DIR",
		Short: "Check a level database: checksums, decodes, exact sparsities, quantization grids",
		Long: `verify reads every level file of the database in DIR, checks its SHA-256 against the manifest,
decodes it and checks that a sparse level holds exactly the recorded number of zeros and that a
quant level's codes, scales and zero points are valid. With --model (or --check-model for the
embedded default) it also checks that the database was built for that model.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			var lm *pipeline.Loaded
			if modelDir != "" || useModel {
				var err error
				if lm, err = pipeline.LoadModel(modelDir); err != nil {
					return err
				}
			}
			d, files, err := pipeline.VerifyDB(args[0], lm)
			if err != nil {
				return err
			}
			m := d.Manifest()
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"ok": true, "dir": args[0], "mode": m.Mode, "method": m.Method,
					"fingerprint": d.Fingerprint(), "model_fingerprint": m.Model.Fingerprint, "layers": len(m.Layers), "files": files,
					"seconds": time.Since(start).Seconds(), "levels": db.LevelSummary(m)})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s database (%s) of %d layers, %d level files: all checksums and decodes OK (%.1f s)\n",
				args[0], m.Mode, m.Method, len(m.Layers), files, time.Since(start).Seconds())
			return nil
		},
	}
	modelFlag(cmd.Flags(), &modelDir, "check that the database was built for this model directory")
	cmd.Flags().BoolVar(&useModel, "check-model", false, "check against the embedded default model (when --model is not given)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
