package hf

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
)

// sharedModels is where the shared test models live, relative to this package.
const sharedModels = "../../shared/models"

// embeddedModel is the repository's copy of llama-pd-11m, the model package assets embeds
// (the same files as ../shared/models/llama-pd-11m).
const embeddedModel = "../assets/llama-pd-11m"

// modelDir returns the directory of a test model: llama-pd-11m is in the repository; any other
// needs ../shared next to it, and the test is skipped without it.
func modelDir(t testing.TB, name string) string {
	t.Helper()
	if name == "llama-pd-11m" {
		return embeddedModel
	}
	dir := filepath.Join(sharedModels, name)
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Skipf("shared model %s not available (%v); tests using it need ../shared next to the repository", name, err)
	}
	return dir
}

func TestLoadConfigSharedModels(t *testing.T) {
	tests := []struct {
		model string
		want  Config
	}{
		{"babyllama-1m", Config{
			ModelType: "llama", Architectures: []string{"LlamaForCausalLM"},
			HiddenSize: 128, IntermediateSize: 352, NumHiddenLayers: 5, NumAttentionHeads: 8, VocabSize: 105,
			NumKeyValueHeads: 4, HeadDim: 16, MaxPositionEmbeddings: 256, RMSNormEps: 1e-5, RopeTheta: 10000,
			TieWordEmbeddings: true, HiddenAct: "silu", TorchDtype: "float32",
			BOSTokenID: []int{1}, EOSTokenID: []int{2},
		}},
		{"llama-pd-11m", Config{
			ModelType: "llama", Architectures: []string{"LlamaForCausalLM"},
			HiddenSize: 256, IntermediateSize: 704, NumHiddenLayers: 12, NumAttentionHeads: 4, VocabSize: 4096,
			NumKeyValueHeads: 2, HeadDim: 64, MaxPositionEmbeddings: 1024, RMSNormEps: 1e-5, RopeTheta: 10000,
			HiddenAct: "silu", TorchDtype: "bfloat16",
			BOSTokenID: []int{1}, EOSTokenID: []int{2},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			dir := modelDir(t, tc.model)
			c, err := LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			if c.Path != filepath.Join(dir, "config.json") {
				t.Errorf("Path = %q", c.Path)
			}
			got := *c
			got.Path, got.raw = "", nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			// The fs.FS variant reads the same file.
			fc, err := LoadConfigFS(os.DirFS(dir), ".")
			if err != nil {
				t.Fatal(err)
			}
			fc.Path, fc.raw = "", nil
			if !reflect.DeepEqual(*fc, tc.want) {
				t.Errorf("LoadConfigFS: got %+v", *fc)
			}
		})
	}
}

// baseConfig is a minimal valid llama config; tests patch fields into it.
func baseConfig() map[string]any {
	return map[string]any{
		"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
		"num_attention_heads": 4, "vocab_size": 50,
	}
}

