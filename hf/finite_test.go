package hf

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadFloat32RefusesNonFinite writes a tensor with one NaN or infinity in each float dtype and
// requires ReadFloat32 to name the file, the tensor and the element; finite neighbours still read.
func TestReadFloat32RefusesNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		dtype DType
		bad   float32
		at    int
		want  string
	}{
		{F32, nan, 0, "element 0 [0 0] is NaN"},
		{F32, inf, 2049, "element 2049 [2 1] is +Inf"},
		{F16, nan, 7, "element 7 [0 7] is NaN"},
		{F16, -inf, 3071, "element 3071 [2 1023] is -Inf"},
		{BF16, inf, 1024, "element 1024 [1 0] is +Inf"},
		{F64, nan, 5, "element 5 [0 5] is NaN"},
		{F64, 0, 6, "element 6 [0 6] is +Inf in float32 (F64 values beyond ±3.4e38 overflow)"}, // 1e39 below
	}
	for _, tc := range tests {
		dir := t.TempDir()
		vals := make([]float32, 3*1024)
		for i := range vals {
			vals[i] = float32(i%17) - 8
		}
		vals[tc.at] = tc.bad
		tensors := []TensorData{
			{Name: "bad", DType: tc.dtype, Shape: []int{3, 1024}, F32: vals},
			{Name: "good", DType: tc.dtype, Shape: []int{5}, F32: []float32{1, -2, 3, 65504, -1e-3}},
		}
		if tc.dtype == F64 {
			raw := make([]byte, 8*len(vals))
			for i, v := range vals {
				f := float64(v)
				if i == tc.at && tc.bad == 0 {
					f = 1e39 // finite in F64, beyond float32
				}
				b := math.Float64bits(f)
				for k := 0; k < 8; k++ {
					raw[8*i+k] = byte(b >> (8 * k))
				}
			}
			tensors[0] = TensorData{Name: "bad", DType: F64, Shape: []int{3, 1024}, Raw: raw}
			tensors[1].DType = F32
		}
		path := filepath.Join(dir, SafetensorsFileName)
		if err := WriteSafetensors(path, tensors, nil); err != nil {
			t.Fatal(err)
		}
		ck, err := OpenCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ck.ReadFloat32("bad", 3, 1024)
		for _, w := range []string{path, "tensor bad", tc.want} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s with %v at %d: error %v, want it to contain %q", tc.dtype, tc.bad, tc.at, err, w)
			}
		}
		if _, err := ck.ReadFloat32("good"); err != nil {
			t.Errorf("%s: finite tensor: %v", tc.dtype, err)
		}
		ck.Close()
	}
}

// TestFirstNonFinite checks the word-at-a-time scan against a value-by-value one at every
// position of blocks of several lengths and alignments.
func TestFirstNonFinite(t *testing.T) {
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
	for _, n := range []int{0, 1, 7, 8, 1023, 1024, 1025, 3000} {
		buf := make([]float32, n+1)
		for off := 0; off < 2; off++ {
			v := buf[off : off+n]
			for i := range v {
				v[i] = math.MaxFloat32 * float32(1-2*(i%2)) // the largest finite values
			}
			if got := firstNonFinite(v); got != -1 {
				t.Fatalf("n=%d off=%d: finite values: %d", n, off, got)
			}
			for i := 0; i < n; i += max(1, n/13) {
				for _, s := range specials {
					old := v[i]
					v[i] = s
					if got := firstNonFinite(v); got != i {
						t.Errorf("n=%d off=%d: %v at %d found at %d", n, off, s, i, got)
					}
					v[i] = old
				}
			}
		}
	}
}

// TestContextLength covers max_position_embeddings with and without rope scaling.
func TestContextLength(t *testing.T) {
	tests := []struct {
		name  string
		patch map[string]any
		want  int
		desc  string
	}{
		{"plain", map[string]any{"max_position_embeddings": 1024}, 1024, "max_position_embeddings 1024 in cfg/config.json"},
		{"default", nil, 2048, "max_position_embeddings 2048 (the llama default; cfg/config.json does not set it)"},
		{"linear", map[string]any{"max_position_embeddings": 2048, "rope_scaling": map[string]any{"type": "linear", "factor": 4.0}}, 8192,
			"extended to 8192 by its linear rope scaling"},
		{"llama3 already extended", map[string]any{"max_position_embeddings": 131072, "rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0,
			"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}, 131072, "max_position_embeddings 131072 in"},
		{"llama3 not extended", map[string]any{"max_position_embeddings": 8192, "rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0,
			"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}, 65536, "extended to 65536 by its llama3 rope scaling"},
		{"shrinking factor", map[string]any{"max_position_embeddings": 512, "rope_scaling": map[string]any{"type": "linear", "factor": 0.5}}, 512, "max_position_embeddings 512 in"},
	}
	for _, tc := range tests {
		c, err := ParseConfig(configJSON(t, tc.patch), "cfg/config.json")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := c.ContextLength(); got != tc.want {
			t.Errorf("%s: ContextLength %d, want %d", tc.name, got, tc.want)
		}
		if got := c.DescribeContext(); !strings.Contains(got, tc.desc) {
			t.Errorf("%s: DescribeContext %q, want it to contain %q", tc.name, got, tc.desc)
		}
	}
}
