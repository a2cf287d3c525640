package compress

import (
	"fmt"

	"github.com/evopress/evopress/internal/kernels"
)

// SparseGPTOptions configures SparseGPT.
//
// The zero value is NOT the reference setting: BlockSize 0 selects the
// default 128, but PercDamp is used as given (0 means no damping). Start
// from DefaultSparseGPTOptions.
type SparseGPTOptions struct {
	// BlockSize is the number of columns whose mask is chosen together and
	// whose updates are applied eagerly; later columns are updated lazily once
	// per block. ≤ 0 selects 128 (the reference's default).
	BlockSize int
	// PercDamp is the relative damping: H += PercDamp·mean(diag H)·I. Must be
	// ≥ 0; the reference uses 0.01.
	PercDamp float64
}

// DefaultSparseGPTOptions returns the reference implementation's setting:
// blocks of 128 columns, 1% damping.
func DefaultSparseGPTOptions() SparseGPTOptions {
	return SparseGPTOptions{BlockSize: 128, PercDamp: 0.01}
}

func (o SparseGPTOptions) blockSize() int {
	if o.BlockSize <= 0 {
		return 128
	}
	return o.BlockSize
}

// SparseGPT prunes the rows×cols weight matrix W (row-major, y = x·Wᵀ) to
// each of the given sparsities with the SparseGPT algorithm (Frantar &
// Alistarh 2023, the reference's fasterprune with prunen = 0), using the
// calibration Hessian H = 2XᵀX/N of the layer's inputs (cols×cols,
// row-major, symmetric). It returns one pruned copy of W per sparsity, in
// the order given; W and H are not modified.
//
// All levels share one factorisation of H: dead inputs (H_ii == 0) get
// H_ii = 1, H is damped by PercDamp·mean(diag H), and U is the upper
// Cholesky factor of H⁻¹. Each level then runs over blocks of BlockSize
// columns: the block's mask is chosen at the block's start by the saliency
// w²/U_cc² over all the block's entries, then the block's columns are
// pruned one by one, each pruned weight's error err = w/U_cc being spread
// onto the block's later columns (W[:, j] −= err·U_cj), and the later
// blocks are updated lazily in one matrix product. All column updates run
// in float64 on a float64 copy of W; the result is rounded to float32 once.
//
// Exact count: level s has exactly Z = round(s·rows·cols) pruned weights,
// and every pruned weight is exactly +0. Weights of dead inputs are pruned
// first, since they cost nothing (their inputs are zero on the calibration
// data). If Z ≥ D, the number of dead-input weights, all dead-input weights
// are zeroed and the remaining Z − D are split over the blocks in proportion
// to each block's number of live weights with cumulative rounding (block b
// gets round(L·c_b/T) − round(L·c_{b−1}/T), c_b the live weights up to block b,
// T all live weights, L = Z − D), so the blocks add up to Z exactly. If
// Z < D, the first Z dead-input weights in column-major order are zeroed,
// no live weight changes, and the other dead-input weights keep their
// original values (they do not affect the calibration output either way):
// in particular sparsity 0 returns W unchanged. Within a block ties in
// saliency are broken by position (row, then column).
//
// Weights that are already zero have saliency 0 and are chosen first, so
// the result has exactly Z zeros unless the input already holds more zeros
// than the level asks for among its unpruned live weights that receive no
// compensation (or a compensated value underflows float32), in which case
// the extra zeros are simply kept.
func SparseGPT(W []float32, rows, cols int, H []float32, sparsities []float64, opt SparseGPTOptions) ([][]float32, error) {
	if err := checkLayer("SparseGPT", W, rows, cols); err != nil {
		return nil, err
	}
	if err := checkHessian("SparseGPT", H, cols); err != nil {
		return nil, err
	}
	for _, s := range sparsities {
		if err := checkFraction("SparseGPT", s); err != nil {
			return nil, err
		}
	}
	f, err := newFactor(H, cols, opt.PercDamp, false)
	if err != nil {
		return nil, fmt.Errorf("compress: SparseGPT: %w", err)
	}
	out := make([][]float32, len(sparsities))
	for i, s := range sparsities {
		out[i] = f.prune(W, rows, s, opt.blockSize())
	}
	return out, nil
}

// prune runs one SparseGPT level; see SparseGPT.
func (f *factor) prune(W []float32, rows int, s float64, bs int) []float32 {
	cols := f.n
	total := rows * cols
	z := targetCount(s, total)
	dead := rows * f.nDead
	if z <= dead {
		out := make([]float32, total)
		copy(out, W)
		left := z
		for c := 0; c < cols && left > 0; c++ {
			if !f.dead[c] {
				continue
			}
			for r := 0; r < rows && left > 0; r++ {
				out[r*cols+c] = 0
				left--
			}
		}
		return out
	}
	live := total - dead
	nLive := z - dead

	w := f.weights(total)
	for i, v := range W {
		w[i] = float64(v)
	}
	for c := 0; c < cols; c++ {
		if f.dead[c] {
			for r := 0; r < rows; r++ {
				w[r*cols+c] = 0
			}
		}
	}

	u := f.u
	bs = min(bs, cols)
	ebuf := make([]float64, rows*bs)
	mask := make([]bool, rows*bs)
	keys := make([]float64, 0, rows*bs)
	pos := make([]int32, 0, rows*bs)
	idx := make([]int32, 0, rows*bs)
	liveCols := make([]int, 0, bs)
	liveSeen, done := 0, 0
	for i1 := 0; i1 < cols; i1 += bs {
		i2 := min(i1+bs, cols)
		nb := i2 - i1
		e := ebuf[:rows*nb]
		m := mask[:rows*nb]

		// The block's share of the live prunes.
		liveCols = liveCols[:0]
		for c := i1; c < i2; c++ {
			if !f.dead[c] {
				liveCols = append(liveCols, c)
			}
		}
		liveSeen += rows * len(liveCols)
		upto := cumShare(nLive, liveSeen, live)
		k := upto - done
		done = upto

		// Mask: dead entries, plus the k live entries of least saliency.
		keys, pos, idx = keys[:0], pos[:0], idx[:0]
		for r := 0; r < rows; r++ {
			row := w[r*cols:]
			for c := i1; c < i2; c++ {
				m[r*nb+c-i1] = f.dead[c]
			}
			for _, c := range liveCols {
				d := u[c*cols+c]
				v := row[c] / d
				idx = append(idx, int32(len(keys)))
				keys = append(keys, v*v)
				pos = append(pos, int32(r*nb+c-i1))
			}
		}
		selectSmallest(keys, idx, k)
		for _, j := range idx[:k] {
			m[pos[j]] = true
		}

		// Column by column inside the block, rows independently.
		parallelRows(rows, func(r0, r1 int) {
			for r := r0; r < r1; r++ {
				row := w[r*cols : (r+1)*cols]
				er := e[r*nb : (r+1)*nb]
				mr := m[r*nb : (r+1)*nb]
				for i := i1; i < i2; i++ {
					if !mr[i-i1] {
						er[i-i1] = 0
						continue
					}
					ev := row[i] / u[i*cols+i]
					er[i-i1] = ev
					row[i] = 0
					if ev == 0 {
						continue
					}
					kernels.SubMul64(row[i+1:i2], ev, u[i*cols+i+1:i*cols+i2])
				}
			}
		})
		f.lazyUpdate(w, rows, e, i1, i2)
	}

	out := make([]float32, total)
	for i, v := range w {
		out[i] = float32(v)
	}
	return out
}
