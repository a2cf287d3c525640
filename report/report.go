// Package report writes the report of a search run, or of a whole comparison: a Markdown page
// (report.md), the same page as one self-contained HTML file (report.html, images embedded as
// data: URIs) and the PNG plots, made with gonum.org/v1/plot.
//
// The plots: the best fitness against the generation and against the input tokens scored; the
// per-layer profile (drop: which attention and MLP sub-blocks are dropped, block by block;
// sparse and quant: a heat map over blocks × the seven projections of the actual sparsity or
// bits per weight, with a colour bar); and, given method results, the held-out perplexity of every
// method at every budget. The text gives the run's full configuration, seed, model fingerprint
// and data provenance, and the exact command when the profile records it (its search.command
// field, a string or a list of arguments), otherwise an equivalent command rebuilt from the
// profile.
//
// WriteRun writes the report of one run folder (what `evopress report` and a finished search
// do); Write takes the runs and results in memory (what the demo does).
package report

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/internal/atomicfile"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
)

// The report's file names inside the output folder.
const (
	MarkdownFile = "report.md"
	HTMLFile     = "report.html"
)

// MethodResult is one row of a comparison: a method's profile evaluated at a budget.
type MethodResult struct {
	// Method names the method ("EvoPress", "uniform", "ShortGPT", "dense").
	Method string
	// Mode is "dense", "drop", "sparse" or "quant" (rows are grouped by it).
	Mode string
	// Budget labels the budget ("25%", "50%", "3 bits"); Target orders budgets within a mode.
	Budget string
	Target float64
	// PPL is the held-out perplexity and KL the KL divergence to the dense model (nats/token);
	// NaN when not measured.
	PPL, KL float64
	// Seconds is the time the method took (search or compression); 0 when unknown.
	Seconds float64
	// Note is shown in the table (e.g. the evaluation subsample).
	Note string
	// BitsPerWeight and FileBytes (GGUF files) are the linear layers' bits per weight and the
	// file's size; 0 when not a file. The table shows them when any result has a file size.
	BitsPerWeight float64
	FileBytes     int64
}

// Section is a part of a report after the comparison: a heading, paragraphs and, when not
// empty, a code block (e.g. commands to run).
type Section struct {
	Title      string
	Paragraphs []string
	Code       string
}

// Input is everything a report shows.
type Input struct {
	// Title heads the page (default "EvoPress report").
	Title string
	// Notes are paragraphs under the title (e.g. the evaluation protocol).
	Notes []string
	// Results is the comparison table; Runs are the search runs, each with its own section.
	Results []MethodResult
	Runs    []*Run
	// Sections follow the comparison, before the runs.
	Sections []Section
	// Generated is shown as the report's date when not zero.
	Generated time.Time
	// Force replaces an earlier report in the folder (only files this package wrote).
	Force bool
}

// Files lists what Write wrote, as paths inside its folder.
type Files struct {
	Markdown, HTML string
	Images         []string
}

// WriteRun writes the report of the run folder runDir (profile: see LoadRun) into out (runDir
// when empty). It is what a search calls when it finishes. An earlier report in the run folder
// is replaced; one in another folder out only with force; files this package did not write are
// never replaced (*OutputError).
func WriteRun(runDir, profilePath, out string, force bool) (*Files, error) {
	if out == "" || filepath.Clean(out) == filepath.Clean(runDir) {
		out, force = runDir, true
	}
	if err := CheckFiles(out, []string{MarkdownFile, HTMLFile}, force); err != nil {
		return nil, err // before the run is read: the common refusal comes first
	}
	r, err := LoadRun(runDir, profilePath)
	if err != nil {
		return nil, err
	}
	title := fmt.Sprintf("EvoPress %s search", r.Profile.Mode)
	if r.Profile.Method != "" && r.Profile.Method != "evopress" {
		title = fmt.Sprintf("%s %s profile", r.Profile.Method, r.Profile.Mode)
	}
	return Write(out, Input{Title: title, Runs: []*Run{r}, Generated: time.Now().UTC(), Force: force})
}

