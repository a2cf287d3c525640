package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/evopress/evopress/eval"
	"github.com/evopress/evopress/eval/llamacpp"
	"github.com/evopress/evopress/export"
	"github.com/evopress/evopress/profile"
)

const llamacppTestdata = "../eval/llamacpp/testdata"

func TestPPLLlamaCppRequestErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "old.bin")
	if err := os.WriteFile(existing, []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(llamacppTestdata, "babyllama-1m.kld-base.bin")
	out := filepath.Join(dir, "base.bin")
	for _, tc := range []struct {
		name  string
		req   PPLRequest
		field string
	}{
		{"unknown protocol", PPLRequest{Protocol: "hf"}, "Protocol"},
		{"base file under evopress's protocol", PPLRequest{Protocol: eval.ProtocolEvopress, KLDBase: base}, "Protocol"},
		{"saving under evopress's protocol", PPLRequest{Protocol: eval.ProtocolEvopress, SaveKLDBase: out}, "Protocol"},
		{"seq-len 2", PPLRequest{Protocol: eval.ProtocolLlamaCpp, SeqLen: 2}, "SeqLen"},
		{"negative chunks", PPLRequest{Protocol: eval.ProtocolLlamaCpp, MaxSeqs: -1}, "MaxSeqs"},
		{"evopress's KL", PPLRequest{Protocol: eval.ProtocolLlamaCpp, KL: true}, "KL"},
		{"read and write", PPLRequest{KLDBase: base, SaveKLDBase: out}, "SaveKLDBase"},
		{"base file and text", PPLRequest{KLDBase: base, DataFile: "x.txt"}, "DataFile"},
		{"base file and wikitext", PPLRequest{KLDBase: base, Format: "wikitext"}, "Format"},
		{"existing output", PPLRequest{SaveKLDBase: existing}, "Force"},
		{"directory output", PPLRequest{SaveKLDBase: dir, Force: true}, "SaveKLDBase"},
		{"another context", PPLRequest{KLDBase: base, SeqLen: 128}, "SeqLen"},
	} {
		_, err := Perplexity(context.Background(), tc.req)
		var opt interface{ Option() string }
		if !errors.As(err, &opt) || opt.Option() != tc.field {
			t.Errorf("%s: error %v, want one about %s", tc.name, err, tc.field)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "not ours" {
		t.Errorf("an existing file was overwritten without Force: %q", b)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a failed request wrote %s", out)
	}
	// An interrupted run leaves neither the file nor a temporary one behind.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Perplexity(ctx, PPLRequest{SaveKLDBase: out, SeqLen: 64}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("an interrupted run left %v", left)
	}
	// A base file of another vocabulary than the model's is refused, naming the file.
	_, err := Perplexity(context.Background(), PPLRequest{KLDBase: base})
	if err == nil || !strings.Contains(err.Error(), base) || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("babyllama's base file with llama-pd-11m: %v", err)
	}
}

// statsNear compares KLD statistics in llama-perplexity's printed units (percent for Δp, the
// top-token agreement and the correlation): within tol plus half the last digit it prints. It
// returns the largest difference and the statistic's name.
func statsNear(t *testing.T, got, want *llamacpp.KLDStats, tol float64) (worst float64, where string) {
	t.Helper()
	var g, w map[string]any
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	json.Unmarshal(gb, &g)
	json.Unmarshal(wb, &w)
	for k, wv := range w {
		if k == "count" {
			continue
		}
		scale, digits := 1.0, 6.0
		switch {
		case k == "cor_ln_ppl":
			scale, digits = 100, 2
		case strings.HasPrefix(k, "dp_") || strings.HasPrefix(k, "same_top"):
			scale, digits = 100, 3
		}
		gf, gok := g[k].(float64)
		wf, wok := wv.(float64)
		if !gok || !wok {
			t.Errorf("%s: %v, llama-perplexity's %v", k, g[k], wv)
			continue
		}
		d := math.Abs(gf-wf) * scale
		if d > worst {
			worst, where = d, k
		}
		if d > tol+0.5*math.Pow(10, -digits) {
			t.Errorf("%s: %.7g, llama-perplexity's %.7g (in printed units: differ by %.3g)", k, gf*scale, wf*scale, d)
		}
	}
	return worst, where
}

