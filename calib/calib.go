// Package calib gathers the calibration statistics of the level database (docs/design.md, "The method": the level database):
// for every linear layer of every block, the Hessian H = 2·XᵀX/N of the layer's inputs X over the
// calibration tokens, in float32, accumulated with the project's SGEMM (compress.Hessian).
//
// The calibration sequences (token chunks of one length, tokenized without BOS) are embedded
// once; then the blocks are visited in order: block i runs over all sequences in batches while a
// model.Hook feeds the inputs of its linear layers into the accumulators, and the resulting Stats
// are handed to a callback before the block's outputs become the next block's inputs. Only the
// residual stream of the calibration set (sequences × seq-len × hidden floats) and one block's
// Hessians are held at a time. q, k and v read the same input and share one Hessian, as do gate
// and up; o and down have their own. Every token row has the same weight, so with sequences of
// equal length every sequence is weighted equally.
//
// Sequential mode (Options.Sequential) follows the reference's quantization database: the
// callback may replace the block's weights (a compressed version of it) and the block's outputs
// are then computed with the replaced weights, so later blocks see the partly compressed model's
// activations. This costs one extra pass of each block: the statistics pass runs on a copy of each
// batch, the propagation pass afterwards on the residual stream itself.
package calib

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/model"
)

// DefaultBatch is the number of sequences per forward batch when Options.Batch is not set.
const DefaultBatch = 16

// Stats holds the calibration Hessians of one block's seven linear layers.
type Stats struct {
	// Block is the block's index.
	Block int
	// Attn is the Hessian of the attention input (q_proj, k_proj and v_proj), Hidden wide.
	Attn *compress.Hessian
	// Out is the Hessian of o_proj's input (the attention output), Heads·HeadDim wide.
	Out *compress.Hessian
	// MLP is the Hessian of the MLP input (gate_proj and up_proj), Hidden wide.
	MLP *compress.Hessian
	// Down is the Hessian of down_proj's input, Intermediate wide.
	Down *compress.Hessian
}

// NewStats returns empty accumulators for block i of m.
func NewStats(m *model.Model, block int) (*Stats, error) {
	if m == nil {
		return nil, fmt.Errorf("calib: nil model")
	}
	if block < 0 || block >= len(m.Blocks) {
		return nil, fmt.Errorf("calib: block %d outside [0, %d)", block, len(m.Blocks))
	}
	b := &m.Blocks[block]
	s := &Stats{Block: block}
	var err error
	for _, p := range []struct {
		h    **compress.Hessian
		cols int
	}{{&s.Attn, b.Q.In}, {&s.Out, b.O.In}, {&s.MLP, b.Gate.In}, {&s.Down, b.Down.In}} {
		if *p.h, err = compress.NewHessian(p.cols); err != nil {
			return nil, fmt.Errorf("calib: block %d: %w", block, err)
		}
	}
	return s, nil
}

// Hessian returns the accumulator that holds the Hessian of the given layer (shared between
// q/k/v and between gate/up), or nil for an invalid kind.
func (s *Stats) Hessian(k arch.LinearKind) *compress.Hessian {
	switch k {
	case arch.QProj, arch.KProj, arch.VProj:
		return s.Attn
	case arch.OProj:
		return s.Out
	case arch.GateProj, arch.UpProj:
		return s.MLP
	case arch.DownProj:
		return s.Down
	}
	return nil
}

// hook returns the model.Hook that accumulates this block's Hessians; the first error is kept in
// *errp and later inputs are ignored. Shared inputs are added once (on q_proj and gate_proj).
func (s *Stats) hook(errp *error) model.Hook {
	return func(block int, kind arch.LinearKind, x []float32, rows, cols int) {
		if *errp != nil || block != s.Block {
			return
		}
		var h *compress.Hessian
		switch kind {
		case arch.QProj:
			h = s.Attn
		case arch.OProj:
			h = s.Out
		case arch.GateProj:
			h = s.MLP
		case arch.DownProj:
			h = s.Down
		default:
			return // k/v share q's input, up shares gate's
		}
		if cols != h.Cols {
			*errp = fmt.Errorf("calib: block %d %s: input width %d, Hessian width %d", block, kind, cols, h.Cols)
			return
		}
		if err := h.Add(x[:rows*cols], rows); err != nil {
			*errp = fmt.Errorf("calib: block %d %s: %w", block, kind, err)
		}
	}
}

