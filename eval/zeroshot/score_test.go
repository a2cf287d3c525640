package zeroshot

import (
	"context"
	"io/fs"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/tokenizer"
)

var (
	embOnce  sync.Once
	embModel *model.Model
	embTok   *tokenizer.Tokenizer
	embErr   error
)

// embedded returns the embedded default model (llama-pd-11m) and its tokenizer.
func embedded(t testing.TB) (*model.Model, *tokenizer.Tokenizer) {
	t.Helper()
	embOnce.Do(func() {
		if embModel, _, embErr = model.LoadFS(assets.FS(), assets.ModelDir); embErr != nil {
			return
		}
		var tj, tc []byte
		if tj, embErr = fs.ReadFile(assets.FS(), assets.ModelDir+"/tokenizer.json"); embErr != nil {
			return
		}
		tc, _ = fs.ReadFile(assets.FS(), assets.ModelDir+"/tokenizer_config.json")
		embTok, embErr = tokenizer.Parse(tj, tc, "tokenizer.json")
	})
	if embErr != nil {
		t.Fatal(embErr)
	}
	return embModel, embTok
}

// wordEncoder is a toy tokenizer: one id per whitespace-separated word, a word keeps its leading
// space (like SentencePiece's ▁), and "ab" is one token even across "a"+"b" (a merge).
type wordEncoder struct{ vocab map[string]int }

func (w *wordEncoder) Encode(text string, _ bool) []int {
	var ids []int
	text = strings.ReplaceAll(text, "a b", "ab")
	for i := 0; i < len(text); {
		j := i + 1
		for j < len(text) && text[j] != ' ' {
			j++
		}
		word := text[i:j]
		id, ok := w.vocab[word]
		if !ok {
			id = len(w.vocab) + 10
			w.vocab[word] = id
		}
		ids = append(ids, id)
		i = j
	}
	return ids
}

