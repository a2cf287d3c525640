package llamacpp

import "math"

// The per-position arithmetic of llama-perplexity (tools/perplexity/perplexity.cpp), in the same
// float32 and float64 steps, so that evopress's numbers and files agree with llama.cpp's to
// rounding. Explicit float32 conversions keep the compiler from fusing multiply–adds.

// expf is C's expf: float32(exp(x)), correctly rounded for all but rare inputs.
func expf(x float32) float32 { return float32(math.Exp(float64(x))) }

// maxLogit returns the largest logit and the first position holding it.
func maxLogit(logits []float32) (float32, int) {
	mx, imax := logits[0], 0
	for i := 1; i < len(logits); i++ {
		if logits[i] > mx {
			mx, imax = logits[i], i
		}
	}
	return mx, imax
}

// sumExp is Σ expf(logit − mx), accumulated in float64.
func sumExp(logits []float32, mx float32) float64 {
	var s float64
	for _, l := range logits {
		s += float64(expf(l - mx))
	}
	return s
}

// NLL is the negative log-likelihood of token tok under logits as llama-perplexity's plain
// perplexity computes it (log_softmax: float32 logits, float64 log-sum-exp).
func NLL(logits []float32, tok int) float64 {
	mx, _ := maxLogit(logits)
	return -(float64(logits[tok]-mx) - math.Log(sumExp(logits, mx)))
}

// nearestInt is llama.cpp's nearest_int: round half to even.
func nearestInt(x float32) int { return int(math.RoundToEven(float64(x))) }

// Compress writes the compressed log-probabilities of logits into row (RowWidth(len(logits))
// values) as llama-perplexity --kl-divergence-base does, and returns the NLL of token tok in
// float32 as it accumulates it then. Log-probabilities more than 16 below the largest are stored
// as the row's minimum; the others as 16-bit codes over [min, max].
func Compress(logits []float32, row []uint16, tok int) float32 {
	mx, mn := logits[0], logits[0]
	for _, l := range logits[1:] {
		mx = max(mx, l)
		mn = min(mn, l)
	}
	mn = max(mn, mx-16)
	lse := float32(math.Log(sumExp(logits, mx)))
	minLogProb := float32(mn-mx) - lse
	scale := float32(mx-mn) / 65535
	putRowHeader(row, scale, minLogProb)
	codes := row[4 : 4+len(logits)]
	if scale != 0 {
		inv := 1 / scale
		for i, l := range logits {
			if l > mn {
				codes[i] = uint16(nearestInt(float32(inv * float32(l-mn))))
			} else {
				codes[i] = 0
			}
		}
	} else {
		clear(codes)
	}
	clear(row[4+len(logits):])
	return float32(mx+lse) - logits[tok]
}

// LogProb returns the log-probability of token i stored in a compressed row.
func LogProb(row []uint16, i int) float32 {
	scale, mn := RowHeader(row)
	return float32(scale*float32(row[4+i])) + mn
}

// Position is what llama-perplexity --kl-divergence measures at one scored position, the model
// Q's logits against the base model's compressed log-probabilities P.
type Position struct {
	// NLL and NLLBase are −log Q(tok) and −log P(tok).
	NLL, NLLBase float32
	// KLD is KL(P ‖ Q) = Σ_i P(i)·(log P(i) − log Q(i)), over the tokens with log P(i) > −16.
	KLD float64
	// PDiff is Q(tok) − P(tok).
	PDiff float32
	// SameTop is whether Q's and P's most likely tokens are the same (the first of ties).
	SameTop bool
}

// Compare measures logits (the model Q) against the compressed base row at a position whose
// next token is tok, as llama-perplexity's kl_divergence does.
func Compare(logits []float32, row []uint16, tok int) Position {
	mx, imax := maxLogit(logits)
	lse := float32(math.Log(sumExp(logits, mx)))
	scale, minLogProb := RowHeader(row)
	codes := row[4 : 4+len(logits)]
	var p Position
	p.NLL = float32(mx+lse) - logits[tok]
	p.NLLBase = -(float32(scale*float32(codes[tok])) + minLogProb)
	norm := mx + lse // log Q(i) = logits[i] − norm
	var sum float64
	imaxBase := -1
	var maxBase float32
	for i, q := range codes {
		lp := float32(scale*float32(q)) + minLogProb
		if i == 0 || lp > maxBase {
			maxBase, imaxBase = lp, i
		}
		if lp > -16 {
			sum += float64(expf(lp) * float32(float32(lp-logits[i])+norm))
		}
	}
	p.KLD = sum
	p.SameTop = imax == imaxBase
	p.PDiff = expf(-p.NLL) - expf(-p.NLLBase)
	return p
}
