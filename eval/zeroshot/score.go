package zeroshot

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/evopress/evopress/model"
)

// Encoder turns text into token ids without special tokens (*tokenizer.Tokenizer implements it:
// Encode(text, false) is Hugging Face's encode(text, add_special_tokens=False)).
type Encoder interface {
	Encode(text string, addSpecial bool) []int
}

// Options configures scoring.
type Options struct {
	// Batch is the number of sequences per forward pass (default 16).
	Batch int
	// MaxLen is the longest input the model sees, in tokens (default: the model's
	// max_position_embeddings). Longer requests are truncated from the left, as lm-eval does.
	MaxLen int
	// Prefix is put before every context's tokens (the BOS token under --add-bos; none by
	// default, as lm-eval's Hugging Face backend for Llama-family models).
	Prefix []int
	// Empty replaces an empty context when Prefix is empty (lm-eval's prefix_token_id: the BOS
	// token, else EOS). A request with an empty context fails when both are empty.
	Empty []int
	// Progress, when not nil, is called after each forward batch with the requests scored so far.
	Progress func(done, total int, elapsed time.Duration)
}

// Request is one tokenized (context, continuation) pair.
type Request struct {
	Context, Continuation []int
}

// Encode tokenizes a request as lm-eval's Hugging Face backend (HFLM._encode_pair) does: trailing
// whitespace of the context moves to the front of the continuation; then the context and the
// whole text context+continuation are encoded separately; the request is the context's own
// encoding followed by the whole encoding after the context encoding's length,
// whole[len(context_enc):] (where a token merges across the boundary, the model thus sees
// context_enc + whole[len(context_enc):], not whole — as lm-eval). With a
// SentencePiece (Llama) tokenizer the continuation " A" thus becomes the one token "▁A" as it is
// tokenized inside the whole text, not encode(" A"), which gains an extra "▁" for the prefix space
// the normalizer puts at the start of a text.
// prefix (BOS) precedes both encodings. An empty context is replaced by prefix alone, or by
// empty when there is no prefix, and the continuation is encoded on its own.
func Encode(enc Encoder, prefix, empty []int, ctx, cont string) (Request, error) {
	trimmed := strings.TrimRightFunc(ctx, unicode.IsSpace)
	if n := len(ctx) - len(trimmed); n > 0 {
		cont = ctx[len(trimmed):] + cont
		ctx = trimmed
	}
	if ctx == "" {
		if len(prefix) == 0 {
			prefix = empty
		}
		if len(prefix) == 0 {
			return Request{}, fmt.Errorf("empty context and no BOS token to condition on")
		}
		c := enc.Encode(cont, false)
		if len(c) == 0 {
			return Request{}, fmt.Errorf("continuation %q encodes to no tokens", cont)
		}
		return Request{Context: append([]int(nil), prefix...), Continuation: c}, nil
	}
	whole := enc.Encode(ctx+cont, false)
	c := append(append([]int(nil), prefix...), enc.Encode(ctx, false)...)
	n := len(c) - len(prefix)
	if n >= len(whole) {
		return Request{}, fmt.Errorf("continuation %q encodes to no tokens after context %q", cont, clip(ctx))
	}
	return Request{Context: c, Continuation: append([]int(nil), whole[n:]...)}, nil
}

func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return "…" + string(r[len(r)-40:])
	}
	return s
}

// Score is the outcome of one request.
type Score struct {
	LogLik float64 // Σ log p(continuation token | everything before it), natural log
	Greedy bool    // every scored continuation token was the model's argmax
	Tokens int     // continuation tokens scored (fewer than the continuation's only when it overflows the window)
	Cut    int     // tokens dropped from the left to fit MaxLen
}

// input returns the tokens the model sees for r under maxLen (lm-eval:
// (context+continuation)[-(maxLen+1):][:-1]), the targets of its last len(targets) positions, and
// how many tokens were cut from the left. A continuation longer than maxLen (which lm-eval cannot
// score) keeps only its last maxLen tokens as targets, each conditioned on the window before it.
func input(r Request, maxLen int) (inp, targets []int, cut int) {
	all := append(append(make([]int, 0, len(r.Context)+len(r.Continuation)), r.Context...), r.Continuation...)
	if len(all) > maxLen+1 {
		cut = len(all) - (maxLen + 1)
		all = all[cut:]
	}
	n := min(len(r.Continuation), len(all)-1)
	return all[:len(all)-1], all[len(all)-n:], cut
}

// hasPrefix reports whether p is a prefix of s.
func hasPrefix(s, p []int) bool {
	if len(p) > len(s) {
		return false
	}
	for i, v := range p {
		if s[i] != v {
			return false
		}
	}
	return true
}

