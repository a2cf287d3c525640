package export

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	evgguf "github.com/evopress/evopress/gguf"
	"github.com/evopress/evopress/imatrix"
	"github.com/evopress/evopress/internal/llamacpptest"
	"github.com/evopress/evopress/profile"
)

// sharedData is the shared text data, relative to this package.
const sharedData = "../../shared/data/pd-english"

func runTool(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		if len(out) > 3000 {
			out = out[len(out)-3000:]
		}
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

// sameTensors checks that the GGUF files got (evopress's) and want (llama-quantize's) hold the
// same tensors — names, dimensions, types and bytes — and the same general.file_type.
func sameTensors(t *testing.T, got, want string) {
	t.Helper()
	g, err := evgguf.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w, err := evgguf.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	gft, _ := g.Lookup("general.file_type")
	wft, _ := w.Lookup("general.file_type")
	if gft != wft {
		t.Errorf("general.file_type %v, llama-quantize's %v", gft, wft)
	}
	if len(g.Tensors) != len(w.Tensors) {
		t.Errorf("%d tensors, llama-quantize's file %d", len(g.Tensors), len(w.Tensors))
	}
	bad := 0
	for i := range w.Tensors {
		wt := &w.Tensors[i]
		gt, ok := g.Tensor(wt.Name)
		if !ok {
			t.Errorf("%s missing", wt.Name)
			continue
		}
		if gt.Type != wt.Type || fmt.Sprint(gt.Dims) != fmt.Sprint(wt.Dims) {
			t.Errorf("%s: %v %v, llama-quantize's %v %v", wt.Name, gt.Type, gt.Dims, wt.Type, wt.Dims)
			continue
		}
		gb, err := g.ReadTensor(gt)
		if err != nil {
			t.Fatal(err)
		}
		wb, err := w.ReadTensor(wt)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gb, wb) {
			n := 0
			for j := range gb {
				if gb[j] != wb[j] {
					n++
				}
			}
			if bad++; bad <= 5 {
				t.Errorf("%s (%v): %d of %d bytes differ from llama-quantize's", wt.Name, wt.Type, n, len(wb))
			}
		}
	}
}

var finalPPL = regexp.MustCompile(`Final estimate: PPL = ([0-9.]+)`)

