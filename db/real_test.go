//go:build realdb

package db

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evopress/evopress/calib"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/eval"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/tokenizer"
)

// realSpec is one database of the real-model experiment.
type realSpec struct {
	name, mode, method string
	target             float64
	levels             int
	bits               []int
	evalLevels         []int // uniform profiles evaluated (sparse: 0; quant: bits)
	sequential         bool
	values             string // sparse value rounding
}

func realSpecs() []realSpec {
	var s []realSpec
	for _, t := range []float64{0.5, 0.6, 0.7} {
		pct := int(t*100 + 0.5)
		s = append(s,
			realSpec{name: fmt.Sprintf("sparsegpt-%d", pct), mode: ModeSparse, method: MethodSparseGPT, target: t, levels: 8, evalLevels: []int{0}},
			realSpec{name: fmt.Sprintf("wanda-%d", pct), mode: ModeSparse, method: MethodWanda, target: t, levels: 0, evalLevels: []int{0}},
			realSpec{name: fmt.Sprintf("magnitude-%d", pct), mode: ModeSparse, method: MethodMagnitude, target: t, levels: 0, evalLevels: []int{0}})
	}
	s = append(s, realSpec{name: "sparsegpt-50-f16", mode: ModeSparse, method: MethodSparseGPT, target: 0.5, levels: 8, evalLevels: []int{0}, values: "f16"})
	return append(s,
		realSpec{name: "gptq", mode: ModeQuant, method: MethodGPTQ, bits: []int{2, 3, 4, 5, 6, 7, 8}, evalLevels: []int{2, 3, 4, 8}},
		realSpec{name: "gptq-sequential", mode: ModeQuant, method: MethodGPTQ, bits: []int{2, 3, 4, 5, 6, 7, 8}, evalLevels: []int{2, 3, 4, 8}, sequential: true},
		realSpec{name: "rtn", mode: ModeQuant, method: MethodRTN, bits: []int{2, 3, 4, 8}, evalLevels: []int{2, 3, 4, 8}})
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// TestRealDatabases builds the level databases of the shared models on the pd-english
// calibration text and measures the perplexity of their uniform profiles. It is an experiment
// run by hand (tens of minutes on 2 cores), not a unit test, so it is built only with the
// realdb tag:
//
//	EVOPRESS_DB_REAL=/tmp/dbs go test -tags realdb ./db -run TestRealDatabases -v -timeout 6h
//
// Databases go to $EVOPRESS_DB_REAL/<model>/<name> (an existing finished one is reused, so the
// build time is only measured when it is built); the Markdown tables go to
// $EVOPRESS_DB_REAL/<model>.md. EVOPRESS_DB_REAL_MODELS picks models ("babyllama-1m:512,
// llama-pd-11m:96": name:evaluation sequences per dataset) and EVOPRESS_DB_REAL_ONLY a
// comma-separated subset of the database names.
func TestRealDatabases(t *testing.T) {
	root := os.Getenv("EVOPRESS_DB_REAL")
	if root == "" {
		t.Skip("an experiment run by hand: set EVOPRESS_DB_REAL=DIR")
	}
	shared := filepath.Join("..", "..", "shared")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("%s is absent", shared)
	}
	modelsSpec := os.Getenv("EVOPRESS_DB_REAL_MODELS")
	if modelsSpec == "" {
		modelsSpec = "babyllama-1m:512,llama-pd-11m:96"
	}
	only := map[string]bool{}
	for _, n := range strings.Split(os.Getenv("EVOPRESS_DB_REAL_ONLY"), ",") {
		if n != "" {
			only[n] = true
		}
	}
	for _, ms := range strings.Split(modelsSpec, ",") {
		name, seqStr, _ := strings.Cut(ms, ":")
		maxSeqs, _ := strconv.Atoi(seqStr)
		t.Run(name, func(t *testing.T) {
			realModel(t, shared, root, name, maxSeqs, only)
		})
	}
}

