package export

import (
	"math"
	"testing"

	"github.com/evopress/evopress/internal/memcheck"
	"github.com/evopress/evopress/internal/modelspec"
)

// An export's estimate: the weights as stored (not float32), the runtime, and buffers of one
// chunk of rows (GGUF) or one zeroed layer (a drop profile in the hf format).
func TestExportEstimate(t *testing.T) {
	s, err := memcheck.SpecShape(modelspec.Specs["llama-3.1-8b"])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		o       Options
		buffers int64
	}{
		{"gguf", Options{Format: FormatGGUF}, 8 << 20},
		{"hf", Options{Format: FormatHF}, 0},
		{"hf drop", Options{Format: FormatHF, Profile: dropProfile("")}, 4 * 4096 * 14336},
	} {
		e := estimate(s, c.o)
		if e.Bytes("weights") != s.WeightBytes || e.Bytes("conversion buffers") != c.buffers {
			t.Errorf("%s: weights %d (want %d), buffers %d (want %d)", c.name, e.Bytes("weights"), s.WeightBytes, e.Bytes("conversion buffers"), c.buffers)
		}
		if got := float64(e.Total()) / (1 << 30); math.Abs(got-15.03) > 0.25 {
			t.Errorf("%s: %.3f GiB, want about 15.0 (BF16 weights, not float32's %.1f)", c.name, got, float64(s.Float32Bytes)/(1<<30))
		}
	}
}
