package search

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSwitchesDistribution checks r = min(U{1..3}, U{1..3}) against 5/9, 3/9, 1/9.
func TestSwitchesDistribution(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 90000
	var count [4]int
	for range n {
		r := switches(rng)
		if r < 1 || r > 3 {
			t.Fatalf("switches = %d, want 1..3", r)
		}
		count[r]++
	}
	for r, p := range map[int]float64{1: 5.0 / 9, 2: 3.0 / 9, 3: 1.0 / 9} {
		got := float64(count[r]) / n
		sigma := math.Sqrt(p * (1 - p) / n)
		if math.Abs(got-p) > 4*sigma {
			t.Errorf("P(r=%d) = %.4f, want %.4f ± %.4f", r, got, p, 4*sigma)
		}
	}
}

// TestSampleDistinct checks range, distinctness and uniformity of the chunk sampler.
func TestSampleDistinct(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ n, k int }{{1, 1}, {5, 5}, {10, 3}, {1000, 7}, {1 << 40, 4}} {
		for range 50 {
			s := sampleDistinct(rng, tc.n, tc.k)
			if len(s) != tc.k {
				t.Fatalf("n=%d k=%d: got %d values", tc.n, tc.k, len(s))
			}
			seen := map[int]bool{}
			for _, v := range s {
				if v < 0 || v >= tc.n || seen[v] {
					t.Fatalf("n=%d k=%d: bad sample %v", tc.n, tc.k, s)
				}
				seen[v] = true
			}
		}
	}
	// Uniformity: each of 10 values appears in a 3-sample with probability 3/10.
	const trials = 30000
	var hits [10]int
	for range trials {
		for _, v := range sampleDistinct(rng, 10, 3) {
			hits[v]++
		}
	}
	for v, h := range hits {
		got, p := float64(h)/trials, 0.3
		if sigma := math.Sqrt(p * (1 - p) / trials); math.Abs(got-p) > 5*sigma {
			t.Errorf("value %d drawn with frequency %.4f, want %.2f", v, got, p)
		}
	}
}

// TestRank checks ordering, stability on ties and NaN placement.
func TestRank(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		fit  []float64
		want []int
	}{
		{[]float64{3, 1, 2}, []int{1, 2, 0}},
		{[]float64{1, 1, 1}, []int{0, 1, 2}},
		{[]float64{2, 1, 1, 0}, []int{3, 1, 2, 0}},
		{[]float64{nan, 1, inf, nan}, []int{1, 0, 2, 3}},
		{[]float64{-inf, 0, -1}, []int{0, 2, 1}},
		{nil, []int{}},
	} {
		if got := rank(tc.fit); !slices.Equal(got, tc.want) {
			t.Errorf("rank(%v) = %v, want %v", tc.fit, got, tc.want)
		}
	}
}

func TestProfileKey(t *testing.T) {
	ps := []Levels{{}, {0}, {0, 0}, {1, 0}, {0, 1}, {-1}, {1 << 40}, {128}, {0, 128}}
	seen := map[string]int{}
	for i, p := range ps {
		k := p.key()
		if j, dup := seen[k]; dup {
			t.Fatalf("profiles %v and %v share a key", ps[j], p)
		}
		seen[k] = i
		if p.Clone().key() != k {
			t.Fatalf("clone of %v has another key", p)
		}
	}
}