// Options configures Run.
type Options struct {
	// Batch is the number of sequences per forward batch; ≤ 0 selects DefaultBatch. Results do not
	// depend on the number of CPUs, but the float32 rounding of the Hessians depends on the batch
	// split, so keep it fixed for reproducible databases.
	Batch int
	// Sequential propagates each block's outputs only after the BlockFunc has run, with whatever
	// weights the callback left in the block (see the package documentation).
	Sequential bool
	// Blocks limits the run to blocks [0, Blocks); 0 means all blocks.
	Blocks int
	// NeedStats, when set, says which blocks need statistics; the others are only propagated (their
	// BlockFunc still runs, with nil Stats, before propagation). nil means every block.
	NeedStats func(block int) bool
	// Progress, when set, is called after each batch of each pass with the block, the sequences
	// done in the current pass and the total.
	Progress func(block, done, total int)
}

// BlockFunc receives the statistics of a block once the block has seen every calibration
// sequence, before the block's outputs are propagated. st is nil for blocks that NeedStats
// declined. Returning an error stops Run with that error.
type BlockFunc func(block int, st *Stats) error

// Run embeds the calibration sequences (all of the same length) and visits the model's blocks in
// order, accumulating each block's Hessians over all sequences and handing them to fn (see the
// package documentation). Run itself never changes m; in sequential mode fn may change the
// weights of the block it is given (pass a model.Clone if the original must stay intact). It
// stops with ctx's error when ctx is cancelled (checked between batches).
func Run(ctx context.Context, m *model.Model, seqs [][]int, opt Options, fn BlockFunc) error {
	if m == nil {
		return fmt.Errorf("calib: nil model")
	}
	if len(seqs) == 0 {
		return fmt.Errorf("calib: no calibration sequences")
	}
	if fn == nil {
		return fmt.Errorf("calib: nil BlockFunc")
	}
	nb := len(m.Blocks)
	if opt.Blocks < 0 || opt.Blocks > nb {
		return fmt.Errorf("calib: Options.Blocks = %d outside [0, %d]", opt.Blocks, nb)
	}
	if opt.Blocks > 0 {
		nb = opt.Blocks
	}
	batch := opt.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	act, err := m.Embedding(seqs)
	if err != nil {
		return fmt.Errorf("calib: %w", err)
	}
	T, h := act.T, m.Hidden
	n := len(seqs)
	view := func(lo, hi int) *model.Activations {
		return &model.Activations{B: hi - lo, T: T, X: act.X[lo*T*h : hi*T*h]}
	}
	var scratch model.Activations
	for i := 0; i < nb; i++ {
		need := opt.NeedStats == nil || opt.NeedStats(i)
		var st *Stats
		if need {
			if st, err = NewStats(m, i); err != nil {
				return err
			}
			var herr error
			hook := st.hook(&herr)
			for lo := 0; lo < n; lo += batch {
				if err := ctx.Err(); err != nil {
					return err
				}
				hi := min(lo+batch, n)
				a := view(lo, hi)
				if opt.Sequential {
					scratch.CopyFrom(a)
					a = &scratch
				}
				m.Forward(a, i, i+1, hook)
				if herr != nil {
					return herr
				}
				if opt.Progress != nil {
					opt.Progress(i, hi, n)
				}
			}
		}
		if err := fn(i, st); err != nil {
			return err
		}
		if need && !opt.Sequential {
			continue // the statistics pass already propagated the block
		}
		if i == nb-1 {
			break // nothing reads the last block's outputs
		}
		for lo := 0; lo < n; lo += batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			hi := min(lo+batch, n)
			m.Forward(view(lo, hi), i, i+1, nil)
			if opt.Progress != nil {
				opt.Progress(i, hi, n)
			}
		}
	}
	return nil
}

// Collect runs the calibration sequences through every block and returns all blocks' statistics
// (non-sequential: every block sees the dense model's activations). It holds every block's
// Hessians at once; use Run to process one block at a time.
func Collect(ctx context.Context, m *model.Model, seqs [][]int, batch int) ([]*Stats, error) {
	if m == nil {
		return nil, fmt.Errorf("calib: nil model")
	}
	out := make([]*Stats, len(m.Blocks))
	err := Run(ctx, m, seqs, Options{Batch: batch}, func(block int, st *Stats) error {
		out[block] = st
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Sample returns n of the chunks, drawn without repetition by a PCG seeded with seed and kept in
// their original order; n ≤ 0 or n ≥ len(chunks) returns every chunk. The level database uses it
// to pick its calibration sequences from the whole calibration text.
func Sample(chunks [][]int, n int, seed uint64) [][]int {
	if n <= 0 || n >= len(chunks) {
		return chunks
	}
	rng := rand.New(rand.NewPCG(seed, 0x6361_6c69_62)) // "calib"
	idx := rng.Perm(len(chunks))[:n]
	slices.Sort(idx)
	out := make([][]int, n)
	for i, j := range idx {
		out[i] = chunks[j]
	}
	return out
}
