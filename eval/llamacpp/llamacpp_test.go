package llamacpp

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// logSoftmax is the exact log-softmax in float64.
func logSoftmax(logits []float32) []float64 {
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = math.Max(mx, float64(l))
	}
	var s float64
	for _, l := range logits {
		s += math.Exp(float64(l) - mx)
	}
	out := make([]float64, len(logits))
	for i, l := range logits {
		out[i] = float64(l) - mx - math.Log(s)
	}
	return out
}

func randomLogits(r *rand.Rand, n int, spread float64) []float32 {
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * spread)
	}
	return l
}

func TestScored(t *testing.T) {
	for _, tc := range []struct{ nCtx, first, n int }{{512, 256, 255}, {128, 64, 63}, {3, 1, 1}, {4, 2, 1}, {5, 2, 2}, {2, 1, 0}} {
		if first, n := Scored(tc.nCtx); first != tc.first || n != tc.n {
			t.Errorf("Scored(%d) = %d, %d; want %d, %d", tc.nCtx, first, n, tc.first, tc.n)
		}
	}
	if RowWidth(105) != 110 || RowWidth(4096) != 4100 {
		t.Errorf("RowWidth(105) = %d, RowWidth(4096) = %d; want 110, 4100", RowWidth(105), RowWidth(4096))
	}
	if got := BaseSize(64, 105, 6); got != 42476 { // llama-perplexity's file in testdata
		t.Errorf("BaseSize(64, 105, 6) = %d, want 42476", got)
	}
	if BaseSize(MaxCtx, MaxVocab, math.MaxInt32) != -1 && BaseSize(MaxCtx, MaxVocab, math.MaxInt32) < 0 {
		t.Error("BaseSize overflowed")
	}
}

// TestCompress checks the compressed rows against the exact log-probabilities: within half a
// step where they are stored, at the floor (16 below the top) where not.
func TestCompress(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		logits []float32
	}{
		{"narrow", randomLogits(r, 105, 1)},
		{"wide", randomLogits(r, 4096, 8)},
		{"constant", make([]float32, 7)},
		{"one", []float32{3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nv := RowWidth(len(tc.logits))
			row := make([]uint16, nv)
			for i := range row {
				row[i] = 0xffff // padding must be cleared
			}
			exact := logSoftmax(tc.logits)
			for tok := range tc.logits {
				nll := Compress(tc.logits, row, tok)
				if d := math.Abs(float64(nll) + exact[tok]); d > 1e-6*math.Max(1, -exact[tok]) {
					t.Fatalf("token %d: NLL %g, exact %g", tok, nll, -exact[tok])
				}
				if d := math.Abs(NLL(tc.logits, tok) + exact[tok]); d > 1e-7*math.Max(1, -exact[tok]) {
					t.Fatalf("token %d: NLL() %g, exact %g", tok, NLL(tc.logits, tok), -exact[tok])
				}
			}
			scale, minLP := RowHeader(row)
			top := exact[0]
			for _, e := range exact {
				top = math.Max(top, e)
			}
			for i, e := range exact {
				got := float64(LogProb(row, i))
				switch {
				case e > top-16 && math.Abs(got-e) > float64(scale)/2+1e-5:
					t.Fatalf("token %d: stored %g, exact %g (scale %g)", i, got, e, scale)
				case e <= top-16 && got != float64(minLP):
					t.Fatalf("token %d: %g is more than 16 below the top but stored as %g, not the floor %g", i, e, got, minLP)
				}
			}
			for i := 4 + len(tc.logits); i < nv; i++ {
				if row[i] != 0 {
					t.Errorf("padding value %d is %#x, want 0", i, row[i])
				}
			}
			if len(tc.logits) == 7 && (scale != 0 || math.Abs(float64(minLP)+math.Log(7)) > 1e-6) {
				t.Errorf("constant logits: scale %g, min %g; want 0, −log 7", scale, minLP)
			}
		})
	}
}

// klDirect is KL(P ‖ Q) in float64 with P from a compressed row, over the tokens llama.cpp counts.
func klDirect(row []uint16, logits []float32) float64 {
	lq := logSoftmax(logits)
	var s float64
	for i := range logits {
		lp := float64(LogProb(row, i))
		if lp > -16 {
			s += math.Exp(lp) * (lp - lq[i])
		}
	}
	return s
}

