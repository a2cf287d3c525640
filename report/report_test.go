package report

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
)

var projNames = []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}

// synthHistory is a deterministic history of gens generations whose fitness falls from hi to lo.
func synthHistory(gens int, hi, lo float64, seed uint64) []search.Record {
	rng := rand.New(rand.NewPCG(seed, 1))
	h := make([]search.Record, gens+1)
	best := hi
	var evals, tokens int64
	for g := 0; g <= gens; g++ {
		repl := g > 0 && rng.IntN(3) == 0
		if repl {
			best = lo + (best-lo)*(0.5+0.3*rng.Float64())
		}
		noise := 1 + 0.05*(rng.Float64()-0.5)
		if g == 0 {
			evals, tokens = 64, 131072
		} else {
			evals += 17
			tokens += 16*512 + 8192
		}
		h[g] = search.Record{Generation: g, Best: best * noise, Replaced: repl, Evaluations: evals, Tokens: tokens,
			Elapsed: time.Duration(g+1) * 3 * time.Second}
	}
	return h
}

func synthSearch(gens int, h []search.Record) *profile.Record {
	last := h[len(h)-1]
	return recordFromMap(map[string]any{
		"seed": float64(7), "generations": float64(gens), "offspring": float64(16), "stages": "4:512,1:8192",
		"init_tokens": float64(2048), "seq_len": float64(256), "calib": "embedded:pd-english/calib.txt",
		"calib_chunks": float64(512), "fitness": "kl", "kl_topk": float64(0),
		"evaluations": float64(last.Evaluations), "tokens": float64(last.Tokens), "elapsed_s": last.Elapsed.Seconds(),
		"blocks_computed": float64(5000), "blocks_full_forward": float64(9000),
	})
}

// recordFromMap decodes a record written as free-form JSON, as profiles of earlier versions are.
func recordFromMap(m map[string]any) *profile.Record {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	var r profile.Record
	if err := json.Unmarshal(b, &r); err != nil {
		panic(err)
	}
	return &r
}

// synthProfile makes a complete profile of the given mode over nb blocks.
func synthProfile(mode string, nb int, gens int, h []search.Record) *profile.Profile {
	p := profile.New(mode)
	p.Model = &profile.Ref{Path: "embedded:llama-pd-11m", Fingerprint: "sha256:0123456789abcdef"}
	p.Method = "evopress"
	rng := rand.New(rand.NewPCG(uint64(nb), 3))
	switch mode {
	case profile.ModeDrop:
		p.Target = 0.25
		dropA := map[int]bool{3: true, 5: true, 9: true}
		dropM := map[int]bool{2: true, 7: true, 10: true}
		for b := range nb {
			p.Levels[fmt.Sprintf("model.layers.%d.self_attn", b)] = b2i(dropA[b])
			p.Levels[fmt.Sprintf("model.layers.%d.mlp", b)] = b2i(dropM[b])
		}
	case profile.ModeSparse:
		p.Target = 0.5
		p.DB = &profile.Ref{Path: "/data/db-sparse", Fingerprint: "sha256:feedface"}
		p.Values = map[string]float64{}
		for b := range nb {
			for _, pr := range projNames {
				u := fmt.Sprintf("model.layers.%d.%s", b, pr)
				l := 2 + rng.IntN(6)
				p.Levels[u] = l
				p.Values[u] = 0.1 * float64(l)
			}
		}
	case profile.ModeQuant:
		p.Target = 3
		p.DB = &profile.Ref{Path: "/data/db-quant", Fingerprint: "sha256:beadfeed"}
		p.Values = map[string]float64{}
		for b := range nb {
			for _, pr := range projNames {
				u := fmt.Sprintf("model.layers.%d.%s", b, pr)
				l := 2 + rng.IntN(3)
				p.Levels[u] = l
				p.Values[u] = float64(l) + 0.25
			}
		}
	}
	f := h[len(h)-1].Best
	p.Fitness = &f
	p.Search = synthSearch(gens, h)
	return p
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeRunFolder writes P.json and P.run/{result.json,checkpoint.json,log.jsonl} as a search
// does, and returns the run folder.
func writeRunFolder(t *testing.T, dir string, p *profile.Profile, h []search.Record) string {
	t.Helper()
	base := filepath.Join(dir, p.Mode)
	run := base + ".run"
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := p.Write(base + ".json"); err != nil {
		t.Fatal(err)
	}
	units := p.Units()
	levels := make(search.Levels, len(units))
	for i, u := range units {
		levels[i] = p.Levels[u]
	}
	last := h[len(h)-1]
	res := search.Result{Mode: p.Mode, Units: units, Profile: levels, Fitness: last.Best, Generations: last.Generation,
		Evaluations: last.Evaluations, Tokens: last.Tokens, History: h, Elapsed: last.Elapsed}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(run, ResultFile), data)
	rngState, _ := rand.NewPCG(1, 2).MarshalBinary()
	st := &search.State{Mode: p.Mode, Units: units, Generation: last.Generation, Parent: levels, ParentFitness: last.Best,
		RNG: rngState, Evaluations: last.Evaluations, Tokens: last.Tokens, History: h, Elapsed: last.Elapsed,
		Config: search.Config{Offspring: 16, Stages: []search.Stage{{Survivors: 4, Tokens: 512}, {Survivors: 1, Tokens: 8192}},
			Generations: last.Generation, InitTokens: 2048, Seed: 7, SeqLen: 256, PoolChunks: 512}}
	ck, err := search.EncodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(run, CheckpointFile), ck)
	var lg bytes.Buffer
	jl := search.NewJSONLogger(&lg)
	for _, r := range h {
		jl.Observe(search.Progress{Mode: p.Mode, Generation: r.Generation, Generations: last.Generation, Best: r.Best,
			Replaced: r.Replaced, Evaluations: r.Evaluations, Tokens: r.Tokens, Elapsed: r.Elapsed, ETA: -1})
	}
	writeFile(t, filepath.Join(run, LogFile), lg.Bytes())
	return run
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// keepDir returns where to copy reports for a human to look at (EVOPRESS_REPORT_KEEP), or "".
func keepDir(t *testing.T, name string) string {
	d := os.Getenv("EVOPRESS_REPORT_KEEP")
	if d == "" {
		return ""
	}
	return filepath.Join(d, name)
}

