package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/profile"
)

func newInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect PATH",
		Short: "Show what a model directory, level database or profile holds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			switch {
			case fileExists(filepath.Join(dir, "manifest.json")):
				return inspectDB(cmd, dir, asJSON)
			case strings.HasSuffix(dir, ".json") && !isDir(dir):
				return inspectProfile(cmd, dir, asJSON)
			case !fileExists(filepath.Join(dir, "config.json")):
				return fmt.Errorf("%s: not a model directory (no config.json), a level database (no manifest.json) or a profile (.json)", dir)
			}
			cfg, err := hf.LoadConfig(dir)
			if err != nil {
				return err
			}
			ck, err := hf.OpenCheckpoint(dir)
			if err != nil {
				return err
			}
			defer ck.Close()
			params := 0
			dtypes := map[string]int{}
			for _, n := range ck.Names() {
				info, _ := ck.Info(n)
				params += info.Numel()
				dtypes[string(info.DType)] += info.Numel()
			}
			out := map[string]any{
				"path": dir, "model_type": cfg.ModelType, "layers": cfg.NumHiddenLayers,
				"hidden_size": cfg.HiddenSize, "intermediate_size": cfg.IntermediateSize,
				"heads": cfg.NumAttentionHeads, "kv_heads": cfg.NumKeyValueHeads, "head_dim": cfg.HeadDim,
				"vocab_size": cfg.VocabSize, "tied_embeddings": cfg.TieWordEmbeddings,
				"rope_theta": cfg.RopeTheta, "parameters": params, "dtypes": dtypes,
				"tensors": ck.Len(), "files": ck.Files(), "fingerprint": ck.Fingerprint(),
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: %s, %d layers, hidden %d, MLP %d, %d heads (%d kv) of %d, vocab %d, tied %v\n",
				dir, cfg.ModelType, cfg.NumHiddenLayers, cfg.HiddenSize, cfg.IntermediateSize, cfg.NumAttentionHeads,
				cfg.NumKeyValueHeads, cfg.HeadDim, cfg.VocabSize, cfg.TieWordEmbeddings)
			fmt.Fprintf(w, "%d tensors, %.2fM parameters %v in %v\nfingerprint %s\n", ck.Len(), float64(params)/1e6, dtypes, ck.Files(), ck.Fingerprint())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func inspectDB(cmd *cobra.Command, dir string, asJSON bool) error {
	d, err := db.Open(dir)
	if err != nil {
		return err
	}
	man := d.Manifest()
	if asJSON {
		return printJSON(cmd.OutOrStdout(), map[string]any{"path": dir, "fingerprint": d.Fingerprint(), "manifest": man})
	}
	w := cmd.OutOrStdout()
	var levels, bytes int64
	for _, l := range man.Layers {
		for _, v := range l.Levels {
			levels++
			bytes += v.Bytes
		}
	}
	fmt.Fprintf(w, "%s: %s database (%s), %d layers, %d levels, %.1f MB, complete %v\n", dir, man.Mode, man.Method, len(man.Layers), levels, float64(bytes)/1e6, man.Complete)
	fmt.Fprintf(w, "model %s (fingerprint %.16s…), calibration %s: %d × %d tokens\n", man.Model.Path, man.Model.Fingerprint, man.Calibration.Source, man.Calibration.Sequences, man.Calibration.SeqLen)
	if man.Sparse != nil {
		fmt.Fprintf(w, "target sparsity %v, %d levels each way, weights diff %d\n", man.Sparse.Target, man.Sparse.Levels, man.Sparse.WeightsDiff)
	}
	if man.Quant != nil {
		fmt.Fprintf(w, "bits %v, group size %d, act-order %v\n", man.Quant.Bits, man.Quant.GroupSize, man.Quant.ActOrder)
	}
	fmt.Fprintf(w, "fingerprint %s\n", d.Fingerprint())
	return nil
}

func inspectProfile(cmd *cobra.Command, path string, asJSON bool) error {
	p, err := profile.Read(path, "")
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), p)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s: %s profile, target %v, method %q, %d units\n", path, p.Mode, p.Target, p.Method, len(p.Levels))
	if p.Model != nil {
		fmt.Fprintf(w, "model %s (fingerprint %.16s…)\n", p.Model.Path, p.Model.Fingerprint)
	}
	if p.DB != nil {
		fmt.Fprintf(w, "database %s (fingerprint %.16s…)\n", p.DB.Path, p.DB.Fingerprint)
	}
	if p.Fitness != nil {
		fmt.Fprintf(w, "fitness %.5f\n", *p.Fitness)
	}
	counts := map[int]int{}
	for _, l := range p.Levels {
		counts[l]++
	}
	keys := make([]int, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  level %d: %d units\n", k, counts[k])
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
