package fitness

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/tokenizer"
)

// The teacher caches the dense distribution as p̂ = f16(p32), where p32 = float32(exp(lp32)) and
// lp32 = z − lse32 in float32. Rounding to float16 is within max(2⁻¹¹·x, 2⁻²⁵) of x for x in
// [0, 1] (relative 2⁻¹¹ for normal values ≥ 2⁻¹⁴, absolute half the subnormal spacing 2⁻²⁴
// below), and p32 = p·(1 + η_v) with |η_v| ≤ exp(δ + 2⁻²⁴·|lp_v|)·(1 + 2⁻²⁴) − 1, δ the error of
// the float32 log-sum-exp. So |p̂_v − p_v| ≤ c_v = max(2⁻¹¹·(1+|η_v|)·p_v, 2⁻²⁵) + |η_v|·p_v,
// and the KL the cached distribution gives, Σ p̂_v·d_v with d_v = log p_v − log q_v, differs from
// the exact Σ p_v·d_v by at most
//
//	B = Σ_v c_v·|d_v|  ≤  2⁻¹¹·Σ_{p_v ≥ 2⁻¹⁴} p_v·|d_v|  +  2⁻²⁵·Σ_{p_v < 2⁻¹⁴} |d_v|  (+ the η terms).
//
// The first term is at most 2⁻¹¹ ≈ 4.9·10⁻⁴ times Σ p·|d| (≈ the KL itself when q is below p
// where p is large); the second grows with the number of tokens of tiny probability (the
// vocabulary) and is what dominates at 128k tokens. errorCase measures, per position, the f16
// error Σ (p̂_v − p_v)·d_v from the cache's own p̂ (the teacher's entries) against B, and the
// teacher's KL (Measure: float32 dot products and log-sum-exps besides) against the exact
// float64 KL from the same logits.

// cacheError is one model and candidate's measurement, means over the predicted positions.
type cacheError struct {
	exact         float64 // KL(dense ‖ candidate) in float64 from the logits
	f16, bound    float64 // mean |Σ (p̂ − p)·d| and mean B
	f16Mean       float64 // mean Σ (p̂ − p)·d: the f16 error of the mean KL
	maxRatio      float64 // max over positions of |Σ (p̂ − p)·d| / B
	measured      float64 // Teacher.Measure's KL
	positions, tv int     // positions; tokens per position with p < 2⁻¹⁴
}

// measureCacheError compares the teacher's cached distributions with exact float64 ones.
func measureCacheError(t *testing.T, dense, cand *model.Model, pool [][]int) cacheError {
	t.Helper()
	teacher, err := NewTeacher(dense, pool, Options{})
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, len(pool))
	for i := range idx {
		idx[i] = i
	}
	var r cacheError
	if r.measured, _, err = teacher.Measure(cand, idx); err != nil {
		t.Fatal(err)
	}
	ents, err := teacher.entries(idx)
	if err != nil {
		t.Fatal(err)
	}
	V := dense.Vocab
	const u16, tiny, minNormal = 1.0 / 2048, 1.0 / (1 << 25), 1.0 / (1 << 14)
	var subnormal int
	for c, seq := range pool {
		zd, err := dense.Logits(seq)
		if err != nil {
			t.Fatal(err)
		}
		zc, err := cand.Logits(seq)
		if err != nil {
			t.Fatal(err)
		}
		e := ents[c]
		for pos := 0; pos < len(seq)-1; pos++ {
			z, y := zd[pos*V:(pos+1)*V], zc[pos*V:(pos+1)*V]
			lseZ, lseY := lse64(z), lse64(y)
			delta := math.Abs(float64(model.LogSumExp(z)) - lseZ)
			var exact, f16err, bound float64
			for v := 0; v < V; v++ {
				lp := float64(z[v]) - lseZ
				p := math.Exp(lp)
				d := lp - (float64(y[v]) - lseY)
				ph := float64(f16[e.probs[pos*V+v]])
				eta := math.Exp(delta+math.Abs(lp)/(1<<24))*(1+1.0/(1<<24)) - 1
				cv := math.Max(u16*(1+eta)*p, tiny) + eta*p
				exact += p * d
				f16err += (ph - p) * d
				bound += cv * math.Abs(d)
				if p < minNormal {
					subnormal++
				}
			}
			r.exact += exact
			r.f16 += math.Abs(f16err)
			r.f16Mean += f16err
			r.bound += bound
			if bound > 0 {
				r.maxRatio = math.Max(r.maxRatio, math.Abs(f16err)/bound)
			} else if f16err != 0 {
				r.maxRatio = math.Inf(1)
			}
			r.positions++
		}
	}
	n := float64(r.positions)
	r.exact, r.f16, r.f16Mean, r.bound = r.exact/n, r.f16/n, r.f16Mean/n, r.bound/n
	r.tv = subnormal / r.positions
	return r
}

func lse64(z []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = math.Max(mx, float64(v))
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}

// dropBlocks is m with whole blocks dropped.
func dropBlocks(m *model.Model, blocks ...int) *model.Model {
	c := m.Clone()
	for _, b := range blocks {
		c.Blocks[b].SkipAttn, c.Blocks[b].SkipMLP = true, true
	}
	return c
}

