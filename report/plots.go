package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
)

// dpi is the resolution of the PNG images.
const dpi = 144

var (
	colorLine     = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorAccent   = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colorKept     = color.RGBA{R: 0xe3, G: 0xe8, B: 0xee, A: 0xff}
	colorMissing  = color.RGBA{R: 0xbb, G: 0xbb, B: 0xbb, A: 0xff}
	colorEvoPress = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colorDense    = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	// colorMethods are the colours of the other methods, in order of first appearance.
	colorMethods = []color.Color{
		color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
		color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
		color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
		color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
		color.RGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff},
		color.RGBA{R: 0xbc, G: 0xbd, B: 0x22, A: 0xff},
		color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff},
	}
)

// newPlot returns a plot with the report's font sizes.
func newPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Title.TextStyle.Font.Variant = "Sans"
	p.Title.Padding = vg.Points(10)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = vg.Points(11)
		a.Label.TextStyle.Font.Variant = "Sans"
		a.Tick.Label.Font.Size = vg.Points(9.5)
		a.Tick.Label.Font.Variant = "Sans"
	}
	p.Legend.TextStyle.Font.Variant = "Sans"
	p.Legend.TextStyle.Font.Size = vg.Points(9.5)
	return p
}

// renderPNG draws fn on a w×h canvas and encodes it.
func renderPNG(w, h vg.Length, fn func(c draw.Canvas)) ([]byte, error) {
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("drawing: %v", r)
			}
		}()
		// A margin keeps labels off the image's edges.
		m := vg.Points(8)
		fn(draw.Crop(draw.New(c), m, -m, m, -m))
	}()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// plotPNG renders one plot.
func plotPNG(p *plot.Plot, w, h vg.Length) ([]byte, error) {
	return renderPNG(w, h, p.Draw)
}

