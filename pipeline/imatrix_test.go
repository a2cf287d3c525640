package pipeline

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/evopress/evopress/export"
	"github.com/evopress/evopress/imatrix"
	"github.com/evopress/evopress/internal/llamacpptest"
	"github.com/evopress/evopress/profile"
)

// embeddedModelDir is the embedded model's directory in the source tree (llama-pd-11m).
const embeddedModelDir = "../assets/llama-pd-11m"

func TestImatrixRequestErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "old.gguf")
	if err := os.WriteFile(existing, []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.gguf")
	for _, tc := range []struct {
		name  string
		req   ImatrixRequest
		field string
	}{
		{"seq-len 1", ImatrixRequest{SeqLen: 1, Out: out}, "SeqLen"},
		{"negative chunks", ImatrixRequest{Chunks: -1, Out: out}, "Chunks"},
		{"negative batch", ImatrixRequest{Batch: -1, Out: out}, "Batch"},
		{"no output", ImatrixRequest{}, "Out"},
		{"unknown format", ImatrixRequest{Out: out, Format: "npy"}, "Format"},
		{"existing output", ImatrixRequest{Out: existing}, "Force"},
		{"directory output", ImatrixRequest{Out: dir, Force: true}, "Out"},
	} {
		_, err := ComputeImatrix(context.Background(), tc.req)
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
}

func TestImatrixTokens(t *testing.T) {
	lm, err := LoadModel("")
	if err != nil {
		t.Fatal(err)
	}
	tok := lm.Tokenizer
	if tok.BOS() < 0 {
		t.Fatal("the embedded model has no BOS")
	}
	for _, text := range []string{"It was a dark night.\n", "It was a dark night.\n\n", "It was a dark night.", ""} {
		ids, bos := ImatrixTokens(tok, text)
		want := append([]int{tok.BOS()}, tok.Encode(strings.TrimSuffix(text, "\n"), false)...)
		if bos != tok.BOS() || !reflect.DeepEqual(ids, want) {
			t.Errorf("%q: %v (BOS %d), want %v", text, ids, bos, want)
		}
	}
	if a, _ := ImatrixTokens(tok, "x\n\n"); reflect.DeepEqual(a, must(ImatrixTokens(tok, "x"))) {
		t.Error("more than one trailing newline removed")
	}
}

func must(ids []int, _ int) []int { return ids }

// TestComputeImatrix runs the request on the embedded model and text and reads the file back.
func TestComputeImatrix(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "pd.dat")
	res, err := ComputeImatrix(context.Background(), ImatrixRequest{SeqLen: 32, Chunks: 3, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != "dat" || res.Chunks != 3 || res.SeqLen != 32 || !res.BOS || res.Entries != 12*7 ||
		res.Dataset != "embedded:pd-english/calib.txt" || res.TextTokens < 3*32 {
		t.Errorf("outcome %+v", res)
	}
	m, f, err := imatrix.Read(out)
	if err != nil || f != imatrix.FormatDat {
		t.Fatalf("%v %q", err, f)
	}
	if m.ChunkCount != 3 || !reflect.DeepEqual(m.Datasets, []string{res.Dataset}) || len(m.Entries) != 84 {
		t.Errorf("read back: chunks %d, datasets %q, %d entries", m.ChunkCount, m.Datasets, len(m.Entries))
	}
	for n, e := range res.Matrix.Entries {
		if e.Counts[0] != 96 {
			t.Errorf("%s counted %d tokens, want 96", n, e.Counts[0])
		}
		got, want := m.Entries[n].Mean(), e.Mean()
		for j := range want {
			if math.Abs(float64(got[j]-want[j])) > 1e-6*float64(want[j]) {
				t.Fatalf("%s column %d: mean %g in the file, computed %g", n, j, got[j], want[j])
			}
		}
	}
	// Force replaces the file, here in the GGUF format despite the name.
	res2, err := ComputeImatrix(context.Background(), ImatrixRequest{SeqLen: 32, Chunks: 1, Out: out, Format: "gguf", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if m, f, err := imatrix.Read(out); err != nil || f != imatrix.FormatGGUF || m.ChunkCount != 1 || res2.Format != "gguf" {
		t.Errorf("replaced file: %v %q %v", m, f, err)
	}
}

// llamaTools returns the folder of llama.cpp's tools (llamacpptest.Bin: $EVOPRESS_LLAMACPP, else
// ../shared/tools/llamacpp/build.sh's default destination) or skips. The tools argument is
// kept for the callers' documentation: Bin requires all three tools.
func llamaTools(t *testing.T, tools ...string) string {
	t.Helper()
	return llamacpptest.Bin(t)
}

func runTool(t *testing.T, bin, tool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, tool), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// maxRelDiff compares two importance matrices entry by entry: the same entries, token counts,
// chunk count and size, and the largest relative difference of a sum.
func maxRelDiff(t *testing.T, got, want *imatrix.Matrix) (worst float64, where string) {
	t.Helper()
	if !reflect.DeepEqual(got.Names(), want.Names()) {
		t.Fatalf("entries %v, llama-imatrix's %v", got.Names(), want.Names())
	}
	if got.ChunkCount != want.ChunkCount || got.ChunkSize != want.ChunkSize {
		t.Errorf("chunks %d × %d, llama-imatrix's %d × %d", got.ChunkCount, got.ChunkSize, want.ChunkCount, want.ChunkSize)
	}
	for _, n := range want.Names() {
		g, w := got.Entries[n], want.Entries[n]
		if !reflect.DeepEqual(g.Counts, w.Counts) || len(g.Sums) != len(w.Sums) {
			t.Fatalf("%s: %d sums over %v tokens, llama-imatrix's %d over %v", n, len(g.Sums), g.Counts, len(w.Sums), w.Counts)
		}
		for j := range w.Sums {
			if d := math.Abs(float64(g.Sums[j]-w.Sums[j])) / float64(w.Sums[j]); d > worst {
				worst, where = d, n
			}
		}
	}
	return worst, where
}

// TestImatrixMatchesLlamaImatrix computes the importance matrix of llama-pd-11m on the same text
// and chunks as llama-imatrix run on evopress's F32 GGUF export, reads llama-imatrix's files
// with package imatrix, and compares; then gives evopress's files to llama-quantize.
func TestImatrixMatchesLlamaImatrix(t *testing.T) {
	bin := llamaTools(t)
	tmp := t.TempDir()
	f32 := filepath.Join(tmp, "pd-f32.gguf")
	if _, err := export.Run(export.Options{ModelDir: embeddedModelDir, Profile: profile.New(profile.ModeDrop),
		Format: export.FormatGGUF, Type: "f32", Out: f32}); err != nil {
		t.Fatal(err)
	}
	calib, err := os.ReadFile("../assets/pd-english/calib.txt")
	if err != nil {
		t.Fatal(err)
	}
	// About 5000 tokens: the start of the calibration text, cut at a space, and a newline (which
	// llama.cpp's -f and ComputeImatrix remove).
	text := filepath.Join(tmp, "text.txt")
	if err := os.WriteFile(text, append(calib[:bytes.LastIndexByte(calib[:20000], ' ')], '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	const seqLen, chunks = "128", "4"
	common := []string{"-m", f32, "-f", text, "-c", seqLen, "--chunks", chunks, "-t", "2", "--no-ppl"}
	// llama.cpp keeps keys and values in an F16 cache by default (and its flash attention rounds
	// to F16 even with an F32 cache); float32 throughout needs both off.
	exact := append([]string{"-ctk", "f32", "-ctv", "f32", "-fa", "off"}, common...)
	runTool(t, bin, "llama-imatrix", append(exact, "-o", filepath.Join(tmp, "ref.gguf"))...)
	runTool(t, bin, "llama-imatrix", append(exact, "-o", filepath.Join(tmp, "ref.dat"), "--output-format", "dat")...)
	runTool(t, bin, "llama-imatrix", append(common, "-o", filepath.Join(tmp, "ref-f16cache.gguf"))...)

	ours := filepath.Join(tmp, "ours.gguf")
	res, err := ComputeImatrix(context.Background(), ImatrixRequest{ModelDir: embeddedModelDir, CalibFile: text,
		SeqLen: 128, Chunks: 4, Out: ours})
	if err != nil {
		t.Fatal(err)
	}
	ref, f, err := imatrix.Read(filepath.Join(tmp, "ref.gguf"))
	if err != nil || f != imatrix.FormatGGUF {
		t.Fatalf("llama-imatrix's GGUF: %v %q", err, f)
	}
	if len(ref.Entries) != 84 || !reflect.DeepEqual(ref.Datasets, []string{text}) || !reflect.DeepEqual(res.Matrix.Datasets, ref.Datasets) {
		t.Errorf("llama-imatrix: %d entries, datasets %q; evopress: datasets %q", len(ref.Entries), ref.Datasets, res.Matrix.Datasets)
	}
	worst, where := maxRelDiff(t, res.Matrix, ref)
	t.Logf("F32 attention: largest relative difference %.3g (%s)", worst, where)
	if worst > 1e-4 {
		t.Errorf("largest relative difference %.3g (%s), want ≤ 1e-4", worst, where)
	}
	f16, _, err := imatrix.Read(filepath.Join(tmp, "ref-f16cache.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	worst, where = maxRelDiff(t, res.Matrix, f16)
	t.Logf("llama-imatrix's defaults (F16 KV cache): largest relative difference %.3g (%s)", worst, where)
	if worst > 5e-3 {
		t.Errorf("against llama-imatrix's defaults: largest relative difference %.3g (%s), want ≤ 5e-3", worst, where)
	}
	// The legacy file holds the same means.
	dat, f, err := imatrix.Read(filepath.Join(tmp, "ref.dat"))
	if err != nil || f != imatrix.FormatDat || dat.ChunkCount != 4 {
		t.Fatalf("llama-imatrix's dat: %v %q", err, f)
	}
	for n, e := range dat.Entries {
		got, want := res.Matrix.Entries[n].Mean(), e.Mean()
		for j := range want {
			if d := math.Abs(float64(got[j]-want[j])) / float64(want[j]); d > 1e-4 {
				t.Fatalf("%s column %d: mean %g, llama-imatrix's dat %g", n, j, got[j], want[j])
			}
		}
	}

	// llama-quantize takes evopress's files in both formats and uses them: the result differs
	// from a quantization without importance matrix.
	oursDat := filepath.Join(tmp, "ours.dat")
	if err := imatrix.Write(oursDat, res.Matrix, imatrix.FormatDat); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(tmp, "q4-plain.gguf")
	runTool(t, bin, "llama-quantize", "--pure", f32, plain, "Q4_0", "2")
	plainBytes, _ := os.ReadFile(plain)
	for _, im := range []string{ours, oursDat} {
		q := filepath.Join(tmp, "q4-"+filepath.Ext(im)[1:]+".gguf")
		log := runTool(t, bin, "llama-quantize", "--pure", "--imatrix", im, f32, q, "Q4_0", "2")
		// (token_embd and output have no entry, as with llama-imatrix's own files.)
		if !strings.Contains(log, "loaded 84 importance matrix entries") || strings.Contains(log, "did not find weights for blk.") ||
			strings.Contains(log, "imatrix size") {
			t.Errorf("llama-quantize --imatrix %s did not use all 84 entries:\n%s", im, log)
		}
		// The file also records the imatrix's name, dataset and counts in its metadata.
		if qb, _ := os.ReadFile(q); len(qb) < len(plainBytes) || len(qb) > len(plainBytes)+4096 || bytes.Equal(qb, plainBytes) {
			t.Errorf("llama-quantize --imatrix %s: %d bytes, without: %d bytes; want the same tensors, quantized otherwise", im, len(qb), len(plainBytes))
		}
	}
}

// TestImatrixMatchesFixture compares evopress's importance matrix of babyllama-1m with the one
// llama-imatrix computed on the same text and chunks (imatrix/testdata, F32 attention), without
// needing llama.cpp's tools.
func TestImatrixMatchesFixture(t *testing.T) {
	const dir = "../../shared/models/babyllama-1m"
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Skipf("shared model babyllama-1m not available (%v); this test needs ../shared next to the repository", err)
	}
	ref, _, err := imatrix.Read("../imatrix/testdata/babyllama-1m.imatrix.gguf")
	if err != nil {
		t.Fatal(err)
	}
	res, err := ComputeImatrix(context.Background(), ImatrixRequest{ModelDir: dir, CalibFile: "../imatrix/testdata/calib.txt",
		SeqLen: 64, Chunks: 3, Out: filepath.Join(t.TempDir(), "baby.gguf")})
	if err != nil {
		t.Fatal(err)
	}
	worst, where := maxRelDiff(t, res.Matrix, ref)
	t.Logf("largest relative difference %.3g (%s)", worst, where)
	if worst > 1e-4 {
		t.Errorf("largest relative difference %.3g (%s), want ≤ 1e-4", worst, where)
	}
}