// checkReport checks the files Write reported: the Markdown mentions every image and the wanted
// strings, the HTML embeds every image, and every PNG decodes with a sane size.
func checkReport(t *testing.T, files *Files, want []string) {
	t.Helper()
	md, err := os.ReadFile(files.Markdown)
	if err != nil {
		t.Fatal(err)
	}
	htm, err := os.ReadFile(files.HTML)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !strings.Contains(string(md), w) {
			t.Errorf("report.md lacks %q", w)
		}
	}
	if len(files.Images) == 0 {
		t.Fatal("no images written")
	}
	embedded := regexp.MustCompile(`src="data:image/png;base64,([A-Za-z0-9+/=]+)"`).FindAllSubmatch(htm, -1)
	if len(embedded) != len(files.Images) {
		t.Errorf("report.html embeds %d images, want %d", len(embedded), len(files.Images))
	}
	if bytes.Contains(htm, []byte(`src="`+filepath.Base(files.Images[0]))) {
		t.Errorf("report.html links an image file instead of embedding it")
	}
	for i, img := range files.Images {
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(md), "]("+filepath.Base(img)+")") {
			t.Errorf("report.md does not show %s", filepath.Base(img))
		}
		if i < len(embedded) {
			dec, err := base64.StdEncoding.DecodeString(string(embedded[i][1]))
			if err != nil || !bytes.Equal(dec, data) {
				t.Errorf("image %d embedded in report.html differs from %s", i, img)
			}
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", img, err)
		}
		if cfg.Width < 600 || cfg.Width > 4000 || cfg.Height < 250 || cfg.Height > 3000 {
			t.Errorf("%s: %d×%d pixels, want a legible size", img, cfg.Width, cfg.Height)
		}
		if _, err := png.Decode(bytes.NewReader(data)); err != nil {
			t.Errorf("%s: %v", img, err)
		}
	}
	if k := os.Getenv("EVOPRESS_REPORT_KEEP"); k != "" {
		t.Logf("report in %s", filepath.Dir(files.Markdown))
	}
}