// lessTokens orders token sequences lexicographically, a prefix before its extensions.
func lessTokens(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// ScoreRequests computes the log-likelihood of every request's continuation under m.
//
// A request whose input is a prefix of another's (the same context with a one-token continuation,
// as BoolQ's " no"/" yes", or identical requests) reads its logits from that longer sequence:
// causal attention makes them the same. The remaining sequences are sorted by length, longest
// first, and run in batches of opt.Batch sequences, each right-padded to the longest in its batch:
// the padding is invisible to the positions before it, so a request's score does not depend on its
// batch mates. Sorting keeps the padding small.
func ScoreRequests(ctx context.Context, m *model.Model, reqs []Request, opt Options) ([]Score, error) {
	batch := opt.Batch
	if batch < 1 {
		batch = 16
	}
	maxLen := opt.MaxLen
	if maxLen <= 0 {
		maxLen = m.Config.MaxPositionEmbeddings
	}
	if maxLen <= 0 {
		return nil, fmt.Errorf("no maximum length: the model's config has no max_position_embeddings and none was given")
	}
	inps := make([][]int, len(reqs))
	targets := make([][]int, len(reqs))
	scores := make([]Score, len(reqs))
	for i, r := range reqs {
		if len(r.Context) == 0 || len(r.Continuation) == 0 {
			return nil, fmt.Errorf("request %d: empty context or continuation", i)
		}
		var cut int
		inps[i], targets[i], cut = input(r, maxLen)
		scores[i] = Score{Tokens: len(targets[i]), Cut: cut}
	}

	// host[i] is the request whose sequence request i reads its logits from. In lexicographic
	// order a prefix comes right before the sequences that extend it, so each request's host is
	// found by walking forward while the next sequence extends the current one.
	lex := make([]int, len(reqs))
	for i := range lex {
		lex[i] = i
	}
	sort.SliceStable(lex, func(a, b int) bool { return lessTokens(inps[lex[a]], inps[lex[b]]) })
	host := make([]int, len(reqs))
	guests := map[int][]int{}
	for k := len(lex) - 1; k >= 0; k-- {
		i := lex[k]
		host[i] = i
		if k+1 < len(lex) && hasPrefix(inps[lex[k+1]], inps[i]) {
			host[i] = host[lex[k+1]]
		}
		guests[host[i]] = append(guests[host[i]], i)
	}
	hosts := make([]int, 0, len(guests))
	for h := range guests {
		hosts = append(hosts, h)
	}
	sort.Slice(hosts, func(a, b int) bool {
		if la, lb := len(inps[hosts[a]]), len(inps[hosts[b]]); la != lb {
			return la > lb
		}
		return hosts[a] < hosts[b]
	})

	start := time.Now()
	done := 0
	for lo := 0; lo < len(hosts); lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hs := hosts[lo:min(lo+batch, len(hosts))]
		T := len(inps[hs[0]])
		seqs := make([][]int, len(hs))
		var rows []int
		rowIndex := map[int]int{} // batch row → index into rows
		for b, h := range hs {
			seq := make([]int, T) // right padding with token 0: never seen by the real positions
			copy(seq, inps[h])
			seqs[b] = seq
			for _, i := range guests[h] {
				for t := len(inps[i]) - len(targets[i]); t < len(inps[i]); t++ {
					if _, ok := rowIndex[b*T+t]; !ok {
						rowIndex[b*T+t] = len(rows)
						rows = append(rows, b*T+t)
					}
				}
			}
		}
		a, err := m.Embedding(seqs)
		if err != nil {
			return nil, err
		}
		m.Forward(a, 0, len(m.Blocks), nil)
		logits := m.LogitsAt(a, rows)
		lse := make([]float32, len(rows))
		for k, l := range logits {
			lse[k] = model.LogSumExp(l)
		}
		for b, h := range hs {
			for _, i := range guests[h] {
				var ll float64
				greedy := true
				off := len(inps[i]) - len(targets[i])
				for j, tok := range targets[i] {
					k := rowIndex[b*T+off+j]
					l := logits[k]
					ll += float64(l[tok] - lse[k])
					for _, v := range l {
						if v > l[tok] {
							greedy = false
							break
						}
					}
				}
				if math.IsNaN(ll) || math.IsInf(ll, 0) {
					return nil, fmt.Errorf("request %d: %w", i, m.NonFiniteLoss([][]int{inps[h]}, "log-likelihood", ll))
				}
				scores[i].LogLik, scores[i].Greedy = ll, greedy
				done++
			}
		}
		if opt.Progress != nil {
			opt.Progress(done, len(reqs), time.Since(start))
		}
	}
	return scores, nil
}