func TestCompare(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	base := randomLogits(r, 301, 3)
	row := make([]uint16, RowWidth(len(base)))
	Compress(base, row, 0)
	// The model itself: no divergence beyond the compression's rounding.
	for tok := range []int{0, 17, 300} {
		p := Compare(base, row, tok)
		if math.Abs(p.KLD) > 1e-4 || !p.SameTop || math.Abs(float64(p.PDiff)) > 1e-3 || math.Abs(float64(p.NLL-p.NLLBase)) > 1e-3 {
			t.Errorf("the base model against itself at token %d: %+v", tok, p)
		}
	}
	// Another model.
	q := make([]float32, len(base))
	for i := range q {
		q[i] = base[i] + float32(r.NormFloat64())
	}
	lq, lp := logSoftmax(q), logSoftmax(base)
	p := Compare(q, row, 5)
	if want := klDirect(row, q); math.Abs(p.KLD-want) > 1e-5*math.Max(1, want) || want < 0.1 {
		t.Errorf("KLD %g, direct %g", p.KLD, want)
	}
	if math.Abs(float64(p.NLL)+lq[5]) > 1e-5 || math.Abs(float64(p.NLLBase)+lp[5]) > 1e-3 {
		t.Errorf("NLL %g (exact %g), NLL base %g (exact %g)", p.NLL, -lq[5], p.NLLBase, -lp[5])
	}
	if d := math.Exp(lq[5]) - math.Exp(lp[5]); math.Abs(float64(p.PDiff)-d) > 1e-4 {
		t.Errorf("Δp %g, exact %g", p.PDiff, d)
	}
	argmax := func(x []float64) int {
		best := 0
		for i := range x {
			if x[i] > x[best] {
				best = i
			}
		}
		return best
	}
	if p.SameTop != (argmax(lq) == argmax(lp)) {
		t.Errorf("same top %v, argmax %d and %d", p.SameTop, argmax(lq), argmax(lp))
	}
}

func TestPercentiles(t *testing.T) {
	v := []float32{1, 2, 3, 4, 5}
	for _, tc := range []struct {
		f    float32
		want float32
	}{{0, 1}, {1, 5}, {0.5, 3}, {0.1, 1.4}, {0.9, 4.6}, {0.999, 4.996}} {
		if got := percentile(v, tc.f); math.Abs(float64(got-tc.want)) > 1e-5 {
			t.Errorf("percentile %g = %g, want %g", tc.f, got, tc.want)
		}
	}
	if median(v) != 3 || median(v[:4]) != 2.5 {
		t.Errorf("median %g, %g; want 3, 2.5", median(v), median(v[:4]))
	}
	if m, e := meanAndUncertainty(10, 30, 10); m != 1 || e != 0 {
		t.Errorf("10 values: %g ± %g, want 1 ± 0 (llama.cpp gives no error below 11 values)", m, e)
	}
	// 12 values 0 and 2: mean 1, variance 1, error sqrt(1/11).
	if m, e := meanAndUncertainty(12, 24, 12); m != 1 || math.Abs(e-math.Sqrt(1.0/11)) > 1e-15 {
		t.Errorf("%g ± %g, want 1 ± %g", m, e, math.Sqrt(1.0/11))
	}
}

