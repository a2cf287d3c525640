// Package allocate computes the baseline allocations EvoPress is compared against in the sparse
// and quant modes (docs/design.md, "The method": baselines): per-layer sparsity levels or bit-widths under exactly
// the budget the search modes define (sparse.Mode.Legal, quant.Mode.Legal).
//
//   - Uniform: every layer at level 0 (sparse) or at the target bit-width (quant, integer
//     targets). A fractional bit target has no uniform profile; the paper compares against the
//     best of 32 random profiles there (RandomQuant with n = 32 and a Scorer).
//   - DP: the database's per-level normalised errors tr(ΔW·H·ΔWᵀ)/tr(W·H·Wᵀ), minimised in sum
//     by an exact dynamic programme over integer budget units, assuming the errors add up
//     (sparse: Σℓ = 0 with per-layer ranges; quant: Σ numel·bits ≤ budget, with numel counted in
//     units of the gcd of the layer sizes; a GGUF database's per-level costs: Σ bytes·8 ≤ budget,
//     in units of the gcd of the levels' costs above each layer's cheapest — the allocation
//     llama.cpp's --target-bpw pull request makes).
//   - OWL (Outlier Weighted Layerwise sparsity, Yin et al. 2024, github.com/luuyin/OWL): per-block
//     outlier ratios of the Wanda metric |W_ij|·‖x_j‖, mapped to block sparsities, rounded to the
//     database's levels and restored to the exact budget; the (λ, M) grid point is chosen by
//     calibration fitness.
//   - Random: seeded random legal profiles, the best of which a Scorer picks.
//
// OWL follows its reference code (lib/prune_all.py, prune_wanda_outlier): the outlier ratio of a
// block is the share of its concatenated Wanda scores above M × their mean, with ‖x_j‖ from the
// calibration inputs run through the dense model, and the ratios are scaled to [0, 2λ] and
// subtracted from the target around their mean. Deviations: the pruned weights come from the level
// database (SparseGPT in EvoPress's comparison, Wanda in OWL's paper); ‖x_j‖ comes from the
// diagonal of the calibration Hessian (the same up to a factor the ratio cancels) on the project's
// calibration pool instead of 128 C4 sequences of 2048 tokens; OWL's clamp of a sparsity ≤ 0 to
// 0.01 is replaced by the database's level ranges, rounding to the nearest level and the exact
// budget restoration of OWLProfile; and the (λ, M) grid point is chosen by calibration KL (the
// paper tunes it per model).
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
type Scorer func(ctx context.Context, cands []search.Levels) ([]float64, error)

// Best scores cands with score and returns the index of the lowest fitness (the first on ties;
// NaN never wins unless every fitness is NaN) together with every candidate's fitness.
func Best(ctx context.Context, cands []search.Levels, score Scorer) (best int, fit []float64, err error) {
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
