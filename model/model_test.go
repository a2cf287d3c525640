package model

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/assets"
)

const sharedDir = "../../shared"

func needShared(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(sharedDir); err != nil {
		t.Skipf("skipping: %s (the shared models and reference numbers) is absent", sharedDir)
	}
}

// embedded loads the model the assets package embeds (llama-pd-11m), for the tests that need a
// real model but no reference numbers: they run on a clean clone too.
func embedded(t testing.TB) *Model {
	t.Helper()
	m, _, err := LoadFS(assets.FS(), assets.ModelDir)
	if err != nil {
		t.Fatal(err)
	}
	return m
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

// TestDeterministicAcrossGOMAXPROCS checks that the forward gives bit-identical results whatever
// the parallelism: the search's same-seed-same-profile promise depends on it.
func TestDeterministicAcrossGOMAXPROCS(t *testing.T) {
	m := embedded(t)
	tokens := make([][]int, 5)
	for i := range tokens {
		tokens[i] = make([]int, 67)
		for j := range tokens[i] {
			tokens[i][j] = (i*31 + j*7) % m.Vocab
		}
	}
	var sums []float64
	for _, procs := range []int{1, 2, 3, 8} {
		old := runtime.GOMAXPROCS(procs)
		s, _, err := m.SequenceNLL(tokens)
		runtime.GOMAXPROCS(old)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, s)
	}
	for i, s := range sums {
		if s != sums[0] {
			t.Errorf("NLL sum %v with setting %d differs from %v", s, i, sums[0])
		}
	}
}

func TestSkipAndCloneAreIndependent(t *testing.T) {
	m := embedded(t)
	seq := [][]int{{1, 5, 9, 13, 17, 21, 25, 29}}
	base, _, _ := m.SequenceNLL(seq)
	c := m.Clone()
	c.Blocks[2].SkipAttn = true
	c.Blocks[3].SkipMLP = true
	skipped, _, _ := c.SequenceNLL(seq)
	again, _, _ := m.SequenceNLL(seq)
	if skipped == base {
		t.Error("skipping sub-blocks did not change the NLL")
	}
	if again != base {
		t.Error("changing a clone changed the original model")
	}
	// Running blocks in two ranges equals running them in one.
	a1, _ := m.Embedding(seq)
	a2 := a1.Clone()
	m.Forward(a1, 0, len(m.Blocks), nil)
	m.Forward(a2, 0, 2, nil)
	m.Forward(a2, 2, len(m.Blocks), nil)
	for i := range a1.X {
		if a1.X[i] != a2.X[i] {
			t.Fatal("Forward(0,2)+Forward(2,n) differs from Forward(0,n)")
		}
	}
}

func TestHookSeesLayerInputs(t *testing.T) {
	m := embedded(t)
	seen := map[arch.LinearKind]int{}
	a, _ := m.Embedding([][]int{{1, 2, 3, 4}, {5, 6, 7, 8}})
	m.Forward(a, 1, 2, func(block int, kind arch.LinearKind, x []float32, rows, cols int) {
		if block != 1 {
			t.Errorf("hook called for block %d", block)
		}
		if rows != 8 || cols != m.Blocks[1].Layer(kind).In || len(x) < rows*cols {
			t.Errorf("%v: rows %d cols %d len %d", kind, rows, cols, len(x))
		}
		seen[kind]++
	})
	if len(seen) != int(arch.NumLinearKinds) {
		t.Errorf("hook saw %v, want all 7 layers", seen)
	}
}