// TestStats feeds positions with known sums and checks the statistics.
func TestStats(t *testing.T) {
	var k KLD
	if k.Stats() != nil {
		t.Error("statistics of no positions")
	}
	var ppl PPL
	for i := 0; i < 200; i++ {
		p := Position{NLL: float32(1 + i%2), NLLBase: 1, KLD: float64(i) / 100, PDiff: float32(i-100) / 1000, SameTop: i%4 != 0}
		k.Add(p)
		ppl.Add(float64(p.NLL))
	}
	s := k.Stats()
	nll, pp, pe := ppl.Estimate()
	wantErr := math.Exp(1.5) * math.Sqrt(0.25/199)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"count", float64(s.Count), 200},
		{"PPL(Q)", float64(s.PPLQ), math.Exp(1.5)},
		{"PPL(Q) error", float64(s.PPLQError), wantErr},
		{"PPL(base)", float64(s.PPLBase), math.E},
		{"PPL(base) error", float64(s.PPLBaseError), 0},
		{"ln ratio", float64(s.LnPPLRatio), 0.5},
		{"ratio", float64(s.PPLRatio), math.Exp(0.5)},
		{"KLD mean", float64(s.KLDMean), 0.995},
		{"KLD max", float64(s.KLDMax), 1.99},
		{"KLD min", float64(s.KLDMin), 0},
		{"KLD median", float64(s.KLDMedian), 0.995},
		{"KLD 90%", float64(s.KLDP90), 1.791},
		{"Δp mean", float64(s.DpMean), -0.0005},
		{"Δp max", float64(s.DpMax), 0.099},
		{"Δp min", float64(s.DpMin), -0.1},
		{"same top", float64(s.SameTopP), 0.75},
		{"same top error", float64(s.SameTopPError), math.Sqrt(0.75 * 0.25 / 199)},
		{"Estimate NLL", nll, 1.5},
		{"Estimate PPL", pp, math.Exp(1.5)},
		{"Estimate error", pe, wantErr},
	} {
		if math.Abs(c.got-c.want) > 1e-6*math.Max(1, math.Abs(c.want)) {
			t.Errorf("%s = %g, want %g", c.name, c.got, c.want)
		}
	}
	// The base's NLL is constant: its error is 0, the correlation 0/0.
	if !math.IsNaN(float64(s.CorLnPPL)) {
		t.Errorf("correlation %g, want NaN", s.CorLnPPL)
	}
	b, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(b), `"cor_ln_ppl":null`) || !strings.Contains(string(b), `"kld_mean":0.995`) {
		t.Fatalf("JSON %s, %v", b, err)
	}
	var back KLDStats
	if err := json.Unmarshal(b, &back); err != nil || back.KLDMean != s.KLDMean || !math.IsNaN(float64(back.CorLnPPL)) {
		t.Errorf("JSON round trip: %+v, %v", back, err)
	}
}

// TestTextRoundTrip writes statistics as llama-perplexity prints them and parses them back; the
// text fixture written by llama-perplexity parses too, and writes back identically.
func TestTextRoundTrip(t *testing.T) {
	ref, err := os.ReadFile("testdata/babyllama-1m.drop.kld.txt")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseKLDStats(string(ref))
	if err != nil {
		t.Fatal(err)
	}
	near := func(a Num, b float64) bool { return math.Abs(float64(a)-b) < 1e-12 }
	if !near(s.KLDMean, 1.554297) || !near(s.SameTopP, 0.39247) || !near(s.CorLnPPL, 0.8166) || !near(s.DpP10, -0.74282) {
		t.Errorf("parsed %+v", s)
	}
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != string(ref) {
		t.Errorf("written back:\n%s\nllama-perplexity's:\n%s", b.String(), ref)
	}
	s.KLDP5 = Num(math.NaN())
	b.Reset()
	s.WriteText(&b)
	if !strings.Contains(b.String(), " 5.0%   KLD:        nan\n") {
		t.Errorf("NaN written as\n%s", b.String())
	}
	if back, err := ParseKLDStats(b.String()); err != nil || !math.IsNaN(float64(back.KLDP5)) {
		t.Errorf("NaN read back: %v %v", back, err)
	}
	if _, err := ParseKLDStats(strings.Replace(string(ref), "Median  KLD", "Middle KLD", 1)); err == nil || !strings.Contains(err.Error(), "Median  KLD") {
		t.Errorf("a missing statistic: %v", err)
	}
	ppl, pe, err := ParseEstimate("0.00.529.427 I Final estimate: PPL = 14.3545 +/- 4.77044\n")
	if err != nil || ppl != 14.3545 || pe != 4.77044 {
		t.Errorf("ParseEstimate: %g %g %v", ppl, pe, err)
	}
	b.Reset()
	WriteEstimate(&b, &Result{PPL: 14.35449, PPLError: 4.770441})
	if b.String() != "Final estimate: PPL = 14.3545 +/- 4.77044\n" {
		t.Errorf("WriteEstimate: %q", b.String())
	}
}

