package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/tokenizer"
)

func newTokenizeCmd() *cobra.Command {
	var path, cases, text string
	var addSpecial, asJSON bool
	cmd := &cobra.Command{
		Use:   "tokenize",
		Short: "Encode strings with a Hugging Face tokenizer.json",
		Long: `tokenize encodes each string of --cases (a JSON array of strings), or the single --text, with the
tokenizer at --tokenizer (a tokenizer.json file or a folder holding it and, optionally,
tokenizer_config.json). No special tokens are added unless --add-special; special tokens written in
the text are matched as Hugging Face does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return fmt.Errorf("--tokenizer is required")
			}
			tok, err := tokenizer.Load(path)
			if err != nil {
				return err
			}
			var inputs []string
			switch {
			case cases != "" && text != "":
				return fmt.Errorf("give --cases or --text, not both")
			case cases != "":
				raw, err := os.ReadFile(cases)
				if err != nil {
					return err
				}
				if err := data.CheckUTF8(raw, filepath.Clean(cases)); err != nil {
					return err // as ppl does: JSON decoding would turn invalid bytes into U+FFFD
				}
				if err := json.Unmarshal(raw, &inputs); err != nil {
					return fmt.Errorf("%s: want a JSON array of strings: %v", filepath.Clean(cases), err)
				}
			case cmd.Flags().Changed("text"):
				if err := data.CheckUTF8([]byte(text), "--text"); err != nil {
					return err
				}
				inputs = []string{text}
			default:
				return fmt.Errorf("give --cases FILE.json or --text STRING")
			}
			ids := make([][]int, len(inputs))
			for i, s := range inputs {
				ids[i] = tok.Encode(s, addSpecial)
				if ids[i] == nil {
					ids[i] = []int{}
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"ids": ids})
			}
			w := cmd.OutOrStdout()
			for i, seq := range ids {
				fmt.Fprintf(w, "%d tokens: %v\n", len(seq), seq)
				for _, id := range seq {
					fmt.Fprintf(w, "  %6d %q\n", id, tok.Token(id))
				}
				if i < len(ids)-1 {
					fmt.Fprintln(w)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&path, "tokenizer", "", "tokenizer.json file or a folder holding it")
	f.StringVar(&cases, "cases", "", "JSON file: an array of strings to encode")
	f.StringVar(&text, "text", "", "one string to encode")
	f.BoolVar(&addSpecial, "add-special", false, "add the tokenizer's special tokens (BOS/EOS) as tokenizer_config.json says")
	f.BoolVar(&asJSON, "json", false, `print {"ids": [[...], ...]}`)
	return cmd
}
