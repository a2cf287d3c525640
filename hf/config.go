package hf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ConfigFileName is the name of a model directory's configuration file.
const ConfigFileName = "config.json"

// maxConfigSize bounds the size of a config.json we are willing to read.
const maxConfigSize = 16 << 20

// Sanity bounds on configuration sizes, so that downstream products such as
// hidden·vocab cannot overflow and fuzzed input cannot ask for huge
// allocations.
const (
	maxDim       = 1 << 24 // hidden, intermediate, vocab
	maxHeads     = 1 << 16 // attention and key/value heads, layers
	maxHeadDim   = 1 << 16
	maxPositions = 1 << 30
)

// SupportedModelTypes lists the config.json model_type values ParseConfig accepts.
var SupportedModelTypes = []string{"llama", "mistral", "qwen2"}

// RopeScaling is the rope_scaling (or rope_parameters) entry of config.json,
// after normalisation. A nil *RopeScaling means plain RoPE (rope_type
// "default" or no entry).
type RopeScaling struct {
	// Type is "llama3" or "linear".
	Type string
	// Factor is the scaling factor ("factor"); both types use it.
	Factor float64
	// LowFreqFactor and HighFreqFactor are llama3's low_freq_factor and
	// high_freq_factor.
	LowFreqFactor, HighFreqFactor float64
	// OriginalMaxPositionEmbeddings is llama3's original_max_position_embeddings.
	OriginalMaxPositionEmbeddings int
}

// Config is a validated config.json of a Llama-family model. Fields absent
// from the file take the defaults transformers' config classes use (noted
// per field); the architecture sizes themselves are required.
type Config struct {
	// ModelType is "llama", "mistral" or "qwen2".
	ModelType string
	// Architectures is the "architectures" list (may be empty).
	Architectures []string

	// HiddenSize, IntermediateSize, NumHiddenLayers, NumAttentionHeads and
	// VocabSize are required and positive.
	HiddenSize, IntermediateSize, NumHiddenLayers, NumAttentionHeads, VocabSize int
	// NumKeyValueHeads defaults to NumAttentionHeads; it divides it.
	NumKeyValueHeads int
	// HeadDim is "head_dim" when given, else HiddenSize/NumAttentionHeads
	// (which must then divide exactly).
	HeadDim int
	// MaxPositionEmbeddings defaults to 2048 (llama), 131072 (mistral) or
	// 32768 (qwen2).
	MaxPositionEmbeddings int

	// RMSNormEps defaults to 1e-6; RopeTheta to 10000.
	RMSNormEps, RopeTheta float64
	// RopeScaling is nil for plain RoPE.
	RopeScaling *RopeScaling

	// TieWordEmbeddings: the output head shares model.embed_tokens.weight
	// (default false).
	TieWordEmbeddings bool
	// AttentionBias is config.json's attention_bias as written (llama
	// only; default false). Use QKVBias and OutputBias for what the
	// architecture actually has.
	AttentionBias bool
	// QKVBias: q_proj, k_proj and v_proj have biases (llama:
	// attention_bias; mistral: never; qwen2: always).
	QKVBias bool
	// OutputBias: o_proj has a bias (llama: attention_bias; otherwise never).
	OutputBias bool
	// MLPBias: gate/up/down projections have biases (llama: mlp_bias;
	// otherwise never).
	MLPBias bool
	// HiddenAct is "silu" (or its alias "swish").
	HiddenAct string
	// TorchDtype is "torch_dtype" (or transformers v5's "dtype"), e.g.
	// "bfloat16"; empty when absent. Informational only.
	TorchDtype string

	// BOSTokenID and EOSTokenID hold bos_token_id/eos_token_id, which
	// Hugging Face allows to be an integer, a list or null (empty here).
	BOSTokenID, EOSTokenID []int

	// SlidingWindow is the effective attention window (0 = full attention):
	// mistral's sliding_window; qwen2's sliding_window when
	// use_sliding_window is true.
	SlidingWindow int
	// MaxWindowLayers is qwen2's max_window_layers (0 when absent): layers
	// with index ≥ MaxWindowLayers use the sliding window.
	MaxWindowLayers int

	// Path is the file the configuration was read from.
	Path string

	raw map[string]json.RawMessage
}