// rtn is m with every linear layer quantized round-to-nearest to bits (groups of 128 columns,
// or whole rows when narrower), dequantized.
func rtn(t *testing.T, m *model.Model, bits int) *model.Model {
	t.Helper()
	c := m.Clone()
	for i := range c.Blocks {
		for k := range arch.NumLinearKinds {
			l := c.Blocks[i].Layer(k)
			g := 128
			if l.In%g != 0 {
				g = 0
			}
			q, err := compress.RTN(l.Float32(), l.Out, l.In, bits, g)
			if err != nil {
				t.Fatal(err)
			}
			w := make([]float32, l.Numel())
			if err := q.Dequantize(w); err != nil {
				t.Fatal(err)
			}
			l.W = w
		}
	}
	return c
}

// calibPool tokenizes the embedded calibration text and cuts n chunks of T tokens from it.
func calibPool(t *testing.T, tok *tokenizer.Tokenizer, n, T int) [][]int {
	t.Helper()
	text, err := assets.ReadFile(assets.CalibText)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode(string(text[:min(len(text), 64*n*T)]), false)
	var pool [][]int
	for i := 0; i+T <= len(ids) && len(pool) < n; i += 7 * T { // chunks spread over the text
		pool = append(pool, ids[i:i+T])
	}
	if len(pool) < n {
		t.Fatalf("%d tokens: fewer than %d chunks of %d", len(ids), n, T)
	}
	return pool
}

// The float16 cache's KL error stays within the derived bound B at every position, for the
// embedded llama-pd-11m (vocabulary 4096) and babyllama-1m (105), on candidates that drop two
// blocks and that quantize every layer to 3 and 4 bits; the teacher's KL is within B + 10⁻⁵ of
// the exact one, and its error is the float16 error of the mean within 10⁻⁵ (the float32
// arithmetic). EVOPRESS_CACHE_ERROR_MODEL names a further
// model directory to measure (e.g. a 128k-vocabulary checkpoint; slow).
func TestCacheKLErrorBound(t *testing.T) {
	type subject struct {
		name string
		m    *model.Model
		tok  *tokenizer.Tokenizer
	}
	var subjects []subject
	m, _, err := model.LoadIdentifiedFSWith(assets.FS(), assets.ModelDir, model.LoadOptions{KeepDType: true})
	if err != nil {
		t.Fatal(err)
	}
	tj, _ := assets.ReadFile(assets.ModelDir + "/tokenizer.json")
	tc, _ := assets.ReadFile(assets.ModelDir + "/tokenizer_config.json")
	tok, err := tokenizer.Parse(tj, tc, "tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	subjects = append(subjects, subject{"llama-pd-11m", m, tok})
	dirs := []string{filepath.Join("..", "..", "shared", "models", "babyllama-1m")}
	if d := os.Getenv("EVOPRESS_CACHE_ERROR_MODEL"); d != "" {
		dirs = append(dirs, d)
	}
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err != nil {
			t.Logf("skipping %s: %v", dir, err)
			continue
		}
		m, _, err := model.LoadIdentifiedWith(dir, model.LoadOptions{KeepDType: true})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tokenizer.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, subject{filepath.Base(dir), m, tok})
	}
	for _, s := range subjects {
		n, T := 4, 128
		if s.m.Vocab > 50000 {
			n = 1 // a large model: one chunk
		}
		pool := calibPool(t, s.tok, n, T)
		nb := len(s.m.Blocks)
		for _, c := range []struct {
			name string
			cand func() *model.Model // built when measured: a quantized 1B copy takes gigabytes
		}{
			{"dense", func() *model.Model { return s.m }},
			{fmt.Sprintf("drop blocks %d and %d", nb/2, nb-2), func() *model.Model { return dropBlocks(s.m, nb/2, nb-2) }},
			{"RTN 4-bit", func() *model.Model { return rtn(t, s.m, 4) }},
			{"RTN 3-bit", func() *model.Model { return rtn(t, s.m, 3) }},
		} {
			r := measureCacheError(t, s.m, c.cand(), pool)
			t.Logf("%s, %s: KL %.6g; f16 error per position %.3g (%.2g of the KL), bound %.3g, worst position %.2f of its bound; f16 error of the mean %.3g; teacher's KL error %.3g; %d of %d tokens below 2⁻¹⁴ per position",
				s.name, c.name, r.exact, r.f16, r.f16/r.exact, r.bound, r.maxRatio, r.f16Mean, r.measured-r.exact, r.tv, s.m.Vocab)
			if r.maxRatio > 1 {
				t.Errorf("%s, %s: the float16 error exceeds the derived bound at a position (%.3f of it)", s.name, c.name, r.maxRatio)
			}
			if d := math.Abs(r.measured - r.exact); d > r.bound+1e-5 {
				t.Errorf("%s, %s: the teacher's KL %v is %.3g from the exact %v, beyond the bound %.3g + 1e-5", s.name, c.name, r.measured, d, r.exact, r.bound)
			}
			if d := math.Abs(r.measured - r.exact - r.f16Mean); d > 1e-5 {
				t.Errorf("%s, %s: the teacher's KL error %.3g is not its float16 error %.3g (float32 arithmetic: %.3g)", s.name, c.name, r.measured-r.exact, r.f16Mean, d)
			}
		}
	}
}
