package allocate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/calib"
	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
	"github.com/evopress/evopress/search/sparse"
)

// layerName names layer i of a test problem after the model's layout (7 layers per block).
func layerName(i int) string {
	return arch.LinearUnit(i/int(arch.NumLinearKinds), arch.LinearKind(i%int(arch.NumLinearKinds))).String()
}

// randomSparseCase draws a small sparse problem with random level ranges and errors.
func randomSparseCase(rng *rand.Rand, n int) (sparse.Config, [][]float64) {
	cfg := sparse.Config{Sparsity: 0.5, D: 100}
	errs := make([][]float64, n)
	for i := range n {
		lo, hi := -rng.IntN(4), rng.IntN(4)
		if i < 2 { // New needs some switch to be possible
			lo, hi = min(lo, -1), max(hi, 1)
		}
		numel := int64(1000 * (1 + rng.IntN(3)))
		cfg.Layers = append(cfg.Layers, sparse.Layer{Name: layerName(i), Numel: numel, Lo: lo, Hi: hi})
		for range hi - lo + 1 {
			errs[i] = append(errs[i], rng.Float64())
		}
	}
	return cfg, errs
}

// enumerate calls fn with every profile whose level i lies in [lo[i], hi[i]].
func enumerate(lo, hi []int, fn func(search.Levels)) {
	p := slices.Clone(lo)
	for {
		fn(search.Levels(p))
		i := 0
		for ; i < len(p); i++ {
			if p[i] < hi[i] {
				p[i]++
				break
			}
			p[i] = lo[i]
		}
		if i == len(p) {
			return
		}
	}
}

func TestDPSparseMatchesBruteForce(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			cfg, errs := randomSparseCase(rng, 2+rng.IntN(5))
			mode, err := sparse.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var lo, hi []int
			for _, l := range cfg.Layers {
				lo, hi = append(lo, l.Lo), append(hi, l.Hi)
			}
			cost := func(p search.Levels) float64 {
				var c float64
				for i, v := range p {
					c += errs[i][v-cfg.Layers[i].Lo]
				}
				return c
			}
			best, legal := math.Inf(1), 0
			enumerate(lo, hi, func(p search.Levels) {
				if mode.Legal(p) {
					legal++
					best = math.Min(best, cost(p))
				}
			})
			p, got, err := DPSparse(cfg, errs)
			if err != nil {
				t.Fatal(err)
			}
			if !mode.Legal(p) {
				t.Fatalf("DP profile %v is not legal", p)
			}
			if math.Abs(got-best) > 1e-12 || math.Abs(cost(p)-got) > 1e-12 {
				t.Fatalf("DP cost %v (profile %v costs %v), brute force over %d legal profiles %v", got, p, cost(p), legal, best)
			}
		})
	}
}

// randomQuantCase draws a small quant problem: layer sizes multiples of 4096 (gcd > 1), widths
// subsets of 2..6, errors decreasing with the width.
func randomQuantCase(rng *rand.Rand, n int, target float64) (quant.Config, [][]float64) {
	cfg := quant.Config{Target: target}
	errs := make([][]float64, n)
	sizes := []int64{4096, 8192, 12288, 45056}
	for i := range n {
		var bits []int
		for b := 2; b <= 6; b++ {
			if b == 2 || b == 6 || rng.IntN(3) > 0 {
				bits = append(bits, b)
			}
		}
		e := 1 + rng.Float64()
		for range bits {
			errs[i] = append(errs[i], e)
			e *= 0.1 + 0.4*rng.Float64()
		}
		cfg.Layers = append(cfg.Layers, quant.Layer{Name: layerName(i), Numel: sizes[rng.IntN(len(sizes))], Bits: bits})
	}
	// Make sure two layers of one size share widths, so that quant.New accepts the group rule.
	cfg.Layers[1].Numel = cfg.Layers[0].Numel
	return cfg, errs
}

