package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/hf"
)

func newInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect PATH",
		Short: "Show what a model directory holds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if !fileExists(filepath.Join(dir, "config.json")) {
				return fmt.Errorf("%s: no config.json (inspect understands Hugging Face model directories; profiles and databases come with the search and database commands)", dir)
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
