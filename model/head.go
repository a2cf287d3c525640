package model

import (
	"fmt"
	"math"

	"github.com/evopress/evopress/internal/kernels"
)

// HeadChunk is how many token rows get their logits at once: the full B·T×Vocab logits are never
// materialised.
const HeadChunk = 256

// ForEachLogits applies the final norm and the output head to the rows of a that predict a next
// token (position t < T−1 of every sequence) and calls fn(row, logits) for each, with row = b·T+t.
// fn is called concurrently from several goroutines, each row exactly once; logits is only valid
// during the call (fn may modify it).
func (m *Model) ForEachLogits(a *Activations, fn func(row int, logits []float32)) {
	m.forRows(a, predictingRows(a), fn)
}

// LogitsAt returns the logits of the given rows of a (any positions), in order.
func (m *Model) LogitsAt(a *Activations, rows []int) [][]float32 {
	out := make([][]float32, len(rows))
	index := make(map[int]int, len(rows))
	for i, r := range rows {
		if r < 0 || r >= a.Rows() {
			panic(fmt.Sprintf("model: row %d out of range [0, %d)", r, a.Rows()))
		}
		index[r] = i
	}
	m.forRows(a, rows, func(row int, logits []float32) {
		out[index[row]] = append([]float32(nil), logits...)
	})
	return out
}

// ForLogitsAt applies the final norm and the output head to the given rows of a (any positions;
// each in [0, a.Rows())) and calls fn(row, logits) for each, as ForEachLogits does: concurrently,
// each row exactly once, logits valid only during the call.
func (m *Model) ForLogitsAt(a *Activations, rows []int, fn func(row int, logits []float32)) {
	for _, r := range rows {
		if r < 0 || r >= a.Rows() {
			panic(fmt.Sprintf("model: row %d out of range [0, %d)", r, a.Rows()))
		}
	}
	m.forRows(a, rows, fn)
}

func predictingRows(a *Activations) []int {
	rows := make([]int, 0, a.B*(a.T-1))
	for b := 0; b < a.B; b++ {
		for t := 0; t < a.T-1; t++ {
			rows = append(rows, b*a.T+t)
		}
	}
	return rows
}

func (m *Model) forRows(a *Activations, rows []int, fn func(row int, logits []float32)) {
	h, V := m.Hidden, m.Vocab
	xn := make([]float32, HeadChunk*h)
	logits := make([]float32, HeadChunk*V)
	head := m.HeadWeights()
	for lo := 0; lo < len(rows); lo += HeadChunk {
		hi := min(lo+HeadChunk, len(rows))
		n := hi - lo
		for i := 0; i < n; i++ {
			r := rows[lo+i]
			kernels.RMSNorm(xn[i*h:(i+1)*h], a.X[r*h:(r+1)*h], m.Norm, m.Eps)
		}
		kernels.GemmW(false, true, n, V, h, 1, xn, h, head, h, 0, logits, V)
		parallelRows(n, 8, func(l, u int) {
			for i := l; i < u; i++ {
				fn(rows[lo+i], logits[i*V:(i+1)*V])
			}
		})
	}
}

// LogSumExp returns log Σ exp(x_i), computed stably in float32 with a float64 final log.
func LogSumExp(x []float32) float32 {
	mx := kernels.Max(x)
	return mx + float32(math.Log(float64(kernels.SumExp(x, mx))))
}

// NLL returns the summed negative log-likelihood (natural log) of every next token of tokens under
// the model, given a's final hidden states, and the number of predicted tokens, B·(T−1).
func (m *Model) NLL(a *Activations, tokens [][]int) (sum float64, count int) {
	T := a.T
	partial := make([]float64, a.Rows()) // each row written by exactly one goroutine
	m.ForEachLogits(a, func(row int, logits []float32) {
		b, t := row/T, row%T
		partial[row] = float64(LogSumExp(logits) - logits[tokens[b][t+1]])
	})
	// Sum in row order so the result does not depend on goroutine scheduling.
	rows := predictingRows(a)
	for _, r := range rows {
		sum += partial[r]
	}
	return sum, len(rows)
}

// SequenceNLL runs the whole model on a batch of token sequences and returns the summed NLL and
// the number of predicted tokens.
func (m *Model) SequenceNLL(tokens [][]int) (float64, int, error) {
	a, err := m.Embedding(tokens)
	if err != nil {
		return 0, 0, err
	}
	m.Forward(a, 0, len(m.Blocks), nil)
	s, n := m.NLL(a, tokens)
	if !finite(s) {
		return 0, 0, m.NonFiniteLoss(tokens, "loss", s)
	}
	return s, n, nil
}

// NonFiniteLoss explains a non-finite loss (what, e.g. "loss" or "KL") of m on tokens: the
// *NonFiniteError naming the first sub-block whose output is not finite (FindNonFinite), or,
// when every activation is finite, an error saying that the loss overflowed.
func (m *Model) NonFiniteLoss(tokens [][]int, what string, v float64) error {
	if err := m.FindNonFinite(tokens); err != nil {
		return err
	}
	return fmt.Errorf("model: the %s is %v although every activation is finite (logits beyond float32's range)", what, v)
}

// Logits runs the whole model on one sequence and returns its logits [T × Vocab].
func (m *Model) Logits(tokens []int) ([]float32, error) {
	a, err := m.Embedding([][]int{tokens})
	if err != nil {
		return nil, err
	}
	m.Forward(a, 0, len(m.Blocks), nil)
	rows := make([]int, len(tokens))
	for i := range rows {
		rows[i] = i
	}
	out := make([]float32, 0, len(tokens)*m.Vocab)
	for _, l := range m.LogitsAt(a, rows) {
		out = append(out, l...)
	}
	return out, nil
}

// Generate extends prompt greedily by up to n tokens (stopping early at stop, when stop ≥ 0) and
// returns the new tokens. It recomputes the whole context for each token: meant for short samples.
func (m *Model) Generate(prompt []int, n, stop int) ([]int, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("model: Generate needs a non-empty prompt")
	}
	ctx := append([]int(nil), prompt...)
	var out []int
	limit := m.Config.MaxPositionEmbeddings
	for i := 0; i < n; i++ {
		window := ctx
		if limit > 0 && len(window) > limit {
			window = window[len(window)-limit:]
		}
		a, err := m.Embedding([][]int{window})
		if err != nil {
			return nil, err
		}
		m.Forward(a, 0, len(m.Blocks), nil)
		logits := m.LogitsAt(a, []int{len(window) - 1})[0]
		best := 0
		for j, v := range logits {
			if v > logits[best] {
				best = j
			}
		}
		if best == stop {
			break
		}
		out = append(out, best)
		ctx = append(ctx, best)
	}
	return out, nil
}