// humanCount writes n as 12, 3.4k, 1.2M, 2.05G.
func humanCount(n float64) string {
	a := math.Abs(n)
	switch {
	case a >= 1e9:
		return trimZeros(strconv.FormatFloat(n/1e9, 'f', 2, 64)) + "G"
	case a >= 1e6:
		return trimZeros(strconv.FormatFloat(n/1e6, 'f', 2, 64)) + "M"
	case a >= 1e3:
		return trimZeros(strconv.FormatFloat(n/1e3, 'f', 1, 64)) + "k"
	}
	return trimZeros(strconv.FormatFloat(n, 'f', 1, 64))
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// niceTicks labels about five to ten round values (1, 2, 2.5 or 5 × 10^k apart) of a linear
// axis; integer keeps the step at 1 or more; count labels with humanCount.
type niceTicks struct {
	integer, count bool
}

// Ticks implements plot.Ticker.
func (nt niceTicks) Ticks(min, max float64) []plot.Tick {
	if !(max > min) || math.IsInf(max-min, 0) {
		return plot.DefaultTicks{}.Ticks(min, max)
	}
	raw := (max - min) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	if nt.integer && step < 1 {
		step = 1
	}
	var ts []plot.Tick
	first := math.Ceil(min/step-1e-9) * step
	for i := 0; i < 100; i++ {
		v := first + float64(i)*step
		if v > max+step*1e-9 {
			break
		}
		if math.Abs(v) < step*1e-9 {
			v = 0
		}
		label := strconv.FormatFloat(v, 'g', 6, 64)
		if nt.count {
			label = humanCount(v)
		}
		ts = append(ts, plot.Tick{Value: v, Label: label})
		// Unlabelled minor ticks halfway.
		if mid := v + step/2; mid < max && (!nt.integer || step >= 2 && math.Mod(step, 2) == 0) {
			ts = append(ts, plot.Tick{Value: mid})
		}
	}
	return ts
}

// logTicks labels 1, 2, 5 × 10^k (or only 10^k over a wide range) on a log axis.
type logTicks struct{}

// Ticks implements plot.Ticker.
func (logTicks) Ticks(min, max float64) []plot.Tick {
	if !(min > 0) || !(max > min) {
		return plot.DefaultTicks{}.Ticks(min, max)
	}
	lo, hi := math.Floor(math.Log10(min)), math.Ceil(math.Log10(max))
	mults := []float64{1, 2, 5}
	if hi-lo > 4 {
		mults = []float64{1}
	}
	var ts []plot.Tick
	for e := lo; e <= hi; e++ {
		for m := 1.0; m < 10; m++ {
			v := m * math.Pow(10, e)
			if v < min*(1-1e-9) || v > max*(1+1e-9) {
				continue
			}
			label := ""
			for _, mm := range mults {
				if m == mm {
					label = strconv.FormatFloat(v, 'g', 3, 64)
				}
			}
			ts = append(ts, plot.Tick{Value: v, Label: label})
		}
	}
	labelled := 0
	for _, t := range ts {
		if t.Label != "" {
			labelled++
		}
	}
	if labelled < 2 {
		// Too narrow for round numbers: label the ends.
		ts = append(ts, plot.Tick{Value: min, Label: strconv.FormatFloat(min, 'g', 3, 64)},
			plot.Tick{Value: max, Label: strconv.FormatFloat(max, 'g', 3, 64)})
	}
	return ts
}

// fitnessLabel is the y-axis label for a fitness kind.
func fitnessLabel(kind string) string {
	switch kind {
	case "kl":
		return "KL to dense (nats/token)"
	case "ppl":
		return "NLL (nats/token)"
	}
	return "fitness"
}

// fitnessPNG plots the parent's fitness against the generation (tokens false) or the tokens
// scored so far. It returns nil when no generation has a finite fitness.
func fitnessPNG(h []search.Record, tokens bool, kind, name string) ([]byte, error) {
	var line, repl plotter.XYs
	for _, r := range h {
		if math.IsNaN(r.Best) || math.IsInf(r.Best, 0) {
			continue
		}
		x := float64(r.Generation)
		if tokens {
			x = float64(r.Tokens)
		}
		line = append(line, plotter.XY{X: x, Y: r.Best})
		if r.Replaced {
			repl = append(repl, plotter.XY{X: x, Y: r.Best})
		}
	}
	if len(line) == 0 {
		return nil, nil
	}
	title := fmt.Sprintf("%s: best fitness by generation", name)
	if tokens {
		title = fmt.Sprintf("%s: best fitness by tokens scored", name)
	}
	p := newPlot(title)
	p.Y.Label.Text = fitnessLabel(kind)
	if tokens {
		p.X.Label.Text = "input tokens scored (cumulative, all candidates)"
		p.X.Tick.Marker = niceTicks{count: true}
	} else {
		p.X.Label.Text = "generation (0 = initial population)"
		p.X.Tick.Marker = niceTicks{integer: true}
	}
	p.Y.Tick.Marker = niceTicks{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, pt := range line {
		lo, hi = math.Min(lo, pt.Y), math.Max(hi, pt.Y)
	}
	// Headroom at the top keeps the legend off the curve.
	if lo > 0 && hi/lo >= 10 {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
		p.Y.Label.Text += ", log"
		p.Y.Min, p.Y.Max = lo/math.Pow(hi/lo, 0.04), hi*math.Pow(hi/lo, 0.3)
	} else if hi > lo {
		p.Y.Min, p.Y.Max = lo-0.04*(hi-lo), hi+0.3*(hi-lo)
	} else {
		d := math.Max(math.Abs(hi)*0.05, 1e-6)
		p.Y.Min, p.Y.Max = lo-d, hi+2*d
	}
	l, err := plotter.NewLine(line)
	if err != nil {
		return nil, err
	}
	l.Color, l.Width = colorLine, vg.Points(1.5)
	pts, err := plotter.NewScatter(line)
	if err != nil {
		return nil, err
	}
	pts.GlyphStyle = draw.GlyphStyle{Color: colorLine, Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
	p.Add(plotter.NewGrid(), l, pts)
	p.Legend.Add("parent's fitness on its generation's batch", l, pts)
	if len(repl) > 0 {
		rs, err := plotter.NewScatter(repl)
		if err != nil {
			return nil, err
		}
		rs.GlyphStyle = draw.GlyphStyle{Color: colorAccent, Radius: vg.Points(3.5), Shape: draw.RingGlyph{}}
		p.Add(rs)
		p.Legend.Add("an offspring replaced the parent", rs)
	}
	p.Legend.Top = true
	if len(line) == 1 {
		// A single point: give the axes some room.
		p.X.Min, p.X.Max = line[0].X-1, line[0].X+1
		if tokens {
			p.X.Min, p.X.Max = 0, 2*math.Max(line[0].X, 1)
		}
	}
	return plotPNG(p, 8*vg.Inch, 4.8*vg.Inch)
}

// projections are the seven linear layers of a Llama block, in order, with short labels
// ("attn q_proj", ..., "mlp down_proj").
var projections = func() []struct{ unit, label string } {
	short := map[arch.SubBlock]string{arch.Attention: "attn", arch.MLP: "mlp"}
	var p []struct{ unit, label string }
	for k := range arch.NumLinearKinds {
		p = append(p, struct{ unit, label string }{k.String(), short[k.Sub()] + " " + k.Short()})
	}
	return p
}()

// subBlocks are the drop mode's units of a block.
var subBlocks = []struct{ unit, label string }{
	{arch.Attention.String(), "attention"},
	{arch.MLP.String(), "MLP"},
}

// grid is a profile laid out over blocks (columns) × units of a block (rows, top first).
type grid struct {
	rows, rowUnits []string
	blocks         []int
	z              [][]float64 // [row][col]; NaN: not in the profile
	units          [][]string  // [row][col]: the unit's name
	other          []string    // units that are not "<…>layers.N.<…>" (arch.SplitLayers)
}

// newGrid lays out value(unit) for the profile's units; known lists the expected units of a block
// in order (others follow, sorted).
func newGrid(p *profile.Profile, known []struct{ unit, label string }, value func(u string) float64) *grid {
	g := &grid{}
	blocks := map[int]bool{}
	rests := map[string]bool{}
	maxBlock := -1
	prefix := "" // the block names' prefix, the smallest if they mix namings (deterministic)
	for u := range p.Levels {
		pre, n, rest, ok := arch.SplitLayers(u)
		if !ok {
			g.other = append(g.other, u)
			continue
		}
		blocks[n], rests[rest] = true, true
		maxBlock = max(maxBlock, n)
		if prefix == "" || pre < prefix {
			prefix = pre
		}
	}
	sort.Strings(g.other)
	// Show every block from 0 to the last one (a block absent from the profile is dense), unless
	// the numbering is too sparse for that to be useful.
	if maxBlock < 2*len(blocks)+8 {
		for b := 0; b <= maxBlock; b++ {
			g.blocks = append(g.blocks, b)
		}
	} else {
		for b := range blocks {
			g.blocks = append(g.blocks, b)
		}
		sort.Ints(g.blocks)
	}
	anyKnown := false
	for _, k := range known {
		anyKnown = anyKnown || rests[k.unit]
	}
	for _, k := range known {
		if anyKnown {
			g.rows, g.rowUnits = append(g.rows, k.label), append(g.rowUnits, k.unit)
		}
		delete(rests, k.unit)
	}
	var extra []string
	for r := range rests {
		extra = append(extra, r)
	}
	sort.Strings(extra)
	g.rows, g.rowUnits = append(g.rows, extra...), append(g.rowUnits, extra...)
	if len(g.blocks) == 0 {
		return g
	}
	g.z = make([][]float64, len(g.rows))
	g.units = make([][]string, len(g.rows))
	for r, ru := range g.rowUnits {
		g.z[r] = make([]float64, len(g.blocks))
		g.units[r] = make([]string, len(g.blocks))
		for c, b := range g.blocks {
			u := prefix + strconv.Itoa(b) + "." + ru
			g.units[r][c] = u
			if _, ok := p.Levels[u]; ok {
				g.z[r][c] = value(u)
			} else {
				g.z[r][c] = math.NaN()
			}
		}
	}
	return g
}

// cells draws a grid as coloured cells with optional text: text(u, v) for unit u of value v.
type cells struct {
	g     *grid
	color func(v float64) color.Color
	text  func(u string, v float64) string
	font  vg.Length
}

// Plot implements plot.Plotter.
func (cl *cells) Plot(c draw.Canvas, plt *plot.Plot) {
	tx, ty := plt.Transforms(&c)
	nr := len(cl.g.rows)
	sty := plt.X.Tick.Label
	sty.Font.Size = cl.font
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
	for r := range cl.g.rows {
		y := float64(nr - 1 - r)
		for col := range cl.g.blocks {
			x := float64(col)
			v := cl.g.z[r][col]
			fill := colorMissing
			var clr color.Color = fill
			if !math.IsNaN(v) {
				clr = cl.color(v)
			}
			x0, x1 := tx(x-0.5), tx(x+0.5)
			y0, y1 := ty(y-0.5), ty(y+0.5)
			gap := vg.Points(0.75)
			c.FillPolygon(clr, []vg.Point{{X: x0 + gap, Y: y0 + gap}, {X: x1 - gap, Y: y0 + gap}, {X: x1 - gap, Y: y1 - gap}, {X: x0 + gap, Y: y1 - gap}})
			s := "–"
			if !math.IsNaN(v) {
				s = cl.text(cl.g.units[r][col], v)
			}
			if s == "" || cl.font <= 0 {
				continue
			}
			sty.Color = textOn(clr)
			c.FillText(sty, vg.Point{X: (x0 + x1) / 2, Y: (y0 + y1) / 2}, s)
		}
	}
}

// DataRange implements plot.DataRanger.
func (cl *cells) DataRange() (xmin, xmax, ymin, ymax float64) {
	return -0.5, float64(len(cl.g.blocks)) - 0.5, -0.5, float64(len(cl.g.rows)) - 0.5
}

// textOn returns black or white, whichever reads better on c.
func textOn(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	lum := (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 0xffff
	if lum > 0.55 {
		return color.Black
	}
	return color.White
}

// gridAxes sets block ticks on X and row labels on Y.
func gridAxes(p *plot.Plot, g *grid) {
	step := 1
	for len(g.blocks)/step > 40 {
		step *= 2
	}
	var xt []plot.Tick
	for i, b := range g.blocks {
		l := ""
		if i%step == 0 {
			l = strconv.Itoa(b)
		}
		xt = append(xt, plot.Tick{Value: float64(i), Label: l})
	}
	p.X.Tick.Marker = plot.ConstantTicks(xt)
	var yt []plot.Tick
	for r, l := range g.rows {
		yt = append(yt, plot.Tick{Value: float64(len(g.rows) - 1 - r), Label: l})
	}
	p.Y.Tick.Marker = plot.ConstantTicks(yt)
	p.X.Padding, p.Y.Padding = 0, 0
	p.X.Label.Text = "block (model.layers.N)"
}

// gridSize returns the image size for a grid of nb blocks × nr rows and the cells' font size.
func gridSize(nb, nr int, extra vg.Length) (w, h, font vg.Length) {
	cell := 0.46 * vg.Inch
	font = vg.Points(7.5)
	if nb > 28 {
		cell, font = 0.36*vg.Inch, vg.Points(6)
	}
	if nb > 48 {
		cell, font = min(0.22*vg.Inch, 18*vg.Inch/vg.Length(nb)), 0
	}
	w = 1.7*vg.Inch + vg.Length(nb)*cell + extra
	w = max(w, 7*vg.Inch)
	h = 1.45*vg.Inch + vg.Length(nr)*0.42*vg.Inch
	return w, h, font
}

// dropPNG draws which sub-blocks a drop profile removes.
func dropPNG(p *profile.Profile, name string) ([]byte, error) {
	g := newGrid(p, subBlocks, func(u string) float64 { return float64(p.Levels[u]) })
	if len(g.blocks) == 0 {
		return nil, nil
	}
	na, nm := 0, 0
	for c := range g.blocks {
		if g.z[0][c] == 1 {
			na++
		}
		if len(g.z) > 1 && g.z[1][c] == 1 {
			nm++
		}
	}
	pl := newPlot(fmt.Sprintf("%s: dropped sub-blocks (red ×) — %d attention, %d MLP of %d blocks", name, na, nm, len(g.blocks)))
	w, h, font := gridSize(len(g.blocks), len(g.rows), 0)
	font = vg.Points(18)
	cl := &cells{g: g, font: font,
		color: func(v float64) color.Color {
			if v == 1 {
				return colorAccent
			}
			return colorKept
		},
		text: func(_ string, v float64) string {
			if v == 1 {
				return "×"
			}
			return ""
		}}
	pl.Add(cl)
	gridAxes(pl, g)
	return plotPNG(pl, w, h)
}

// viridis returns a perceptually ordered colour map (dark purple → yellow).
func viridis() (palette.ColorMap, error) {
	return moreland.NewLuminance([]color.Color{
		color.NRGBA{R: 0x44, G: 0x01, B: 0x54, A: 0xff},
		color.NRGBA{R: 0x3b, G: 0x52, B: 0x8b, A: 0xff},
		color.NRGBA{R: 0x21, G: 0x91, B: 0x8c, A: 0xff},
		color.NRGBA{R: 0x5e, G: 0xc9, B: 0x62, A: 0xff},
		color.NRGBA{R: 0xfd, G: 0xe7, B: 0x25, A: 0xff},
	})
}

// heatPNG draws a sparse or quant profile as a heat map over blocks × projections with a colour
// bar; value gives a unit's number, label names it (colour bar title) and format writes it in a
// cell, or cellText, when not nil, writes a unit's cell (a GGUF profile's ggml type).
func heatPNG(p *profile.Profile, name, title, label string, value func(u string) float64, format func(v float64) string, cellText func(u string) string) ([]byte, error) {
	g := newGrid(p, projections, value)
	if len(g.blocks) == 0 {
		return nil, nil
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, row := range g.z {
		for _, v := range row {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if lo > hi {
		lo, hi = 0, 1
	}
	if hi-lo < 1e-9 {
		pad := 0.05 * math.Max(1, math.Abs(hi))
		lo, hi = lo-pad, hi+pad
	}
	cm, err := viridis()
	if err != nil {
		return nil, err
	}
	cm.SetMin(lo)
	cm.SetMax(hi)
	colorOf := func(v float64) color.Color {
		v = math.Max(lo, math.Min(hi, v))
		c, err := cm.At(v)
		if err != nil {
			return colorMissing
		}
		return c
	}
	barW := 1.5 * vg.Inch
	w, h, font := gridSize(len(g.blocks), len(g.rows), barW)
	pl := newPlot(fmt.Sprintf("%s: %s", name, title))
	pl.Add(&cells{g: g, font: font, color: colorOf, text: func(u string, v float64) string {
		if math.IsInf(v, 0) {
			return ""
		}
		if cellText != nil {
			return cellText(u)
		}
		return format(v)
	}})
	gridAxes(pl, g)

	cb := newPlot("")
	cb.HideX()
	cb.Y.Padding = 0
	cb.Y.Label.Text = label
	cb.Y.Tick.Marker = niceTicks{}
	bar := &plotter.ColorBar{ColorMap: cm, Vertical: true}
	cb.Add(bar)
	return renderPNG(w, h, func(c draw.Canvas) {
		main := draw.Crop(c, 0, -barW, 0, 0)
		pl.Draw(main)
		// Align the colour bar with the cells: below the title, above the x axis.
		side := draw.Crop(c, c.Max.X-c.Min.X-barW+0.25*vg.Inch, -0.2*vg.Inch, 0.6*vg.Inch, -0.45*vg.Inch)
		cb.Draw(side)
	})
}

// methodsPNG draws the perplexity of every method at every budget as horizontal bars, grouped
// by mode and budget, with the dense model's perplexity as a dashed line.
func methodsPNG(results []MethodResult) ([]byte, error) {
	rows := sortedResults(results)
	var bars []hbar
	dense := math.NaN()
	methodColor := map[string]color.Color{}
	next := 0
	for _, r := range rows {
		if !(r.PPL > 0) || math.IsInf(r.PPL, 0) {
			continue
		}
		if isDense(r) {
			if math.IsNaN(dense) {
				dense = r.PPL
			}
		}
		key := strings.ToLower(r.Method)
		clr, ok := methodColor[key]
		if !ok {
			switch {
			case isDense(r):
				clr = colorDense
			case strings.Contains(key, "evopress"):
				clr = colorEvoPress
			default:
				clr = colorMethods[next%len(colorMethods)]
				next++
			}
			methodColor[key] = clr
		}
		bars = append(bars, hbar{label: resultLabel(r), value: r.PPL, color: clr})
	}
	if len(bars) == 0 {
		return nil, nil
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, b := range bars {
		lo, hi = math.Min(lo, b.value), math.Max(hi, b.value)
	}
	title := "Held-out perplexity by method and budget"
	if !math.IsNaN(dense) {
		title += fmt.Sprintf(" (dashed: dense %.2f)", dense)
	}
	p := newPlot(title)
	p.X.Label.Text = "perplexity (lower is better)"
	logScale := hi/lo >= 8
	if logScale {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = logTicks{}
		p.X.Label.Text += ", log scale"
		p.X.Min, p.X.Max = lo/1.6, hi*2.2
	} else {
		p.X.Min, p.X.Max = 0, hi*1.18
		p.X.Tick.Marker = niceTicks{}
	}
	n := len(bars)
	var yt []plot.Tick
	for i, b := range bars {
		yt = append(yt, plot.Tick{Value: float64(n - 1 - i), Label: b.label})
	}
	p.Y.Tick.Marker = plot.ConstantTicks(yt)
	p.Y.Tick.Label.Font.Size = vg.Points(10)
	p.Y.Min, p.Y.Max = -0.6, float64(n)-0.4
	p.Add(plotter.NewGrid())
	p.Add(&hbars{bars: bars, dense: dense})
	h := 1.2*vg.Inch + vg.Length(n)*0.36*vg.Inch
	return plotPNG(p, 9*vg.Inch, max(h, 3*vg.Inch))
}

type hbar struct {
	label string
	value float64
	color color.Color
}

// hbars draws horizontal bars (row i at y = n−1−i) from the x axis' minimum, each with its value.
type hbars struct {
	bars  []hbar
	dense float64
}

// Plot implements plot.Plotter.
func (hb *hbars) Plot(c draw.Canvas, plt *plot.Plot) {
	tx, ty := plt.Transforms(&c)
	n := len(hb.bars)
	sty := plt.X.Tick.Label
	sty.Font.Size = vg.Points(9)
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YCenter
	sty.Color = color.Black
	for i, b := range hb.bars {
		y := float64(n - 1 - i)
		x0, x1 := tx(plt.X.Min), tx(b.value)
		y0, y1 := ty(y-0.36), ty(y+0.36)
		c.FillPolygon(b.color, []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
		c.FillText(sty, vg.Point{X: x1 + vg.Points(3), Y: (y0 + y1) / 2}, formatPPL(b.value))
	}
	if !math.IsNaN(hb.dense) {
		ls := draw.LineStyle{Color: colorDense, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
		x := tx(hb.dense)
		c.StrokeLine2(ls, x, c.Min.Y, x, c.Max.Y)
	}
}

// DataRange implements plot.DataRanger.
func (hb *hbars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), math.Inf(-1)
	for _, b := range hb.bars {
		xmin, xmax = math.Min(xmin, b.value), math.Max(xmax, b.value)
	}
	return xmin, xmax, -0.5, float64(len(hb.bars)) - 0.5
}

// formatPPL writes a perplexity with 3–4 significant digits.
func formatPPL(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