func realModel(t *testing.T, shared, root, name string, maxSeqs int, only map[string]bool) {
	dir := filepath.Join(shared, "models", name)
	m, fp, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	calibPath := filepath.Join(shared, "data", "pd-english", "calib.txt")
	text, err := data.ReadText(calibPath, data.Raw)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode(text, false)
	chunks, _ := data.Chunks(ids, 256, 0)
	seqs := calib.Sample(chunks, 512, 0)
	sum := sha256.Sum256([]byte(text))

	type evalSet struct {
		name   string
		chunks [][]int
	}
	var sets []evalSet
	for _, e := range []struct{ name, path, format string }{
		{"pd-eval", "pd-english/eval.txt", "raw"},
		{"wikitext", "wikitext-2-raw/wiki.test.raw", "wikitext"},
	} {
		txt, err := data.ReadText(filepath.Join(shared, "data", e.path), data.Format(e.format))
		if err != nil {
			t.Fatal(err)
		}
		c, _ := data.Chunks(tok.Encode(txt, false), 256, maxSeqs)
		sets = append(sets, evalSet{e.name, c})
	}
	ppl := func(mm *model.Model) []float64 {
		var out []float64
		for _, s := range sets {
			r, err := eval.Perplexity(context.Background(), mm, s.chunks, 16, nil)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r.PPL)
		}
		return out
	}
	var md strings.Builder
	fmt.Fprintf(&md, "### %s\n\nCalibration: pd-english calib.txt, 512 sequences × 256 tokens (seed 0) of %d. "+
		"Perplexity at seq-len 256 on the first %d sequences of pd-english eval.txt (raw) and of WikiText-2 test (wikitext format).\n\n",
		name, len(ids), maxSeqs)
	dense := ppl(m)
	fmt.Fprintf(&md, "| database | uniform level | pd-eval ppl | wikitext ppl | bits/weight | bytes/weight on disk (fp16 dense: 2) |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(&md, "| dense | — | %.3f | %.3f | 16 (fp16) | 2 |\n", dense[0], dense[1])
	t.Logf("%s dense: %.3f %.3f", name, dense[0], dense[1])
	var build strings.Builder
	fmt.Fprintf(&build, "| database | levels per layer | build wall s | build CPU s | compress s | size MB | bytes/weight, all levels | bytes/weight per level: min–max |\n|---|---|---|---|---|---|---|---|\n")
	for _, sp := range realSpecs() {
		if len(only) > 0 && !only[sp.name] {
			continue
		}
		out := filepath.Join(root, name, sp.name)
		cfg := BuildConfig{Out: out, Model: m, ModelInfo: ModelInfo{Path: dir, Fingerprint: fp, DType: m.Config.TorchDtype},
			Calib: seqs, Calibration: CalibInfo{Source: calibPath, SHA256: hex.EncodeToString(sum[:]), FileTokens: len(ids), Seed: 0},
			Mode: sp.mode, Method: sp.method, Sequential: sp.sequential}
		if sp.mode == ModeSparse {
			cfg.Sparse = DefaultSparseParams(sp.target)
			cfg.Sparse.Levels = sp.levels
			cfg.Sparse.Values = sp.values
		} else {
			cfg.Quant = DefaultQuantParams()
			cfg.Quant.Bits = sp.bits
			if sp.sequential {
				cfg.SequentialLevel = 3
			}
		}
		cpu0, t0 := cpuSeconds(), time.Now()
		res, err := Build(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		wall, cpu := time.Since(t0).Seconds(), cpuSeconds()-cpu0
		d, err := Open(out)
		if err != nil {
			t.Fatal(err)
		}
		nLevels := len(d.Manifest().Layers[0].Levels)
		minB, maxB := 1e9, 0.0
		perLevel := map[int][2]float64{}
		for _, l := range d.Manifest().Layers {
			for _, v := range l.Levels {
				a := perLevel[v.Level]
				perLevel[v.Level] = [2]float64{a[0] + float64(v.Bytes), a[1] + float64(l.Numel)}
			}
		}
		for _, a := range perLevel {
			minB, maxB = min(minB, a[0]/a[1]), max(maxB, a[0]/a[1])
		}
		timing := fmt.Sprintf("%.1f | %.1f | %.1f", wall, cpu, res.CompressSeconds)
		if len(res.Computed) == 0 {
			timing = "(reused) | | "
		}
		fmt.Fprintf(&build, "| %s | %d | %s | %.1f | %.3f | %.3f–%.3f |\n", sp.name, nLevels, timing,
			float64(res.Bytes)/1e6, float64(res.Bytes)/float64(res.Weights)/float64(nLevels), minB, maxB)
		for _, lv := range sp.evalLevels {
			p, err := UniformProfile(d, lv)
			if err != nil {
				t.Fatal(err)
			}
			c, _, err := ApplyProfile(m, fp, p, d)
			if err != nil {
				t.Fatal(err)
			}
			r := ppl(c)
			a := perLevel[lv]
			var bits float64
			for _, l := range d.Manifest().Layers {
				for _, v := range l.Levels {
					if v.Level == lv {
						bits += v.Bits * float64(l.Numel)
					}
				}
			}
			label := fmt.Sprintf("%d", lv)
			if sp.mode == ModeSparse {
				label = fmt.Sprintf("0 (%.0f%%)", sp.target*100)
			} else {
				label += " bits"
			}
			fmt.Fprintf(&md, "| %s | %s | %.3f | %.3f | %.3f | %.3f |\n", sp.name, label, r[0], r[1], bits/a[1], a[0]/a[1])
			t.Logf("%s %s level %d: ppl %.3f %.3f", name, sp.name, lv, r[0], r[1])
		}
	}
	md.WriteString("\n" + build.String())
	if err := os.WriteFile(filepath.Join(root, name+".md"), []byte(md.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + md.String())
}
