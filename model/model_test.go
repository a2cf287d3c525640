package model

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

const sharedDir = "../../shared"

func needShared(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(sharedDir); err != nil {
		t.Skipf("skipping: %s (the shared models and reference numbers) is absent", sharedDir)
	}
}

type logitsRef struct {
	InputIDs  []int   `json:"input_ids"`
	Shape     []int   `json:"shape"`
	LogitFile string  `json:"logits_file"`
	MeanNLL   float64 `json:"mean_nll"`
	Argmax    []int   `json:"argmax"`
}

func loadRef(t *testing.T, name string) (logitsRef, []float32) {
	t.Helper()
	dir := filepath.Join(sharedDir, "reference", "logits")
	raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref logitsRef
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(filepath.Join(dir, ref.LogitFile))
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]float32, len(bin)/4)
	for i := range vals {
		vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(bin[4*i:]))
	}
	if len(vals) != ref.Shape[0]*ref.Shape[1] {
		t.Fatalf("%s: %d logits, shape %v", ref.LogitFile, len(vals), ref.Shape)
	}
	return ref, vals
}

// TestLogitsParity checks the forward against PyTorch's float32 logits for every shared model.
func TestLogitsParity(t *testing.T) {
	needShared(t)
	for _, name := range []string{"llama-pd-11m", "babyllama-1m"} {
		t.Run(name, func(t *testing.T) {
			m, _, err := Load(filepath.Join(sharedDir, "models", name))
			if err != nil {
				t.Fatal(err)
			}
			ref, want := loadRef(t, name)
			got, err := m.Logits(ref.InputIDs)
			if err != nil {
				t.Fatal(err)
			}
			var maxDiff float64
			for i := range want {
				maxDiff = max(maxDiff, math.Abs(float64(got[i]-want[i])))
			}
			t.Logf("max |logit diff| = %.3g", maxDiff)
			if maxDiff > 1e-3 {
				t.Errorf("max |logit diff| = %g, want ≤ 1e-3", maxDiff)
			}
			V := ref.Shape[1]
			for p, am := range ref.Argmax {
				row := got[p*V : (p+1)*V]
				best := 0
				for j, v := range row {
					if v > row[best] {
						best = j
					}
				}
				if best != am && row[best]-row[am] > 1e-4 {
					t.Errorf("position %d: argmax %d, want %d", p, best, am)
				}
			}
			sum, n, err := m.SequenceNLL([][]int{ref.InputIDs})
			if err != nil {
				t.Fatal(err)
			}
			mean := sum / float64(n)
			if rel := math.Abs(mean-ref.MeanNLL) / ref.MeanNLL; rel > 1e-5 {
				t.Errorf("mean NLL %.7f, want %.7f (rel %.2g > 1e-5)", mean, ref.MeanNLL, rel)
			}
		})
	}
}