func TestDPQuantMatchesBruteForce(t *testing.T) {
	targets := []float64{2.25, 2.5, 3, 3.5, 4, 5.1}
	for seed := range uint64(36) {
		target := targets[seed%uint64(len(targets))]
		t.Run(fmt.Sprintf("%d_%v", seed, target), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 2))
			cfg, errs := randomQuantCase(rng, 2+rng.IntN(4), target)
			mode, err := quant.New(cfg)
			if err != nil {
				t.Skipf("instance rejected by the mode: %v", err)
			}
			lo := make([]int, len(cfg.Layers))
			hi := make([]int, len(cfg.Layers))
			for i, l := range cfg.Layers {
				hi[i] = len(l.Bits) - 1
			}
			toProfile := func(idx search.Levels) search.Levels {
				p := make(search.Levels, len(idx))
				for i, j := range idx {
					p[i] = cfg.Layers[i].Bits[j]
				}
				return p
			}
			cost := func(p search.Levels) float64 {
				var c float64
				for i, b := range p {
					c += errs[i][slices.Index(cfg.Layers[i].Bits, b)]
				}
				return c
			}
			best := math.Inf(1)
			enumerate(lo, hi, func(idx search.Levels) {
				p := toProfile(idx)
				// Independent budget check: Σ numel·bits ≤ floor(target·Σ numel).
				var used, total int64
				for i, b := range p {
					used += cfg.Layers[i].Numel * int64(b)
					total += cfg.Layers[i].Numel
				}
				if float64(used) <= target*float64(total)+1e-9 {
					best = math.Min(best, cost(p))
				}
			})
			p, got, err := DPQuant(cfg, errs)
			if err != nil {
				t.Fatal(err)
			}
			if !mode.Legal(p) {
				t.Fatalf("DP profile %v is not legal", p)
			}
			if math.Abs(got-best) > 1e-12 || math.Abs(cost(p)-got) > 1e-12 {
				t.Fatalf("DP cost %v (profile %v costs %v), brute force %v", got, p, cost(p), best)
			}
		})
	}
}

func TestDPRejectsBadErrorTables(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	cfg, errs := randomSparseCase(rng, 3)
	short := slices.Clone(errs)
	short[0] = short[0][1:]
	nan := [][]float64{slices.Clone(errs[0]), errs[1], errs[2]}
	nan[0][0] = math.NaN()
	for name, e := range map[string][][]float64{"layers": errs[:2], "levels": short, "nan": nan} {
		if _, _, err := DPSparse(cfg, e); err == nil {
			t.Errorf("DPSparse accepted a bad error table (%s)", name)
		}
	}
	qcfg, qerrs := randomQuantCase(rng, 3, 3)
	if _, _, err := DPQuant(qcfg, qerrs[:2]); err == nil {
		t.Error("DPQuant accepted an error table with a missing layer")
	}
}

func TestOWLBlockSparsities(t *testing.T) {
	tests := []struct {
		ratios    []float64
		s, lambda float64
		want      []float64
	}{
		// r = (D−1)/2·0.2 = {0, 0.1, 0.2}, mean 0.1: sparsity 0.5 − (r − 0.1).
		{[]float64{1, 2, 3}, 0.5, 0.1, []float64{0.6, 0.5, 0.4}},
		// r = {0.04, 0, 0.02, 0.04}, mean 0.025.
		{[]float64{0.3, 0.1, 0.2, 0.3}, 0.7, 0.02, []float64{0.685, 0.725, 0.705, 0.685}},
		{[]float64{0.2, 0.2}, 0.6, 0.2, []float64{0.6, 0.6}},
	}
	for i, tc := range tests {
		got := OWLBlockSparsities(tc.ratios, tc.s, tc.lambda)
		var mean float64
		for j := range got {
			if math.Abs(got[j]-tc.want[j]) > 1e-12 {
				t.Errorf("case %d: sparsities %v, want %v", i, got, tc.want)
				break
			}
			mean += got[j] / float64(len(got))
		}
		if math.Abs(mean-tc.s) > 1e-12 {
			t.Errorf("case %d: mean sparsity %v, want %v", i, mean, tc.s)
		}
		if spread := slices.Max(got) - slices.Min(got); len(got) > 0 && slices.Max(tc.ratios) > slices.Min(tc.ratios) && math.Abs(spread-2*tc.lambda) > 1e-12 {
			t.Errorf("case %d: spread %v, want 2λ = %v", i, spread, 2*tc.lambda)
		}
	}
}

func TestOutlierShares(t *testing.T) {
	scores := []float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 11} // mean 2
	got := OutlierShares(scores, []float64{0.25, 3, 5, 6})
	want := []float64{1, 0.1, 0.1, 0}
	if !slices.Equal(got, want) {
		t.Errorf("shares %v, want %v", got, want)
	}
}

