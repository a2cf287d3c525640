package llamacpp

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// f formats v as C's printf("%<width>.<prec>f") does, nan and inf included.
func f(width, prec int, v Num) string {
	x := float64(v)
	switch {
	case math.IsNaN(x):
		return fmt.Sprintf("%*s", width, "nan")
	case math.IsInf(x, 1):
		return fmt.Sprintf("%*s", width, "inf")
	case math.IsInf(x, -1):
		return fmt.Sprintf("%*s", width, "-inf")
	}
	return fmt.Sprintf("%*.*f", width, prec, x)
}

// WriteEstimate writes llama-perplexity's final perplexity line, "Final estimate: PPL = … +/- …".
func WriteEstimate(w io.Writer, r *Result) error {
	_, err := fmt.Fprintf(w, "Final estimate: PPL = %s +/- %s\n", f(0, 4, Num(r.PPL)), f(0, 5, Num(r.PPLError)))
	return err
}

var estimateRE = regexp.MustCompile(`Final estimate: PPL = (\S+) \+/- (\S+)`)

// ParseEstimate finds llama-perplexity's "Final estimate: PPL = … +/- …" line in its output and
// returns the perplexity and its ±.
func ParseEstimate(text string) (ppl, err float64, e error) {
	m := estimateRE.FindStringSubmatch(text)
	if m == nil {
		return 0, 0, fmt.Errorf("llamacpp: no \"Final estimate: PPL = … +/- …\" line")
	}
	if ppl, e = parseC(m[1]); e == nil {
		err, e = parseC(m[2])
	}
	return ppl, err, e
}

// line is one line of llama-perplexity --kl-divergence's statistics: label ": " value, then
// optionally " ± " error, then suffix; pct values are printed in percent.
type line struct {
	label        string // as printed, padding included; "" for a section heading
	v, e         *Num
	w, p, ew, ep int
	pct          bool
	suffix       string
}

// lines lists the statistics as llama-perplexity prints them (tools/perplexity/perplexity.cpp,
// the end of kl_divergence), with pointers into s.
func (s *KLDStats) lines() []line {
	ppl := func(label string, v, e *Num) line { return line{label: label, v: v, e: e, w: 10, p: 6, ew: 10, ep: 6} }
	kld := func(label string, v *Num) line { return line{label: label + " KLD", v: v, w: 10, p: 6} }
	dp := func(label string, v *Num) line {
		return line{label: label + " Δp", v: v, w: 6, p: 3, pct: true, suffix: "%"}
	}
	pm := func(label string, v, e *Num) line {
		return line{label: label, v: v, e: e, w: 6, p: 3, ew: 5, ep: 3, pct: true, suffix: " %"}
	}
	return []line{
		{label: "====== Perplexity statistics ======"},
		ppl("Mean PPL(Q)                   ", &s.PPLQ, &s.PPLQError),
		ppl("Mean PPL(base)                ", &s.PPLBase, &s.PPLBaseError),
		{label: "Cor(ln(PPL(Q)), ln(PPL(base)))", v: &s.CorLnPPL, w: 6, p: 2, pct: true, suffix: "%"},
		ppl("Mean ln(PPL(Q)/PPL(base))     ", &s.LnPPLRatio, &s.LnPPLRatioError),
		ppl("Mean PPL(Q)/PPL(base)         ", &s.PPLRatio, &s.PPLRatioError),
		ppl("Mean PPL(Q)-PPL(base)         ", &s.PPLDiff, &s.PPLDiffError),
		{},
		{label: "====== KL divergence statistics ======"},
		ppl("Mean    KLD", &s.KLDMean, &s.KLDMeanError),
		kld("Maximum", &s.KLDMax), kld("99.9%  ", &s.KLDP99_9), kld("99.0%  ", &s.KLDP99),
		kld("95.0%  ", &s.KLDP95), kld("90.0%  ", &s.KLDP90), kld("Median ", &s.KLDMedian),
		kld("10.0%  ", &s.KLDP10), kld(" 5.0%  ", &s.KLDP5), kld(" 1.0%  ", &s.KLDP1),
		kld(" 0.1%  ", &s.KLDP0_1), kld("Minimum", &s.KLDMin),
		{},
		{label: "====== Token probability statistics ======"},
		pm("Mean    Δp", &s.DpMean, &s.DpMeanError),
		dp("Maximum", &s.DpMax), dp("99.9%  ", &s.DpP99_9), dp("99.0%  ", &s.DpP99), dp("95.0%  ", &s.DpP95),
		dp("90.0%  ", &s.DpP90), dp("75.0%  ", &s.DpP75), dp("Median ", &s.DpMedian), dp("25.0%  ", &s.DpP25),
		dp("10.0%  ", &s.DpP10), dp(" 5.0%  ", &s.DpP5), dp(" 1.0%  ", &s.DpP1), dp(" 0.1%  ", &s.DpP0_1),
		dp("Minimum", &s.DpMin),
		pm("RMS Δp    ", &s.DpRMS, &s.DpRMSError),
		pm("Same top p", &s.SameTopP, &s.SameTopPError),
	}
}

// WriteText writes the statistics as llama-perplexity --kl-divergence prints them at the end: the
// same sections, names, order and number formats (Δp and the top-token agreement in percent).
func (s *KLDStats) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, l := range s.lines() {
		if l.v == nil {
			b.WriteString(l.label + "\n")
			continue
		}
		scale := Num(1)
		if l.pct {
			scale = 100
		}
		b.WriteString(l.label + ": " + f(l.w, l.p, scale**l.v))
		if l.e != nil {
			b.WriteString(" ± " + f(l.ew, l.ep, scale**l.e))
		}
		b.WriteString(l.suffix + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// parseC parses a number as C's printf writes it (nan, -nan, inf included).
func parseC(s string) (float64, error) {
	switch s {
	case "nan", "-nan":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("llamacpp: %q is not a number", s)
	}
	return v, nil
}

// ParseKLDStats reads the statistics llama-perplexity --kl-divergence prints at the end (or
// WriteText writes) out of its output, other lines ignored; percentages become fractions. Count is
// left 0: llama.cpp does not print it. It is an error for a statistic to be missing.
func ParseKLDStats(text string) (*KLDStats, error) {
	s := &KLDStats{}
	want := map[string]line{}
	for _, l := range s.lines() {
		if l.v != nil {
			want[strings.TrimSpace(l.label)] = l
		}
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		label, rest, ok := strings.Cut(sc.Text(), ": ")
		l, known := want[strings.TrimSpace(label)]
		if !ok || !known {
			continue
		}
		rest = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "%"))
		vs, es, hasErr := strings.Cut(rest, "±")
		if hasErr != (l.e != nil) {
			return nil, fmt.Errorf("llamacpp: %q: unexpected layout", sc.Text())
		}
		scale := 1.0
		if l.pct {
			scale = 100
		}
		v, err := parseC(strings.TrimSpace(vs))
		if err != nil {
			return nil, err
		}
		*l.v = Num(v / scale)
		if hasErr {
			e, err := parseC(strings.TrimSpace(es))
			if err != nil {
				return nil, err
			}
			*l.e = Num(e / scale)
		}
		seen[strings.TrimSpace(label)] = true
	}
	for _, l := range s.lines() {
		if l.v != nil && !seen[strings.TrimSpace(l.label)] {
			return nil, fmt.Errorf("llamacpp: no %q line in llama-perplexity's statistics", strings.TrimSpace(l.label))
		}
	}
	return s, nil
}
