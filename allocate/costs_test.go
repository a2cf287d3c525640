package allocate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
)

// randomCostCase draws a small problem of the quant mode's cost form: layers of 256-weight
// multiples with llama.cpp's K-quant or 32-weight fallback types (block bytes per 256 weights),
// sometimes with two types of equal cost, and random errors.
func randomCostCase(rng *rand.Rand, n int, target float64) (quant.Config, [][]float64) {
	kinds := []struct {
		ids   []int
		bytes []int64
	}{
		{[]int{10, 11, 12, 13, 14, 8}, []int64{84, 110, 144, 176, 210, 272}},
		{[]int{2, 6, 7, 8}, []int64{144, 176, 192, 272}},
		{[]int{10, 2, 12, 8}, []int64{84, 144, 144, 272}},
	}
	cfg := quant.Config{Target: target, GroupBy: search.GroupNone}
	errs := make([][]float64, n)
	for i := range n {
		k := kinds[rng.IntN(len(kinds))]
		numel := int64(256 * (1 + rng.IntN(4)))
		l := quant.CostLayer{Name: layerName(i), Numel: numel, Levels: k.ids}
		e := 1 + rng.Float64()
		for range k.ids {
			l.Costs = append(l.Costs, 8*numel/256*k.bytes[len(l.Costs)])
			errs[i] = append(errs[i], e)
			e *= rng.Float64()
		}
		cfg.CostLayers = append(cfg.CostLayers, l)
	}
	return cfg, errs
}

// TestDPCostsMatchesBruteForce checks the DP over per-level costs against enumeration.
func TestDPCostsMatchesBruteForce(t *testing.T) {
	targets := []float64{3, 3.9, 4.5, 5.25, 6.1}
	for seed := range uint64(30) {
		target := targets[seed%uint64(len(targets))]
		t.Run(fmt.Sprintf("%d_%v", seed, target), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 3))
			cfg, errs := randomCostCase(rng, 2+rng.IntN(4), target)
			mode, err := quant.New(cfg)
			if err != nil {
				t.Skipf("instance rejected by the mode: %v", err)
			}
			lo := make([]int, len(cfg.CostLayers))
			hi := make([]int, len(cfg.CostLayers))
			var total int64
			for i, l := range cfg.CostLayers {
				hi[i] = len(l.Levels) - 1
				total += l.Numel
			}
			budget := int64(math.Floor(target * float64(total)))
			best := math.Inf(1)
			enumerate(lo, hi, func(idx search.Levels) {
				var used int64
				var e float64
				for i, j := range idx {
					used += cfg.CostLayers[i].Costs[j]
					e += errs[i][j]
				}
				if used <= budget {
					best = math.Min(best, e)
				}
			})
			p, got, err := DPQuant(cfg, errs)
			if err != nil {
				t.Fatal(err)
			}
			if !mode.Legal(p) {
				t.Fatalf("DP profile %v is not legal", p)
			}
			var e float64
			for i, id := range p {
				e += errs[i][slices.Index(cfg.CostLayers[i].Levels, id)]
			}
			if math.Abs(got-best) > 1e-12 || math.Abs(e-got) > 1e-12 {
				t.Fatalf("DP error %v (profile %v: %v), brute force %v", got, p, e, best)
			}
		})
	}
}

// TestRandomCosts checks RandomQuant's draws with per-level costs: legal, deterministic,
// varied, and maximal (no layer can go up a level within the budget).
func TestRandomCosts(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	cfg, _ := randomCostCase(rng, 20, 4.4)
	mode, err := quant.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := RandomQuant(cfg, 16, 9)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RandomQuant(cfg, 16, 9)
	if len(a) != 16 {
		t.Fatalf("%d profiles", len(a))
	}
	for i, p := range a {
		if !mode.Legal(p) || !slices.Equal(p, b[i]) {
			t.Fatalf("profile %v not legal or not deterministic", p)
		}
		slack := mode.Budget() - mode.Cost(p)
		for j, l := range cfg.CostLayers {
			k := slices.Index(l.Levels, p[j])
			if k+1 < len(l.Costs) && l.Costs[k+1] > l.Costs[k] && l.Costs[k+1]-l.Costs[k] <= slack {
				t.Fatalf("profile %v: layer %d can still go up within the unspent %d bits", p, j, slack)
			}
		}
	}
	if d, _ := UniqueProfiles(a); len(d) < 8 {
		t.Fatalf("%d distinct of 16 random profiles", len(d))
	}
}
