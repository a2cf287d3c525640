package imatrix

import (
	"context"
	"fmt"
	"math"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/calib"
	"github.com/evopress/evopress/model"
)

// Collector accumulates an importance matrix from the inputs of a model's linear layers: feed it
// a forward pass through Hook, or a calibration pass's Hessians through AddStats. Sums are kept
// in float64 per tensor (q, k and v each on its own, as llama-imatrix keeps them).
type Collector struct {
	widths [][arch.NumLinearKinds]int
	sums   [][arch.NumLinearKinds][]float64
	counts [][arch.NumLinearKinds]int64
	err    error
}

// NewCollector returns an empty collector for m's linear layers.
func NewCollector(m *model.Model) (*Collector, error) {
	if m == nil || len(m.Blocks) == 0 {
		return nil, fmt.Errorf("imatrix: no model blocks to collect from")
	}
	n := len(m.Blocks)
	c := &Collector{widths: make([][arch.NumLinearKinds]int, n), sums: make([][arch.NumLinearKinds][]float64, n),
		counts: make([][arch.NumLinearKinds]int64, n)}
	for i := range m.Blocks {
		for _, k := range arch.LinearKinds() {
			in := m.Blocks[i].Layer(k).In
			if in <= 0 {
				return nil, fmt.Errorf("imatrix: %s has %d input columns", arch.Weight(i, k), in)
			}
			c.widths[i][k] = in
		}
	}
	return c, nil
}

// Err returns the first error the hook met (a layer outside the model or of another width).
func (c *Collector) Err() error { return c.err }

func (c *Collector) acc(block int, k arch.LinearKind, cols int) []float64 {
	if c.err != nil {
		return nil
	}
	if block < 0 || block >= len(c.widths) || k < 0 || k >= arch.NumLinearKinds {
		c.err = fmt.Errorf("imatrix: layer %d/%v is not one of the collector's model", block, k)
		return nil
	}
	if w := c.widths[block][k]; cols != w {
		c.err = fmt.Errorf("imatrix: %s: input width %d, the collector's model has %d", arch.Weight(block, k).GGUF(), cols, w)
		return nil
	}
	if c.sums[block][k] == nil {
		c.sums[block][k] = make([]float64, cols)
	}
	return c.sums[block][k]
}

// Hook returns a model.Hook that adds every input row x of a linear layer to that layer's sums:
// Sums[j] += x[j]², Counts += rows. The first inconsistency is kept (Err) and later inputs are
// ignored.
func (c *Collector) Hook() model.Hook {
	return func(block int, kind arch.LinearKind, x []float32, rows, cols int) {
		acc := c.acc(block, kind, cols)
		if acc == nil {
			return
		}
		if rows < 0 || len(x) < rows*cols {
			c.err = fmt.Errorf("imatrix: %s: %d values for %d rows of %d", arch.Weight(block, kind).GGUF(), len(x), rows, cols)
			return
		}
		for r := 0; r < rows; r++ {
			for j, v := range x[r*cols : (r+1)*cols] {
				acc[j] += float64(v) * float64(v)
			}
		}
		c.counts[block][kind] += int64(rows)
	}
}

// AddStats adds one block's calibration statistics (package calib): the diagonal of each
// Hessian H = 2XᵀX/N holds Σₜ xₜⱼ² = Hⱼⱼ·N/2, so a level-database build gets the importance
// matrix of its own calibration sequences without another forward pass. q, k and v (and gate
// and up) share one Hessian and so get the same sums. The float32 rounding of the running
// Hessian makes these sums agree with Hook's to about 1e-6 relative.
func (c *Collector) AddStats(st *calib.Stats) error {
	if st == nil {
		return fmt.Errorf("imatrix: nil calibration statistics")
	}
	for _, k := range arch.LinearKinds() {
		h := st.Hessian(k)
		if h == nil || len(h.H) != h.Cols*h.Cols {
			return fmt.Errorf("imatrix: block %d: no Hessian for %v", st.Block, k)
		}
		acc := c.acc(st.Block, k, h.Cols)
		if acc == nil {
			return c.err
		}
		scale := float64(h.N) / 2
		for j := range acc {
			acc[j] += float64(h.H[j*h.Cols+j]) * scale
		}
		c.counts[st.Block][k] += int64(h.N)
	}
	return nil
}