func TestWriteRunModes(t *testing.T) {
	tests := []struct {
		mode   string
		blocks int
		gens   int
		hi, lo float64
		want   []string
	}{
		{profile.ModeDrop, 12, 40, 0.8, 0.03, []string{"attention dropped in blocks: 3, 5, 9 (3 of 12)", "MLP dropped in blocks: 2, 7, 10 (3 of 12)"}},
		{profile.ModeSparse, 12, 25, 0.2, 0.1, []string{"sparsity (fraction of weights zero)", "/data/db-sparse", "sha256:feedface"}},
		{profile.ModeQuant, 24, 60, 0.5, 0.2, []string{"bits per weight (incl. scales/zeros)", "units per bit width — 2:", "sha256:beadfeed"}},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			h := synthHistory(tc.gens, tc.hi, tc.lo, uint64(tc.blocks))
			p := synthProfile(tc.mode, tc.blocks, tc.gens, h)
			dir := t.TempDir()
			run := writeRunFolder(t, dir, p, h)
			out := ""
			if k := keepDir(t, tc.mode); k != "" {
				out = k
			}
			files, err := WriteRun(run, "", out, false)
			if err != nil {
				t.Fatal(err)
			}
			if out == "" && filepath.Dir(files.Markdown) != run {
				t.Errorf("report written to %s, want the run folder %s", files.Markdown, run)
			}
			last := h[len(h)-1]
			want := append([]string{
				"sha256:0123456789abcdef", "embedded:pd-english/calib.txt", "512 chunks × 256 tokens = 131072 tokens",
				fmt.Sprintf("%.6g", last.Best), fmt.Sprintf("generations completed | %d of %d", tc.gens, tc.gens),
				fmt.Sprintf("%d", last.Evaluations), fmt.Sprintf("%d (", last.Tokens), "| seed | 7 |",
				"evopress search " + tc.mode, "--seed 7", "--stages 4:512,1:8192", "--calib-tokens 131072",
				"4:512,1:8192", "5000 of 9000 block forwards computed (44% saved)", "history from | `result.json`",
			}, tc.want...)
			checkReport(t, files, want)
			if len(files.Images) != 3 {
				t.Errorf("%d images, want 3 (fitness by generation, by tokens, profile): %v", len(files.Images), files.Images)
			}
		})
	}
}

func TestWriteComparison(t *testing.T) {
	nan := math.NaN()
	results := []MethodResult{
		{Method: "dense", Mode: "dense", PPL: 21.37, KL: 0, Seconds: 0, Note: "128 × 256 tokens of held-out text"},
		{Method: "EvoPress", Mode: "drop", Budget: "25%", Target: 0.25, PPL: 48.2, KL: 0.41, Seconds: 95},
		{Method: "ShortGPT", Mode: "drop", Budget: "25%", Target: 0.25, PPL: 171.9, KL: 1.2, Seconds: 2},
		{Method: "window cosine", Mode: "drop", Budget: "25%", Target: 0.25, PPL: 96.4, KL: 0.9, Seconds: 2},
		{Method: "Shortened-LLaMA", Mode: "drop", Budget: "25%", Target: 0.25, PPL: 80.1, KL: nan, Seconds: 3},
		{Method: "uniform", Mode: "sparse", Budget: "50%", Target: 0.5, PPL: 35.5, KL: 0.3, Seconds: 40},
		{Method: "EvoPress", Mode: "sparse", Budget: "50%", Target: 0.5, PPL: 31.25, KL: 0.22, Seconds: 120},
		{Method: "uniform", Mode: "quant", Budget: "3 bits", Target: 3, PPL: 29.9, KL: 0.2, Seconds: 30},
		{Method: "EvoPress", Mode: "quant", Budget: "3 bits", Target: 3, PPL: 26.02, KL: 0.15, Seconds: 110},
	}
	hd := synthHistory(20, 0.6, 0.1, 1)
	hs := synthHistory(15, 0.3, 0.1, 2)
	hq := synthHistory(15, 0.4, 0.15, 3)
	runs := []*Run{
		{Name: "depth pruning 25%", Profile: synthProfile(profile.ModeDrop, 12, 20, hd), History: hd},
		{Name: "sparsity 50%", Profile: synthProfile(profile.ModeSparse, 12, 15, hs), History: hs},
		{Name: "3-bit quantization", Profile: synthProfile(profile.ModeQuant, 12, 15, hq), History: hq},
	}
	dir := t.TempDir()
	if k := keepDir(t, "demo"); k != "" {
		dir = k
	}
	files, err := Write(dir, Input{Title: "EvoPress demo", Notes: []string{"Perplexity on a subsample: 128 sequences of 256 tokens."}, Results: results, Runs: runs})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, files, []string{"# EvoPress demo", "| drop | 25% | ShortGPT | 171.9 |", "| dense |  | dense | 21.37 | 0.0000 |",
		"| sparse | 50% | EvoPress | 31.25 | 0.2200 | 2m0s |", "| drop | 25% | Shortened-LLaMA | 80.10 | — |", "128 × 256 tokens",
		"## Run: depth pruning 25%", "## Run: 3-bit quantization"})
	if want := 1 + 3*3; len(files.Images) != want {
		t.Errorf("%d images, want %d", len(files.Images), want)
	}
	names := map[string]bool{}
	for _, f := range files.Images {
		names[filepath.Base(f)] = true
	}
	for _, n := range []string{"methods-ppl.png", "depth-pruning-25-profile.png", "sparsity-50-fitness-tokens.png", "3-bit-quantization-fitness-generation.png"} {
		if !names[n] {
			t.Errorf("no image %s among %v", n, files.Images)
		}
	}
}

