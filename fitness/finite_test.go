package fitness

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search"
)

// overflowing returns a copy of m whose block b MLP output overflows float32 (finite weights).
func overflowing(m *model.Model, b int) *model.Model {
	c := m.Clone()
	w := make([]float32, len(c.Blocks[b].Down.W))
	for i := range w {
		w[i] = math.MaxFloat32
	}
	c.Blocks[b].Down.W = w
	return c
}

// TestNonFiniteFitnessIsAnError: a candidate whose forward overflows makes Evaluate fail naming
// the candidate and its first non-finite sub-block, for both fitness kinds and with prefix reuse;
// a dense model that overflows fails the teacher and Measure the same way. Before, Evaluate
// returned NaN, which the search ranks as neither better nor worse than anything.
func TestNonFiniteFitnessIsAnError(t *testing.T) {
	m := loadModel(t)
	n := len(m.Blocks)
	units := dropUnits(n)
	drop, err := candidate.DropBuilder(m, units)
	if err != nil {
		t.Fatal(err)
	}
	bad := make(search.Levels, 2*n)
	bad[0] = 1 // the candidate with block 0's attention dropped is broken in block 3's MLP
	build := func(p search.Levels) (*model.Model, error) {
		c, err := drop(p)
		if err == nil && p[0] == 1 {
			c = overflowing(c, 3)
		}
		return c, err
	}
	p := pool(m, 4, 32)
	teacher, err := NewTeacher(m, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	parent := make(search.Levels, 2*n)
	good := parent.Clone()
	good[n+1] = 1
	b := search.Batch{Chunks: []int{0, 2}, Tokens: 64}
	for _, kind := range []Kind{KL, PPL} {
		for _, reuse := range []bool{false, true} {
			ev, err := NewEvaluator(teacher, units, build, kind)
			if err != nil {
				t.Fatal(err)
			}
			ev.PrefixReuse = reuse
			_, err = ev.Evaluate(context.Background(), parent, []search.Levels{good, bad}, b)
			var nf *model.NonFiniteError
			if !errors.As(err, &nf) || nf.Unit != "model.layers.3.mlp" || !strings.Contains(err.Error(), "candidate 1 [1 0 0") {
				t.Errorf("%s reuse=%v: %v, want an error naming candidate 1 and model.layers.3.mlp", kind, reuse, err)
			}
		}
	}
	if _, _, err := teacher.Measure(overflowing(m, 2), []int{1}); err == nil || !strings.Contains(err.Error(), "pool chunk 1") || !strings.Contains(err.Error(), "model.layers.2.mlp") {
		t.Errorf("Measure of an overflowing model: %v", err)
	}
	broken, err := NewTeacher(overflowing(m, 4), p, Options{TopK: 8})
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := NewEvaluator(broken, units, drop, KL)
	if _, err := ev.Evaluate(context.Background(), nil, []search.Levels{good}, b); err == nil || !strings.Contains(err.Error(), "dense model") || !strings.Contains(err.Error(), "model.layers.4.mlp") {
		t.Errorf("overflowing dense model: %v", err)
	}
}