// Write writes report.md, report.html and the PNG images into dir (created if needed). Before
// it writes any, it checks them all (CheckFiles with in.Force): an existing file is replaced
// only when this package wrote it and in.Force is set.
func Write(dir string, in Input) (*Files, error) {
	if len(in.Runs) == 0 && len(in.Results) == 0 {
		return nil, errors.New("report: nothing to report (no runs and no results)")
	}
	for i, r := range in.Runs {
		if r == nil || (r.Profile == nil && len(r.History) == 0) {
			return nil, fmt.Errorf("report: run %d has neither a profile nor a history", i+1)
		}
		if r.Profile != nil {
			if err := r.Profile.Validate(); err != nil {
				return nil, fmt.Errorf("report: run %d: %w", i+1, err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	title := in.Title
	if title == "" {
		title = "EvoPress report"
	}
	var d document
	d.h(1, "%s", title)
	if !in.Generated.IsZero() {
		d.p("Generated %s by evopress.", in.Generated.UTC().Format("2006-01-02 15:04 MST"))
	}
	for _, n := range in.Notes {
		d.p("%s", n)
	}
	files := &Files{Markdown: filepath.Join(dir, MarkdownFile), HTML: filepath.Join(dir, HTMLFile)}
	images := map[string][]byte{}
	addImage := func(name, alt string, data []byte) {
		data = markPNG(data)
		images[name] = data
		files.Images = append(files.Images, filepath.Join(dir, name))
		d.add(image{file: name, alt: alt, data: data})
	}

	if len(in.Results) > 0 {
		d.h(2, "Comparison")
		writeResults(&d, in.Results)
		png, err := methodsPNG(in.Results)
		if err != nil {
			return nil, fmt.Errorf("report: perplexity plot: %w", err)
		}
		if png != nil {
			addImage(MethodsImage, "held-out perplexity of every method at every budget", png)
		}
	}
	for _, sec := range in.Sections {
		d.h(2, "%s", sec.Title)
		for _, p := range sec.Paragraphs {
			d.p("%s", p)
		}
		if sec.Code != "" {
			d.add(codeBlock{sec.Code})
		}
	}
	used := map[string]int{"methods": 1}
	for _, r := range in.Runs {
		slug := slugOf(r)
		used[slug]++
		if used[slug] > 1 {
			slug += "-" + strconv.Itoa(used[slug])
		}
		if err := writeRun(&d, r, slug, addImage); err != nil {
			return nil, err
		}
	}

	names := []string{MarkdownFile, HTMLFile}
	for name := range images {
		names = append(names, name)
	}
	sort.Strings(names[2:])
	if err := CheckFiles(dir, names, in.Force); err != nil {
		return nil, err
	}
	for _, name := range names[2:] {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), images[name], 0o644); err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
	}
	if err := atomicfile.WriteFile(files.Markdown, []byte(d.markdown()+"\n"+markdownMarker+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if err := atomicfile.WriteFile(files.HTML, []byte(d.html(title)), 0o644); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return files, nil
}

// slugOf is a run's file-name prefix: its name (or mode) in lower case, letters, digits and '-'.
func slugOf(r *Run) string {
	name := runName(r)
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		s = "run"
	}
	return s
}

func runName(r *Run) string {
	switch {
	case r.Name != "":
		return r.Name
	case r.Profile != nil:
		return r.Profile.Mode
	}
	return "run"
}

// modeOrder orders the comparison's groups.
func modeOrder(m string) int {
	switch strings.ToLower(m) {
	case "dense", "":
		return 0
	case profile.ModeDrop:
		return 1
	case profile.ModeSparse:
		return 2
	case profile.ModeQuant:
		return 3
	}
	return 4
}

func isDense(r MethodResult) bool {
	return strings.EqualFold(r.Mode, "dense") || (r.Mode == "" && strings.EqualFold(r.Method, "dense"))
}

// sortedResults orders results by mode, then target; ties keep the given order.
func sortedResults(rs []MethodResult) []MethodResult {
	out := append([]MethodResult(nil), rs...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if oa, ob := modeOrder(a.Mode), modeOrder(b.Mode); oa != ob {
			return oa < ob
		}
		if a.Mode != b.Mode {
			return a.Mode < b.Mode
		}
		return a.Target < b.Target
	})
	return out
}

func resultLabel(r MethodResult) string {
	if isDense(r) {
		if r.Method == "" || strings.EqualFold(r.Method, "dense") {
			return "dense model"
		}
		return "dense · " + r.Method
	}
	group := strings.TrimSpace(r.Mode + " " + r.Budget)
	return group + " · " + r.Method
}

func formatFloat(v float64, prec int) string {
	if math.IsNaN(v) {
		return "—"
	}
	if math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func formatSeconds(s float64) string {
	if !(s > 0) || math.IsInf(s, 0) {
		return "—"
	}
	return formatDuration(time.Duration(s * float64(time.Second)))
}

func formatDuration(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func writeResults(d *document, rs []MethodResult) {
	files := false
	for _, r := range rs {
		files = files || r.FileBytes > 0
	}
	t := table{head: []string{"mode", "budget", "method", "perplexity", "KL to dense", "time", "note"},
		right: []bool{false, false, false, true, true, true, false}}
	if files {
		t.head = slices.Insert(t.head, 3, "bits/weight", "file bytes")
		t.right = slices.Insert(t.right, 3, true, true)
	}
	for _, r := range sortedResults(rs) {
		mode := r.Mode
		if mode == "" && isDense(r) {
			mode = "dense"
		}
		row := []string{mode, r.Budget, r.Method, formatPPL(r.PPL), formatFloat(r.KL, 4), formatSeconds(r.Seconds), r.Note}
		if files {
			bpw, size := "—", "—"
			if r.FileBytes > 0 {
				bpw, size = formatFloat(r.BitsPerWeight, 3), strconv.FormatInt(r.FileBytes, 10)
			}
			row = slices.Insert(row, 3, bpw, size)
		}
		t.rows = append(t.rows, row)
	}
	d.add(t)
	d.p("Perplexity is on held-out text (lower is better); KL is the mean KL divergence from the dense model's next-token distribution, in nats per token; time is the method's own time (search or compression).")
	if files {
		d.p("For GGUF files, bits/weight is the linear layers' (bytes·8/weights, block scales included) and file bytes the whole file's size.")
	}
}

// budgetText describes a profile's target.
func budgetText(p *profile.Profile) string {
	if p.Target == 0 {
		return "—"
	}
	switch p.Mode {
	case profile.ModeDrop:
		return fmt.Sprintf("%s (%.4g%% of the attention and of the MLP sub-blocks dropped)", fmtG(p.Target), 100*p.Target)
	case profile.ModeSparse:
		return fmt.Sprintf("%s mean sparsity", fmtG(p.Target))
	case profile.ModeQuant:
		if isGGUF(p) {
			return fmt.Sprintf("%s bits per weight of the linear layers (bytes·8/weights; a GGUF file of about %d bytes)", fmtG(p.Target), p.Search.FileBytes)
		}
		return fmt.Sprintf("%s mean bits per weight (codes only)", fmtG(p.Target))
	}
	return fmtG(p.Target)
}

// isGGUF reports whether p is a quant profile of a gguf level database (its levels are ggml
// types; its record estimates the file).
func isGGUF(p *profile.Profile) bool {
	return p.Mode == profile.ModeQuant && p.Search != nil && p.Search.FileBytes > 0
}

func fmtG(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// lastFinite returns the last record with a finite fitness.
func lastFinite(h []search.Record) (search.Record, bool) {
	for i := len(h) - 1; i >= 0; i-- {
		if !math.IsNaN(h[i].Best) && !math.IsInf(h[i].Best, 0) {
			return h[i], true
		}
	}
	return search.Record{}, false
}

func writeRun(d *document, r *Run, slug string, addImage func(name, alt string, data []byte)) error {
	p := r.Profile
	name := runName(r)
	d.h(2, "Run: %s", name)
	for _, n := range r.Notes {
		d.p("%s", n)
	}
	rec := recordOf(p)
	kind := rec.Fitness

	// Summary.
	sum := table{head: []string{"item", "value"}}
	row := func(k, v string) {
		if v != "" {
			sum.rows = append(sum.rows, []string{k, v})
		}
	}
	if r.Dir != "" {
		row("run folder", "`"+r.Dir+"`")
	}
	if r.ProfilePath != "" {
		row("profile", "`"+r.ProfilePath+"`")
	}
	if p != nil {
		row("mode", p.Mode)
		row("method", p.Method)
		row("target", budgetText(p))
		if p.Fitness != nil {
			row("final fitness", fmt.Sprintf("%.6g — %s", *p.Fitness, fitnessLabel(kind)))
		}
	}
	if n := len(r.History); n > 0 {
		last := r.History[n-1]
		planned := ""
		if r.Config != nil {
			planned = fmt.Sprintf(" of %d", r.Config.Generations)
		}
		row("generations completed", fmt.Sprintf("%d%s", last.Generation, planned))
		if p == nil || p.Fitness == nil {
			if lf, ok := lastFinite(r.History); ok {
				row("best fitness", fmt.Sprintf("%.6g (generation %d)", lf.Best, lf.Generation))
			}
		}
		if first, ok := firstFinite(r.History); ok {
			if lf, ok := lastFinite(r.History); ok && lf.Generation > first.Generation {
				row("fitness at initialisation", fmt.Sprintf("%.6g", first.Best))
			}
		}
		row("evaluations", strconv.FormatInt(last.Evaluations, 10))
		row("input tokens scored", fmt.Sprintf("%d (%s)", last.Tokens, humanCount(float64(last.Tokens))))
		repl := 0
		for _, h := range r.History {
			if h.Replaced {
				repl++
			}
		}
		row("generations where an offspring replaced the parent", strconv.Itoa(repl))
		row("elapsed", formatDuration(last.Elapsed))
	} else if p != nil {
		if v := float64(rec.Evaluations); v > 0 {
			row("evaluations", fmtG(v))
		}
		if v := float64(rec.Tokens); v > 0 {
			row("input tokens scored", fmt.Sprintf("%s (%s)", fmtG(v), humanCount(v)))
		}
		if v := rec.ElapsedS; v > 0 {
			row("elapsed", formatSeconds(v))
		}
	}
	if done, full := float64(rec.BlocksComputed), float64(rec.BlocksFullForward); full > 0 {
		row("prefix reuse", fmt.Sprintf("%s of %s block forwards computed (%.0f%% saved)", fmtG(done), fmtG(full), 100*(1-done/full)))
	}
	if r.HistorySource != "" {
		row("history from", "`"+r.HistorySource+"`")
	}
	if len(sum.rows) > 0 {
		d.add(sum)
	}

	// Fitness plots and a short history table.
	if len(r.History) > 0 {
		d.h(3, "Fitness")
		d.p("Each generation's best is the parent's fitness on that generation's final-stage calibration batch (generation 0: the initial population on the init batch); batches are drawn afresh each generation, so the curve is not monotone.")
		for _, tokens := range []bool{false, true} {
			png, err := fitnessPNG(r.History, tokens, kind, name)
			if err != nil {
				return fmt.Errorf("report: %s fitness plot: %w", name, err)
			}
			if png == nil {
				if !tokens {
					d.p("No generation has a finite fitness: nothing to plot.")
				}
				continue
			}
			if tokens {
				addImage(slug+"-fitness-tokens.png", name+": best fitness against input tokens scored", png)
			} else {
				addImage(slug+"-fitness-generation.png", name+": best fitness against generation", png)
			}
		}
		d.add(historyTable(r.History))
	}

	if p != nil {
		if err := writeProfile(d, p, name, slug, addImage); err != nil {
			return err
		}
		writeReproduce(d, r)
	}
	return nil
}

func firstFinite(h []search.Record) (search.Record, bool) {
	for _, r := range h {
		if !math.IsNaN(r.Best) && !math.IsInf(r.Best, 0) {
			return r, true
		}
	}
	return search.Record{}, false
}

// historyTable shows up to about 12 generations: the first, evenly spaced ones, and the last.
func historyTable(h []search.Record) table {
	t := table{head: []string{"generation", "best fitness", "replaced", "evaluations", "tokens", "elapsed"},
		right: []bool{true, true, false, true, true, true}}
	step := 1
	for len(h)/step > 12 {
		step++
	}
	for i, r := range h {
		if i%step != 0 && i != len(h)-1 {
			continue
		}
		repl := ""
		if r.Replaced {
			repl = "yes"
		}
		t.rows = append(t.rows, []string{strconv.Itoa(r.Generation), fmt.Sprintf("%.6g", r.Best), repl,
			strconv.FormatInt(r.Evaluations, 10), humanCount(float64(r.Tokens)), formatDuration(r.Elapsed)})
	}
	return t
}

// unitValue returns what the heat map shows for a unit, with its description: the actual
// sparsity / bits per weight when the profile has values, else the level.
func unitValue(p *profile.Profile) (value func(u string) float64, label, title string, format func(float64) string) {
	hasValues := len(p.Values) > 0
	value = func(u string) float64 {
		if hasValues {
			if v, ok := p.Values[u]; ok {
				return v
			}
			return math.NaN()
		}
		return float64(p.Levels[u])
	}
	switch {
	case p.Mode == profile.ModeSparse && hasValues:
		return value, "sparsity (fraction of weights zero)", "sparsity per layer", func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	case p.Mode == profile.ModeSparse:
		return value, "database level", "database level per layer", func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	case hasValues:
		return value, "bits per weight (incl. scales/zeros)", "bits per weight per layer", func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	}
	return value, "bits (codes only)", "bits per layer", func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
}

func writeProfile(d *document, p *profile.Profile, name, slug string, addImage func(name, alt string, data []byte)) error {
	d.h(3, "Per-layer profile")
	var g *grid
	switch p.Mode {
	case profile.ModeDrop:
		png, err := dropPNG(p, name)
		if err != nil {
			return fmt.Errorf("report: %s profile plot: %w", name, err)
		}
		if png != nil {
			addImage(slug+"-profile.png", name+": dropped attention and MLP sub-blocks by block", png)
		}
		g = newGrid(p, subBlocks, func(u string) float64 { return float64(p.Levels[u]) })
		var items []string
		for r, label := range g.rows {
			var dropped []string
			for c, b := range g.blocks {
				if g.z[r][c] == 1 {
					dropped = append(dropped, strconv.Itoa(b))
				}
			}
			list := strings.Join(dropped, ", ")
			if list == "" {
				list = "none"
			}
			items = append(items, fmt.Sprintf("%s dropped in blocks: %s (%d of %d)", label, list, len(dropped), len(g.blocks)))
		}
		d.add(bullets{items})
	default:
		value, label, title, format := unitValue(p)
		// A GGUF profile's cells name their ggml types (types of one size, such as q4_0, q4_K
		// and iq4_nl, share a colour); the colour shows the bits per weight.
		var cellText func(u string) string
		if isGGUF(p) {
			cellText = func(u string) string { return ggml.Type(p.Levels[u]).String() }
			title = "ggml type per layer"
		}
		png, err := heatPNG(p, name, title, label, value, format, cellText)
		if err != nil {
			return fmt.Errorf("report: %s profile plot: %w", name, err)
		}
		if png != nil {
			addImage(slug+"-profile.png", name+": "+title+" over blocks × projections", png)
		}
		g = newGrid(p, projections, value)
		d.add(profileStats(p, value, label))
		if len(g.blocks) > 0 {
			t := table{head: append([]string{"block"}, g.rows...)}
			t.right = make([]bool, len(t.head))
			for i := range t.right {
				t.right[i] = true
			}
			for c, b := range g.blocks {
				row := []string{strconv.Itoa(b)}
				for r := range g.rows {
					switch v := g.z[r][c]; {
					case math.IsNaN(v):
						row = append(row, "—")
					case cellText != nil:
						row = append(row, cellText(g.units[r][c])+" "+format(v))
					default:
						row = append(row, format(v))
					}
				}
				t.rows = append(t.rows, row)
			}
			what := capitalize(label)
			if cellText != nil {
				what = "GGUF type and " + label
			}
			d.p("%s by block (— : not in the profile, left dense):", what)
			d.add(t)
		}
	}
	missing := 0
	for _, row := range g.z {
		for _, v := range row {
			if math.IsNaN(v) {
				missing++
			}
		}
	}
	if missing > 0 {
		d.p("%d grey cells marked – are units the profile does not list: they stay dense.", missing)
	}
	if len(g.other) > 0 {
		var items []string
		for _, u := range g.other {
			items = append(items, fmt.Sprintf("`%s`: level %d", u, p.Levels[u]))
		}
		d.p("Units outside the blocks:")
		d.add(bullets{items})
	}
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// profileStats summarises a sparse or quant profile: mean, range and units per level.
func profileStats(p *profile.Profile, value func(string) float64, label string) bullets {
	var sum, lo, hi float64
	n := 0
	lo, hi = math.Inf(1), math.Inf(-1)
	for u := range p.Levels {
		v := value(u)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		sum += v
		n++
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	var items []string
	if n > 0 {
		items = append(items, fmt.Sprintf("%s: mean %.4g over %d units (unweighted; the budget weighs units by their size), min %.4g, max %.4g", label, sum/float64(n), n, lo, hi))
	}
	counts := map[int]int{}
	for _, l := range p.Levels {
		counts[l]++
	}
	var levels []int
	for l := range counts {
		levels = append(levels, l)
	}
	sort.Ints(levels)
	var parts []string
	gguf := isGGUF(p)
	for _, l := range levels {
		if gguf {
			parts = append(parts, fmt.Sprintf("%s: %d", ggml.Type(l), counts[l]))
		} else {
			parts = append(parts, fmt.Sprintf("%d: %d", l, counts[l]))
		}
	}
	what := "units per database level"
	switch {
	case gguf:
		what = "units per ggml type"
	case p.Mode == profile.ModeQuant:
		what = "units per bit width"
	}
	items = append(items, fmt.Sprintf("%s — %s", what, strings.Join(parts, ", ")))
	return bullets{items}
}

// writeReproduce lists the configuration and data provenance, and the command.
func writeReproduce(d *document, r *Run) {
	p := r.Profile
	d.h(3, "Configuration and provenance")
	t := table{head: []string{"setting", "value"}}
	row := func(k, v string) {
		if v != "" {
			t.rows = append(t.rows, []string{k, v})
		}
	}
	if p.Model != nil {
		row("model", "`"+p.Model.Path+"`")
		row("model fingerprint", "`"+p.Model.Fingerprint+"`")
	}
	if p.DB != nil {
		row("database", "`"+p.DB.Path+"`")
		row("database fingerprint", "`"+p.DB.Fingerprint+"`")
	}
	rec := recordOf(p)
	seqLen, hasSeq := float64(rec.SeqLen), rec.SeqLen > 0
	if c := rec.Calib; c != "" {
		row("calibration text", "`"+c+"`")
	}
	if chunks := float64(rec.CalibChunks); chunks > 0 {
		v := fmt.Sprintf("%s chunks", fmtG(chunks))
		if hasSeq {
			v = fmt.Sprintf("%s chunks × %s tokens = %s tokens (the first chunks of the tokenized file)", fmtG(chunks), fmtG(seqLen), fmtG(chunks*seqLen))
		}
		row("calibration pool", v)
	}
	cfg := r.Config
	keys := []struct{ key, label, value string }{
		{"seed", "seed", recordedSeed(p)}, {"offspring", "offspring per generation (λ)", itoaPos(rec.Offspring)},
		{"stages", "selection stages (survivors:tokens)", rec.Stages}, {"generations", "generations", itoaPos(rec.Generations)},
		{"init_tokens", "tokens to score the initial candidates", itoaPos(rec.InitTokens)}, {"seq_len", "sequence length", itoaPos(rec.SeqLen)},
		{"fitness", "fitness", rec.Fitness}, {"kl_topk", "KL top-k (0: full distributions)", recordedTopK(rec)},
	}
	for _, k := range keys {
		v := k.value
		if v == "" && cfg != nil {
			switch k.key {
			case "seed":
				v = strconv.FormatUint(cfg.Seed, 10)
			case "offspring":
				v = strconv.Itoa(cfg.Offspring)
			case "stages":
				v = search.FormatStages(cfg.Stages)
			case "generations":
				v = strconv.Itoa(cfg.Generations)
			case "init_tokens":
				v = strconv.Itoa(cfg.InitTokens)
			case "seq_len":
				v = strconv.Itoa(cfg.SeqLen)
			}
		}
		row(k.label, v)
	}
	if cfg != nil {
		row("planned generations (checkpoint)", strconv.Itoa(cfg.Generations))
		row("calibration chunks (checkpoint)", strconv.Itoa(cfg.PoolChunks))
	}
	// Anything else the search recorded.
	known := map[string]bool{"calib": true, "calib_chunks": true, "command": true, "evaluations": true, "tokens": true,
		"elapsed_s": true, "this_run_s": true, "blocks_computed": true, "blocks_full_forward": true}
	for _, k := range keys {
		known[k.key] = true
	}
	var extra []profile.Field
	for _, f := range rec.Fields() {
		if !known[f.Key] {
			extra = append(extra, f)
		}
	}
	for _, f := range extra {
		row("`"+f.Key+"`", f.Value)
	}
	if len(t.rows) > 0 {
		d.add(t)
	}
	command := r.Command
	if command == "" {
		command = string(rec.Command)
	}
	if command != "" {
		d.p("The command that made this run:")
		d.add(codeBlock{command})
		return
	}
	if cmd := rebuildCommand(r); cmd != "" {
		d.p("The profile does not record its command; this equivalent command repeats the search (same model, data, settings and seed; %s):",
			map[bool]string{true: "`--whole-blocks` and `--keep` are not recorded", false: "the database must be the one fingerprinted above"}[p.Mode == profile.ModeDrop])
		d.add(codeBlock{cmd})
	}
}

// rebuildCommand writes an `evopress search` command equivalent to the recorded settings, or
// "" when the profile does not come from an EvoPress search.
func rebuildCommand(r *Run) string {
	p := r.Profile
	if p.Method != "evopress" || p.Search == nil {
		return ""
	}
	rec := p.Search
	args := []string{"evopress", "search", p.Mode}
	add := func(flag, v string) {
		if v != "" {
			args = append(args, flag, profile.ShellQuote(v))
		}
	}
	if p.Model != nil && !strings.HasPrefix(p.Model.Path, "embedded:") {
		add("--model", p.Model.Path)
	}
	if c := rec.Calib; !strings.HasPrefix(c, "embedded:") {
		add("--calib", c)
	}
	if p.DB != nil {
		add("--db", p.DatabaseDir("")) // relative to the working directory, as --model and --calib
	}
	add("--target", fmtG(p.Target))
	add("--seq-len", itoaPos(rec.SeqLen))
	if rec.CalibChunks > 0 && rec.SeqLen > 0 {
		add("--calib-tokens", strconv.Itoa(rec.CalibChunks*rec.SeqLen))
	}
	for _, k := range []struct{ flag, value string }{{"--generations", itoaPos(rec.Generations)}, {"--offspring", itoaPos(rec.Offspring)},
		{"--stages", rec.Stages}, {"--init-tokens", itoaPos(rec.InitTokens)}, {"--fitness", rec.Fitness}, {"--kl-topk", recordedTopK(rec)},
		{"--seed", strconv.FormatUint(rec.Seed, 10)}} {
		add(k.flag, k.value)
	}
	out := r.ProfilePath
	if out == "" {
		out = "P.json"
	}
	add("--out", out)
	return strings.Join(args, " ")
}
