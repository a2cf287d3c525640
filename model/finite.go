package model

import (
	"fmt"
	"math"

	"github.com/evopress/evopress/arch"
)

// NonFiniteError reports the first place of a forward whose output holds a NaN or an infinity:
// the embedding, a sub-block (its output added to the residual stream), or the final norm and
// output head (the logits).
type NonFiniteError struct {
	// Unit is the module: UnitEmbedding, a sub-block ("model.layers.3.self_attn",
	// "model.layers.3.mlp") or UnitLogits (the final norm and the output head).
	Unit string
	// Seq and Pos locate the first non-finite value: the sequence of the batch and its token.
	Seq, Pos int
	// Value is that value (NaN, +Inf or −Inf).
	Value float32
}

func (e *NonFiniteError) Error() string {
	what := "the output of " + e.Unit + " is"
	switch e.Unit {
	case UnitEmbedding:
		what = "the embedding (" + e.Unit + ") is"
	case UnitLogits:
		what = "the logits (model.norm, lm_head) are"
	}
	return fmt.Sprintf("model: %s %v at token %d of sequence %d (the first non-finite activation)", what, e.Value, e.Pos, e.Seq)
}

// The units of a NonFiniteError that are not sub-blocks.
const (
	UnitEmbedding = "model.embed_tokens"
	UnitLogits    = "lm_head"
)

// FindNonFinite runs m on tokens one sub-block at a time and returns a *NonFiniteError naming the
// first whose output holds a NaN or an infinity (then the logits), or nil when every value is
// finite. It is the diagnosis behind a non-finite loss (SequenceNLL, the fitness evaluators): the
// forwards themselves never check their activations, so a finite model pays nothing for it.
func (m *Model) FindNonFinite(tokens [][]int) error {
	a, err := m.Embedding(tokens)
	if err != nil {
		return err
	}
	if err := nonFiniteRows(a, a.X, m.Hidden, UnitEmbedding); err != nil {
		return err
	}
	one := m.Clone()
	for i := range m.Blocks {
		for _, s := range []arch.SubBlock{arch.Attention, arch.MLP} {
			b := m.Blocks[i]
			if (s == arch.Attention && b.SkipAttn) || (s == arch.MLP && b.SkipMLP) {
				continue
			}
			b.SkipAttn, b.SkipMLP = s != arch.Attention, s != arch.MLP
			one.Blocks[i] = b
			one.Forward(a, i, i+1, nil)
			if err := nonFiniteRows(a, a.X, m.Hidden, arch.SubUnit(i, s).String()); err != nil {
				return err
			}
		}
		one.Blocks[i] = m.Blocks[i]
	}
	rows := make([]int, a.Rows())
	for i := range rows {
		rows[i] = i
	}
	for r, logits := range m.LogitsAt(a, rows) {
		if err := nonFiniteRows(&Activations{B: 1, T: a.Rows()}, logits, len(logits), UnitLogits); err != nil {
			e := err.(*NonFiniteError)
			e.Seq, e.Pos = r/a.T, r%a.T
			return e
		}
	}
	return nil
}

// nonFiniteRows returns a *NonFiniteError for the first non-finite value of x, whose rows of
// width w are a's tokens.
func nonFiniteRows(a *Activations, x []float32, w int, unit string) error {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			r := i / w
			return &NonFiniteError{Unit: unit, Seq: r / a.T, Pos: r % a.T, Value: v}
		}
	}
	return nil
}

// finite reports whether x is neither NaN nor infinite.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