// TestBlockOutlierRatiosAgainstInputs builds a random block and random layer inputs, and checks
// the Hessian-based ratios against Wanda scores computed from the inputs' column norms directly.
func TestBlockOutlierRatiosAgainstInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const hidden, kv, inter, rows = 8, 4, 12, 20
	lin := func(out, in int) model.Linear {
		w := make([]float32, out*in)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * math.Exp(2*rng.Float64()))
		}
		return model.Linear{W: w, Out: out, In: in}
	}
	b := &model.Block{Q: lin(hidden, hidden), K: lin(kv, hidden), V: lin(kv, hidden), O: lin(hidden, hidden),
		Gate: lin(inter, hidden), Up: lin(inter, hidden), Down: lin(hidden, inter)}
	inputs := map[arch.LinearKind][]float32{}
	st := &calib.Stats{}
	for _, x := range []struct {
		h     **compress.Hessian
		cols  int
		kinds []arch.LinearKind
	}{
		{&st.Attn, hidden, []arch.LinearKind{arch.QProj, arch.KProj, arch.VProj}},
		{&st.Out, hidden, []arch.LinearKind{arch.OProj}},
		{&st.MLP, hidden, []arch.LinearKind{arch.GateProj, arch.UpProj}},
		{&st.Down, inter, []arch.LinearKind{arch.DownProj}},
	} {
		X := make([]float32, rows*x.cols)
		for i := range X {
			X[i] = float32(rng.NormFloat64() * float64(1+i%x.cols))
		}
		h, err := compress.NewHessian(x.cols)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Add(X, rows); err != nil {
			t.Fatal(err)
		}
		*x.h = h
		for _, k := range x.kinds {
			inputs[k] = X
		}
	}
	ms := []float64{0.5, 1, 2, 3}
	var scores []float64
	for k := range arch.NumLinearKinds {
		l := b.Layer(k)
		X := inputs[k]
		for r := 0; r < l.Out; r++ {
			for j := 0; j < l.In; j++ {
				var n2 float64
				for t := 0; t < rows; t++ {
					n2 += float64(X[t*l.In+j]) * float64(X[t*l.In+j])
				}
				// ‖x_j‖ up to the factor sqrt(2/N), common to the whole block.
				scores = append(scores, math.Abs(float64(l.W[r*l.In+j]))*math.Sqrt(n2))
			}
		}
	}
	want := OutlierShares(scores, ms)
	got := BlockOutlierRatios(b, st, ms)
	for k := range ms {
		if math.Abs(got[k]-want[k]) > 1e-9 {
			t.Fatalf("ratios %v, want %v", got, want)
		}
	}
	if want[0] <= want[3] {
		t.Fatalf("degenerate test: shares %v do not fall with M", want)
	}
}

func TestOWLProfileOptimalAndExact(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 4))
			cfg, _ := randomSparseCase(rng, 2+rng.IntN(5))
			mode, err := sparse.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			target := make([]float64, len(cfg.Layers))
			for i := range target {
				target[i] = cfg.Sparsity + 0.3*(rng.Float64()-0.5)
			}
			dev := func(p search.Levels) float64 {
				var d float64
				for i, v := range p {
					e := cfg.Sparsity + float64(v)*float64(cfg.D)/float64(cfg.Layers[i].Numel) - target[i]
					d += e * e
				}
				return d
			}
			var lo, hi []int
			for _, l := range cfg.Layers {
				lo, hi = append(lo, l.Lo), append(hi, l.Hi)
			}
			best := math.Inf(1)
			enumerate(lo, hi, func(p search.Levels) {
				if mode.Legal(p) {
					best = math.Min(best, dev(p))
				}
			})
			p, err := OWLProfile(cfg, target)
			if err != nil {
				t.Fatal(err)
			}
			if !mode.Legal(p) {
				t.Fatalf("profile %v is not legal", p)
			}
			if d := dev(p); d > best+1e-12 {
				t.Fatalf("deviation %v, brute-force minimum %v (profile %v)", d, best, p)
			}
			// The numel-weighted mean sparsity is the target exactly.
			sp, _ := mode.Sparsities(p)
			var num, den float64
			for i, s := range sp {
				num += s * float64(cfg.Layers[i].Numel)
				den += float64(cfg.Layers[i].Numel)
			}
			if math.Abs(num/den-cfg.Sparsity) > 1e-12 {
				t.Fatalf("weighted mean sparsity %v, want %v", num/den, cfg.Sparsity)
			}
		})
	}
}