func TestEncode(t *testing.T) {
	enc := &wordEncoder{vocab: map[string]int{}}
	id := func(w string) int { return enc.Encode(w, false)[0] }
	tests := []struct {
		name, ctx, cont string
		prefix, empty   []int
		want            Request
		err             string
	}{
		{"plain", "x y", " z", nil, nil, Request{[]int{id("x"), id(" y")}, []int{id(" z")}}, ""},
		{"trailing space moves", "x y ", "z", nil, nil, Request{[]int{id("x"), id(" y")}, []int{id(" z")}}, ""},
		{"prefix", "x", " z w", []int{1}, []int{2}, Request{[]int{1, id("x")}, []int{id(" z"), id(" w")}}, ""},
		{"empty context with prefix", "", " z", []int{1}, []int{2}, Request{[]int{1}, []int{id(" z")}}, ""},
		{"empty context, BOS", " ", "z", nil, []int{2}, Request{[]int{2}, []int{id(" z")}}, ""},
		{"empty context, no BOS", " ", "z", nil, nil, Request{}, "empty context"},
		// "x a" + " b" encodes as x, " ab": the context's 2 tokens leave nothing.
		{"merge across boundary", "x a", " b", nil, nil, Request{}, "encodes to no tokens"},
		// "x a" + " b c": whole is x, " ab", " c"; the continuation is whole[2:] = " c" (lm-eval's rule).
		{"merge keeps lm-eval slice", "x a", " b c", nil, nil, Request{[]int{id("x"), id(" a")}, []int{id(" c")}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Encode(enc, tc.prefix, tc.empty, tc.ctx, tc.cont)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEncodeSentencePiece checks the leading-space handling with the real Llama-style tokenizer:
// the continuation " yes" after "Answer:" is the single token "▁yes", while encoding " yes" alone
// gives a different sequence (the text-start prefix space doubles it).
func TestEncodeSentencePiece(t *testing.T) {
	_, tok := embedded(t)
	ctx := "Question: Is the sea wet?\nAnswer:"
	r, err := Encode(tok, nil, nil, ctx, " yes")
	if err != nil {
		t.Fatal(err)
	}
	yes, ok := tok.TokenID("▁yes")
	if !ok {
		t.Fatal("no ▁yes token")
	}
	if !reflect.DeepEqual(r.Continuation, []int{yes}) {
		t.Errorf("continuation %v (%q), want [▁yes]", r.Continuation, tok.Decode(r.Continuation, false))
	}
	if !reflect.DeepEqual(r.Context, tok.Encode(ctx, false)) {
		t.Errorf("context %v, want encode(context)", r.Context)
	}
	if alone := tok.Encode(" yes", false); reflect.DeepEqual(alone, r.Continuation) {
		t.Errorf("encode(\" yes\") = %v equals the in-context tokens: the test shows nothing", alone)
	}
	// With BOS as prefix.
	prefix, _ := tok.SpecialIDs()
	rb, err := Encode(tok, prefix, nil, ctx, " yes")
	if err != nil || len(prefix) != 1 || rb.Context[0] != prefix[0] || !reflect.DeepEqual(rb.Continuation, r.Continuation) {
		t.Errorf("with BOS %v: %v, %v", prefix, rb, err)
	}
}

func TestInput(t *testing.T) {
	seq := func(lo, n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = lo + i
		}
		return s
	}
	tests := []struct {
		name              string
		ctx, cont, maxLen int
		inp, targets      []int
		cut               int
	}{
		{"fits", 3, 2, 8, []int{0, 1, 2, 3}, []int{3, 4}, 0},
		{"exactly maxLen+1", 4, 2, 5, []int{0, 1, 2, 3, 4}, []int{4, 5}, 0},
		{"cut from the left", 6, 2, 5, []int{2, 3, 4, 5, 6}, []int{6, 7}, 2},
		{"continuation fills the window", 1, 3, 3, []int{0, 1, 2}, []int{1, 2, 3}, 0},
		// Longer than the window: only the last maxLen continuation tokens are scored.
		{"continuation too long", 1, 4, 3, []int{1, 2, 3}, []int{2, 3, 4}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Request{Context: seq(0, tc.ctx), Continuation: seq(tc.ctx, tc.cont)}
			inp, tg, cut := input(r, tc.maxLen)
			if !reflect.DeepEqual(inp, tc.inp) || !reflect.DeepEqual(tg, tc.targets) || cut != tc.cut {
				t.Errorf("got %v %v cut %d, want %v %v cut %d", inp, tg, cut, tc.inp, tc.targets, tc.cut)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	item := func(gold int, norms ...string) Item {
		it := Item{Gold: gold}
		for _, n := range norms {
			it.Choices = append(it.Choices, Choice{Norm: n})
		}
		return it
	}
	tests := []struct {
		name                  string
		it                    Item
		lls                   []float64
		pred, predNorm, predB int
	}{
		// -10/2 = -5 against -12/8 = -1.5: the raw sum prefers the short answer, the normalised the long.
		{"norm flips", item(1, "ab", "abcdefgh"), []float64{-10, -12}, 0, 1, 1},
		{"agree", item(0, "abc", "abc", "abc"), []float64{-3, -4, -5}, 0, 0, 0},
		{"ties take the first", item(1, "a", "a"), []float64{-2, -2}, 0, 0, 0},
		// "éé" is 2 characters but 4 bytes: -4/2 = -2 < -3/2 = -1.5 by characters; -4/4 = -1 > -1.5 by bytes.
		{"characters vs bytes", item(1, "ab", "éé"), []float64{-3, -4}, 0, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Judge(tc.it, tc.lls)
			if r.Pred != tc.pred || r.PredNorm != tc.predNorm || r.PredBytes != tc.predB {
				t.Errorf("pred %d %d %d, want %d %d %d", r.Pred, r.PredNorm, r.PredBytes, tc.pred, tc.predNorm, tc.predB)
			}
			if r.Correct != (tc.pred == tc.it.Gold) || r.CorrectNorm != (tc.predNorm == tc.it.Gold) || r.CorrectBytes != (tc.predB == tc.it.Gold) {
				t.Errorf("correctness flags %+v", r)
			}
		})
	}
}

func TestMeanStderr(t *testing.T) {
	tests := []struct {
		x            []float64
		mean, stderr float64
	}{
		{nil, 0, 0},
		{[]float64{1}, 1, 0},
		{[]float64{1, 0}, 0.5, 0.5}, // sd = √0.5, /√2
		{[]float64{1, 1, 0, 0}, 0.5, math.Sqrt(1.0/3) / 2},   // ss = 1, sd = √(1/3)
		{[]float64{1, 1, 1, 0}, 0.75, math.Sqrt(0.75/3) / 2}, // ss = 3·0.0625 + 0.5625
		{[]float64{1, 1, 1, 1, 1}, 1, 0},
	}
	for _, tc := range tests {
		m, s := MeanStderr(tc.x)
		if math.Abs(m-tc.mean) > 1e-15 || math.Abs(s-tc.stderr) > 1e-15 {
			t.Errorf("MeanStderr(%v) = %v, %v; want %v, %v", tc.x, m, s, tc.mean, tc.stderr)
		}
	}
}

// naive scores one request alone: one forward over exactly its (truncated) input, its own
// log-softmax. It shares nothing with ScoreRequests but input().
func naive(t *testing.T, m *model.Model, r Request, maxLen int) (float64, bool) {
	t.Helper()
	inp, targets, _ := input(r, maxLen)
	logits, err := m.Logits(inp)
	if err != nil {
		t.Fatal(err)
	}
	V := m.Vocab
	var ll float64
	greedy := true
	for k, tok := range targets {
		row := logits[(len(inp)-len(targets)+k)*V : (len(inp)-len(targets)+k+1)*V]
		mx := row[0]
		for _, v := range row {
			mx = max(mx, v)
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v - mx))
		}
		ll += float64(row[tok]) - (float64(mx) + math.Log(s))
		for _, v := range row {
			if v > row[tok] {
				greedy = false
			}
		}
	}
	return ll, greedy
}

// handTask is one hand-made item of every format (answers are not assumed right here: the test
// compares scores, not accuracy).
const handTask = `{"question":"Which of these is a large body of salt water?","choices":{"text":["an ocean","a pond","a puddle"],"label":["A","B","C"]},"answerKey":"A"}
{"goal":"To open a locked door,","sol1":"use the key.","sol2":"use a spoon of soup and wait for the end of the year.","label":0}
{"sentence":"The trophy did not fit in the suitcase because the _ was too small.","option1":"trophy","option2":"suitcase","answer":"2"}
{"activity_label":"Sailing","ctx":"A man is on a boat. he","endings":["pulls the rope and the sail fills with wind.","eats.","sings a song to the sea.","goes home."],"label":0}
{"passage":"The Congress of the United States makes the laws of the nation. The President signs them.","question":"does the congress make the laws","label":true}
{"question_stem":"The sun rises in the","choices":{"text":["east","west","north","south"],"label":["A","B","C","D"]},"answerKey":"A"}`

// TestBatchedMatchesNaive: every choice of the hand-made items, scored in padded batches of
// several sizes, equals the one-sequence-at-a-time score; so do the judged predictions.
func TestBatchedMatchesNaive(t *testing.T) {
	m, tok := embedded(t)
	lines := strings.Split(handTask, "\n")
	var tasks []*Task
	for i, l := range lines {
		task, err := Read(strings.NewReader(l), "hand.jsonl", nil, 0)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		tasks = append(tasks, task)
	}
	maxLen := m.Config.MaxPositionEmbeddings
	for _, task := range tasks {
		it := task.Items[0]
		want := make([]float64, len(it.Choices))
		for c, ch := range it.Choices {
			r, err := Encode(tok, nil, nil, ch.Context, ch.Continuation)
			if err != nil {
				t.Fatal(err)
			}
			want[c], _ = naive(t, m, r, maxLen)
		}
		for _, batch := range []int{1, 3, 16} {
			res, items, err := Evaluate(context.Background(), m, tok, task, Options{Batch: batch})
			if err != nil {
				t.Fatal(err)
			}
			if res.N != 1 || res.Requests != len(it.Choices) || res.Task != task.Name {
				t.Errorf("%s: result %+v", task.Name, res)
			}
			for c := range want {
				if d := math.Abs(items[0].LogLiks[c] - want[c]); d > 1e-5+1e-6*math.Abs(want[c]) {
					t.Errorf("%s batch %d choice %d: batched %.6f, naive %.6f", task.Name, batch, c, items[0].LogLiks[c], want[c])
				}
			}
			if j := Judge(it, want); j.Pred != items[0].Pred || j.PredNorm != items[0].PredNorm {
				t.Errorf("%s batch %d: predictions %d/%d, naive %d/%d", task.Name, batch, items[0].Pred, items[0].PredNorm, j.Pred, j.PredNorm)
			}
			if res.Acc != b2f(items[0].Correct) || res.AccNorm != b2f(items[0].CorrectNorm) {
				t.Errorf("%s: acc %v acc_norm %v vs item %+v", task.Name, res.Acc, res.AccNorm, items[0])
			}
		}
	}
}

// TestBatchInvariance: scores of requests of many lengths do not depend on the batch size (the
// padding and the batch mates are invisible), bit for bit; and equal the naive forward; left
// truncation under a small MaxLen matches the naive forward on the truncated input.
func TestBatchInvariance(t *testing.T) {
	m, tok := embedded(t)
	text := "The President shall be Commander in Chief of the Army and Navy of the United States. " +
		"Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse."
	ids := tok.Encode(text, false)
	var reqs []Request
	for i := 0; i < 12; i++ {
		n := 3 + (i*7)%(len(ids)-8)
		reqs = append(reqs, Request{Context: ids[:n], Continuation: ids[n : n+1+i%4]})
	}
	// Requests that share their input with others: one-token choices after one context (as
	// BoolQ's " no"/" yes"), a duplicate, a request whose input is a prefix of another's, and (under
	// the 12-token window) a continuation longer than the window.
	reqs = append(reqs,
		Request{Context: ids[:9], Continuation: []int{ids[9]}},
		Request{Context: ids[:9], Continuation: []int{ids[20]}},
		Request{Context: ids[:9], Continuation: []int{5}},
		Request{Context: ids[:9], Continuation: ids[9:12]},
		reqs[3],
		Request{Context: ids[:2], Continuation: ids[2:20]},
	)
	for _, maxLen := range []int{0, 12} {
		var ref []Score
		for _, batch := range []int{1, 5, 12} {
			got, err := ScoreRequests(context.Background(), m, reqs, Options{Batch: batch, MaxLen: maxLen})
			if err != nil {
				t.Fatal(err)
			}
			if ref == nil {
				ref = got
				continue
			}
			for i := range got {
				if got[i] != ref[i] {
					t.Errorf("maxLen %d batch %d request %d: %+v, batch 1 %+v", maxLen, batch, i, got[i], ref[i])
				}
			}
		}
		ml := maxLen
		if ml == 0 {
			ml = m.Config.MaxPositionEmbeddings
		}
		cut := 0
		for i, r := range reqs {
			ll, greedy := naive(t, m, r, ml)
			if math.Abs(ll-ref[i].LogLik) > 1e-5+1e-6*math.Abs(ll) || greedy != ref[i].Greedy || ref[i].Tokens != min(len(r.Continuation), ml) {
				t.Errorf("maxLen %d request %d: %+v, naive %.6f %v", maxLen, i, ref[i], ll, greedy)
			}
			cut += ref[i].Cut
		}
		if (maxLen > 0) != (cut > 0) {
			t.Errorf("maxLen %d: %d tokens cut", maxLen, cut)
		}
	}
}

// TestGreedyContinuation: the model's own greedy continuation is flagged greedy; a continuation
// whose first token is the least likely one is not, and scores lower.
func TestGreedyContinuation(t *testing.T) {
	m, tok := embedded(t)
	ctx := tok.Encode("Call me Ishmael. Some years ago, never mind how long precisely,", false)
	gen, err := m.Generate(ctx, 4, -1)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := m.Logits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := logits[(len(ctx)-1)*m.Vocab:]
	worst := 0
	for i, v := range last {
		if v < last[worst] {
			worst = i
		}
	}
	bad := append([]int{worst}, gen[1:]...)
	s, err := ScoreRequests(context.Background(), m, []Request{{ctx, gen}, {ctx, bad}}, Options{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !s[0].Greedy || s[1].Greedy || s[0].LogLik <= s[1].LogLik || s[0].LogLik >= 0 {
		t.Errorf("greedy %+v, perturbed %+v", s[0], s[1])
	}
}

// TestCertainTask builds ARC-form items whose right answers are certain: each answer is one word
// that the tokenizer keeps as the single token "▁word" after the context, so its score is exactly
// log p(word | context); the right answer is the model's most likely such word, and the wrong ones
// are other such words of the same length (so acc_norm cannot differ). acc and acc_norm must be 1.
func TestCertainTask(t *testing.T) {
	m, tok := embedded(t)
	questions := []string{
		"What did the sailors see on the sea", "Who signs the laws of the nation",
		"What is the color of the sky", "Where did the whale swim", "What does the Congress do",
	}
	var lines []string
	var golds []string
	for _, q := range questions {
		ctx := "Question: " + q + "?\nAnswer:"
		ctxIDs := tok.Encode(ctx, false)
		logits, err := m.Logits(ctxIDs)
		if err != nil {
			t.Fatal(err)
		}
		last := logits[(len(ctxIDs)-1)*m.Vocab:]
		// Candidate words: "▁" + 3-6 ASCII letters, one token in context.
		byLen := map[int][]string{}
		best, bestLL := "", float32(math.Inf(-1))
		for id := 0; id < tok.VocabSize(); id++ {
			p := tok.Token(id)
			w, ok := strings.CutPrefix(p, "▁")
			if !ok || len(w) < 3 || len(w) > 6 || strings.IndexFunc(w, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsLower(r) }) >= 0 {
				continue
			}
			if r, err := Encode(tok, nil, nil, ctx, " "+w); err != nil || !reflect.DeepEqual(r.Continuation, []int{id}) {
				continue
			}
			byLen[len(w)] = append(byLen[len(w)], w)
			if last[id] > bestLL {
				best, bestLL = w, last[id]
			}
		}
		var wrong []string
		for _, w := range byLen[len(best)] {
			if w != best && len(wrong) < 3 {
				wrong = append(wrong, w)
			}
		}
		if len(wrong) < 3 {
			t.Fatalf("%q: too few distractors of length %d", q, len(best))
		}
		choices := append(wrong[:2:2], best, wrong[2])
		lines = append(lines, `{"question":"`+q+`","choices":{"text":["`+strings.Join(choices, `","`)+`"],"label":["A","B","C","D"]},"answerKey":"C"}`)
		golds = append(golds, best)
	}
	task, err := Read(strings.NewReader(strings.Join(lines, "\n")), "certain_arc_easy.jsonl", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, items, err := Evaluate(context.Background(), m, tok, task, Options{Batch: 7})
	if err != nil {
		t.Fatal(err)
	}
	if res.Task != "arc_easy" || res.N != len(questions) || res.Acc != 1 || res.AccNorm != 1 || res.AccStderr != 0 || res.AccNormStderr != 0 {
		t.Errorf("result %+v (answers %q), items %+v", res, golds, items)
	}
}

// TestEvaluateTruncation: under a tiny window every request of the hand-made PIQA item is cut
// from the left, and the long answer's continuation overflows the window by itself (Partial).
func TestEvaluateTruncation(t *testing.T) {
	m, tok := embedded(t)
	task, err := Read(strings.NewReader(strings.Split(handTask, "\n")[1]), "hand.jsonl", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	const maxLen = 6
	partial := 0
	for _, c := range task.Items[0].Choices {
		r, err := Encode(tok, nil, nil, c.Context, c.Continuation)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Continuation) > maxLen {
			partial++
		}
	}
	if partial != 1 {
		t.Fatalf("%d overflowing answers, the test wants 1", partial)
	}
	res, _, err := Evaluate(context.Background(), m, tok, task, Options{MaxLen: maxLen})
	if err != nil {
		t.Fatal(err)
	}
	if res.Truncated != 2 || res.Partial != 1 {
		t.Errorf("truncated %d partial %d, want 2 and 1", res.Truncated, res.Partial)
	}
}

// TestNonFiniteLogLikelihood: a model whose forward overflows makes ScoreRequests fail naming the
// request and the first non-finite sub-block, instead of scoring NaN log-likelihoods (which
// argmax would silently rank as never best).
func TestNonFiniteLogLikelihood(t *testing.T) {
	dense, tok := embedded(t)
	m := dense.Clone()
	w := make([]float32, len(m.Blocks[5].Up.W))
	for i := range w {
		w[i] = math.MaxFloat32
	}
	m.Blocks[5].Up.W = w
	ctx := tok.Encode("Call me Ishmael.", false)
	_, err := ScoreRequests(context.Background(), m, []Request{{ctx, []int{5, 6}}}, Options{Batch: 1})
	if err == nil || !strings.Contains(err.Error(), "request 0") || !strings.Contains(err.Error(), "model.layers.5.mlp") {
		t.Errorf("overflowing model: %v, want an error naming request 0 and model.layers.5.mlp", err)
	}
}
