package allocate

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/calib"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/sparse"
)

// OWL's hyper-parameter grid (docs/design.md, "The method": baselines): the spread λ of the block sparsities and the
// outlier threshold M (a Wanda score is an outlier when it exceeds M × the block's mean score).
var (
	OWLLambdas = []float64{0.02, 0.05, 0.08, 0.1, 0.2}
	OWLMs      = []float64{3, 5, 7, 10}
)

// OutlierRatios returns, for every threshold ms[k] and every block b, OWL's layerwise outlier
// ratio D_b: the share of the block's Wanda scores |W_ij|·‖x_j‖ (over all seven linear layers of
// the block together) that exceed ms[k] times their mean. ‖x_j‖ is the norm of input feature j
// over the calibration tokens seqs, run through the dense model (as OWL does), read from the
// diagonal of the calibration Hessian H = 2XᵀX/N (a positive factor common to the block's
// layers, which the ratio to the mean cancels). batch is the calibration forward batch (≤ 0:
// calib.DefaultBatch). The result is out[k][b], fractions in [0, 1] (OWL prints percentages).
func OutlierRatios(ctx context.Context, m *model.Model, seqs [][]int, ms []float64, batch int) ([][]float64, error) {
	if len(ms) == 0 {
		return nil, fmt.Errorf("allocate: no outlier thresholds M")
	}
	for _, t := range ms {
		if !(t > 0) || math.IsInf(t, 0) {
			return nil, fmt.Errorf("allocate: outlier threshold M = %v, want a positive number", t)
		}
	}
	out := make([][]float64, len(ms))
	for k := range out {
		out[k] = make([]float64, len(m.Blocks))
	}
	err := calib.Run(ctx, m, seqs, calib.Options{Batch: batch}, func(b int, st *calib.Stats) error {
		r := BlockOutlierRatios(&m.Blocks[b], st, ms)
		for k := range ms {
			out[k][b] = r[k]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// BlockOutlierRatios computes the outlier ratios of one block for every threshold in ms, from the
// block's weights and its calibration statistics (see OutlierRatios).
func BlockOutlierRatios(b *model.Block, st *calib.Stats, ms []float64) []float64 {
	var scores []float64
	for k := range arch.NumLinearKinds {
		lin := b.Layer(k)
		h := st.Hessian(k)
		norm := make([]float64, lin.In)
		for j := range norm {
			norm[j] = math.Sqrt(math.Max(float64(h.H[j*h.Cols+j]), 0))
		}
		wts := lin.Float32()
		for r := 0; r < lin.Out; r++ {
			row := wts[r*lin.In : (r+1)*lin.In]
			for j, w := range row {
				scores = append(scores, math.Abs(float64(w))*norm[j])
			}
		}
	}
	return OutlierShares(scores, ms)
}

// OutlierShares returns, for every threshold M in ms, the share of scores strictly greater than
// M times their mean (OWL's check_outlier_mean).
func OutlierShares(scores []float64, ms []float64) []float64 {
	out := make([]float64, len(ms))
	if len(scores) == 0 {
		return out
	}
	var sum float64
	for _, s := range scores {
		sum += s
	}
	mean := sum / float64(len(scores))
	for k, t := range ms {
		thr := t * mean
		n := 0
		for _, s := range scores {
			if s > thr {
				n++
			}
		}
		out[k] = float64(n) / float64(len(scores))
	}
	return out
}

// OWLBlockSparsities maps per-block outlier ratios to OWL's block sparsities for target s and
// spread lambda, as OWL's code does: the ratios are scaled linearly to [0, 2λ],
// r_b = (D_b − min D)/(max D − min D)·2λ, and block b gets sparsity s − (r_b − mean r), so a block
// with more outliers is pruned less and the mean over blocks is s. Equal ratios give every block
// s. (OWL's code then clamps a sparsity ≤ 0 to 0.01; the database's level ranges bound the
// sparsities instead, see OWLProfile.)
func OWLBlockSparsities(ratios []float64, s, lambda float64) []float64 {
	out := make([]float64, len(ratios))
	if len(ratios) == 0 {
		return out
	}
	lo, hi := slices.Min(ratios), slices.Max(ratios)
	if !(hi > lo) {
		for i := range out {
			out[i] = s
		}
		return out
	}
	r := make([]float64, len(ratios))
	var mean float64
	for i, d := range ratios {
		r[i] = (d - lo) / (hi - lo) * 2 * lambda
		mean += r[i]
	}
	mean /= float64(len(r))
	for i := range out {
		out[i] = s - (r[i] - mean)
	}
	return out
}

// OWLProfile turns per-layer target sparsities into the nearest legal profile of the sparse
// mode: each layer's level is its target rounded to the nearest level (ℓ = round((s_i − s)·numel/D)
// clamped to [Lo, Hi]), then the budget Σℓ = 0 is restored by greedy single-level moves, each
// time moving (down while Σℓ > 0, up while Σℓ < 0) the layer whose squared sparsity deviation
// (s + ℓ·D/numel − s_i)² grows least (ties: the earlier layer). Each layer's deviation is
// strictly convex in its level and the rounded start minimises every one of them, so the greedy
// result minimises the total Σ(sparsity_i − s_i)² over all legal profiles. (The squared
// deviation spreads the correction over many layers; an absolute deviation would be flat beyond
// the target and pile every move onto one layer.)
func OWLProfile(cfg sparse.Config, target []float64) (search.Levels, error) {
	mode, err := sparse.New(cfg)
	if err != nil {
		return nil, err
	}
	layers := mode.Layers()
	if len(target) != len(layers) {
		return nil, fmt.Errorf("allocate: %d target sparsities for %d layers", len(target), len(layers))
	}
	dev := func(i, v int) float64 {
		e := cfg.Sparsity + float64(v)*float64(cfg.D)/float64(layers[i].Numel) - target[i]
		return e * e
	}
	p := make(search.Levels, len(layers))
	sum := 0
	for i, l := range layers {
		t := target[i]
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, fmt.Errorf("allocate: layer %s: target sparsity %v", l.Name, t)
		}
		v := math.Round((t - cfg.Sparsity) * float64(l.Numel) / float64(cfg.D))
		v = math.Max(float64(l.Lo), math.Min(float64(l.Hi), v))
		p[i] = int(v)
		// Rounding to nearest can land on the farther level by float error; settle exactly.
		for p[i] > l.Lo && dev(i, p[i]-1) < dev(i, p[i]) {
			p[i]--
		}
		for p[i] < l.Hi && dev(i, p[i]+1) < dev(i, p[i]) {
			p[i]++
		}
		sum += p[i]
	}
	for sum != 0 {
		step := -1
		if sum < 0 {
			step = 1
		}
		best, bestCost := -1, math.Inf(1)
		for i, l := range layers {
			v := p[i] + step
			if v < l.Lo || v > l.Hi {
				continue
			}
			if c := dev(i, v) - dev(i, p[i]); c < bestCost {
				best, bestCost = i, c
			}
		}
		if best < 0 {
			return nil, fmt.Errorf("allocate: internal error: no level move restores the budget")
		}
		p[best] += step
		sum += step
	}
	if !mode.Legal(p) {
		return nil, fmt.Errorf("allocate: internal error: OWL profile %v is not legal", p)
	}
	return p, nil
}

// OWLCandidate is OWL's allocation at one grid point.
type OWLCandidate struct {
	// Lambda and M are the grid point.
	Lambda, M float64
	// BlockSparsity is OWL's sparsity of each block before rounding to the database's levels.
	BlockSparsity []float64
	// Profile is the legal profile nearest to it (OWLProfile).
	Profile search.Levels
}

// OWLGrid returns OWL's candidate profile for every (λ, M) of lambdas × ms (λ-major order).
// ratios[k][b] are the outlier ratios for threshold ms[k] (OutlierRatios); every layer of block b
// (parsed from its name) gets block b's sparsity.
func OWLGrid(cfg sparse.Config, ratios [][]float64, lambdas, ms []float64) ([]OWLCandidate, error) {
	if len(ratios) != len(ms) {
		return nil, fmt.Errorf("allocate: outlier ratios for %d thresholds, %d thresholds given", len(ratios), len(ms))
	}
	blockOf := make([]int, len(cfg.Layers))
	for i, l := range cfg.Layers {
		b, _, err := arch.ParseLinear(l.Name)
		if err != nil {
			return nil, fmt.Errorf("allocate: OWL needs the block of every layer: %w", err)
		}
		for k := range ratios {
			if b >= len(ratios[k]) {
				return nil, fmt.Errorf("allocate: layer %s is in block %d, outlier ratios cover %d blocks", l.Name, b, len(ratios[k]))
			}
		}
		blockOf[i] = b
	}
	var out []OWLCandidate
	for _, lam := range lambdas {
		if !(lam >= 0) || math.IsInf(lam, 0) {
			return nil, fmt.Errorf("allocate: OWL λ = %v, want a non-negative number", lam)
		}
		for k, t := range ms {
			bs := OWLBlockSparsities(ratios[k], cfg.Sparsity, lam)
			target := make([]float64, len(cfg.Layers))
			for i, b := range blockOf {
				target[i] = bs[b]
			}
			p, err := OWLProfile(cfg, target)
			if err != nil {
				return nil, err
			}
			out = append(out, OWLCandidate{Lambda: lam, M: t, BlockSparsity: bs, Profile: p})
		}
	}
	return out, nil
}

// UniqueProfiles returns the distinct profiles among ps in first-seen order and, for each of ps,
// the index of its profile in that list (so that equal candidates are scored once).
func UniqueProfiles(ps []search.Levels) (uniq []search.Levels, index []int) {
	seen := map[string]int{}
	index = make([]int, len(ps))
	for i, p := range ps {
		key := fmt.Sprint([]int(p))
		j, ok := seen[key]
		if !ok {
			j = len(uniq)
			seen[key] = j
			uniq = append(uniq, p)
		}
		index[i] = j
	}
	return uniq, index
}