// Matrix returns the collected sums as an importance matrix (every layer that saw at least one
// token), rounded to float32; ChunkCount, ChunkSize and Datasets are left for the caller. It
// fails on the hook's first error or on a sum that is not finite (llama-imatrix stops there too).
func (c *Collector) Matrix() (*Matrix, error) {
	if c.err != nil {
		return nil, c.err
	}
	m := New()
	for i := range c.sums {
		for _, k := range arch.LinearKinds() {
			if c.counts[i][k] == 0 {
				continue
			}
			name := arch.Weight(i, k).GGUF()
			e := &Entry{Sums: make([]float32, len(c.sums[i][k])), Counts: []int64{c.counts[i][k]}}
			for j, v := range c.sums[i][k] {
				if f := float32(v); math.IsInf(float64(f), 0) || math.IsNaN(v) {
					return nil, fmt.Errorf("imatrix: %s: column %d: the sum of squared inputs is %g (non-finite activations)", name, j, f)
				} else {
					e.Sums[j] = f
				}
			}
			m.Entries[name] = e
		}
	}
	if len(m.Entries) == 0 {
		return nil, fmt.Errorf("imatrix: no layer saw any input")
	}
	return m, nil
}

// Chunks cuts a tokenized text into llama-imatrix's chunks: ids is the whole text's tokens
// (with the BOS token in front when the model adds one, as llama.cpp tokenizes it), cut into
// consecutive chunks of n tokens, the remainder dropped; max > 0 keeps the first max chunks.
// When bos ≥ 0 the first token of every chunk is replaced by bos (llama-imatrix does this when
// the vocabulary adds BOS), so chunk k is bos followed by ids[k·n+1 : (k+1)·n]. The chunks are
// copies.
func Chunks(ids []int, n, max, bos int) ([][]int, error) {
	if n < 1 {
		return nil, fmt.Errorf("imatrix: chunk size %d: must be at least 1", n)
	}
	k := len(ids) / n
	if max > 0 && k > max {
		k = max
	}
	out := make([][]int, k)
	for i := range out {
		c := append([]int(nil), ids[i*n:(i+1)*n]...)
		if bos >= 0 {
			c[0] = bos
		}
		out[i] = c
	}
	return out, nil
}

// DefaultBatch is the number of chunks per forward batch when Options.Batch is not set.
const DefaultBatch = 8

// Options configures Compute.
type Options struct {
	// Batch is the number of chunks per forward batch (≤ 0: DefaultBatch). The sums are
	// accumulated in float64, so the batch split changes them only in the last bits.
	Batch int
	// Progress, when set, is called after every batch with the chunks done and the total.
	Progress func(done, total int)
}

// Compute runs m over the chunks (all of one length; see Chunks), batch by batch, and returns the
// importance matrix of its linear layers' inputs with ChunkCount = len(chunks) and ChunkSize the
// chunk length. It stops with ctx's error when ctx is cancelled (checked between batches).
func Compute(ctx context.Context, m *model.Model, chunks [][]int, opt Options) (*Matrix, error) {
	if len(chunks) == 0 {
		return nil, fmt.Errorf("imatrix: no chunks")
	}
	for i, ch := range chunks {
		if len(ch) == 0 || len(ch) != len(chunks[0]) {
			return nil, fmt.Errorf("imatrix: chunk %d has %d tokens, chunk 0 has %d (chunks must be of one non-zero length)", i, len(ch), len(chunks[0]))
		}
	}
	c, err := NewCollector(m)
	if err != nil {
		return nil, err
	}
	batch := opt.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	hook := c.Hook()
	for lo := 0; lo < len(chunks); lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+batch, len(chunks))
		a, err := m.Embedding(chunks[lo:hi])
		if err != nil {
			return nil, fmt.Errorf("imatrix: chunks %d–%d: %w", lo, hi-1, err)
		}
		m.Forward(a, 0, len(m.Blocks), hook)
		if c.err != nil {
			return nil, c.err
		}
		if opt.Progress != nil {
			opt.Progress(hi, len(chunks))
		}
	}
	out, err := c.Matrix()
	if err != nil {
		return nil, err
	}
	out.ChunkCount, out.ChunkSize = len(chunks), len(chunks[0])
	return out, nil
}