// modelSparseConfig is a sparse problem shaped like babyllama-1m (5 blocks; q/o 16384, k/v
// 8192, MLP 45056 weights) with the reference's level ranges.
func modelSparseConfig(t *testing.T, s float64) sparse.Config {
	t.Helper()
	numel := [arch.NumLinearKinds]int64{16384, 8192, 8192, 16384, 45056, 45056, 45056}
	d, err := sparse.DefaultD(128, s, 8)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sparse.Config{Sparsity: s, D: d}
	for b := range 5 {
		for k := range arch.NumLinearKinds {
			lo, hi, err := sparse.LevelRange(numel[k], d, s, 8)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Layers = append(cfg.Layers, sparse.Layer{Name: arch.LinearUnit(b, k).String(), Numel: numel[k], Lo: lo, Hi: hi})
		}
	}
	return cfg
}

func TestOWLGrid(t *testing.T) {
	for _, s := range []float64{0.5, 0.6, 0.7} {
		cfg := modelSparseConfig(t, s)
		mode, err := sparse.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(5, 5))
		ratios := make([][]float64, len(OWLMs))
		for k := range ratios {
			for range 5 {
				ratios[k] = append(ratios[k], 0.01*rng.Float64()/float64(k+1))
			}
		}
		cands, err := OWLGrid(cfg, ratios, OWLLambdas, OWLMs)
		if err != nil {
			t.Fatal(err)
		}
		if len(cands) != len(OWLLambdas)*len(OWLMs) {
			t.Fatalf("%d candidates, want %d", len(cands), len(OWLLambdas)*len(OWLMs))
		}
		var total float64
		for _, l := range cfg.Layers {
			total += float64(l.Numel)
		}
		for i, c := range cands {
			if c.Lambda != OWLLambdas[i/len(OWLMs)] || c.M != OWLMs[i%len(OWLMs)] {
				t.Fatalf("candidate %d is (λ %v, M %v): not λ-major grid order", i, c.Lambda, c.M)
			}
			if !mode.Legal(c.Profile) {
				t.Fatalf("s=%v λ=%v M=%v: profile %v is not legal", s, c.Lambda, c.M, c.Profile)
			}
			// Before rounding: the numel-weighted mean of OWL's sparsities is the target (blocks are
			// equal in size); after: exactly the target's non-zero count.
			var pre float64
			for j, l := range cfg.Layers {
				pre += c.BlockSparsity[j/int(arch.NumLinearKinds)] * float64(l.Numel) / total
			}
			if math.Abs(pre-s) > 1e-12 {
				t.Fatalf("OWL's mean sparsity %v, want %v", pre, s)
			}
			sp, _ := mode.Sparsities(c.Profile)
			var post float64
			for j, l := range cfg.Layers {
				post += sp[j] * float64(l.Numel) / total
			}
			if math.Abs(post-s) > 1e-12 {
				t.Fatalf("profile's mean sparsity %v, want %v", post, s)
			}
			// More outliers, less sparsity: the block with the highest ratio is the least sparse.
			hiBlock := slices.Index(ratios[i%len(OWLMs)], slices.Max(ratios[i%len(OWLMs)]))
			if c.BlockSparsity[hiBlock] != slices.Min(c.BlockSparsity) {
				t.Fatalf("block %d has the most outliers but sparsity %v (min %v)", hiBlock, c.BlockSparsity[hiBlock], slices.Min(c.BlockSparsity))
			}
		}
		// λ = 0.2 must move some layer off uniform at this spread.
		if slices.Equal(cands[len(cands)-1].Profile, make(search.Levels, len(cfg.Layers))) {
			t.Errorf("s=%v: λ = 0.2 left the profile uniform", s)
		}
	}
}

