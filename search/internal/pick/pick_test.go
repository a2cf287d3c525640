package pick

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/evopress/evopress/search"
)

func TestGroups(t *testing.T) {
	names := []string{"l.0.q_proj", "l.0.k_proj", "l.1.q_proj", "l.1.k_proj", "l.0.up_proj"}
	numels := []int64{16, 4, 16, 4, 16}
	for _, tc := range []struct {
		rule search.GroupBy
		want []int
	}{
		{search.GroupNone, []int{0, 0, 0, 0, 0}},
		{search.GroupDefault, []int{0, 0, 0, 0, 0}},
		{search.GroupSize, []int{0, 1, 0, 1, 0}},
		{search.GroupKind, []int{0, 1, 0, 1, 2}},
	} {
		if got := Groups(names, numels, tc.rule); !slices.Equal(got, tc.want) {
			t.Errorf("Groups(%v) = %v, want %v", tc.rule, got, tc.want)
		}
	}
}

// TestPairDistribution compares Pair with the exact distribution computed by enumeration.
func TestPairDistribution(t *testing.T) {
	group := []int{0, 0, 0, 1, 1, 2}
	canDown := []bool{true, false, true, true, false, true}
	canUp := []bool{true, true, false, false, true, true}
	// expected: downs eligible = those with a partner that can go up in the group, ≠ itself
	want := map[[2]int]float64{}
	var downs []int
	for i := range group {
		if !canDown[i] {
			continue
		}
		for j := range group {
			if j != i && canUp[j] && group[j] == group[i] {
				downs = append(downs, i)
				break
			}
		}
	}
	for _, d := range downs {
		var ups []int
		for j := range group {
			if j != d && canUp[j] && group[j] == group[d] {
				ups = append(ups, j)
			}
		}
		for _, u := range ups {
			want[[2]int{d, u}] = 1 / float64(len(downs)) / float64(len(ups))
		}
	}
	// group 0: downs 0 (ups {1}), 2 (ups {0, 1}); group 1: down 3 (up 4); unit 5 alone.
	if len(want) != 4 {
		t.Fatalf("reference has %d pairs: %v", len(want), want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 60000
	got := map[[2]int]int{}
	for range n {
		d, u, ok := Pair(rng, group, func(i int) bool { return canDown[i] }, func(i int) bool { return canUp[i] })
		if !ok {
			t.Fatal("no pair")
		}
		got[[2]int{d, u}]++
	}
	for pair, c := range got {
		p, ok := want[pair]
		if !ok {
			t.Fatalf("impossible pair %v drawn", pair)
		}
		if f := float64(c) / n; math.Abs(f-p) > 5*math.Sqrt(p*(1-p)/n) {
			t.Errorf("pair %v frequency %.4f, want %.4f", pair, f, p)
		}
	}
	if _, _, ok := Pair(rng, []int{0, 1}, func(int) bool { return true }, func(int) bool { return true }); ok {
		t.Error("pair across groups")
	}
	if _, _, ok := Pair(rng, nil, func(int) bool { return true }, func(int) bool { return true }); ok {
		t.Error("pair from nothing")
	}
}

func TestOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[int]bool{}
	for range 1000 {
		i, ok := One(rng, 5, 2, func(i int) bool { return i != 4 })
		if !ok || i == 2 || i == 4 || i < 0 || i >= 5 {
			t.Fatalf("One = %d, %t", i, ok)
		}
		seen[i] = true
	}
	if len(seen) != 3 {
		t.Fatalf("drew %v", seen)
	}
	if _, ok := One(rng, 1, 0, func(int) bool { return true }); ok {
		t.Error("drew the skipped unit")
	}
}
