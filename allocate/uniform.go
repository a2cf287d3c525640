package allocate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/sparse"
)

// FractionalRandomDraws is the number of random profiles the paper's comparator for a fractional
// bit target (where no uniform profile exists) takes the best of.
const FractionalRandomDraws = 32

// randomStream is the PCG stream of the random profiles, so they do not depend on what else a
// seed drives.
const randomStream = 0x616c6c6f63 // "alloc"

// UniformSparse returns the all-zero profile: every layer at the database's target sparsity.
func UniformSparse(cfg sparse.Config) (search.Levels, error) {
	mode, err := sparse.New(cfg)
	if err != nil {
		return nil, err
	}
	p := make(search.Levels, len(cfg.Layers))
	if !mode.Legal(p) {
		return nil, fmt.Errorf("allocate: uniform sparse profile is not legal") // cannot happen: New checks 0 ∈ [Lo, Hi]
	}
	return p, nil
}

// UniformQuant returns the profile with every layer at the target bit-width. It fails for a
// fractional target (no uniform profile exists: use RandomQuant with FractionalRandomDraws and
// a Scorer, as the paper does) and when some layer does not allow that width.
func UniformQuant(cfg quant.Config) (search.Levels, error) {
	mode, err := quant.New(cfg)
	if err != nil {
		return nil, err
	}
	t4 := int64(math.Round(mode.Target() * quant.TargetScale))
	if t4%quant.TargetScale != 0 {
		return nil, fmt.Errorf("allocate: uniform quantization needs an integer bit target, not %v (the paper uses the best of %d random profiles there)",
			mode.Target(), FractionalRandomDraws)
	}
	bits := int(t4 / quant.TargetScale)
	p := make(search.Levels, len(cfg.Layers))
	for i, l := range mode.Layers() {
		if _, ok := slices.BinarySearch(l.Bits, bits); !ok {
			return nil, fmt.Errorf("allocate: layer %s has no %d-bit level (widths %v)", l.Name, bits, l.Bits)
		}
		p[i] = bits
	}
	if !mode.Legal(p) {
		return nil, fmt.Errorf("allocate: internal error: uniform %d-bit profile exceeds the budget", bits)
	}
	return p, nil
}

// RandomSparse returns n random legal sparse profiles, a deterministic function of cfg, n and
// seed: each layer's level is drawn uniformly from its range, then random layers are moved one
// level towards balance (down while Σℓ > 0, up while Σℓ < 0, each move drawn uniformly among the
// layers that can make it) until Σℓ = 0.
func RandomSparse(cfg sparse.Config, n int, seed uint64) ([]search.Levels, error) {
	mode, err := sparse.New(cfg)
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("allocate: %d random profiles requested, want at least 1", n)
	}
	layers := mode.Layers()
	rng := rand.New(rand.NewPCG(seed, randomStream))
	out := make([]search.Levels, n)
	movable := make([]int, 0, len(layers))
	for k := range out {
		p := make(search.Levels, len(layers))
		sum := 0
		for i, l := range layers {
			p[i] = l.Lo + rng.IntN(l.Hi-l.Lo+1)
			sum += p[i]
		}
		for sum != 0 {
			movable = movable[:0]
			for i, l := range layers {
				if (sum > 0 && p[i] > l.Lo) || (sum < 0 && p[i] < l.Hi) {
					movable = append(movable, i)
				}
			}
			i := movable[rng.IntN(len(movable))] // non-empty: Lo ≤ 0 ≤ Hi for every layer
			if sum > 0 {
				p[i]--
				sum--
			} else {
				p[i]++
				sum++
			}
		}
		if !mode.Legal(p) {
			return nil, fmt.Errorf("allocate: internal error: random sparse profile %v is not legal", p)
		}
		out[k] = p
	}
	return out, nil
}

// RandomQuant returns n random legal quant profiles, a deterministic function of cfg, n and
// seed, drawn as the paper initialises fractional targets: every layer starts at the lowest
// allowed width ≥ ceil(target) (for an integer target, the lowest width above it, so that the
// draws differ from the uniform profile), or its highest width when none is; then random layers
// (uniformly among those above their lowest width) go down one width until the budget holds.
// With per-level costs (cfg.CostLayers) they are the search's initial draws (quant.Mode.Initial
// with n draws): every layer from its first level costing at least the budget per weight,
// lowered until within budget, then filled while a step fits.
func RandomQuant(cfg quant.Config, n int, seed uint64) ([]search.Levels, error) {
	mode, err := quant.New(cfg)
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("allocate: %d random profiles requested, want at least 1", n)
	}
	if mode.CostForm() {
		cfg.InitialDraws = n
		if mode, err = quant.New(cfg); err != nil {
			return nil, err
		}
		return mode.Initial(rand.New(rand.NewPCG(seed, randomStream))), nil
	}
	layers := mode.Layers()
	t4 := int64(math.Round(mode.Target() * quant.TargetScale))
	startBits := int((t4 + quant.TargetScale - 1) / quant.TargetScale)
	if t4%quant.TargetScale == 0 {
		startBits++
	}
	start := make([]int, len(layers))
	for i, l := range layers {
		j, _ := slices.BinarySearch(l.Bits, startBits)
		start[i] = min(j, len(l.Bits)-1)
	}
	rng := rand.New(rand.NewPCG(seed, randomStream))
	out := make([]search.Levels, n)
	movable := make([]int, 0, len(layers))
	for k := range out {
		idx := slices.Clone(start)
		p := make(search.Levels, len(layers))
		for i, l := range layers {
			p[i] = l.Bits[idx[i]]
		}
		total := mode.CodeBits(p)
		for total > mode.Budget() {
			movable = movable[:0]
			for i := range layers {
				if idx[i] > 0 {
					movable = append(movable, i)
				}
			}
			if len(movable) == 0 {
				return nil, fmt.Errorf("allocate: internal error: the lowest widths exceed the budget")
			}
			i := movable[rng.IntN(len(movable))]
			idx[i]--
			nb := layers[i].Bits[idx[i]]
			total -= layers[i].Numel * int64(p[i]-nb)
			p[i] = nb
		}
		if !mode.Legal(p) {
			return nil, fmt.Errorf("allocate: internal error: random quant profile %v is not legal", p)
		}
		out[k] = p
	}
	return out, nil
}
