package compress

import (
	"fmt"
	"math"

	"github.com/evopress/evopress/internal/kernels"
)

// Hessian accumulates the calibration Hessian H = 2XᵀX/N of a linear
// layer's inputs over batches of rows (tokens), without needing the model.
type Hessian struct {
	// Cols is the input width of the layer.
	Cols int
	// N is the number of rows (tokens) added so far.
	N int
	// H is the cols×cols row-major running Hessian, exactly symmetric.
	H []float32
}

// NewHessian returns an empty accumulator for inputs of width cols.
func NewHessian(cols int) (*Hessian, error) {
	if cols <= 0 || cols > math.MaxInt32 || cols > math.MaxInt/cols {
		return nil, fmt.Errorf("compress: NewHessian: bad width %d", cols)
	}
	return &Hessian{Cols: cols, H: make([]float32, cols*cols)}, nil
}

// Add adds a batch X of rows×Cols inputs (row-major, one token per row) in
// the reference's running form:
//
//	H ← H·N/(N+rows) + 2/(N+rows)·XᵀX,   N ← N + rows,
//
// so that H = 2XᵀX/N over all rows seen, every row weighted equally. (The
// reference's add_batch counts sequences instead of rows, which scales H by
// the sequence length; with equal-length sequences the weighting is the
// same, and SparseGPT, GPTQ, Wanda and the normalised LayerError are
// invariant to the scale.) XᵀX is accumulated in float32 (see syrk), as the
// reference does. It fails on a shape mismatch or non-finite inputs;
// rows = 0 is a no-op.
func (h *Hessian) Add(X []float32, rows int) error {
	if h == nil || h.Cols <= 0 || len(h.H) != h.Cols*h.Cols {
		return fmt.Errorf("compress: Hessian.Add: uninitialised accumulator (use NewHessian)")
	}
	if rows < 0 || len(X) != rows*h.Cols {
		return fmt.Errorf("compress: Hessian.Add: len(X) = %d, want rows·cols = %d·%d", len(X), rows, h.Cols)
	}
	if rows == 0 {
		return nil
	}
	if i := firstNonFinite(X); i >= 0 {
		return fmt.Errorf("compress: Hessian.Add: X[%d]: %w", i, errNotFinite)
	}
	n := float64(h.N + rows)
	beta := float32(float64(h.N) / n)
	alpha := float32(2 / n)
	syrk(h.Cols, rows, alpha, X, beta, h.H)
	h.N += rows
	return nil
}

// syrk sets c ← alpha·xᵀx + beta·c for x of k×n (row-major) and the
// symmetric n×n c (row-major, both triangles written; beta = 0 ignores the
// old c). This is the one place XᵀX is formed. It runs the project's SGEMM
// (kernels.Gemm with transA, float32 accumulation as in the reference) over
// panels of syrkPanel columns of c, each panel only down to its last row,
// so that little more than the upper triangle is computed, then mirrors the
// upper triangle into the lower one so that c is exactly symmetric. Every
// entry is computed by one micro-kernel with a fixed summation order over k,
// so the result does not depend on the number of CPUs.
func syrk(n, k int, alpha float32, x []float32, beta float32, c []float32) {
	for j0 := 0; j0 < n; j0 += syrkPanel {
		j1 := min(j0+syrkPanel, n)
		// c[0:j1, j0:j1] ← alpha·x[:, 0:j1]ᵀ·x[:, j0:j1] + beta·c[0:j1, j0:j1]
		kernels.Gemm(true, false, j1, j1-j0, k, alpha, x, n, x[j0:], n, beta, c[j0:], n)
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			c[j*n+i] = c[i*n+j]
		}
	}
}

// syrkPanel is the column panel width of syrk: narrower panels compute less
// of the lower triangle, wider ones give the SGEMM larger products.
const syrkPanel = 128
