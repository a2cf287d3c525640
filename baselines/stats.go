package baselines

import (
	"context"
	"fmt"
	"math"

	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search/drop"
)

// Stats are statistics of the dense model's hidden states h_0 … h_n at the block boundaries
// (h_i is the input of block i, h_n the output of the last block, before the final norm) over a
// batch of token sequences. Every token position of every sequence weighs the same.
type Stats struct {
	// Blocks is n, the number of blocks.
	Blocks int
	// Positions is the number of token positions averaged over; Seqs the number of sequences
	// (the positions of the "last token" statistics).
	Positions, Seqs int
	// Cosine[i] is the mean over positions of cos(h_i, h_{i+1}) (ShortGPT's BI is 1 − Cosine[i]).
	Cosine []float64
	// NormRatio[i] is the mean over positions of ‖h_{i+1} − h_i‖ / ‖h_{i+1}‖.
	NormRatio []float64
	// Angular[i][j] (i < j ≤ n) is the mean over positions of the angular distance
	// arccos(cos(h_i, h_j))/π; AngularLast[i][j] the same over the last position of each
	// sequence only. Entries with i ≥ j are zero.
	Angular, AngularLast [][]float64
}

// ComputeStats runs the dense model over seqs (equal lengths), subBatch sequences at a time
// (0: 16), and accumulates Stats in float64, in a fixed order (deterministic).
func ComputeStats(ctx context.Context, m *model.Model, seqs [][]int, subBatch int) (*Stats, error) {
	if len(seqs) == 0 {
		return nil, fmt.Errorf("baselines: no calibration sequences for the statistics")
	}
	if subBatch <= 0 {
		subBatch = 16
	}
	n, h := len(m.Blocks), m.Hidden
	st := &Stats{Blocks: n, Cosine: make([]float64, n), NormRatio: make([]float64, n)}
	st.Angular = make([][]float64, n+1)
	st.AngularLast = make([][]float64, n+1)
	for i := range st.Angular {
		st.Angular[i] = make([]float64, n+1)
		st.AngularLast[i] = make([]float64, n+1)
	}
	states := make([][]float32, n+1)
	norms := make([]float64, n+1)
	for lo := 0; lo < len(seqs); lo += subBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+subBatch, len(seqs))
		a, err := m.Embedding(seqs[lo:hi])
		if err != nil {
			return nil, err
		}
		states[0] = append(states[0][:0], a.X...)
		for i := range n {
			m.Forward(a, i, i+1, nil)
			states[i+1] = append(states[i+1][:0], a.X...)
		}
		for r := range a.Rows() {
			last := r%a.T == a.T-1
			for i := range n + 1 {
				norms[i] = math.Sqrt(dot(states[i][r*h:(r+1)*h], states[i][r*h:(r+1)*h]))
			}
			for i := range n {
				x, y := states[i][r*h:(r+1)*h], states[i+1][r*h:(r+1)*h]
				if norms[i+1] > 0 {
					st.NormRatio[i] += math.Sqrt(diffSq(y, x)) / norms[i+1]
				}
			}
			for i := range n + 1 {
				for j := i + 1; j <= n; j++ {
					c := cosine(states[i][r*h:(r+1)*h], states[j][r*h:(r+1)*h], norms[i], norms[j])
					if j == i+1 {
						st.Cosine[i] += c
					}
					ang := math.Acos(c) / math.Pi
					st.Angular[i][j] += ang
					if last {
						st.AngularLast[i][j] += ang
					}
				}
			}
		}
		st.Positions += a.Rows()
		st.Seqs += a.B
	}
	P, S := float64(st.Positions), float64(st.Seqs)
	for i := range n {
		st.Cosine[i] /= P
		st.NormRatio[i] /= P
	}
	for i := range n + 1 {
		for j := i + 1; j <= n; j++ {
			st.Angular[i][j] /= P
			st.AngularLast[i][j] /= S
		}
	}
	return st, nil
}

// dot is Σ x·y in float64.
func dot(x, y []float32) float64 {
	var s float64
	for i, v := range x {
		s += float64(v) * float64(y[i])
	}
	return s
}