// writeBase writes a base-logits file of random rows and returns its bytes and rows.
func writeBase(t testing.TB, nCtx, nVocab, nChunk int) ([]byte, [][]uint16, []int) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(nCtx), uint64(nVocab)))
	tokens := make([]int, nCtx*nChunk)
	for i := range tokens {
		tokens[i] = r.IntN(nVocab)
	}
	var buf bytes.Buffer
	w, err := NewBaseWriter(&buf, nCtx, nVocab, tokens)
	if err != nil {
		t.Fatal(err)
	}
	_, n := Scored(nCtx)
	nv := RowWidth(nVocab)
	var chunks [][]uint16
	for c := 0; c < nChunk; c++ {
		rows := make([]uint16, n*nv)
		for i := 0; i < n; i++ {
			Compress(randomLogits(r, nVocab, 4), rows[i*nv:(i+1)*nv], 0)
		}
		if err := w.WriteChunk(rows); err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, rows)
	}
	if err := w.WriteChunk(chunks[0]); err == nil {
		t.Error("a chunk beyond the header's count was written")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), chunks, tokens
}

func TestBaseRoundTrip(t *testing.T) {
	for _, tc := range []struct{ nCtx, nVocab, nChunk int }{{8, 5, 3}, {3, 1, 1}, {16, 64, 2}} {
		b, chunks, tokens := writeBase(t, tc.nCtx, tc.nVocab, tc.nChunk)
		if int64(len(b)) != BaseSize(tc.nCtx, tc.nVocab, tc.nChunk) {
			t.Fatalf("%+v: %d bytes, BaseSize %d", tc, len(b), BaseSize(tc.nCtx, tc.nVocab, tc.nChunk))
		}
		r, err := NewBaseReader(bytes.NewReader(b), int64(len(b)), "x.bin")
		if err != nil {
			t.Fatal(err)
		}
		if r.NCtx != tc.nCtx || r.NVocab != tc.nVocab || r.NChunk != tc.nChunk || !reflect.DeepEqual(r.Tokens, tokens) {
			t.Fatalf("header %d %d %d, tokens %v; want %+v, %v", r.NCtx, r.NVocab, r.NChunk, r.Tokens, tc, tokens)
		}
		var rows []uint16
		for c := range chunks {
			if rows, err = r.ReadChunk(rows); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rows, chunks[c]) {
				t.Fatalf("chunk %d read back differently", c)
			}
		}
		if _, err := r.ReadChunk(rows); err == nil {
			t.Error("a chunk read beyond the file's count")
		}
	}
	// An incomplete file is not closed without error.
	var buf bytes.Buffer
	w, _ := NewBaseWriter(&buf, 4, 3, make([]int, 8))
	if err := w.Close(); err == nil {
		t.Error("a file missing its chunks was closed without error")
	}
	for _, bad := range []struct {
		nCtx, nVocab int
		tokens       []int
	}{{2, 3, []int{0, 0}}, {4, 0, []int{0, 0, 0, 0}}, {4, 3, []int{0, 0, 0}}, {4, 3, nil}, {4, 3, []int{0, 1, 2, 3}}} {
		if _, err := NewBaseWriter(&buf, bad.nCtx, bad.nVocab, bad.tokens); err == nil {
			t.Errorf("NewBaseWriter(%d, %d, %v) accepted", bad.nCtx, bad.nVocab, bad.tokens)
		}
	}
}

// TestReadFixture reads llama-perplexity's base-logits file for babyllama-1m.
func TestReadFixture(t *testing.T) {
	r, err := OpenBase("testdata/babyllama-1m.kld-base.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.NCtx != 64 || r.NVocab != 105 || r.NChunk != 6 || len(r.Tokens) != 384 || r.Tokens[0] != 1 {
		t.Fatalf("header n_ctx %d n_vocab %d n_chunk %d, %d tokens starting %v", r.NCtx, r.NVocab, r.NChunk, len(r.Tokens), r.Tokens[:4])
	}
	var rows []uint16
	for c := 0; c < r.NChunk; c++ {
		if rows, err = r.ReadChunk(rows); err != nil {
			t.Fatal(err)
		}
		// Every row is a distribution: Σ exp(log p) ≈ 1 over the stored tokens.
		nv := RowWidth(105)
		for i := 0; i < 31; i++ {
			row := rows[i*nv : (i+1)*nv]
			var s float64
			for j := 0; j < 105; j++ {
				s += math.Exp(float64(LogProb(row, j)))
			}
			if math.Abs(s-1) > 1e-3 {
				t.Fatalf("chunk %d row %d: probabilities sum to %g", c, i, s)
			}
		}
	}
}

