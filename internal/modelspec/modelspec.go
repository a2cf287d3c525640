// Package modelspec holds the architectures of published Llama-family checkpoints (their
// config.json values, tensor names and shapes, and how Hugging Face shards them), so that
// checkpoints of real shapes can be written (bench/mkcheckpoint) or reasoned about without
// downloading one (internal/memcheck's tests).
package modelspec

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Spec is a model architecture: the config.json values evopress reads and how Hugging Face
// shards its checkpoint.
type Spec struct {
	Name       string
	ModelType  string // llama, mistral, qwen2
	Hidden     int
	MLP        int
	Layers     int
	Heads      int
	KVHeads    int
	HeadDim    int // written to config.json only when the model's config has it
	Vocab      int
	Tied       bool
	QKVBias    bool
	MaxPos     int
	RopeTheta  float64
	RMSEps     float64
	RopeScale  map[string]any // rope_scaling, nil for none
	BOS, EOS   int
	ShardBytes int64          // max_shard_size the checkpoint was saved with (0: one file)
	Extra      map[string]any // further config.json fields
}

// Specs are the architectures of the published checkpoints (their config.json values).
var Specs = map[string]Spec{
	"llama-3.2-1b": {Name: "meta-llama/Llama-3.2-1B", ModelType: "llama", Hidden: 2048, MLP: 8192, Layers: 16, Heads: 32, KVHeads: 8,
		HeadDim: 64, Vocab: 128256, Tied: true, MaxPos: 131072, RopeTheta: 500000, RMSEps: 1e-5,
		RopeScale: map[string]any{"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
			"original_max_position_embeddings": 8192, "rope_type": "llama3"},
		BOS: 128000, EOS: 128001},
	"llama-3.1-8b": {Name: "meta-llama/Llama-3.1-8B", ModelType: "llama", Hidden: 4096, MLP: 14336, Layers: 32, Heads: 32, KVHeads: 8,
		Vocab: 128256, MaxPos: 131072, RopeTheta: 500000, RMSEps: 1e-5,
		RopeScale: map[string]any{"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
			"original_max_position_embeddings": 8192, "rope_type": "llama3"},
		BOS: 128000, EOS: 128001, ShardBytes: 5e9},
	"qwen2.5-7b": {Name: "Qwen/Qwen2.5-7B", ModelType: "qwen2", Hidden: 3584, MLP: 18944, Layers: 28, Heads: 28, KVHeads: 4,
		Vocab: 152064, QKVBias: true, MaxPos: 131072, RopeTheta: 1000000, RMSEps: 1e-6, BOS: 151643, EOS: 151643, ShardBytes: 4e9,
		Extra: map[string]any{"use_sliding_window": false, "sliding_window": 131072, "max_window_layers": 28}},
	"mistral-7b": {Name: "mistralai/Mistral-7B-v0.3", ModelType: "mistral", Hidden: 4096, MLP: 14336, Layers: 32, Heads: 32, KVHeads: 8,
		Vocab: 32768, MaxPos: 32768, RopeTheta: 1000000, RMSEps: 1e-5, BOS: 1, EOS: 2, ShardBytes: 5e9,
		Extra: map[string]any{"sliding_window": nil}},
}

// Names returns the known models, sorted.
func Names() []string {
	var out []string
	for k := range Specs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Tensor is one tensor of the checkpoint.
type Tensor struct {
	Name  string
	Shape []int
	// Norm is set for RMSNorm weights (written as ones).
	Norm bool
}

// Numel is the number of elements.
func (t Tensor) Numel() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Tensors returns the checkpoint's tensors in the order transformers saves them (module
// order), which decides the sharding.
func (s Spec) Tensors() []Tensor {
	hd := s.HeadDim
	if hd == 0 {
		hd = s.Hidden / s.Heads
	}
	q, kv := s.Heads*hd, s.KVHeads*hd
	out := []Tensor{{Name: "model.embed_tokens.weight", Shape: []int{s.Vocab, s.Hidden}}}
	for l := range s.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		add := func(name string, shape ...int) { out = append(out, Tensor{Name: p + name, Shape: shape}) }
		add("self_attn.q_proj.weight", q, s.Hidden)
		if s.QKVBias {
			add("self_attn.q_proj.bias", q)
		}
		add("self_attn.k_proj.weight", kv, s.Hidden)
		if s.QKVBias {
			add("self_attn.k_proj.bias", kv)
		}
		add("self_attn.v_proj.weight", kv, s.Hidden)
		if s.QKVBias {
			add("self_attn.v_proj.bias", kv)
		}
		add("self_attn.o_proj.weight", s.Hidden, q)
		add("mlp.gate_proj.weight", s.MLP, s.Hidden)
		add("mlp.up_proj.weight", s.MLP, s.Hidden)
		add("mlp.down_proj.weight", s.Hidden, s.MLP)
		out = append(out, Tensor{Name: p + "input_layernorm.weight", Shape: []int{s.Hidden}, Norm: true},
			Tensor{Name: p + "post_attention_layernorm.weight", Shape: []int{s.Hidden}, Norm: true})
	}
	out = append(out, Tensor{Name: "model.norm.weight", Shape: []int{s.Hidden}, Norm: true})
	if !s.Tied {
		out = append(out, Tensor{Name: "lm_head.weight", Shape: []int{s.Vocab, s.Hidden}})
	}
	return out
}