// perplexity runs llama-perplexity on a GGUF file over the first chunks of a text and returns
// its final estimate. llama.cpp logs from a thread of its own, whose last lines a process
// sometimes loses at exit when its output is a pipe: the run is repeated (three times at most)
// until the estimate is there.
func perplexity(t *testing.T, bin, model, text string) float64 {
	t.Helper()
	var out []byte
	var m [][]byte
	for try := 0; try < 3 && m == nil; try++ {
		out = runTool(t, filepath.Join(bin, "llama-perplexity"), "-m", model, "-f", text, "-c", "128", "--chunks", "6", "-t", "2", "-b", "128")
		m = finalPPL.FindSubmatch(out)
	}
	if m == nil {
		t.Fatalf("no final estimate in llama-perplexity's output:\n%s", out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 1 {
		t.Fatalf("llama-perplexity on %s: PPL %q", model, m[1])
	}
	return v
}

// TestLlamaQuantizeIdentical: for the same model (evopress's F32 export given to llama-quantize)
// and importance matrix (llama-imatrix's), evopress's GGUF export with Type (one type, as
// llama-quantize --pure), with FileType (llama.cpp's mixes), with the token-embedding and
// output-tensor overrides, and of a profile with dropped blocks, holds exactly llama-quantize's
// tensors; llama-perplexity runs on evopress's files and gives the same perplexity.
func TestLlamaQuantizeIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("runs llama.cpp's tools (-short)")
	}
	bin := llamacpptest.Bin(t)
	calib := filepath.Join(sharedData, "calib.txt")
	eval := filepath.Join(sharedData, "eval.txt")
	if _, err := os.Stat(calib); err != nil {
		t.Skipf("no calibration text at %s", calib)
	}
	type tcase struct {
		typ, ftype, tokEmb, output string
		imatrix, drop, ppl         bool
	}
	var pd []tcase
	for _, typ := range []string{"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs", "bf16"} {
		pd = append(pd, tcase{typ: typ, ppl: typ == "q4_k"})
	}
	for _, typ := range []string{"q4_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"} {
		pd = append(pd, tcase{typ: typ, imatrix: true})
	}
	for _, ft := range []string{"Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K"} {
		pd = append(pd, tcase{ftype: ft, ppl: ft == "Q4_K_M"})
	}
	pd = append(pd, tcase{ftype: "Q3_K_M", imatrix: true}, tcase{ftype: "Q2_K_S", imatrix: true}, tcase{ftype: "Q4_0", imatrix: true},
		tcase{typ: "q4_k", tokEmb: "q8_0", output: "q2_k", imatrix: true}, tcase{ftype: "Q4_K_S", tokEmb: "q6_k", output: "q5_0"},
		tcase{ftype: "Q4_K_M", drop: true, imatrix: true})
	baby := []tcase{{typ: "q4_k"}, {typ: "q2_k", imatrix: true}, {ftype: "Q2_K"}, {ftype: "Q3_K_M"}, {ftype: "Q4_K_M", imatrix: true},
		{ftype: "Q6_K"}, {ftype: "Q4_0", imatrix: true}, {ftype: "Q5_K_S", drop: true}}

	for _, mc := range []struct {
		name  string
		cases []tcase
	}{{"llama-pd-11m", pd}, {"babyllama-1m", baby}} {
		t.Run(mc.name, func(t *testing.T) {
			dir := modelDir(t, mc.name)
			tmp := t.TempDir()
			src := filepath.Join(tmp, "f32.gguf")
			if _, err := Run(Options{ModelDir: dir, Format: FormatGGUF, Type: "f32", Out: src}); err != nil {
				t.Fatal(err)
			}
			// llama-imatrix's importance matrix for llama-pd-11m; for babyllama-1m, whose vocabulary
			// without byte fallback makes llama.cpp's tokenizer abort on the text, random values
			// in the legacy format.
			im := filepath.Join(tmp, "imatrix.gguf")
			if mc.name == "llama-pd-11m" {
				runTool(t, filepath.Join(bin, "llama-imatrix"), "-m", src, "-f", calib, "-o", im, "-c", "128", "--chunks", "8", "-t", "2", "--no-ppl")
			} else {
				im = filepath.Join(tmp, "imatrix.dat")
				randomImatrix(t, src, im)
			}
			// A profile dropping blocks (both sub-blocks of block 1, the MLP of block 2), and
			// llama-quantize's input for it: evopress's F32 export of that profile.
			cfgBlocks := map[string]int{"llama-pd-11m": 12, "babyllama-1m": 5}[mc.name]
			dp := profile.New(profile.ModeDrop)
			for i := range cfgBlocks {
				dp.Levels[fmt.Sprintf("model.layers.%d.self_attn", i)] = 0
				dp.Levels[fmt.Sprintf("model.layers.%d.mlp", i)] = 0
			}
			dp.Levels["model.layers.1.self_attn"], dp.Levels["model.layers.1.mlp"], dp.Levels["model.layers.2.mlp"] = 1, 1, 1
			dropSrc := filepath.Join(tmp, "drop-f32.gguf")
			dres, err := Run(Options{ModelDir: dir, Profile: dp, Format: FormatGGUF, Type: "f32", Out: dropSrc})
			if err != nil {
				t.Fatal(err)
			}
			// llama-quantize reads the importance matrix by the output's block numbers;
			// evopress by the source blocks.
			dropIm := filepath.Join(tmp, "drop-"+filepath.Base(im))
			renumberImatrix(t, im, dropIm, dres.BlockMap)
			for _, tc := range mc.cases {
				name := tc.typ + tc.ftype
				if tc.tokEmb != "" {
					name += "+overrides"
				}
				if tc.imatrix {
					name += "+imatrix"
				}
				if tc.drop {
					name += "+drop"
				}
				t.Run(name, func(t *testing.T) {
					o := Options{ModelDir: dir, Format: FormatGGUF, Type: tc.typ, FileType: tc.ftype,
						TokenEmbeddingType: tc.tokEmb, OutputTensorType: tc.output, Out: filepath.Join(tmp, name+".gguf")}
					in, refIm := src, im
					if tc.drop {
						o.Profile, in, refIm = dp, dropSrc, dropIm
					}
					var args []string
					if tc.typ != "" {
						args = append(args, "--pure")
					}
					if tc.imatrix {
						o.Imatrix = im
						args = append(args, "--imatrix", refIm)
					}
					if tc.tokEmb != "" {
						args = append(args, "--token-embedding-type", tc.tokEmb, "--output-tensor-type", tc.output)
					}
					ref := filepath.Join(tmp, name+".ref.gguf")
					runTool(t, filepath.Join(bin, "llama-quantize"), append(args, in, ref, tc.typ+tc.ftype, "2")...)
					res, err := Run(o)
					if err != nil {
						t.Fatal(err)
					}
					sameTensors(t, o.Out, ref)
					if tc.ppl {
						text, err := os.ReadFile(eval)
						if err != nil {
							t.Skipf("no evaluation text: %v", err)
						}
						short := filepath.Join(tmp, "eval.txt") // 6 chunks of 128 tokens need little of it
						if err := os.WriteFile(short, text[:min(len(text), 16<<10)], 0o644); err != nil {
							t.Fatal(err)
						}
						got, want := perplexity(t, bin, o.Out, short), perplexity(t, bin, ref, short)
						if got != want {
							t.Errorf("llama-perplexity: %v on evopress's file, %v on llama-quantize's", got, want)
						}
						t.Logf("%s: %d bytes, %v, llama-perplexity %.4f", name, res.Bytes, res.TensorTypes, got)
					}
					os.Remove(o.Out)
					os.Remove(ref)
				})
			}
		})
	}
}