// TestLoadRunFallbacks checks that an unfinished run (checkpoint only) and a log-only run folder
// are reported, and a missing profile is replaced by the run's levels.
func TestLoadRunFallbacks(t *testing.T) {
	h := synthHistory(10, 0.5, 0.1, 4)
	tests := []struct {
		name       string
		remove     []string
		keepProf   bool
		source     string
		wantLevels bool
		wantNote   string
	}{
		{"finished", nil, true, ResultFile, true, ""},
		{"in progress", []string{ResultFile}, true, CheckpointFile, true, "not finished"},
		{"log only", []string{ResultFile, CheckpointFile}, true, LogFile, true, "history comes from log.jsonl"},
		{"no profile", []string{"profile"}, false, ResultFile, true, "No profile file"},
		{"checkpoint, no profile", []string{"profile", ResultFile}, false, CheckpointFile, true, "No profile file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := synthProfile(profile.ModeDrop, 8, 10, h)
			run := writeRunFolder(t, t.TempDir(), p, h)
			for _, f := range tc.remove {
				path := filepath.Join(run, f)
				if f == "profile" {
					path = DefaultProfilePath(run)
				}
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			}
			r, err := LoadRun(run, "")
			if err != nil {
				t.Fatal(err)
			}
			if r.HistorySource != tc.source {
				t.Errorf("history from %q, want %q", r.HistorySource, tc.source)
			}
			if len(r.History) != len(h) {
				t.Errorf("%d records, want %d", len(r.History), len(h))
			}
			for i := range h {
				if i < len(r.History) && (r.History[i].Generation != h[i].Generation || math.Abs(r.History[i].Best-h[i].Best) > 1e-12 ||
					r.History[i].Tokens != h[i].Tokens || r.History[i].Replaced != h[i].Replaced) {
					t.Errorf("record %d = %+v, want %+v", i, r.History[i], h[i])
				}
			}
			if (r.ProfilePath != "") != tc.keepProf {
				t.Errorf("profile path %q", r.ProfilePath)
			}
			if len(r.Profile.Levels) != len(p.Levels) || r.Profile.Levels["model.layers.3.self_attn"] != 1 {
				t.Errorf("levels %v, want %v", r.Profile.Levels, p.Levels)
			}
			if tc.wantNote != "" && !strings.Contains(strings.Join(r.Notes, " "), tc.wantNote) {
				t.Errorf("notes %q lack %q", r.Notes, tc.wantNote)
			}
			if _, err := Write(t.TempDir(), Input{Runs: []*Run{r}}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLoadRunErrors(t *testing.T) {
	h := synthHistory(5, 0.5, 0.1, 5)
	tests := []struct {
		name    string
		prepare func(t *testing.T, run string) (dir, prof string)
		want    string
	}{
		{"missing folder", func(t *testing.T, run string) (string, string) { return run + "-nope", "" }, "no such file"},
		{"file, not folder", func(t *testing.T, run string) (string, string) {
			return filepath.Join(run, ResultFile), ""
		}, "not a directory"},
		{"empty folder", func(t *testing.T, run string) (string, string) {
			d := filepath.Join(t.TempDir(), "x.run")
			os.Mkdir(d, 0o755)
			return d, ""
		}, "not a run folder"},
		{"truncated result", func(t *testing.T, run string) (string, string) {
			writeFile(t, filepath.Join(run, ResultFile), []byte(`{"mode": "drop", "units": [`))
			return run, ""
		}, "result.json"},
		{"result without units", func(t *testing.T, run string) (string, string) {
			writeFile(t, filepath.Join(run, ResultFile), []byte(`{"mode": "drop", "units": [], "profile": []}`))
			return run, ""
		}, `result.json: field "units": missing`},
		{"result history out of order", func(t *testing.T, run string) (string, string) {
			writeFile(t, filepath.Join(run, ResultFile), []byte(`{"mode": "drop", "units": ["a"], "profile": [0], "history": [{"generation": 1}, {"generation": 0}]}`))
			return run, ""
		}, `field "history"`},
		{"bad checkpoint", func(t *testing.T, run string) (string, string) {
			writeFile(t, filepath.Join(run, CheckpointFile), []byte(`{"format": "other"}`))
			return run, ""
		}, "checkpoint.json"},
		{"bad log line", func(t *testing.T, run string) (string, string) {
			os.Remove(filepath.Join(run, ResultFile))
			os.Remove(filepath.Join(run, CheckpointFile))
			writeFile(t, filepath.Join(run, LogFile), []byte("{\"msg\":\"generation\",\"generation\":0,\"best\":0.5}\nnot json\n"))
			return run, ""
		}, "log.jsonl:2:"},
		{"bad profile", func(t *testing.T, run string) (string, string) {
			p := filepath.Join(t.TempDir(), "p.json")
			writeFile(t, p, []byte(`{"format": "evopress-profile/v1", "mode": "drop"}`))
			return run, p
		}, `missing required field "levels"`},
		{"missing explicit profile", func(t *testing.T, run string) (string, string) {
			return run, filepath.Join(run, "nope.json")
		}, "nope.json"},
		{"mode mismatch", func(t *testing.T, run string) (string, string) {
			p := filepath.Join(t.TempDir(), "p.json")
			writeFile(t, p, []byte(`{"format": "evopress-profile/v1", "mode": "quant", "levels": {"x": 3}}`))
			return run, p
		}, "is a quant profile but run folder"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run := writeRunFolder(t, t.TempDir(), synthProfile(profile.ModeDrop, 4, 5, h), h)
			dir, prof := tc.prepare(t, run)
			_, err := WriteRun(dir, prof, t.TempDir(), false)
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestWriteRejectsEmpty(t *testing.T) {
	if _, err := Write(t.TempDir(), Input{}); err == nil {
		t.Error("Write with nothing to report: no error")
	}
	if _, err := Write(t.TempDir(), Input{Runs: []*Run{{Name: "x"}}}); err == nil {
		t.Error("Write with an empty run: no error")
	}
}

func TestRecordedCommand(t *testing.T) {
	h := synthHistory(3, 0.5, 0.1, 6)
	tests := []struct {
		command any
		want    string
	}{
		{"evopress search drop --target 0.25 --out p.json", "evopress search drop --target 0.25 --out p.json"},
		{[]any{"evopress", "search", "drop", "--calib", "my file.txt"}, "evopress search drop --calib 'my file.txt'"},
	}
	for _, tc := range tests {
		p := synthProfile(profile.ModeDrop, 4, 3, h)
		b, _ := json.Marshal(tc.command)
		if err := json.Unmarshal(b, &p.Search.Command); err != nil {
			t.Fatal(err)
		}
		files, err := Write(t.TempDir(), Input{Runs: []*Run{{Profile: p, History: h}}})
		if err != nil {
			t.Fatal(err)
		}
		md, _ := os.ReadFile(files.Markdown)
		if !strings.Contains(string(md), "The command that made this run:\n\n```\n"+tc.want+"\n```") {
			t.Errorf("report lacks the command %q:\n%s", tc.want, md)
		}
	}
}

func TestMarkdownEscaping(t *testing.T) {
	tests := []struct{ in, md, html string }{
		{"a_b *c* `x_y`", `a\_b \*c\* ` + "`x_y`", "a_b *c* <code>x_y</code>"},
		{"<b> | [l]", `&lt;b&gt; | \[l\]`, "&lt;b&gt; | [l]"},
		{"unclosed `code", `unclosed ` + "`code", "unclosed `code"},
	}
	for _, tc := range tests {
		if got := mdInline(tc.in); got != tc.md {
			t.Errorf("mdInline(%q) = %q, want %q", tc.in, got, tc.md)
		}
		if got := htmlInline(tc.in); got != tc.html {
			t.Errorf("htmlInline(%q) = %q, want %q", tc.in, got, tc.html)
		}
	}
}

func TestHumanCount(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{{0, "0"}, {12, "12"}, {1500, "1.5k"}, {131072, "131.1k"}, {2_000_000, "2M"}, {1_234_567, "1.23M"}, {3.5e9, "3.5G"}}
	for _, tc := range tests {
		if got := humanCount(tc.in); got != tc.want {
			t.Errorf("humanCount(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLogTicks(t *testing.T) {
	tests := []struct {
		min, max float64
		labels   []string
	}{
		{0.03, 0.8, []string{"0.05", "0.1", "0.2", "0.5"}},
		{0.011, 0.019, []string{"0.011", "0.019"}},
	}
	for _, tc := range tests {
		var got []string
		for _, tk := range (logTicks{}).Ticks(tc.min, tc.max) {
			if tk.Label != "" {
				got = append(got, tk.Label)
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.labels, " ") {
			t.Errorf("logTicks(%v, %v) labels %v, want %v", tc.min, tc.max, got, tc.labels)
		}
	}
}

// TestOddProfiles checks profiles a search does not write but a user may hand in: levels
// without values, partial coverage, units outside the blocks, sparse block numbers, many blocks.
func TestOddProfiles(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		levels map[string]int
		want   []string
	}{
		{"quant levels only, 40 blocks", profile.ModeQuant, func() map[string]int {
			m := map[string]int{}
			for b := range 40 {
				for i, pr := range projNames {
					m[fmt.Sprintf("model.layers.%d.%s", b, pr)] = 2 + (b+i)%3
				}
			}
			return m
		}(), []string{"bits (codes only)", "units per bit width — 2: 94, 3: 93, 4: 93"}},
		{"sparse levels only, partial", profile.ModeSparse, map[string]int{
			"model.layers.0.self_attn.q_proj": 3, "model.layers.2.mlp.up_proj": 5, "lm_head": 2,
		}, []string{"database level", "| 1 | — | — |", "`lm_head`: level 2"}},
		{"sparse block numbers", profile.ModeDrop, map[string]int{
			"model.layers.0.mlp": 1, "model.layers.1000000.self_attn": 1, "model.layers.7.self_attn": 0,
		}, []string{"attention dropped in blocks: 1000000 (1 of 3)", "MLP dropped in blocks: 0 (1 of 3)"}},
		{"other architecture names", profile.ModeSparse, map[string]int{
			"transformer.h.layers.0.attn.c_attn": 2, "transformer.h.layers.1.attn.c_attn": 4,
		}, []string{"| block | attn.c\\_attn |", "| 1 | 4 |"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := profile.New(tc.mode)
			p.Levels = tc.levels
			dir := t.TempDir()
			if k := keepDir(t, "odd-"+tc.mode); k != "" {
				dir = k
			}
			files, err := Write(dir, Input{Runs: []*Run{{Profile: p}}})
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, files, tc.want)
		})
	}
}

// A GGUF database's profile (levels are ggml type ids) shows each layer's type: in the heat map's
// cells (its title says so), and with the bits per weight in the table; types of one size (q4_0,
// iq4_nl) stay apart.
func TestGGUFProfileTypes(t *testing.T) {
	p := profile.New(profile.ModeQuant)
	p.Target = 3.5
	p.Values = map[string]float64{}
	p.Search = &profile.Record{FileBytes: 123456}
	types := []ggml.Type{ggml.Q2_K, ggml.Q4_0, ggml.IQ4_NL, ggml.Q8_0}
	for b := range 2 {
		for i, pr := range projNames {
			u := fmt.Sprintf("model.layers.%d.%s", b, pr)
			ty := types[(b+i)%len(types)]
			p.Levels[u] = int(ty)
			p.Values[u] = ty.BitsPerWeight()
		}
	}
	dir := t.TempDir()
	if k := keepDir(t, "gguf"); k != "" {
		dir = k
	}
	files, err := Write(dir, Input{Runs: []*Run{{Profile: p}}})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, files, []string{
		"ggml type per layer over blocks × projections", "GGUF type and bits per weight (incl. scales/zeros) by block",
		"| 0 | q2\\_K 2.62 | q4\\_0 4.50 | iq4\\_nl 4.50 | q8\\_0 8.50 | q2\\_K 2.62 | q4\\_0 4.50 | iq4\\_nl 4.50 |",
		"| 1 | q4\\_0 4.50 | iq4\\_nl 4.50 | q8\\_0 8.50 | q2\\_K 2.62 |",
		"units per ggml type — q4\\_0: 4, q8\\_0: 3, q2\\_K: 3, iq4\\_nl: 4",
	})
	g := newGrid(p, projections, func(string) float64 { return 0 })
	for r, row := range g.units {
		for c, u := range row {
			if want := fmt.Sprintf("model.layers.%d.%s", g.blocks[c], g.rowUnits[r]); u != want {
				t.Errorf("cell (%d, %d) is unit %q, want %q", r, c, u, want)
			}
		}
	}
}