func configJSON(t testing.TB, patch map[string]any) []byte {
	m := baseConfig()
	for k, v := range patch {
		if v == "DELETE" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseConfigVariants(t *testing.T) {
	tests := []struct {
		name  string
		patch map[string]any
		check func(c *Config) bool
	}{
		{"defaults", nil, func(c *Config) bool {
			return c.NumKeyValueHeads == 4 && c.HeadDim == 16 && c.RMSNormEps == 1e-6 && c.RopeTheta == 10000 &&
				c.MaxPositionEmbeddings == 2048 && c.HiddenAct == "silu" && !c.TieWordEmbeddings && c.RopeScaling == nil &&
				c.BOSTokenID == nil && c.EOSTokenID == nil && !c.QKVBias && !c.OutputBias && !c.MLPBias && c.SlidingWindow == 0
		}},
		{"explicit head_dim not hidden/heads", map[string]any{"head_dim": 32}, func(c *Config) bool { return c.HeadDim == 32 }},
		{"integral float size", map[string]any{"hidden_size": 64.0}, func(c *Config) bool { return c.HiddenSize == 64 }},
		{"llama biases", map[string]any{"attention_bias": true, "mlp_bias": true}, func(c *Config) bool {
			return c.AttentionBias && c.QKVBias && c.OutputBias && c.MLPBias
		}},
		{"qwen2 has q/k/v bias only", map[string]any{"model_type": "qwen2", "tie_word_embeddings": true}, func(c *Config) bool {
			return c.QKVBias && !c.OutputBias && !c.MLPBias && c.TieWordEmbeddings && c.MaxPositionEmbeddings == 32768
		}},
		{"qwen2 sliding window off", map[string]any{"model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": false}, func(c *Config) bool {
			return c.SlidingWindow == 0
		}},
		{"qwen2 sliding window on", map[string]any{"model_type": "qwen2", "sliding_window": 1024, "use_sliding_window": true, "max_window_layers": 1}, func(c *Config) bool {
			return c.SlidingWindow == 1024 && c.MaxWindowLayers == 1
		}},
		{"mistral sliding window", map[string]any{"model_type": "mistral", "sliding_window": 4096, "attention_bias": true}, func(c *Config) bool {
			return c.SlidingWindow == 4096 && !c.QKVBias && c.MaxPositionEmbeddings == 131072
		}},
		{"mistral null sliding window", map[string]any{"model_type": "mistral", "sliding_window": nil}, func(c *Config) bool { return c.SlidingWindow == 0 }},
		{"eos list", map[string]any{"eos_token_id": []int{128001, 128008, 128009}, "bos_token_id": nil}, func(c *Config) bool {
			return reflect.DeepEqual(c.EOSTokenID, []int{128001, 128008, 128009}) && c.BOSTokenID == nil
		}},
		{"gqa", map[string]any{"num_key_value_heads": 2}, func(c *Config) bool {
			q, kv := c.QKVSize()
			return c.NumKeyValueHeads == 2 && q == 64 && kv == 32
		}},
		{"rope default type", map[string]any{"rope_scaling": map[string]any{"rope_type": "default"}}, func(c *Config) bool { return c.RopeScaling == nil }},
		{"rope linear via legacy type key", map[string]any{"rope_scaling": map[string]any{"type": "linear", "factor": 2.0}}, func(c *Config) bool {
			return c.RopeScaling != nil && c.RopeScaling.Type == "linear" && c.RopeScaling.Factor == 2
		}},
		{"rope_parameters (transformers v5)", map[string]any{"rope_parameters": map[string]any{"rope_type": "default", "rope_theta": 500000.0}}, func(c *Config) bool {
			return c.RopeScaling == nil && c.RopeTheta == 500000
		}},
		{"dtype key (transformers v5)", map[string]any{"dtype": "bfloat16"}, func(c *Config) bool { return c.TorchDtype == "bfloat16" }},
		{"swish alias", map[string]any{"hidden_act": "swish"}, func(c *Config) bool { return c.HiddenAct == "swish" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(configJSON(t, tc.patch), "x/config.json")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected config %+v (rope %+v)", c, c.RopeScaling)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		patch map[string]any
		raw   string // used instead of patch when set
		field string // must appear in the message
	}{
		{"bad JSON", nil, `{"model_type": "llama",`, "not a JSON object"},
		{"JSON array", nil, `[1,2]`, "not a JSON object"},
		{"null", nil, `null`, "not a JSON object"},
		{"unsupported model_type", map[string]any{"model_type": "gpt2"}, "", `"model_type"`},
		{"missing model_type", map[string]any{"model_type": "DELETE"}, "", `"model_type"`},
		{"model_type not a string", map[string]any{"model_type": 3}, "", `"model_type"`},
		{"heads not divisible by kv heads", map[string]any{"num_key_value_heads": 3}, "", `"num_key_value_heads"`},
		{"hidden not divisible by heads", map[string]any{"num_attention_heads": 5}, "", `"num_attention_heads"`},
		{"missing hidden_size", map[string]any{"hidden_size": "DELETE"}, "", `"hidden_size"`},
		{"negative intermediate_size", map[string]any{"intermediate_size": -1}, "", `"intermediate_size"`},
		{"zero layers", map[string]any{"num_hidden_layers": 0}, "", `"num_hidden_layers"`},
		{"fractional vocab", map[string]any{"vocab_size": 50.5}, "", `"vocab_size"`},
		{"huge vocab", map[string]any{"vocab_size": 1e300}, "", `"vocab_size"`},
		{"string size", map[string]any{"hidden_size": "64"}, "", `"hidden_size"`},
		{"odd head_dim", map[string]any{"head_dim": 15}, "", `"head_dim"`},
		{"gelu", map[string]any{"hidden_act": "gelu"}, "", `"hidden_act"`},
		{"zero eps", map[string]any{"rms_norm_eps": 0}, "", `"rms_norm_eps"`},
		{"negative rope_theta", map[string]any{"rope_theta": -5}, "", `"rope_theta"`},
		{"bool not bool", map[string]any{"tie_word_embeddings": "yes"}, "", `"tie_word_embeddings"`},
		{"bad eos list", map[string]any{"eos_token_id": []any{1, "x"}}, "", `"eos_token_id[1]"`},
		{"negative bos", map[string]any{"bos_token_id": -1}, "", `"bos_token_id"`},
		{"yarn unsupported", map[string]any{"rope_scaling": map[string]any{"rope_type": "yarn", "factor": 4.0}}, "", `"rope_scaling.rope_type"`},
		{"rope_scaling not object", map[string]any{"rope_scaling": 3}, "", `"rope_scaling"`},
		{"rope type missing", map[string]any{"rope_scaling": map[string]any{"factor": 4.0}}, "", `"rope_scaling.rope_type"`},
		{"llama3 missing factor", map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}}, "", `"rope_scaling.factor"`},
		{"llama3 high <= low", map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 4, "original_max_position_embeddings": 8192}}, "", `"rope_scaling.high_freq_factor"`},
		{"llama3 missing original", map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4}}, "", `"rope_scaling.original_max_position_embeddings"`},
		{"partial rotary", map[string]any{"partial_rotary_factor": 0.5}, "", `"partial_rotary_factor"`},
		{"architectures not list", map[string]any{"architectures": "LlamaForCausalLM"}, "", `"architectures"`},
		{"mistral bad sliding window", map[string]any{"model_type": "mistral", "sliding_window": 0}, "", `"sliding_window"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.raw)
			if tc.raw == "" {
				data = configJSON(t, tc.patch)
			}
			const path = "models/m/config.json"
			_, err := ParseConfig(data, path)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tc.field) {
				t.Errorf("error %q should name %q and %s", msg, path, tc.field)
			}
		})
	}
}

func TestLoadConfigMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadConfig(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "config.json")) {
		t.Errorf("error %v should name the missing file", err)
	}
	_, err = LoadConfigFS(fstest.MapFS{}, "m")
	if err == nil || !strings.Contains(err.Error(), "m/config.json") {
		t.Errorf("error %v should name the missing file", err)
	}
}

func TestRopeInvFreqLlama31(t *testing.T) {
	c, err := ParseConfig([]byte(`{"model_type":"llama","hidden_size":4096,"intermediate_size":14336,
		"num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"vocab_size":128256,
		"max_position_embeddings":131072,"rope_theta":500000.0,
		"rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
		"original_max_position_embeddings":8192,"rope_type":"llama3"}}`), "llama31.json")
	if err != nil {
		t.Fatal(err)
	}
	inv := c.RopeInvFreq()
	if len(inv) != 64 {
		t.Fatalf("len %d, want 64", len(inv))
	}
	// Reference values computed independently (Python, float64) from the
	// formulas of transformers' _compute_llama3_parameters.
	want := map[int]float64{
		0:  1.0,                    // high frequency: unchanged
		1:  0.8146172338565447,     // high
		20: 0.016560440080994446,   // high
		28: 0.0032114459947525913,  // high: wavelength just under 8192/4
		29: 0.002166570763503359,   // medium: smoothed
		30: 0.0013718935677611381,  // medium
		31: 0.0008567514129196321,  // medium
		32: 0.0005248461609929547,  // medium
		33: 0.00031269375038406517, // medium
		34: 0.00017850781276799638, // medium
		35: 9.556212353964683e-05,  // low frequency: divided by 8
		40: 3.428102195952591e-05,  // low
		52: 2.9274998701761677e-06, // low
		63: 3.068925988914511e-07,  // low
	}
	for i, w := range want {
		if math.Abs(inv[i]-w) > 1e-12*w {
			t.Errorf("inv_freq[%d] = %.17g, want %.17g", i, inv[i], w)
		}
	}
	// Brute-force classification: exactly indices 29..34 are smoothed, and
	// the sequence stays strictly decreasing.
	for i := range inv {
		plain := math.Pow(500000, -float64(2*i)/128)
		wavelen := 2 * math.Pi / plain
		switch {
		case wavelen < 2048 && inv[i] != plain:
			t.Errorf("index %d should be unchanged", i)
		case wavelen > 8192 && math.Abs(inv[i]-plain/8) > 1e-15*plain:
			t.Errorf("index %d should be divided by 8", i)
		case wavelen >= 2048 && wavelen <= 8192 && (i < 29 || i > 34):
			t.Errorf("index %d unexpectedly in the medium band", i)
		}
		if i > 0 && !(inv[i] < inv[i-1]) {
			t.Errorf("not decreasing at %d", i)
		}
	}
}

func TestRopeInvFreqPlainAndLinear(t *testing.T) {
	c, err := ParseConfig(configJSON(t, map[string]any{"rope_theta": 10000}), "c.json")
	if err != nil {
		t.Fatal(err)
	}
	// head_dim 16: inv[i] = 10000^(-2i/16) = 10^(-i/2).
	inv := c.RopeInvFreq()
	for i, v := range inv {
		if w := math.Pow(10, -float64(i)/2); math.Abs(v-w) > 1e-15 {
			t.Errorf("plain inv[%d] = %v, want %v", i, v, w)
		}
	}
	c, err = ParseConfig(configJSON(t, map[string]any{"rope_scaling": map[string]any{"rope_type": "linear", "factor": 4}}), "c.json")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range c.RopeInvFreq() {
		if w := math.Pow(10, -float64(i)/2) / 4; math.Abs(v-w) > 1e-15 {
			t.Errorf("linear inv[%d] = %v, want %v", i, v, w)
		}
	}
}

func TestMarshalWith(t *testing.T) {
	dir := modelDir(t, "llama-pd-11m")
	c, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.MarshalWith(map[string]any{"num_hidden_layers": 9})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseConfig(out, "rewritten")
	if err != nil {
		t.Fatal(err)
	}
	if c2.NumHiddenLayers != 9 {
		t.Errorf("num_hidden_layers = %d", c2.NumHiddenLayers)
	}
	// Every other field is kept exactly as written (the raw values compare
	// equal after compaction).
	orig, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	var a, b map[string]json.RawMessage
	json.Unmarshal(orig, &a)
	json.Unmarshal(out, &b)
	if len(a) != len(b) {
		t.Fatalf("field count %d, want %d", len(b), len(a))
	}
	for k, v := range a {
		if k == "num_hidden_layers" {
			continue
		}
		if string(b[k]) != string(v) {
			t.Errorf("field %s: %s, want %s", k, b[k], v)
		}
	}
	if !strings.Contains(string(out), `"rms_norm_eps": 1e-05`) || !strings.HasSuffix(string(out), "}\n") {
		t.Errorf("unexpected formatting:\n%s", out)
	}
	if v, ok := c.Raw("rms_norm_eps"); !ok || string(v) != "1e-05" {
		t.Errorf("Raw(rms_norm_eps) = %s, %v", v, ok)
	}
	if _, ok := c.Raw("nope"); ok {
		t.Error("Raw of a missing field")
	}
	if f := c.Fields(); len(f) != len(a) || !sort.StringsAreSorted(f) {
		t.Errorf("Fields() = %v", f)
	}
	// No overrides: an equivalent config.
	same, err := c.MarshalWith(nil)
	if err != nil {
		t.Fatal(err)
	}
	c3, _ := ParseConfig(same, c.Path)
	c3.raw, c.raw = nil, nil
	if !reflect.DeepEqual(c3, c) {
		t.Errorf("MarshalWith(nil) changed the config")
	}
	// An override that makes the config invalid is refused, naming the field.
	c, _ = LoadConfig(dir)
	if _, err := c.MarshalWith(map[string]any{"num_hidden_layers": 0}); err == nil || !strings.Contains(err.Error(), "num_hidden_layers") {
		t.Errorf("invalid override: err = %v", err)
	}
	if _, err := (&Config{}).MarshalWith(nil); err == nil {
		t.Error("MarshalWith on a zero Config should fail")
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, m := range []string{"babyllama-1m", "llama-pd-11m"} {
		if b, err := os.ReadFile(filepath.Join(sharedModels, m, "config.json")); err == nil {
			f.Add(b)
		}
	}
	f.Add(configJSON(f, nil))
	f.Add(configJSON(f, map[string]any{"model_type": "qwen2", "use_sliding_window": true, "eos_token_id": []int{1, 2}}))
	f.Add(configJSON(f, map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}}))
	f.Add([]byte(`{"model_type":"mistral","hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":3,"head_dim":1e1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`nul`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, "fuzz.json")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if c.HiddenSize <= 0 || c.IntermediateSize <= 0 || c.NumHiddenLayers <= 0 || c.VocabSize <= 0 ||
			c.NumAttentionHeads <= 0 || c.NumKeyValueHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0 ||
			c.HeadDim <= 0 || c.HeadDim%2 != 0 || c.MaxPositionEmbeddings <= 0 || !(c.RMSNormEps > 0) || !(c.RopeTheta > 0) {
			t.Fatalf("accepted inconsistent config %+v", c)
		}
		inv := c.RopeInvFreq()
		if len(inv) != c.HeadDim/2 {
			t.Fatalf("RopeInvFreq length %d, head_dim %d", len(inv), c.HeadDim)
		}
		for i, v := range inv {
			if math.IsNaN(v) || v < 0 || math.IsInf(v, 0) {
				t.Fatalf("inv_freq[%d] = %v", i, v)
			}
		}
		out, err := c.MarshalWith(nil)
		if err != nil {
			t.Fatalf("MarshalWith(nil) of an accepted config: %v", err)
		}
		c2, err := ParseConfig(out, "fuzz.json")
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		c.raw, c2.raw = nil, nil
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-parse differs:\n%+v\n%+v", c, c2)
		}
	})
}

func TestWriteFileAtomicConfig(t *testing.T) {
	c, err := ParseConfig(configJSON(t, nil), "src/config.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, ConfigFileName)
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := c.MarshalWith(map[string]any{"num_hidden_layers": 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, data); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.NumHiddenLayers != 1 || got.HiddenSize != 64 {
		t.Errorf("rewritten config %+v", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), data); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("writing into a missing directory: %v", err)
	}
}