// configParser extracts typed fields from the raw JSON object and names the
// file and field in its errors.
type configParser struct {
	path string
	raw  map[string]json.RawMessage
}

func (p *configParser) errorf(field, format string, args ...any) error {
	return fmt.Errorf("hf: %s: field %q: %s", p.path, field, fmt.Sprintf(format, args...))
}

// present reports whether field exists and is not null.
func (p *configParser) present(field string) bool {
	v, ok := p.raw[field]
	return ok && !isNull(v)
}

func isNull(v json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// number parses a JSON number field.
func (p *configParser) number(field string, v json.RawMessage) (json.Number, error) {
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return "", p.errorf(field, "invalid JSON: %v", err)
	}
	n, ok := x.(json.Number)
	if !ok {
		return "", p.errorf(field, "must be a number, got %s", describe(v))
	}
	return n, nil
}

// parseInt parses an integral JSON number (128 or 128.0) within [lo, hi].
func (p *configParser) parseInt(field string, v json.RawMessage, lo, hi int) (int, error) {
	n, err := p.number(field, v)
	if err != nil {
		return 0, err
	}
	var out int64
	if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
		out = i
	} else {
		f, ferr := strconv.ParseFloat(n.String(), 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, p.errorf(field, "must be an integer, got %s", n)
		}
		out = int64(f)
	}
	if out < int64(lo) || out > int64(hi) {
		return 0, p.errorf(field, "must be in [%d, %d], got %s", lo, hi, n)
	}
	return int(out), nil
}

// intField reads an integer field; when absent or null it returns def, or
// an error when required.
func (p *configParser) intField(field string, required bool, def, lo, hi int) (int, error) {
	if !p.present(field) {
		if required {
			return 0, p.errorf(field, "missing (required)")
		}
		return def, nil
	}
	return p.parseInt(field, p.raw[field], lo, hi)
}

// positiveFloat reads a finite number field > 0, or def when absent.
func (p *configParser) positiveFloat(field string, def float64) (float64, error) {
	if !p.present(field) {
		return def, nil
	}
	return p.parsePositiveFloat(field, p.raw[field])
}

func (p *configParser) parsePositiveFloat(field string, v json.RawMessage) (float64, error) {
	n, err := p.number(field, v)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f <= 0 {
		return 0, p.errorf(field, "must be a finite positive number, got %s", n)
	}
	return f, nil
}

func (p *configParser) boolField(field string, def bool) (bool, error) {
	if !p.present(field) {
		return def, nil
	}
	var b bool
	if err := json.Unmarshal(p.raw[field], &b); err != nil {
		return false, p.errorf(field, "must be true or false, got %s", describe(p.raw[field]))
	}
	return b, nil
}

func (p *configParser) stringField(field, def string) (string, error) {
	if !p.present(field) {
		return def, nil
	}
	var s string
	if err := json.Unmarshal(p.raw[field], &s); err != nil {
		return "", p.errorf(field, "must be a string, got %s", describe(p.raw[field]))
	}
	return s, nil
}