// Params returns the number of parameters.
func (s Spec) Params() int64 {
	var n int64
	for _, t := range s.Tensors() {
		n += t.Numel()
	}
	return n
}

// Shards splits the tensors into files as transformers' save_pretrained does: in module
// order, a new file when the next tensor would take the current one past ShardBytes. Each
// file's name is model.safetensors (one file) or model-0000i-of-0000n.safetensors.
func (s Spec) Shards() (names []string, files [][]Tensor) {
	var cur []Tensor
	var size int64
	for _, t := range s.Tensors() {
		b := 2 * t.Numel() // BF16
		if s.ShardBytes > 0 && len(cur) > 0 && size+b > s.ShardBytes {
			files = append(files, cur)
			cur, size = nil, 0
		}
		cur = append(cur, t)
		size += b
	}
	files = append(files, cur)
	if len(files) == 1 {
		return []string{"model.safetensors"}, files
	}
	for i := range files {
		names = append(names, fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(files)))
	}
	return names, files
}

// Config returns config.json's fields.
func (s Spec) Config() map[string]any {
	arch := map[string]string{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}[s.ModelType]
	c := map[string]any{
		"_name_or_path":           s.Name,
		"architectures":           []string{arch},
		"attention_dropout":       0.0,
		"bos_token_id":            s.BOS,
		"eos_token_id":            s.EOS,
		"hidden_act":              "silu",
		"hidden_size":             s.Hidden,
		"initializer_range":       0.02,
		"intermediate_size":       s.MLP,
		"max_position_embeddings": s.MaxPos,
		"model_type":              s.ModelType,
		"num_attention_heads":     s.Heads,
		"num_hidden_layers":       s.Layers,
		"num_key_value_heads":     s.KVHeads,
		"rms_norm_eps":            s.RMSEps,
		"rope_theta":              s.RopeTheta,
		"tie_word_embeddings":     s.Tied,
		"torch_dtype":             "bfloat16",
		"use_cache":               true,
		"vocab_size":              s.Vocab,
	}
	if s.ModelType == "llama" {
		c["attention_bias"], c["mlp_bias"], c["pretraining_tp"] = false, false, 1
	}
	if s.HeadDim != 0 {
		c["head_dim"] = s.HeadDim
	}
	if s.RopeScale != nil {
		c["rope_scaling"] = s.RopeScale
	}
	for k, v := range s.Extra {
		c[k] = v
	}
	return c
}

// Describe is the one-line summary of the architecture (mkcheckpoint -list prints it).
func (s Spec) Describe(key string) string {
	names, files := s.Shards()
	var b strings.Builder
	fmt.Fprintf(&b, "%-13s %s: %d layers, %.3fB parameters, %.2f GB BF16 in %d file(s):", key, s.Name, s.Layers,
		float64(s.Params())/1e9, float64(2*s.Params())/1e9, len(names))
	for i, f := range files {
		var n int64
		for _, t := range f {
			n += 2 * t.Numel()
		}
		fmt.Fprintf(&b, " %s (%d tensors, %.2f GB)", names[i], len(f), float64(n)/1e9)
	}
	return b.String()
}

// ConfigJSON returns config.json's content (Config, indented, with a final newline).
func (s Spec) ConfigJSON() ([]byte, error) {
	b, err := json.MarshalIndent(s.Config(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