// randomImatrix writes an importance matrix of random positive values for every block weight
// matrix of the GGUF model at src, in llama-imatrix's legacy format.
func randomImatrix(t *testing.T, src, path string) {
	t.Helper()
	f, err := evgguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(3, 5))
	m := imatrix.New()
	m.Datasets, m.ChunkCount, m.ChunkSize = []string{"random"}, 4, 128
	for _, x := range f.Tensors {
		if !strings.HasPrefix(x.Name, "blk.") || len(x.Dims) != 2 {
			continue
		}
		e := &imatrix.Entry{Sums: make([]float32, x.Dims[0]), Counts: []int64{512}}
		for i := range e.Sums {
			e.Sums[i] = float32(512 * rng.ExpFloat64())
		}
		m.Entries[x.Name] = e
	}
	if err := imatrix.Write(path, m, imatrix.FormatDat); err != nil {
		t.Fatal(err)
	}
}

// renumberImatrix writes the importance matrix in with its block entries renamed for a model
// whose block i is the source block blockMap[i] (the others' entries left out).
func renumberImatrix(t *testing.T, in, out string, blockMap []int) {
	t.Helper()
	m, format, err := imatrix.Read(in)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Clone()
	r.Entries = map[string]*imatrix.Entry{}
	for i, b := range blockMap {
		for name, e := range m.Entries {
			if rest, ok := strings.CutPrefix(name, fmt.Sprintf("blk.%d.", b)); ok {
				r.Entries[fmt.Sprintf("blk.%d.%s", i, rest)] = e
			}
		}
	}
	if err := imatrix.Write(out, r, format); err != nil {
		t.Fatal(err)
	}
}