func TestUniform(t *testing.T) {
	cfg := modelSparseConfig(t, 0.6)
	p, err := UniformSparse(cfg)
	if err != nil || !slices.Equal(p, make(search.Levels, len(cfg.Layers))) {
		t.Fatalf("UniformSparse = %v, %v; want all zeros", p, err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for _, tc := range []struct {
		target float64
		ok     bool
	}{{3, true}, {4, true}, {2.5, false}, {3.25, false}} {
		qcfg, _ := randomQuantCase(rng, 4, tc.target)
		for i := range qcfg.Layers {
			qcfg.Layers[i].Bits = []int{2, 3, 4, 5, 6}
		}
		p, err := UniformQuant(qcfg)
		if (err == nil) != tc.ok {
			t.Fatalf("target %v: err = %v, want ok = %v", tc.target, err, tc.ok)
		}
		if tc.ok {
			for _, b := range p {
				if b != int(tc.target) {
					t.Fatalf("target %v: profile %v", tc.target, p)
				}
			}
		}
	}
	qcfg, _ := randomQuantCase(rng, 3, 3)
	for i := range qcfg.Layers {
		qcfg.Layers[i].Bits = []int{2, 4, 6}
	}
	if _, err := UniformQuant(qcfg); err == nil {
		t.Error("UniformQuant accepted a width no layer has")
	}
}

func TestRandomProfiles(t *testing.T) {
	cfg := modelSparseConfig(t, 0.7)
	mode, _ := sparse.New(cfg)
	a, err := RandomSparse(cfg, 50, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RandomSparse(cfg, 50, 1)
	c, _ := RandomSparse(cfg, 50, 2)
	distinct, _ := UniqueProfiles(a)
	for i := range a {
		if !mode.Legal(a[i]) {
			t.Fatalf("random sparse profile %v is not legal", a[i])
		}
		if !slices.Equal(a[i], b[i]) {
			t.Fatal("random sparse profiles differ for the same seed")
		}
	}
	if len(distinct) < 45 || slices.EqualFunc(a, c, func(x, y search.Levels) bool { return slices.Equal(x, y) }) {
		t.Fatalf("random sparse profiles are not random: %d distinct of 50, or seed-independent", len(distinct))
	}

	rng := rand.New(rand.NewPCG(11, 11))
	for _, target := range []float64{2.25, 2.5, 3, 4} {
		qcfg, _ := randomQuantCase(rng, 12, target)
		qmode, err := quant.New(qcfg)
		if err != nil {
			t.Fatal(err)
		}
		qa, err := RandomQuant(qcfg, 32, 3)
		if err != nil {
			t.Fatal(err)
		}
		qb, _ := RandomQuant(qcfg, 32, 3)
		for i := range qa {
			if !qmode.Legal(qa[i]) || !slices.Equal(qa[i], qb[i]) {
				t.Fatalf("target %v: profile %v not legal or not deterministic", target, qa[i])
			}
			// The draw stops as soon as the budget holds: raising the layer lowered last would
			// break it, so the profile uses more than budget − (the largest one-width step).
			var step int64
			for j, l := range qcfg.Layers {
				if k := slices.Index(l.Bits, qa[i][j]); k+1 < len(l.Bits) {
					step = max(step, l.Numel*int64(l.Bits[k+1]-l.Bits[k]))
				}
			}
			if qmode.CodeBits(qa[i]) <= qmode.Budget()-step {
				t.Fatalf("target %v: profile %v uses %d of %d bits: lowered too far", target, qa[i], qmode.CodeBits(qa[i]), qmode.Budget())
			}
		}
		if d, _ := UniqueProfiles(qa); len(d) < 2 {
			t.Fatalf("target %v: all 32 random quant profiles are equal", target)
		}
	}
}

func TestBest(t *testing.T) {
	cands := []search.Levels{{0}, {1}, {2}, {3}}
	for _, tc := range []struct {
		fit  []float64
		want int
	}{
		{[]float64{3, 1, 2, 1}, 1},
		{[]float64{math.NaN(), 5, 4, math.NaN()}, 2},
		{[]float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}, 0},
	} {
		got, _, err := Best(context.Background(), cands, func(_ context.Context, c []search.Levels) ([]float64, error) {
			return tc.fit, nil
		})
		if err != nil || got != tc.want {
			t.Errorf("Best(%v) = %d, %v; want %d", tc.fit, got, err, tc.want)
		}
	}
	if _, _, err := Best(context.Background(), cands, func(context.Context, []search.Levels) ([]float64, error) {
		return []float64{1}, nil
	}); err == nil {
		t.Error("Best accepted a scorer returning the wrong number of values")
	}
}

func TestUniqueProfiles(t *testing.T) {
	uniq, idx := UniqueProfiles([]search.Levels{{1, 2}, {0, 0}, {1, 2}, {2, 1}})
	if len(uniq) != 3 || !slices.Equal(idx, []int{0, 1, 0, 2}) {
		t.Fatalf("UniqueProfiles: %v %v", uniq, idx)
	}
}