// diffSq is Σ (x − y)² in float64.
func diffSq(x, y []float32) float64 {
	var s float64
	for i, v := range x {
		d := float64(v) - float64(y[i])
		s += d * d
	}
	return s
}

// cosine is x·y/(‖x‖‖y‖) clamped to [−1, 1]; 1 when both vectors are zero, 0 when one is.
func cosine(x, y []float32, nx, ny float64) float64 {
	if nx == 0 || ny == 0 {
		if nx == ny {
			return 1
		}
		return 0
	}
	return max(-1, min(1, dot(x, y)/(nx*ny)))
}

// BlockInfluence returns ShortGPT's BI per block, 1 − Cosine.
func (s *Stats) BlockInfluence() []float64 {
	bi := make([]float64, s.Blocks)
	for i, c := range s.Cosine {
		bi[i] = 1 - c
	}
	return bi
}

// WindowDistances returns, for every window start ℓ = 0 … n−k, the angular distance between
// h_ℓ and h_{ℓ+k} (positions WindowLast, the default when empty, or WindowAll).
func (s *Stats) WindowDistances(k int, positions string) ([]float64, error) {
	if k < 1 || k > s.Blocks {
		return nil, fmt.Errorf("baselines: window of %d blocks in a %d-block model", k, s.Blocks)
	}
	src := s.Angular
	switch positions {
	case WindowAll:
	case WindowLast, "":
		src = s.AngularLast
	default:
		return nil, fmt.Errorf("baselines: window positions %q, want %q or %q", positions, WindowAll, WindowLast)
	}
	d := make([]float64, s.Blocks-k+1)
	for l := range d {
		d[l] = src[l][l+k]
	}
	return d, nil
}

// runStats runs ShortGPT, NormRatio or WindowCosine.
func runStats(ctx context.Context, m *model.Model, pool [][]int, mode *drop.Mode, method Method, opt Options) (*Result, error) {
	n, k := mode.Blocks(), mode.K()
	b := SampleBatch(len(pool), len(pool[0]), opt.Tokens, opt.Seed, 0)
	st, err := ComputeStats(ctx, m, batchTokens(pool, b), opt.SubBatch)
	if err != nil {
		return nil, err
	}
	blocks, _, _ := droppable(n, opt.Keep)
	res := &Result{Batch: b, Fitness: math.NaN(), Tokens: int64(b.Tokens)}
	switch method {
	case ShortGPT, NormRatio:
		raw := st.BlockInfluence()
		res.Info.Statistic = "block influence 1 − mean cos(h_i, h_i+1) over all positions"
		if method == NormRatio {
			raw = st.NormRatio
			res.Info.Statistic = "mean ‖h_i+1 − h_i‖/‖h_i+1‖ over all positions"
		}
		res.Scores = nanScores(n)
		for _, blk := range blocks {
			res.Scores[blk] = raw[blk]
		}
		res.Profile = wholeProfile(n, lowestK(res.Scores, blocks, k))
	case WindowCosine:
		pos := opt.WindowPositions
		if pos == "" {
			pos = WindowLast
		}
		d, err := st.WindowDistances(k, pos)
		if err != nil {
			return nil, err
		}
		ok := make([]bool, n)
		for _, blk := range blocks {
			ok[blk] = true
		}
		res.Scores = nanScores(len(d))
		var starts []int
		for l := range d {
			legal := true
			for blk := l; blk < l+k; blk++ {
				legal = legal && ok[blk]
			}
			if legal {
				res.Scores[l] = d[l]
				starts = append(starts, l)
			}
		}
		if len(starts) == 0 {
			return nil, fmt.Errorf("baselines: window-cosine: no window of %d consecutive droppable blocks (the kept blocks break every window)", k)
		}
		l := lowestK(res.Scores, starts, 1)[0]
		win := make([]int, k)
		for i := range win {
			win[i] = l + i
		}
		res.Profile = wholeProfile(n, win)
		res.Info.Statistic = "angular distance arccos(cos(h_l, h_l+k))/π, mean over " + pos + " positions"
		res.Info.WindowPositions = pos
	}
	res.Info.Positions = st.Positions
	return res, nil
}
