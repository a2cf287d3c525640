package compress

import "fmt"

// LayerError measures how much a compressed layer Wc changes the layer's
// output on the calibration data: abs = tr(ΔW·H·ΔWᵀ) with ΔW = Wc − W, which
// for H = 2XᵀX/N equals (2/N)·‖X·ΔWᵀ‖²_F, and normalised = abs/tr(W·H·Wᵀ),
// the error relative to the layer's output energy (the DP baseline's
// per-layer score). H is used as given (undamped, dead inputs included).
// Computed in float64. normalised is 0 when both traces are 0 and +Inf when
// only the denominator is.
func LayerError(W, Wc []float32, rows, cols int, H []float32) (abs, normalised float64, err error) {
	if err := checkLayer("LayerError", W, rows, cols); err != nil {
		return 0, 0, err
	}
	if err := checkLayer("LayerError", Wc, rows, cols); err != nil {
		return 0, 0, err
	}
	if len(H) != cols*cols {
		return 0, 0, fmt.Errorf("compress: LayerError: len(H) = %d, want %d", len(H), cols*cols)
	}
	if i := firstNonFinite(H); i >= 0 {
		return 0, 0, fmt.Errorf("compress: LayerError: H[%d]: %w", i, errNotFinite)
	}
	h := make([]float64, cols*cols)
	for i, v := range H {
		h[i] = float64(v)
	}
	// Stack ΔW over W and compute both quadratic forms with one product.
	a := make([]float64, 2*rows*cols)
	for i := range W {
		a[i] = float64(Wc[i]) - float64(W[i])
		a[rows*cols+i] = float64(W[i])
	}
	p := make([]float64, 2*rows*cols)
	dgemm(false, false, 2*rows, cols, cols, 1, a, cols, h, cols, 0, p, cols)
	var den float64
	for i := 0; i < rows*cols; i++ {
		abs += a[i] * p[i]
		den += a[rows*cols+i] * p[rows*cols+i]
	}
	switch {
	case den != 0:
		normalised = abs / den
	case abs == 0:
		normalised = 0
	default:
		normalised = posInf
	}
	return abs, normalised, nil
}