// tokenIDs reads a field that may be an integer, a list of integers or null.
func (p *configParser) tokenIDs(field string) ([]int, error) {
	if !p.present(field) {
		return nil, nil
	}
	v := bytes.TrimSpace(p.raw[field])
	if len(v) > 0 && v[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil {
			return nil, p.errorf(field, "must be an integer or a list of integers: %v", err)
		}
		out := make([]int, 0, len(items))
		for i, it := range items {
			id, err := p.parseInt(fmt.Sprintf("%s[%d]", field, i), it, 0, math.MaxInt32)
			if err != nil {
				return nil, err
			}
			out = append(out, id)
		}
		return out, nil
	}
	id, err := p.parseInt(field, v, 0, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	return []int{id}, nil
}

// describe renders a JSON value briefly for error messages.
func describe(v json.RawMessage) string {
	s := string(bytes.TrimSpace(v))
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// ParseConfig parses and validates a config.json. path names the file in
// error messages and is recorded in Config.Path. It accepts model_type
// llama, mistral and qwen2 with hidden_act silu; it checks that sizes are
// positive and bounded, that num_key_value_heads divides
// num_attention_heads, and that head_dim is given or hidden_size is a
// multiple of num_attention_heads. rope_scaling of type "llama3" and
// "linear" is supported ("default" means none); any other type is an error.
// Every error names the file and the field.
func ParseConfig(data []byte, path string) (*Config, error) {
	if path == "" {
		path = ConfigFileName
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("hf: %s: not a JSON object: %v", path, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("hf: %s: not a JSON object (null)", path)
	}
	p := &configParser{path: path, raw: raw}
	c := &Config{Path: path, raw: raw}
	var err error

	if c.ModelType, err = p.stringField("model_type", ""); err != nil {
		return nil, err
	}
	switch c.ModelType {
	case "llama", "mistral", "qwen2":
	case "":
		return nil, p.errorf("model_type", "missing (required; supported: %s)", strings.Join(SupportedModelTypes, ", "))
	default:
		return nil, p.errorf("model_type", "unsupported model type %q (supported: %s)", c.ModelType, strings.Join(SupportedModelTypes, ", "))
	}
	if p.present("architectures") {
		if err := json.Unmarshal(raw["architectures"], &c.Architectures); err != nil {
			return nil, p.errorf("architectures", "must be a list of strings, got %s", describe(raw["architectures"]))
		}
	}

	if c.HiddenSize, err = p.intField("hidden_size", true, 0, 1, maxDim); err != nil {
		return nil, err
	}
	if c.IntermediateSize, err = p.intField("intermediate_size", true, 0, 1, maxDim); err != nil {
		return nil, err
	}
	if c.NumHiddenLayers, err = p.intField("num_hidden_layers", true, 0, 1, maxHeads); err != nil {
		return nil, err
	}
	if c.NumAttentionHeads, err = p.intField("num_attention_heads", true, 0, 1, maxHeads); err != nil {
		return nil, err
	}
	if c.VocabSize, err = p.intField("vocab_size", true, 0, 1, maxDim); err != nil {
		return nil, err
	}
	if c.NumKeyValueHeads, err = p.intField("num_key_value_heads", false, c.NumAttentionHeads, 1, maxHeads); err != nil {
		return nil, err
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return nil, p.errorf("num_key_value_heads", "%d does not divide num_attention_heads %d", c.NumKeyValueHeads, c.NumAttentionHeads)
	}
	if p.present("head_dim") {
		if c.HeadDim, err = p.parseInt("head_dim", raw["head_dim"], 1, maxHeadDim); err != nil {
			return nil, err
		}
	} else {
		if c.HiddenSize%c.NumAttentionHeads != 0 {
			return nil, p.errorf("num_attention_heads", "%d does not divide hidden_size %d (and head_dim is not given)", c.NumAttentionHeads, c.HiddenSize)
		}
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
		if c.HeadDim > maxHeadDim {
			return nil, p.errorf("head_dim", "hidden_size/num_attention_heads = %d exceeds %d", c.HeadDim, maxHeadDim)
		}
	}
	if c.HeadDim%2 != 0 {
		return nil, p.errorf("head_dim", "must be even for rotary embeddings, got %d", c.HeadDim)
	}
	defPos := map[string]int{"llama": 2048, "mistral": 4096 * 32, "qwen2": 32768}[c.ModelType]
	if c.MaxPositionEmbeddings, err = p.intField("max_position_embeddings", false, defPos, 1, maxPositions); err != nil {
		return nil, err
	}

	if c.RMSNormEps, err = p.positiveFloat("rms_norm_eps", 1e-6); err != nil {
		return nil, err
	}
	if err := p.rope(c); err != nil {
		return nil, err
	}

	if c.TieWordEmbeddings, err = p.boolField("tie_word_embeddings", false); err != nil {
		return nil, err
	}
	if c.AttentionBias, err = p.boolField("attention_bias", false); err != nil {
		return nil, err
	}
	if c.MLPBias, err = p.boolField("mlp_bias", false); err != nil {
		return nil, err
	}
	switch c.ModelType {
	case "llama":
		c.QKVBias, c.OutputBias = c.AttentionBias, c.AttentionBias
	case "mistral":
		// MistralAttention and MistralMLP have no biases; transformers
		// ignores attention_bias/mlp_bias for this model type.
		c.QKVBias, c.OutputBias, c.MLPBias = false, false, false
	case "qwen2":
		c.QKVBias, c.OutputBias, c.MLPBias = true, false, false
	}

	if c.HiddenAct, err = p.stringField("hidden_act", "silu"); err != nil {
		return nil, err
	}
	if c.HiddenAct != "silu" && c.HiddenAct != "swish" {
		return nil, p.errorf("hidden_act", "unsupported activation %q (supported: silu)", c.HiddenAct)
	}
	dtypeField := "torch_dtype"
	if !p.present(dtypeField) {
		dtypeField = "dtype"
	}
	if c.TorchDtype, err = p.stringField(dtypeField, ""); err != nil {
		return nil, err
	}
	if c.BOSTokenID, err = p.tokenIDs("bos_token_id"); err != nil {
		return nil, err
	}
	if c.EOSTokenID, err = p.tokenIDs("eos_token_id"); err != nil {
		return nil, err
	}

	switch c.ModelType {
	case "mistral":
		if c.SlidingWindow, err = p.intField("sliding_window", false, 0, 1, maxPositions); err != nil {
			return nil, err
		}
	case "qwen2":
		use, err := p.boolField("use_sliding_window", false)
		if err != nil {
			return nil, err
		}
		if use {
			if c.SlidingWindow, err = p.intField("sliding_window", false, 4096, 1, maxPositions); err != nil {
				return nil, err
			}
			if c.MaxWindowLayers, err = p.intField("max_window_layers", false, 28, 0, maxHeads); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// rope fills RopeTheta and RopeScaling from rope_theta/rope_scaling or from
// transformers v5's rope_parameters.
func (p *configParser) rope(c *Config) error {
	var err error
	scalingField := "rope_scaling"
	var params map[string]json.RawMessage
	if p.present("rope_parameters") {
		scalingField = "rope_parameters"
		if err := json.Unmarshal(p.raw[scalingField], &params); err != nil {
			return p.errorf(scalingField, "must be an object, got %s", describe(p.raw[scalingField]))
		}
	} else if p.present("rope_scaling") {
		if err := json.Unmarshal(p.raw[scalingField], &params); err != nil {
			return p.errorf(scalingField, "must be an object or null, got %s", describe(p.raw[scalingField]))
		}
	}
	c.RopeTheta = 10000
	if v, ok := params["rope_theta"]; ok && !isNull(v) && !p.present("rope_theta") {
		if c.RopeTheta, err = p.parsePositiveFloat(scalingField+".rope_theta", v); err != nil {
			return err
		}
	}
	if c.RopeTheta, err = p.positiveFloat("rope_theta", c.RopeTheta); err != nil {
		return err
	}
	if p.present("partial_rotary_factor") {
		f, err := p.positiveFloat("partial_rotary_factor", 1)
		if err != nil {
			return err
		}
		if f != 1 {
			return p.errorf("partial_rotary_factor", "only 1.0 is supported, got %v", f)
		}
	}
	if params == nil {
		return nil
	}
	sub := func(name string) string { return scalingField + "." + name }
	typ := ""
	for _, key := range []string{"rope_type", "type"} {
		if v, ok := params[key]; ok && !isNull(v) {
			if err := json.Unmarshal(v, &typ); err != nil {
				return p.errorf(sub(key), "must be a string, got %s", describe(v))
			}
			break
		}
	}
	num := func(name string) (float64, bool, error) {
		v, ok := params[name]
		if !ok || isNull(v) {
			return 0, false, nil
		}
		f, err := p.parsePositiveFloat(sub(name), v)
		return f, true, err
	}
	need := func(name string) (float64, error) {
		f, ok, err := num(name)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, p.errorf(sub(name), "missing (required for rope type %q)", typ)
		}
		return f, nil
	}
	switch typ {
	case "default":
		return nil
	case "linear":
		f, err := need("factor")
		if err != nil {
			return err
		}
		c.RopeScaling = &RopeScaling{Type: typ, Factor: f}
	case "llama3":
		rs := &RopeScaling{Type: typ}
		if rs.Factor, err = need("factor"); err != nil {
			return err
		}
		if rs.LowFreqFactor, err = need("low_freq_factor"); err != nil {
			return err
		}
		if rs.HighFreqFactor, err = need("high_freq_factor"); err != nil {
			return err
		}
		if rs.HighFreqFactor <= rs.LowFreqFactor {
			return p.errorf(sub("high_freq_factor"), "must exceed low_freq_factor (%v), got %v", rs.LowFreqFactor, rs.HighFreqFactor)
		}
		v, ok := params["original_max_position_embeddings"]
		if !ok || isNull(v) {
			return p.errorf(sub("original_max_position_embeddings"), "missing (required for rope type %q)", typ)
		}
		if rs.OriginalMaxPositionEmbeddings, err = p.parseInt(sub("original_max_position_embeddings"), v, 1, maxPositions); err != nil {
			return err
		}
		c.RopeScaling = rs
	case "":
		return p.errorf(sub("rope_type"), "missing rope type")
	default:
		return p.errorf(sub("rope_type"), "unsupported rope scaling type %q (supported: default, linear, llama3)", typ)
	}
	return nil
}

// LoadConfig reads and validates dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	p := filepath.Join(dir, ConfigFileName)
	data, err := readLimited(p, func() (io.ReadCloser, error) { return os.Open(p) })
	if err != nil {
		return nil, err
	}
	return ParseConfig(data, p)
}

// LoadConfigFS reads and validates dir/config.json from fsys (for example an
// embed.FS). dir uses forward slashes, as io/fs requires; "." is the root.
func LoadConfigFS(fsys fs.FS, dir string) (*Config, error) {
	p := path.Join(dir, ConfigFileName)
	data, err := readLimited(p, func() (io.ReadCloser, error) { return fsys.Open(p) })
	if err != nil {
		return nil, err
	}
	return ParseConfig(data, p)
}

// readLimited reads a small file, refusing more than maxConfigSize bytes.
func readLimited(name string, open func() (io.ReadCloser, error)) ([]byte, error) {
	f, err := open()
	if err != nil {
		return nil, fmt.Errorf("hf: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("hf: %s: %w", name, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("hf: %s: larger than %d bytes", name, maxConfigSize)
	}
	return data, nil
}

// RopeInvFreq returns the rotary inverse frequencies, of length HeadDim/2:
// inv_freq[i] = RopeTheta^(−2i/HeadDim), then rescaled by RopeScaling
// exactly as transformers' _compute_linear_scaling_rope_parameters (divide
// by factor) and _compute_llama3_parameters do: wavelengths 2π/inv_freq
// longer than original_max_position_embeddings/low_freq_factor are divided
// by factor, those shorter than original/high_freq_factor are kept, and
// those in between are interpolated with
// smooth = (original/wavelen − low)/(high − low),
// inv = (1−smooth)·inv/factor + smooth·inv.
// Arithmetic is float64 (transformers computes in float32; the difference is
// at float32 rounding level). Neither type changes the attention scaling.
func (c *Config) RopeInvFreq() []float64 {
	half := c.HeadDim / 2
	if half <= 0 {
		return nil
	}
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.HeadDim))
	}
	rs := c.RopeScaling
	if rs == nil {
		return inv
	}
	switch rs.Type {
	case "linear":
		for i := range inv {
			inv[i] /= rs.Factor
		}
	case "llama3":
		old := float64(rs.OriginalMaxPositionEmbeddings)
		lowWavelen := old / rs.LowFreqFactor
		highWavelen := old / rs.HighFreqFactor
		for i, f := range inv {
			wavelen := 2 * math.Pi / f
			scaled := f
			if wavelen > lowWavelen {
				scaled = f / rs.Factor
			}
			if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
				smooth := (old/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				scaled = (1-smooth)*scaled/rs.Factor + smooth*scaled
			}
			inv[i] = scaled
		}
	}
	return inv
}

// ContextLength returns the longest sequence the model is made for: max_position_embeddings, or
// with rope_scaling the scaled window when that is longer (linear: factor × max_position_embeddings;
// llama3: factor × original_max_position_embeddings, which Llama 3.1 configs already give as
// max_position_embeddings). Positions past it were never trained: a perplexity or a KL measured on
// them describes a model used outside its range.
func (c *Config) ContextLength() int {
	n := c.MaxPositionEmbeddings
	if rs := c.RopeScaling; rs != nil && rs.Factor > 1 {
		base := c.MaxPositionEmbeddings
		if rs.Type == "llama3" {
			base = rs.OriginalMaxPositionEmbeddings
		}
		if scaled := rs.Factor * float64(base); scaled > float64(n) {
			n = int(min(scaled, maxPositions))
		}
	}
	return n
}

// DescribeContext names where ContextLength comes from, for messages:
// "max_position_embeddings 1024 in dir/config.json", with the rope scaling when it extends it.
func (c *Config) DescribeContext() string {
	src := fmt.Sprintf("max_position_embeddings %d in %s", c.MaxPositionEmbeddings, c.Path)
	if _, ok := c.Raw("max_position_embeddings"); !ok {
		src = fmt.Sprintf("max_position_embeddings %d (the %s default; %s does not set it)", c.MaxPositionEmbeddings, c.ModelType, c.Path)
	}
	if n := c.ContextLength(); n != c.MaxPositionEmbeddings {
		src += fmt.Sprintf(", extended to %d by its %s rope scaling", n, c.RopeScaling.Type)
	}
	return src
}

// QKVSize returns the output sizes of q_proj (heads·head_dim) and of k_proj
// and v_proj (kv_heads·head_dim).
func (c *Config) QKVSize() (q, kv int) {
	return c.NumAttentionHeads * c.HeadDim, c.NumKeyValueHeads * c.HeadDim
}

// Raw returns the raw JSON of a config.json field as written in the file,
// and whether it is present.
func (c *Config) Raw(field string) (json.RawMessage, bool) {
	v, ok := c.raw[field]
	if !ok {
		return nil, false
	}
	return append(json.RawMessage(nil), v...), true
}

// Fields returns the sorted names of every field in the original config.json.
func (c *Config) Fields() []string {
	out := make([]string, 0, len(c.raw))
	for k := range c.raw {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// MarshalWith returns config.json bytes equal to the original file's fields,
// each value kept exactly as written, with the fields in overrides replaced
// (or added) by their JSON encoding; a nil override value writes null.
// Keys are sorted and indented by two spaces with a final newline, as
// transformers' save_pretrained writes them. The result is validated with
// ParseConfig, so an override cannot produce an invalid configuration; e.g.
// export uses MarshalWith(map[string]any{"num_hidden_layers": 10}).
func (c *Config) MarshalWith(overrides map[string]any) ([]byte, error) {
	if c.raw == nil {
		return nil, errors.New("hf: MarshalWith: config was not produced by ParseConfig")
	}
	out := make(map[string]json.RawMessage, len(c.raw)+len(overrides))
	for k, v := range c.raw {
		out[k] = v
	}
	for k, v := range overrides {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("hf: %s: override of field %q: %v", c.Path, k, err)
		}
		out[k] = b
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil { // Encode ends with a newline
		return nil, fmt.Errorf("hf: %s: %v", c.Path, err)
	}
	data := buf.Bytes()
	if _, err := ParseConfig(data, c.Path+" (rewritten)"); err != nil {
		return nil, err
	}
	return data, nil
}
