package llamacpp

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
)

// Num is a statistic: a float64 whose JSON form is null when it is not a finite number
// (llama.cpp prints such values as nan or inf).
type Num float64

// MarshalJSON writes the number, or null when it is NaN or infinite.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number, null as NaN.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}

// PPL accumulates llama-perplexity's perplexity: the NLL of every scored position.
type PPL struct {
	sum, sum2 float64
	count     int
}

// Add counts one scored position of negative log-likelihood nll.
func (p *PPL) Add(nll float64) {
	p.sum += nll
	p.sum2 += nll * nll
	p.count++
}

// Count is the number of positions added.
func (p *PPL) Count() int { return p.count }

// Estimate returns the mean NLL, the perplexity exp(mean NLL) and llama-perplexity's
// uncertainty of it, PPL·sqrt(var(NLL)/(count−1)) (its "Final estimate: PPL = … +/- …"); the
// uncertainty is NaN when the variance is not positive (llama.cpp then prints an error instead).
func (p *PPL) Estimate() (nll, ppl, err float64) {
	if p.count == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	nll = p.sum / float64(p.count)
	ppl = math.Exp(nll)
	v := p.sum2/float64(p.count) - nll*nll
	if v <= 0 || p.count < 2 {
		return nll, ppl, math.NaN()
	}
	return nll, ppl, math.Sqrt(v/float64(p.count-1)) * ppl
}

// KLD accumulates llama-perplexity --kl-divergence's statistics over scored positions.
type KLD struct {
	sumNLL, sumNLL2, sumNLLBase, sumNLLBase2, sumNLLNLLBase float64
	sumKLD, sumKLD2                                         float64
	sumPDiff, sumPDiff2, sumPDiff4                          float64
	maxPDiff                                                float32
	sameTop, count                                          int
	klds, pdiffs                                            []float32
}

// Add counts one scored position.
func (k *KLD) Add(p Position) {
	k.sumNLL += float64(p.NLL)
	k.sumNLL2 += float64(p.NLL * p.NLL)
	k.sumNLLBase += float64(p.NLLBase)
	k.sumNLLBase2 += float64(p.NLLBase * p.NLLBase)
	k.sumNLLNLLBase += float64(p.NLL * p.NLLBase)
	k.sumKLD += p.KLD
	k.sumKLD2 += p.KLD * p.KLD
	if p.SameTop {
		k.sameTop++
	}
	k.count++
	k.sumPDiff += float64(p.PDiff)
	d2 := float64(p.PDiff * p.PDiff)
	k.sumPDiff2 += d2
	k.sumPDiff4 += d2 * d2
	k.maxPDiff = max(k.maxPDiff, float32(math.Abs(float64(p.PDiff))))
	k.klds = append(k.klds, float32(p.KLD))
	k.pdiffs = append(k.pdiffs, p.PDiff)
}

// Count is the number of positions added.
func (k *KLD) Count() int { return k.count }

// KLDStats are the statistics llama-perplexity --kl-divergence prints at the end, in its order;
// Q is the model evaluated, base the model whose log-probabilities the base file holds. Every
// "Error" is llama.cpp's ± (one standard error). The Δp statistics and the top-token agreement
// are fractions (llama.cpp prints them in percent). Its JSON form is part of `evopress ppl --json`.
type KLDStats struct {
	// Count is the number of scored positions.
	Count int `json:"count"`

	PPLQ            Num `json:"ppl_q"`
	PPLQError       Num `json:"ppl_q_error"`
	PPLBase         Num `json:"ppl_base"`
	PPLBaseError    Num `json:"ppl_base_error"`
	CorLnPPL        Num `json:"cor_ln_ppl"` // correlation of ln PPL(Q) and ln PPL(base)
	LnPPLRatio      Num `json:"ln_ppl_ratio"`
	LnPPLRatioError Num `json:"ln_ppl_ratio_error"`
	PPLRatio        Num `json:"ppl_ratio"`
	PPLRatioError   Num `json:"ppl_ratio_error"`
	PPLDiff         Num `json:"ppl_diff"`
	PPLDiffError    Num `json:"ppl_diff_error"`

	KLDMean      Num `json:"kld_mean"`
	KLDMeanError Num `json:"kld_mean_error"`
	KLDMax       Num `json:"kld_max"`
	KLDP99_9     Num `json:"kld_p99_9"`
	KLDP99       Num `json:"kld_p99"`
	KLDP95       Num `json:"kld_p95"`
	KLDP90       Num `json:"kld_p90"`
	KLDMedian    Num `json:"kld_median"`
	KLDP10       Num `json:"kld_p10"`
	KLDP5        Num `json:"kld_p5"`
	KLDP1        Num `json:"kld_p1"`
	KLDP0_1      Num `json:"kld_p0_1"`
	KLDMin       Num `json:"kld_min"`

	DpMean      Num `json:"dp_mean"`
	DpMeanError Num `json:"dp_mean_error"`
	DpMax       Num `json:"dp_max"`
	DpP99_9     Num `json:"dp_p99_9"`
	DpP99       Num `json:"dp_p99"`
	DpP95       Num `json:"dp_p95"`
	DpP90       Num `json:"dp_p90"`
	DpP75       Num `json:"dp_p75"`
	DpMedian    Num `json:"dp_median"`
	DpP25       Num `json:"dp_p25"`
	DpP10       Num `json:"dp_p10"`
	DpP5        Num `json:"dp_p5"`
	DpP1        Num `json:"dp_p1"`
	DpP0_1      Num `json:"dp_p0_1"`
	DpMin       Num `json:"dp_min"`
	DpRMS       Num `json:"dp_rms"`
	DpRMSError  Num `json:"dp_rms_error"`

	SameTopP      Num `json:"same_top_p"`
	SameTopPError Num `json:"same_top_p_error"`
}