// Result is a task's accuracy; its JSON form is the `evopress eval zeroshot --json` contract.
type Result struct {
	Task          string  `json:"task"`
	N             int     `json:"n"`
	Acc           float64 `json:"acc"`
	AccNorm       float64 `json:"acc_norm"`
	AccStderr     float64 `json:"acc_stderr"`
	AccNormStderr float64 `json:"acc_norm_stderr"`
	// AccBytes normalises by the answer's UTF-8 length instead of its length in characters
	// (lm-eval's acc_bytes); it equals acc_norm on ASCII text.
	AccBytes       float64 `json:"acc_bytes"`
	AccBytesStderr float64 `json:"acc_bytes_stderr"`
	File           string  `json:"file"`
	Requests       int     `json:"requests"`  // (context, continuation) pairs scored
	Truncated      int     `json:"truncated"` // requests whose input was cut from the left to fit the window
	// Partial counts requests whose continuation alone overflowed the window: only its last
	// max-len tokens were scored (lm-eval cannot score these at all).
	Partial int     `json:"partial"`
	Seconds float64 `json:"seconds"` // tokenization and forward time
}

// ItemResult is the verdict on one item.
type ItemResult struct {
	LogLiks              []float64 // per choice
	Pred, PredNorm       int       // argmax of the raw and of the length-normalised log-likelihoods
	PredBytes            int       // argmax normalised by UTF-8 length
	Correct, CorrectNorm bool      // Pred == Gold, PredNorm == Gold
	CorrectBytes         bool      // PredBytes == Gold
}

// argmax returns the first index of the largest value (numpy's argmax for values without NaN).
func argmax(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// Judge turns the log-likelihoods of an item's choices (one per choice, in order) into
// predictions, as lm-eval's multiple-choice process_results: pred = argmax(ll), pred_norm =
// argmax(ll / len(choice)) with len counting characters (Unicode code points) of the answer
// without the delimiter, and pred_bytes = argmax(ll / UTF-8 bytes).
func Judge(it Item, lls []float64) ItemResult {
	norm := make([]float64, len(lls))
	byt := make([]float64, len(lls))
	for i, ll := range lls {
		norm[i] = ll / float64(len([]rune(it.Choices[i].Norm)))
		byt[i] = ll / float64(len(it.Choices[i].Norm))
	}
	r := ItemResult{LogLiks: lls, Pred: argmax(lls), PredNorm: argmax(norm), PredBytes: argmax(byt)}
	r.Correct, r.CorrectNorm, r.CorrectBytes = r.Pred == it.Gold, r.PredNorm == it.Gold, r.PredBytes == it.Gold
	return r
}

// MeanStderr returns the mean of x and lm-eval's standard error of it: the sample standard
// deviation (n−1 denominator) over √n; 0 when n < 2.
func MeanStderr(x []float64) (mean, stderr float64) {
	n := float64(len(x))
	if len(x) == 0 {
		return 0, 0
	}
	for _, v := range x {
		mean += v
	}
	mean /= n
	if len(x) < 2 {
		return mean, 0
	}
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss/(n-1)) / math.Sqrt(n)
}

// Evaluate scores every choice of the task's items under m and returns the accuracies and the
// per-item verdicts. enc tokenizes; see Encode and ScoreRequests for how.
func Evaluate(ctx context.Context, m *model.Model, enc Encoder, t *Task, opt Options) (Result, []ItemResult, error) {
	start := time.Now()
	var reqs []Request
	for _, it := range t.Items {
		for ci, c := range it.Choices {
			r, err := Encode(enc, opt.Prefix, opt.Empty, c.Context, c.Continuation)
			if err != nil {
				return Result{}, nil, fmt.Errorf("%s:%d: choice %d: %w", t.Path, it.Line, ci, err)
			}
			reqs = append(reqs, r)
		}
	}
	scores, err := ScoreRequests(ctx, m, reqs, opt)
	if err != nil {
		return Result{}, nil, fmt.Errorf("%s: %w", t.Path, err)
	}
	res := Result{Task: t.Name, N: len(t.Items), File: t.Path, Requests: len(reqs)}
	items := make([]ItemResult, len(t.Items))
	acc := make([]float64, len(t.Items))
	accN := make([]float64, len(t.Items))
	accB := make([]float64, len(t.Items))
	k := 0
	for i, it := range t.Items {
		lls := make([]float64, len(it.Choices))
		for c := range lls {
			lls[c] = scores[k].LogLik
			if scores[k].Cut > 0 {
				res.Truncated++
			}
			if scores[k].Tokens < len(reqs[k].Continuation) {
				res.Partial++
			}
			k++
		}
		items[i] = Judge(it, lls)
		acc[i], accN[i], accB[i] = b2f(items[i].Correct), b2f(items[i].CorrectNorm), b2f(items[i].CorrectBytes)
	}
	res.Acc, res.AccStderr = MeanStderr(acc)
	res.AccNorm, res.AccNormStderr = MeanStderr(accN)
	res.AccBytes, res.AccBytesStderr = MeanStderr(accB)
	res.Seconds = time.Since(start).Seconds()
	return res, items, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