func TestBaseReaderRefuses(t *testing.T) {
	good, _, _ := writeBase(t, 8, 5, 2)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	put := func(off int, v uint32) []byte {
		return mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b })
	}
	row0 := headerBytes + 4*16 // the first row of the first chunk
	nan := math.Float32bits(float32(math.NaN()))
	for _, tc := range []struct {
		name string
		b    []byte
		want string // in the error
	}{
		{"empty", nil, "shorter than its header"},
		{"short header", good[:10], "shorter than its header"},
		{"magic", mod(func(b []byte) []byte { b[0] = 'x'; return b }), "does not start with"},
		{"n_ctx 2", put(8, 2), "n_ctx 2 outside"},
		{"n_ctx huge", put(8, 1<<30), "n_ctx 1073741824 outside"},
		{"n_ctx negative", put(8, 0xffffffff), "n_ctx -1 outside"},
		{"n_vocab 0", put(12, 0), "n_vocab 0 outside"},
		{"n_vocab huge", put(12, 1<<31-1), "outside [1,"},
		{"n_chunk 0", put(16, 0), "n_chunk 0"},
		{"n_chunk huge", put(16, 1<<31-1), "declares"},
		{"truncated", good[:len(good)-1], "declares"},
		{"trailing", append(bytes.Clone(good), 0), "declares"},
		{"token", put(headerBytes+4*3, 5), "token 3 (chunk 0, position 3) is 5"},
		{"negative token", put(headerBytes, 0xffffffff), "is -1"},
		{"NaN scale", put(row0, nan), "scale NaN"},
		{"negative scale", put(row0, math.Float32bits(-1)), "scale -1"},
		{"infinite minimum", put(row0+4, math.Float32bits(float32(math.Inf(-1)))), "minimum log-probability -Inf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := readAll(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "f.bin: ") {
				t.Errorf("error %v, want one naming f.bin and containing %q", err, tc.want)
			}
		})
	}
	if err := readAll(good); err != nil {
		t.Errorf("the good file: %v", err)
	}
	// OpenBase names the file and refuses what is not a regular file.
	dir := t.TempDir()
	if _, err := OpenBase(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	p := filepath.Join(dir, "short.bin")
	os.WriteFile(p, good[:30], 0o644)
	if _, err := OpenBase(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("a truncated file: %v", err)
	}
}

// readAll reads a whole base-logits file from memory.
func readAll(b []byte) error {
	r, err := NewBaseReader(bytes.NewReader(b), int64(len(b)), "f.bin")
	if err != nil {
		return err
	}
	var rows []uint16
	for c := 0; c < r.NChunk; c++ {
		if rows, err = r.ReadChunk(rows); err != nil {
			return err
		}
	}
	return nil
}

// FuzzBaseReader: no input makes the reader panic or allocate beyond the input's size.
func FuzzBaseReader(f *testing.F) {
	fixture, err := os.ReadFile("testdata/babyllama-1m.kld-base.bin")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture[:2000])
	small, _, _ := writeBase(f, 8, 5, 2)
	f.Add(small)
	var buf bytes.Buffer
	w, _ := NewBaseWriter(&buf, 3, 1, []int{0, 0, 0})
	w.WriteChunk(make([]uint16, RowWidth(1)))
	w.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewBaseReader(bytes.NewReader(b), int64(len(b)), "f.bin")
		if err != nil {
			return
		}
		if BaseSize(r.NCtx, r.NVocab, r.NChunk) != int64(len(b)) {
			t.Fatalf("accepted a header declaring %d bytes for %d", BaseSize(r.NCtx, r.NVocab, r.NChunk), len(b))
		}
		var rows []uint16
		for c := 0; c < r.NChunk; c++ {
			if rows, err = r.ReadChunk(rows); err != nil {
				return
			}
		}
	})
}