// meanAndUncertainty is llama.cpp's mean_and_uncertainty: the mean and its standard error, 0
// when the variance is not positive or there are 10 values or fewer.
func meanAndUncertainty(sum, sum2 float64, count int) (float64, float64) {
	if count < 1 {
		return 0, 0
	}
	f := sum / float64(count)
	df := sum2/float64(count) - f*f
	if df > 0 && count > 10 {
		return f, math.Sqrt(df / float64(count-1))
	}
	return f, 0
}

// covariance is llama.cpp's covariance of the means (0 below 10 values).
func covariance(suma, sumb, sumab float64, count int) float64 {
	if count < 10 {
		return 0
	}
	n := float64(count)
	return (sumab/n - (suma/n)*(sumb/n)) / (n - 1)
}

// percentile is llama.cpp's, in float32: linear interpolation between the sorted values.
func percentile(sorted []float32, fraction float32) float32 {
	if fraction <= 0 {
		return sorted[0]
	}
	if fraction >= 1 {
		return sorted[len(sorted)-1]
	}
	p := float32(fraction * float32(len(sorted)-1))
	ip := int(p)
	p -= float32(ip)
	return float32((1-p)*sorted[ip]) + float32(p*sorted[min(ip+1, len(sorted)-1)])
}

func median(sorted []float32) float32 {
	n := len(sorted)
	if n%2 == 0 {
		return 0.5 * (sorted[n/2] + sorted[n/2-1])
	}
	return sorted[n/2]
}

// Stats computes the statistics over the positions added (nil when none were).
func (k *KLD) Stats() *KLDStats {
	if k.count == 0 {
		return nil
	}
	s := &KLDStats{Count: k.count}
	lnQ, lnQErr := meanAndUncertainty(k.sumNLL, k.sumNLL2, k.count)
	s.PPLQ = Num(math.Exp(lnQ))
	s.PPLQError = s.PPLQ * Num(lnQErr)
	lnB, lnBErr := meanAndUncertainty(k.sumNLLBase, k.sumNLLBase2, k.count)
	s.PPLBase = Num(math.Exp(lnB))
	s.PPLBaseError = s.PPLBase * Num(lnBErr)
	cov := covariance(k.sumNLL, k.sumNLLBase, k.sumNLLNLLBase, k.count)
	s.CorLnPPL = Num(cov / (lnQErr * lnBErr))
	s.LnPPLRatio = Num(lnQ - lnB)
	s.LnPPLRatioError = Num(math.Sqrt(lnQErr*lnQErr + lnBErr*lnBErr - 2*cov))
	s.PPLRatio = Num(math.Exp(float64(s.LnPPLRatio)))
	s.PPLRatioError = s.PPLRatio * s.LnPPLRatioError
	pplCov := float64(s.PPLQ) * float64(s.PPLBase) * cov
	s.PPLDiff = s.PPLQ - s.PPLBase
	s.PPLDiffError = Num(math.Sqrt(float64(s.PPLQError*s.PPLQError+s.PPLBaseError*s.PPLBaseError) - 2*pplCov))

	m, e := meanAndUncertainty(k.sumKLD, k.sumKLD2, k.count)
	s.KLDMean, s.KLDMeanError = Num(m), Num(e)
	klds := slices.Clone(k.klds)
	slices.Sort(klds)
	pc := func(v []float32, f float32) Num { return Num(percentile(v, f)) }
	s.KLDMax, s.KLDMin = Num(klds[len(klds)-1]), Num(klds[0])
	s.KLDP99_9, s.KLDP99, s.KLDP95, s.KLDP90 = pc(klds, 0.999), pc(klds, 0.990), pc(klds, 0.950), pc(klds, 0.900)
	s.KLDMedian = Num(median(klds))
	s.KLDP10, s.KLDP5, s.KLDP1, s.KLDP0_1 = pc(klds, 0.100), pc(klds, 0.050), pc(klds, 0.010), pc(klds, 0.001)

	m, e = meanAndUncertainty(k.sumPDiff, k.sumPDiff2, k.count)
	s.DpMean, s.DpMeanError = Num(m), Num(e)
	pd := slices.Clone(k.pdiffs)
	slices.Sort(pd)
	s.DpMax, s.DpMin = Num(pd[len(pd)-1]), Num(pd[0])
	s.DpP99_9, s.DpP99, s.DpP95, s.DpP90, s.DpP75 = pc(pd, 0.999), pc(pd, 0.990), pc(pd, 0.950), pc(pd, 0.900), pc(pd, 0.750)
	s.DpMedian = Num(median(pd))
	s.DpP25, s.DpP10, s.DpP5, s.DpP1, s.DpP0_1 = pc(pd, 0.250), pc(pd, 0.100), pc(pd, 0.050), pc(pd, 0.010), pc(pd, 0.001)
	mse, mseErr := meanAndUncertainty(k.sumPDiff2, k.sumPDiff4, k.count)
	s.DpRMS = Num(math.Sqrt(mse))
	s.DpRMSError = Num(0.5 / math.Sqrt(mse) * mseErr)

	top := float64(k.sameTop) / float64(k.count)
	s.SameTopP = Num(top)
	s.SameTopPError = Num(math.Sqrt(top * (1 - top) / float64(k.count-1)))
	return s
}
