// Package allocate computes the baseline allocations EvoPress is compared against in the sparse
// and quant modes (docs/evopress.md §5): per-layer sparsity levels or bit-widths under exactly
// the budget the search modes define (sparse.Mode.Legal, quant.Mode.Legal).
//
//   - Uniform: every layer at level 0 (sparse) or at the target bit-width (quant, integer
//     targets). A fractional bit target has no uniform profile; the paper compares against the
//     best of 32 random profiles there (RandomQuant with n = 32 and a Scorer).
//   - DP: the database's per-level normalised errors tr(ΔW·H·ΔWᵀ)/tr(W·H·Wᵀ), minimised in sum
//     by an exact dynamic programme over integer budget units, assuming the errors add up
//     (sparse: Σℓ = 0 with per-layer ranges; quant: Σ numel·bits ≤ budget, with numel counted in
//     units of the gcd of the layer sizes).
//   - OWL (Outlier Weighted Layerwise sparsity, Yin et al. 2024, github.com/luuyin/OWL): per-block
//     outlier ratios of the Wanda metric |W_ij|·‖x_j‖, mapped to block sparsities, rounded to the
//     database's levels and restored to the exact budget; the (λ, M) grid point is chosen by
//     calibration fitness.
//   - Random: seeded random legal profiles, the best of which a Scorer picks.
//
// The package holds the allocation logic only; scoring candidates (KL to the dense model on
// calibration tokens) is the caller's Scorer, so the algorithms are testable on their own.
package allocate

import (
	"context"

	"github.com/evopress/evopress/search"
)

// Scorer returns the fitness (lower is better) of each candidate profile, e.g. the KL divergence
// of the compressed model to the dense one on a fixed calibration batch.
type Scorer func(ctx context.Context, cands []search.Profile) ([]float64, error)

// Best scores cands with score and returns the index of the lowest fitness (the first on ties;
// NaN never wins unless every fitness is NaN) together with every candidate's fitness.
func Best(ctx context.Context, cands []search.Profile, score Scorer) (best int, fit []float64, err error) {
	if len(cands) == 0 {
		return -1, nil, errNoCandidates
	}
	fit, err = score(ctx, cands)
	if err != nil {
		return -1, nil, err
	}
	if len(fit) != len(cands) {
		return -1, nil, errScoreCount(len(fit), len(cands))
	}
	best = 0
	for i, f := range fit {
		if f < fit[best] || (fit[best] != fit[best] && f == f) {
			best = i
		}
	}
	return best, fit, nil
}
