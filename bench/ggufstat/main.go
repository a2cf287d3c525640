// Command ggufstat prints what GGUF files hold, for bench/ggufresults.sh: each file's size, the
// types of its token embedding and output tensor, and its linear layers' ggml types and bits per
// weight (bytes·8/weights of the blocks' attention and MLP projections, block scales included).
//
//	go run ./bench/ggufstat FILE.gguf...        one JSON object per file and line
//	go run ./bench/ggufstat -layers FILE.gguf   with every linear layer's type
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"

	"github.com/evopress/evopress/gguf"
)

// Stat is what one GGUF file holds.
type Stat struct {
	// File is the path given; Bytes the file's size.
	File  string `json:"file"`
	Bytes int64  `json:"bytes"`
	// FileType is general.file_type (llama.cpp's llama_ftype; -1 when absent).
	FileType int64 `json:"file_type"`
	// TokenEmbeddingType and OutputTensorType are the ggml types of token_embd.weight and
	// output.weight ("" when the file has no output tensor: a tied embedding).
	TokenEmbeddingType string `json:"token_embedding_type"`
	OutputTensorType   string `json:"output_tensor_type"`
	// LinearWeights and LinearBytes count the blocks' linear layers (attn_q, attn_k, attn_v,
	// attn_output, ffn_gate, ffn_up, ffn_down); LinearBPW is LinearBytes·8/LinearWeights.
	LinearWeights int64   `json:"linear_weights"`
	LinearBytes   int64   `json:"linear_bytes"`
	LinearBPW     float64 `json:"linear_bpw"`
	// Types counts the linear layers per ggml type.
	Types map[string]int `json:"types"`
	// Layers is every linear layer's type by tensor name (with -layers).
	Layers map[string]string `json:"layers,omitempty"`
}

// linear matches the GGUF names of a block's linear layers.
var linear = regexp.MustCompile(`^blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$`)

// stat reads the GGUF file at path.
func stat(path string, layers bool) (*Stat, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := &Stat{File: path, Bytes: st.Size(), FileType: -1, Types: map[string]int{}}
	if v, ok := f.Lookup("general.file_type"); ok {
		if u, isU32 := v.(uint32); isU32 {
			s.FileType = int64(u)
		}
	}
	if layers {
		s.Layers = map[string]string{}
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		switch {
		case t.Name == "token_embd.weight":
			s.TokenEmbeddingType = t.Type.String()
		case t.Name == "output.weight":
			s.OutputTensorType = t.Type.String()
		case linear.MatchString(t.Name):
			s.LinearWeights += t.Elements()
			s.LinearBytes += t.Size
			s.Types[t.Type.String()]++
			if layers {
				s.Layers[t.Name] = t.Type.String()
			}
		}
	}
	if s.TokenEmbeddingType == "" {
		return nil, fmt.Errorf("%s: no token_embd.weight tensor (not a llama-architecture GGUF?)", path)
	}
	if s.LinearWeights == 0 {
		return nil, fmt.Errorf("%s: no linear layers (blk.N.attn_q.weight …)", path)
	}
	s.LinearBPW = float64(s.LinearBytes) * 8 / float64(s.LinearWeights)
	return s, nil
}

func main() {
	layers := flag.Bool("layers", false, "also list every linear layer's type")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: ggufstat [-layers] FILE.gguf...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	for _, p := range flag.Args() {
		s, err := stat(p, *layers)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ggufstat:", err)
			os.Exit(1)
		}
		if err := enc.Encode(s); err != nil {
			fmt.Fprintln(os.Stderr, "ggufstat:", err)
			os.Exit(1)
		}
	}
}
