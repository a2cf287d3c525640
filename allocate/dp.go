package allocate

import (
	"errors"
	"fmt"
	"math"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/sparse"
)

// MaxDPCells bounds the dynamic programmes' table size (layers × budget states).
const MaxDPCells = 1 << 28

var errNoCandidates = errors.New("allocate: no candidates to score")

func errScoreCount(got, want int) error {
	return fmt.Errorf("allocate: scorer returned %d fitness values for %d candidates", got, want)
}

// checkErrors validates a per-layer, per-level error table against the level counts.
func checkErrors(errs [][]float64, counts []int) error {
	if len(errs) != len(counts) {
		return fmt.Errorf("allocate: error table has %d layers, the problem %d", len(errs), len(counts))
	}
	for i, row := range errs {
		if len(row) != counts[i] {
			return fmt.Errorf("allocate: layer %d: %d errors for %d levels", i, len(row), counts[i])
		}
		for j, e := range row {
			if math.IsNaN(e) || math.IsInf(e, 0) {
				return fmt.Errorf("allocate: layer %d level index %d: error %v is not finite", i, j, e)
			}
		}
	}
	return nil
}

// DPSparse returns the sparse profile minimising Σ errs[i][ℓ_i − Lo_i] subject to Σ ℓ_i = 0 and
// Lo_i ≤ ℓ_i ≤ Hi_i (cfg's layers; the budget of sparse.Mode.Legal), and that minimum. errs[i]
// lists layer i's errors for levels Lo_i..Hi_i. The programme runs over the partial sums of the
// levels, so it is exact. Ties go to the profile found first (lower levels in earlier layers).
func DPSparse(cfg sparse.Config, errs [][]float64) (search.Levels, float64, error) {
	mode, err := sparse.New(cfg)
	if err != nil {
		return nil, 0, err
	}
	layers := mode.Layers()
	counts := make([]int, len(layers))
	sLo, sHi := 0, 0
	for i, l := range layers {
		counts[i] = l.Hi - l.Lo + 1
		sLo += l.Lo
		sHi += l.Hi
	}
	if err := checkErrors(errs, counts); err != nil {
		return nil, 0, err
	}
	W := sHi - sLo + 1 // states: partial sums sLo..sHi, stored at sum − sLo
	if int64(W)*int64(len(layers)) > MaxDPCells {
		return nil, 0, fmt.Errorf("allocate: sparse DP needs %d×%d states, more than %d", len(layers), W, MaxDPCells)
	}
	inf := math.Inf(1)
	cur := make([]float64, W)
	next := make([]float64, W)
	for i := range cur {
		cur[i] = inf
	}
	cur[0-sLo] = 0
	choice := make([][]int8, len(layers)) // level − Lo chosen to reach each state
	pLo, pHi := 0, 0                      // reachable partial sums so far
	for i, l := range layers {
		if counts[i] > 127 {
			return nil, 0, fmt.Errorf("allocate: layer %s has %d levels, at most 127 supported", l.Name, counts[i])
		}
		for s := range next {
			next[s] = inf
		}
		ch := make([]int8, W)
		for s := pLo; s <= pHi; s++ {
			c := cur[s-sLo]
			if c == inf {
				continue
			}
			for v := l.Lo; v <= l.Hi; v++ {
				t := s + v - sLo
				if nc := c + errs[i][v-l.Lo]; nc < next[t] {
					next[t] = nc
					ch[t] = int8(v - l.Lo)
				}
			}
		}
		choice[i] = ch
		pLo, pHi = pLo+l.Lo, pHi+l.Hi
		cur, next = next, cur
	}
	best := cur[0-sLo]
	if best == inf {
		return nil, 0, fmt.Errorf("allocate: no sparse profile sums to 0") // impossible: Lo ≤ 0 ≤ Hi
	}
	p := make(search.Levels, len(layers))
	s := 0
	for i := len(layers) - 1; i >= 0; i-- {
		v := int(choice[i][s-sLo]) + layers[i].Lo
		p[i] = v
		s -= v
	}
	if !mode.Legal(p) {
		return nil, 0, fmt.Errorf("allocate: internal error: DP profile %v is not legal", p)
	}
	return p, best, nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// DPQuant returns the quant profile minimising Σ errs[i][j_i] (j_i: the index of layer i's
// width among its allowed widths; with per-level costs, of its level among its levels) subject
// to the quant mode's budget Σ numel·bits ≤ quant.Mode.Budget() (with costs: Σ cost ≤ Budget()),
// and that minimum. Weights are counted in units of g = gcd of the layer sizes (with costs, g =
// gcd of every level's cost above its layer's first level), so the programme over integer
// budget units (Σ (numel/g)·bits ≤ floor(budget/g)) is exact. Ties go to the cheaper profile
// found first.
func DPQuant(cfg quant.Config, errs [][]float64) (search.Levels, float64, error) {
	mode, err := quant.New(cfg)
	if err != nil {
		return nil, 0, err
	}
	layers, g, capUnits := dpLayers(mode)
	counts := make([]int, len(layers))
	for i, l := range layers {
		counts[i] = len(l.ids)
	}
	if err := checkErrors(errs, counts); err != nil {
		return nil, 0, err
	}
	if capUnits < 0 {
		return nil, 0, fmt.Errorf("allocate: the lowest widths exceed the budget") // quant.New rejects this
	}
	// The extra units any profile can use are bounded by every layer at its highest width.
	var most int64
	for _, l := range layers {
		most += l.extra[len(l.extra)-1]
	}
	capUnits = min(capUnits, most)
	W := capUnits + 1
	if W*int64(len(layers)) > MaxDPCells {
		return nil, 0, fmt.Errorf("allocate: quant DP needs %d×%d states (gcd of layer sizes %d), more than %d", len(layers), W, g, MaxDPCells)
	}
	inf := math.Inf(1)
	cur := make([]float64, W)
	next := make([]float64, W)
	for i := range cur {
		cur[i] = inf
	}
	cur[0] = 0
	choice := make([][]int8, len(layers))
	for i, l := range layers {
		if counts[i] > 127 {
			return nil, 0, fmt.Errorf("allocate: layer %s has %d widths, at most 127 supported", l.name, counts[i])
		}
		for c := range next {
			next[c] = inf
		}
		ch := make([]int8, W)
		for c := int64(0); c < W; c++ {
			v := cur[c]
			if v == inf {
				continue
			}
			for j, e := range l.extra {
				t := c + e
				if t >= W {
					break // costs ascend
				}
				if nv := v + errs[i][j]; nv < next[t] {
					next[t] = nv
					ch[t] = int8(j)
				}
			}
		}
		choice[i] = ch
		cur, next = next, cur
	}
	bestC := int64(-1)
	for c := int64(0); c < W; c++ {
		if cur[c] < inf && (bestC < 0 || cur[c] < cur[bestC]) {
			bestC = c
		}
	}
	if bestC < 0 {
		return nil, 0, fmt.Errorf("allocate: no quant profile fits the budget")
	}
	p := make(search.Levels, len(layers))
	c := bestC
	for i := len(layers) - 1; i >= 0; i-- {
		j := int(choice[i][c])
		p[i] = layers[i].ids[j]
		c -= layers[i].extra[j]
	}
	if !mode.Legal(p) {
		return nil, 0, fmt.Errorf("allocate: internal error: DP profile %v is not legal", p)
	}
	return p, cur[bestC], nil
}

// dpLayer is one layer of the quant DP: its level ids and what each costs in budget units
// above its first level.
type dpLayer struct {
	name  string
	ids   []int
	extra []int64
}

// dpLayers returns the DP's layers in budget units of g, and the budget in units above every
// layer at its first level. With bit-widths g is the gcd of the layer sizes, a level costs
// (numel/g)·(b − b₀) units and the budget is floor(budget/g) − Σ (numel/g)·b₀; with costs g is
// the gcd of every level's cost above its layer's first level, a level costs (cost − cost₀)/g
// and the budget is floor((budget − Σ cost₀)/g).
func dpLayers(mode *quant.Mode) (layers []dpLayer, g, capUnits int64) {
	if cls := mode.CostLayers(); cls != nil {
		var base int64
		for _, l := range cls {
			base += l.Costs[0]
			for _, c := range l.Costs {
				g = gcd(g, c-l.Costs[0])
			}
		}
		g = max(g, 1)
		for _, l := range cls {
			d := dpLayer{name: l.Name, ids: l.Levels}
			for _, c := range l.Costs {
				d.extra = append(d.extra, (c-l.Costs[0])/g)
			}
			layers = append(layers, d)
		}
		return layers, g, (mode.Budget() - base) / g
	}
	var base int64
	for _, l := range mode.Layers() {
		g = gcd(g, l.Numel)
	}
	for _, l := range mode.Layers() {
		d := dpLayer{name: l.Name, ids: l.Bits}
		for _, b := range l.Bits {
			d.extra = append(d.extra, l.Numel/g*int64(b-l.Bits[0]))
		}
		layers = append(layers, d)
		base += l.Numel / g * int64(l.Bits[0])
	}
	return layers, g, mode.Budget()/g - base
}