// labels is the statistics' text with the numbers taken out: llama.cpp's names and order.
func labels(text string) string {
	return regexp.MustCompile(`-?(\d+\.\d+|nan|inf)`).ReplaceAllString(text, "#")
}

// TestLlamaCppFixture evaluates babyllama-1m as llama-perplexity did for the files in
// eval/llamacpp/testdata: the same perplexity, the same base-logits file, and the same
// KL-divergence statistics of a depth-pruned profile against llama-perplexity's base file.
func TestLlamaCppFixture(t *testing.T) {
	const dir = "../../shared/models/babyllama-1m"
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Skipf("shared model babyllama-1m not available (%v); this test needs ../shared next to the repository", err)
	}
	lm, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	td := func(name string) string { return filepath.Join(llamacppTestdata, name) }
	ref, err := os.ReadFile(td("babyllama-1m.ppl.txt"))
	if err != nil {
		t.Fatal(err)
	}
	refPPL, refErr, err := llamacpp.ParseEstimate(string(ref))
	if err != nil {
		t.Fatal(err)
	}
	// The perplexity, writing the base file as llama-perplexity did.
	saved := filepath.Join(t.TempDir(), "base.bin")
	res, err := Perplexity(context.Background(), PPLRequest{Model: lm, DataFile: td("text.txt"), Protocol: eval.ProtocolLlamaCpp,
		SeqLen: 64, MaxSeqs: 6, SaveKLDBase: saved})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PPL %.6f ± %.6f, llama-perplexity's %s", res.PPL, *res.PPLError, bytes.TrimSpace(ref))
	if res.Seqs != 6 || res.SeqLen != 64 || res.Tokens != 6*31 || res.Protocol != eval.ProtocolLlamaCpp || res.Saved != saved {
		t.Errorf("outcome %+v", res.PPLResult)
	}
	if math.Abs(res.PPL-refPPL) > 1e-4 || math.Abs(float64(*res.PPLError)-refErr) > 1e-5 {
		t.Errorf("PPL %.6f ± %.6f, llama-perplexity's %.4f ± %.5f", res.PPL, *res.PPLError, refPPL, refErr)
	}
	ours, _ := os.ReadFile(saved)
	theirs, err := os.ReadFile(td("babyllama-1m.kld-base.bin"))
	if err != nil {
		t.Fatal(err)
	}
	worstCode := compareBaseFiles(t, ours, theirs)
	t.Logf("base file: largest code difference %d", worstCode)

	// The statistics of a depth-pruned profile against llama-perplexity's base file.
	kref, err := os.ReadFile(td("babyllama-1m.drop.kld.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := llamacpp.ParseKLDStats(string(kref))
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{td("babyllama-1m.kld-base.bin"), saved} {
		out, err := Perplexity(context.Background(), PPLRequest{Model: lm, ProfileFile: td("drop.json"), KLDBase: base})
		if err != nil {
			t.Fatal(err)
		}
		if out.KLD == nil || out.KLD.Count != 6*31 || out.Source != base || out.TotalTokens != 6*64 {
			t.Fatalf("%s: outcome %+v", base, out.PPLResult)
		}
		worst, where := statsNear(t, out.KLD, want, 1e-3)
		t.Logf("against %s: largest difference from llama-perplexity's printed statistics %.3g (%s)", filepath.Base(base), worst, where)
		var text bytes.Buffer
		if err := out.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if got := text.String(); !strings.Contains(labels(got), labels(string(kref))) {
			t.Errorf("the statistics are not printed as llama-perplexity prints them:\n%s\nllama-perplexity:\n%s", got, kref)
		}
	}
}

// compareBaseFiles checks that two base-logits files have the same header and tokens and rows
// within rounding, and returns the largest difference of a 16-bit code.
func compareBaseFiles(t *testing.T, ours, theirs []byte) (worst int) {
	t.Helper()
	a, err := llamacpp.NewBaseReader(bytes.NewReader(ours), int64(len(ours)), "evopress's")
	if err != nil {
		t.Fatal(err)
	}
	b, err := llamacpp.NewBaseReader(bytes.NewReader(theirs), int64(len(theirs)), "llama-perplexity's")
	if err != nil {
		t.Fatal(err)
	}
	if len(ours) != len(theirs) || a.NCtx != b.NCtx || a.NVocab != b.NVocab || a.NChunk != b.NChunk {
		t.Fatalf("evopress's base file: %d bytes, n_ctx %d, n_vocab %d, n_chunk %d; llama-perplexity's %d, %d, %d, %d",
			len(ours), a.NCtx, a.NVocab, a.NChunk, len(theirs), b.NCtx, b.NVocab, b.NChunk)
	}
	hdr := 20 + 4*a.NCtx*a.NChunk
	if !bytes.Equal(ours[:hdr], theirs[:hdr]) {
		t.Fatal("the header or the tokens differ from llama-perplexity's")
	}
	nv := llamacpp.RowWidth(a.NVocab)
	var ra, rb []uint16
	for c := 0; c < a.NChunk; c++ {
		if ra, err = a.ReadChunk(ra); err != nil {
			t.Fatal(err)
		}
		if rb, err = b.ReadChunk(rb); err != nil {
			t.Fatal(err)
		}
		for r := 0; r < len(ra)/nv; r++ {
			sa, ma := llamacpp.RowHeader(ra[r*nv:])
			sb, mb := llamacpp.RowHeader(rb[r*nv:])
			if math.Abs(float64(sa-sb)) > 1e-5*float64(sb) || math.Abs(float64(ma-mb)) > 1e-4 {
				t.Fatalf("chunk %d row %d: scale %g, minimum %g; llama-perplexity's %g, %g", c, r, sa, ma, sb, mb)
			}
			for i := 4; i < nv; i++ {
				d := int(ra[r*nv+i]) - int(rb[r*nv+i])
				worst = max(worst, d, -d)
			}
		}
	}
	// A code step is 16/65535 nats at most; logits agreeing to 1e-4 differ by under 2 steps.
	if worst > 4 {
		t.Errorf("a code differs by %d from llama-perplexity's", worst)
	}
	return worst
}

// TestLlamaCppParity runs llama-perplexity on evopress's F32 GGUF export of llama-pd-11m and
// evopress ppl --protocol llamacpp on the Hugging Face model, on held-out text: (a) the
// perplexity, (b) the KL-divergence statistics of a depth-pruned profile (exported with the
// profile for llama.cpp) against llama-perplexity's base file, (c) each tool reading the other's
// base file.
func TestLlamaCppParity(t *testing.T) {
	bin := llamaTools(t, "llama-perplexity")
	tmp := t.TempDir()
	dense := filepath.Join(tmp, "pd-f32.gguf")
	pruned := filepath.Join(tmp, "pd-drop-f32.gguf")
	drop := profile.New(profile.ModeDrop)
	drop.Levels = map[string]int{"model.layers.2.mlp": 1, "model.layers.5.self_attn": 1, "model.layers.9.mlp": 1}
	dropFile := filepath.Join(tmp, "drop.json")
	if err := drop.Write(dropFile); err != nil {
		t.Fatal(err)
	}
	for out, p := range map[string]*profile.Profile{dense: profile.New(profile.ModeDrop), pruned: drop} {
		if _, err := export.Run(export.Options{ModelDir: embeddedModelDir, Profile: p, Format: export.FormatGGUF, Type: "f32", Out: out}); err != nil {
			t.Fatal(err)
		}
	}
	text := heldOutText(t, tmp)
	const nCtx, chunks = 128, 16
	// llama.cpp keeps keys and values in an F16 cache by default (and its flash attention rounds
	// to F16 even with an F32 cache); float32 throughout needs both off.
	exact := []string{"-ctk", "f32", "-ctv", "f32", "-fa", "off", "-t", "2"}
	theirBase := filepath.Join(tmp, "llama.base")
	log := runTool(t, bin, "llama-perplexity", append(exact, "-m", dense, "-f", text, "-c", "128", "--chunks", "16", "--kl-divergence-base", theirBase)...)
	refPPL, refErr, err := llamacpp.ParseEstimate(log)
	if err != nil {
		t.Fatalf("%v:\n%s", err, log)
	}
	lm, err := LoadModel(embeddedModelDir)
	if err != nil {
		t.Fatal(err)
	}

	// (a) The perplexity, writing evopress's base file.
	ourBase := filepath.Join(tmp, "evopress.base")
	res, err := Perplexity(context.Background(), PPLRequest{Model: lm, DataFile: text, Protocol: eval.ProtocolLlamaCpp,
		SeqLen: nCtx, MaxSeqs: chunks, SaveKLDBase: ourBase})
	if err != nil {
		t.Fatal(err)
	}
	rel := math.Abs(res.PPL-refPPL) / refPPL
	t.Logf("(a) PPL %.5f ± %.5f, llama-perplexity's %.4f ± %.5f: relative difference %.2g", res.PPL, *res.PPLError, refPPL, refErr, rel)
	if res.Tokens != chunks*63 || rel > 1e-4 || math.Abs(float64(*res.PPLError)-refErr)/refErr > 1e-3 {
		t.Errorf("(a) %d scored, PPL %.5f ± %.5f; llama-perplexity's %.4f ± %.5f", res.Tokens, res.PPL, *res.PPLError, refPPL, refErr)
	}
	ourBytes, _ := os.ReadFile(ourBase)
	theirBytes, _ := os.ReadFile(theirBase)
	t.Logf("(c) base files: largest code difference %d", compareBaseFiles(t, ourBytes, theirBytes))
	// At llama-perplexity's defaults (F16 KV cache, flash attention as it decides).
	log = runTool(t, bin, "llama-perplexity", "-m", dense, "-f", text, "-c", "128", "--chunks", "16", "-t", "2")
	if defPPL, _, err := llamacpp.ParseEstimate(log); err != nil {
		t.Error(err)
	} else {
		rel := math.Abs(res.PPL-defPPL) / defPPL
		t.Logf("(a) at llama-perplexity's defaults: PPL %.4f, relative difference %.2g", defPPL, rel)
		if rel > 1e-2 {
			t.Errorf("(a) PPL %.5f, llama-perplexity's at its defaults %.4f", res.PPL, defPPL)
		}
	}

	// (b) The pruned model's statistics against llama-perplexity's base file, and (c) against
	// evopress's: both tools, each base file.
	for _, base := range []string{theirBase, ourBase} {
		log := runTool(t, bin, "llama-perplexity", append(exact, "-m", pruned, "--kl-divergence-base", base, "--kl-divergence")...)
		want, err := llamacpp.ParseKLDStats(log)
		if err != nil {
			t.Fatalf("%v:\n%s", err, log)
		}
		out, err := Perplexity(context.Background(), PPLRequest{Model: lm, ProfileFile: dropFile, KLDBase: base})
		if err != nil {
			t.Fatal(err)
		}
		if out.KLD == nil || out.KLD.Count != chunks*63 {
			t.Fatalf("%s: outcome %+v", base, out.PPLResult)
		}
		worst, where := statsNear(t, out.KLD, want, 1e-3)
		t.Logf("(b) against %s: mean KLD %.6f, llama-perplexity's %.6f; largest difference from its printed statistics %.3g (%s)",
			filepath.Base(base), out.KLD.KLDMean, want.KLDMean, worst, where)
		var text bytes.Buffer
		out.KLD.WriteText(&text)
		if !strings.Contains(labels(log), labels(text.String())) {
			t.Errorf("not printed as llama-perplexity prints:\n%s\nllama-perplexity:\n%s", text.String(), log)
		}
	}
}

// TestLlamaCppMixedGGUF: evopress ppl on a mixed-type GGUF profile (llama.cpp's Q4_K_M rules over
// a gguf database of the embedded llama-pd-11m) against llama-perplexity on the exported file.
// (a) llama-quantize --allow-requantize decodes the file to F32 with ggml's own decoders: the
// perplexity of that file equals evopress's to float32 rounding, which checks every decoder
// through perplexity. (b) On the quantized file itself llama.cpp's CPU kernels compute otherwise
// (they quantize the activations, to Q8_K for the k-quants and Q8_0/Q8_1 for the 32-weight types,
// and add integer products) while evopress multiplies the decoded weights in float32: the two
// agree within 1e-3 (4.6e-4 measured).
func TestLlamaCppMixedGGUF(t *testing.T) {
	bin := llamaTools(t, "llama-perplexity", "llama-quantize")
	lm, err := LoadModel(embeddedModelDir)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	ctx := context.Background()
	d := buildGGUF(t, lm, filepath.Join(tmp, "db"), []string{"q3_k", "q4_k", "q5_k", "q6_k", "q8_0"}, 2048)
	pfile := filepath.Join(tmp, "q4km.json")
	if _, err := RunBaseline(ctx, BaselineRequest{Data: Data{Model: lm, DBDir: d.Dir(), SeqLen: 128, CalibTokens: 2048},
		Mode: ModeSpec{Kind: profile.ModeQuant}, Method: "llamacpp", FileType: "Q4_K_M", Tokens: 256, Out: pfile}); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Read(pfile, "")
	if err != nil {
		t.Fatal(err)
	}
	mixed := filepath.Join(tmp, "mixed.gguf")
	if _, err := export.Run(export.Options{ModelDir: embeddedModelDir, Profile: p, ProfilePath: pfile, DBDir: d.Dir(), Format: export.FormatGGUF, Out: mixed}); err != nil {
		t.Fatal(err)
	}
	decoded := filepath.Join(tmp, "decoded-f32.gguf")
	runTool(t, bin, "llama-quantize", "--allow-requantize", mixed, decoded, "F32", "2")
	text := heldOutText(t, tmp)
	const nCtx, chunks = 128, 16
	exact := []string{"-ctk", "f32", "-ctv", "f32", "-fa", "off", "-t", "2", "-f", text, "-c", "128", "--chunks", "16"}
	theirs := map[string]float64{}
	for name, file := range map[string]string{"decoded": decoded, "mixed": mixed} {
		log := runTool(t, bin, "llama-perplexity", append(exact, "-m", file)...)
		if theirs[name], _, err = llamacpp.ParseEstimate(log); err != nil {
			t.Fatalf("%s: %v:\n%s", name, err, log)
		}
	}
	res, err := Perplexity(ctx, PPLRequest{Model: lm, DataFile: text, Protocol: eval.ProtocolLlamaCpp, SeqLen: nCtx, MaxSeqs: chunks, ProfileFile: pfile})
	if err != nil {
		t.Fatal(err)
	}
	dense, err := Perplexity(ctx, PPLRequest{Model: lm, DataFile: text, Protocol: eval.ProtocolLlamaCpp, SeqLen: nCtx, MaxSeqs: chunks})
	if err != nil {
		t.Fatal(err)
	}
	relD := math.Abs(res.PPL-theirs["decoded"]) / theirs["decoded"]
	relM := math.Abs(res.PPL-theirs["mixed"]) / theirs["mixed"]
	t.Logf("Q4_K_M mix of llama-pd-11m (dense PPL %.5f): evopress PPL %.6f; llama-perplexity on the file decoded to F32 %.6f (relative difference %.2g), on the quantized file %.6f (%.2g)",
		dense.PPL, res.PPL, theirs["decoded"], relD, theirs["mixed"], relM)
	if res.PPL == dense.PPL {
		t.Fatalf("the profile's perplexity equals the dense model's %.6f: the mix was not applied", dense.PPL)
	}
	if relD > 1e-4 {
		t.Errorf("(a) evopress PPL %.6f, llama-perplexity on the decoded file %.6f: decoders disagree", res.PPL, theirs["decoded"])
	}
	if relM > 1e-3 {
		t.Errorf("(b) evopress PPL %.6f, llama-perplexity on the quantized file %.6f", res.PPL, theirs["mixed"])
	}
}

// heldOutText writes about 8000 tokens of the embedded held-out text into dir, cut at a space,
// and a newline (which llama.cpp's -f and the protocol remove), and returns the file's path.
func heldOutText(t *testing.T, dir string) string {
	t.Helper()
	held, err := os.ReadFile("../assets/pd-english/eval.txt")
	if err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "eval.txt")
	if err := os.WriteFile(text, append(held[:bytes.LastIndexByte(held[:30000], ' ')], '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	return text
}
