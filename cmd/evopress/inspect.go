package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
			case strings.HasSuffix(dir, ".json") && !fileExists(filepath.Join(dir, "config.json")):
				return inspectProfile(cmd, dir, asJSON)
			case !fileExists(filepath.Join(dir, "config.json")):
				return fmt.Errorf("%s: not a model directory (no config.json), a level database (no manifest.json) or a profile (.json)", dir)
			}
			d, err := hf.Describe(dir)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), d)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: %s, %d layers, hidden %d, MLP %d, %d heads (%d kv) of %d, vocab %d, tied %v\n",
				dir, d.ModelType, d.Layers, d.HiddenSize, d.IntermediateSize, d.Heads, d.KVHeads, d.HeadDim, d.VocabSize, d.TiedEmbeddings)
			fmt.Fprintf(w, "%d tensors, %.2fM parameters %v in %v\nfingerprint %s\n", d.Tensors, float64(d.Parameters)/1e6, d.DTypes, d.Files, d.Fingerprint)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
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
		fmt.Fprintf(w, "database %s (fingerprint %.16s…)\n", p.DatabaseDir(""), p.DB.Fingerprint)
	}
	if p.Fitness != nil {
		fmt.Fprintf(w, "fitness %.5f\n", *p.Fitness)
	}
	counts := map[int]int{}
	for _, l := range p.Levels {
		counts[l]++
	}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(w, "  level %d: %d units\n", k, counts[k])
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
