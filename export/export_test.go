package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gguf "github.com/gpustack/gguf-parser-go"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/stamp"
)

// sharedModels is where the shared test models live, relative to this package.
const sharedModels = "../../shared/models"

// embeddedModel is the repository's copy of llama-pd-11m, the model package assets embeds
// (the same files as ../shared/models/llama-pd-11m).
const embeddedModel = "../assets/llama-pd-11m"

// modelDir returns the directory of a test model: llama-pd-11m is in the repository; any other
// needs ../shared next to it, and the test is skipped without it.
func modelDir(t testing.TB, name string) string {
	t.Helper()
	if name == "llama-pd-11m" {
		return embeddedModel
	}
	dir := filepath.Join(sharedModels, name)
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Skipf("shared model %s not available (%v); tests using it need ../shared next to the repository", name, err)
	}
	return dir
}

// dropProfile is a drop profile of a 12-block model with block 3 fully dropped, block 7's MLP
// and block 9's attention dropped, every other unit kept.
func dropProfile(fp string) *profile.Profile {
	p := profile.New(profile.ModeDrop)
	for i := 0; i < 12; i++ {
		p.Levels[fmt.Sprintf("model.layers.%d.self_attn", i)] = 0
		p.Levels[fmt.Sprintf("model.layers.%d.mlp", i)] = 0
	}
	p.Levels["model.layers.3.self_attn"] = 1
	p.Levels["model.layers.3.mlp"] = 1
	p.Levels["model.layers.7.mlp"] = 1
	p.Levels["model.layers.9.self_attn"] = 1
	if fp != "" {
		p.Model = &profile.Ref{Path: "llama-pd-11m", Fingerprint: fp}
	}
	return p
}

// testSeqs returns n deterministic random token sequences of length T.
func testSeqs(vocab, n, T int) [][]int {
	rng := rand.New(rand.NewPCG(7, 11))
	out := make([][]int, n)
	for i := range out {
		out[i] = make([]int, T)
		for j := range out[i] {
			out[i][j] = rng.IntN(vocab)
		}
	}
	return out
}

// sameFunction checks that a and b give the same NLL on seqs and the same logits on seqs[0].
func sameFunction(t *testing.T, a, b *model.Model, seqs [][]int, tol float64) {
	t.Helper()
	na, ca, err := a.SequenceNLL(seqs)
	if err != nil {
		t.Fatal(err)
	}
	nb, cb, err := b.SequenceNLL(seqs)
	if err != nil {
		t.Fatal(err)
	}
	if ca != cb || math.Abs(na-nb) > tol*math.Abs(na) {
		t.Errorf("NLL %v over %d tokens, want %v over %d (relative tolerance %g)", nb, cb, na, ca, tol)
	}
	la, _ := a.Logits(seqs[0])
	lb, _ := b.Logits(seqs[0])
	var maxd float64
	for i := range la {
		maxd = max(maxd, math.Abs(float64(la[i]-lb[i])))
	}
	if maxd > tol*10 {
		t.Errorf("logits differ by up to %g", maxd)
	}
}

func TestExportHFDropRoundTrip(t *testing.T) {
	dir := modelDir(t, "llama-pd-11m")
	dense, fp, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := dropProfile(fp)
	want, err := candidate.ApplyDrop(dense, p.Levels)
	if err != nil {
		t.Fatal(err)
	}
	seqs := testSeqs(dense.Vocab, 3, 48)

	for _, tc := range []struct {
		name   string
		shard  int64
		shards int
	}{
		{"single", 0, 1},
		{"sharded", 6 << 20, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "exported")
			var warn bytes.Buffer
			res, err := Run(Options{ModelDir: dir, Profile: p, ProfilePath: "drop.json", Format: FormatHF, Out: out, ShardBytes: tc.shard, Warn: &warn})
			if err != nil {
				t.Fatal(err)
			}
			if warn.Len() != 0 {
				t.Errorf("unexpected warnings: %s", warn.String())
			}
			if res.Blocks != 11 || !slices.Equal(res.Removed, []int{3}) || !slices.Equal(res.ZeroedAttn, []int{9}) || !slices.Equal(res.ZeroedMLP, []int{7}) {
				t.Errorf("result %+v", res)
			}
			wantMap := []int{0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11}
			if !slices.Equal(res.BlockMap, wantMap) {
				t.Errorf("block map %v, want %v", res.BlockMap, wantMap)
			}
			got, _, err := model.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Blocks) != 11 || got.Config.NumHiddenLayers != 11 {
				t.Fatalf("exported model has %d blocks (config %d), want 11", len(got.Blocks), got.Config.NumHiddenLayers)
			}
			sameFunction(t, want, got, seqs, 1e-6)

			// Zeroed projections, and an untouched block is bit-identical to its source.
			if !allZero(got.Blocks[6].Down.W) || allZero(got.Blocks[6].O.W) {
				t.Errorf("written block 6 (source 7): down_proj should be zero and o_proj not")
			}
			if !allZero(got.Blocks[8].O.W) || allZero(got.Blocks[8].Down.W) {
				t.Errorf("written block 8 (source 9): o_proj should be zero and down_proj not")
			}
			if !slices.Equal(got.Blocks[3].Q.W, dense.Blocks[4].Q.W) || !slices.Equal(got.Blocks[10].Gate.W, dense.Blocks[11].Gate.W) {
				t.Errorf("renumbered blocks do not hold their source weights")
			}

			ck, err := hf.OpenCheckpoint(out)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			if len(ck.Files()) != tc.shards {
				t.Errorf("%d safetensors files, want %d", len(ck.Files()), tc.shards)
			}
			if info, _ := ck.Info("model.layers.0.self_attn.q_proj.weight"); info.DType != hf.BF16 {
				t.Errorf("dtype %s, want the source's BF16", info.DType)
			}
			for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "generation_config.json"} {
				a, _ := os.ReadFile(filepath.Join(dir, f))
				b, err := os.ReadFile(filepath.Join(out, f))
				if err != nil || !bytes.Equal(a, b) {
					t.Errorf("%s not copied unchanged (%v)", f, err)
				}
			}
			var pv provenance
			b, err := os.ReadFile(filepath.Join(out, ProvenanceFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &pv); err != nil {
				t.Fatal(err)
			}
			if pv.Source.Fingerprint != fp || pv.Source.LegacyFingerprint == "" || pv.Source.LegacyFingerprint == fp || pv.Profile.Mode != "drop" || pv.Profile.Levels["model.layers.3.mlp"] != 1 || !slices.Equal(pv.Export.BlockMap, wantMap) {
				t.Errorf("evopress.json: %s", b)
			}
			// config.json keeps the other fields as written.
			cfgA, _ := hf.LoadConfig(dir)
			for _, f := range cfgA.Fields() {
				ra, _ := cfgA.Raw(f)
				rb, ok := got.Config.Raw(f)
				if f != "num_hidden_layers" && (!ok || !bytes.Equal(ra, rb)) {
					t.Errorf("config field %s: %s, want %s", f, rb, ra)
				}
			}
		})
	}
}

func allZero(x []float32) bool {
	for _, v := range x {
		if v != 0 {
			return false
		}
	}
	return true
}

func TestExportGuardRails(t *testing.T) {
	dir := modelDir(t, "llama-pd-11m")
	tmp := t.TempDir()
	out := filepath.Join(tmp, "m.gguf")
	if err := os.WriteFile(out, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := dropProfile("")
	var warn bytes.Buffer
	// A file evopress did not write is refused, even with Force.
	for _, force := range []bool{false, true} {
		_, err := Run(Options{ModelDir: dir, Profile: p, Format: FormatGGUF, Out: out, Force: force, Warn: &warn})
		var oe *OptionError
		if want := map[bool]string{false: "Out", true: "Force"}[force]; !errors.As(err, &oe) || oe.Option() != want ||
			!strings.Contains(err.Error(), "not a GGUF file written by evopress export") {
			t.Fatalf("existing foreign output, force %v: err = %v, want a refusal naming the %s option", force, err, want)
		}
	}
	if b, _ := os.ReadFile(out); string(b) != "keep" {
		t.Fatalf("existing output modified")
	}
	// An earlier export is replaced with Force only.
	out = filepath.Join(tmp, "m2.gguf")
	if _, err := Run(Options{ModelDir: dir, Profile: p, Format: FormatGGUF, Type: "f32", Out: out}); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(out)
	_, err := Run(Options{ModelDir: dir, Profile: p, Format: FormatGGUF, Out: out, Warn: &warn})
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Option() != "Force" || !strings.Contains(oe.Describe("--force"), "use --force to replace") {
		t.Fatalf("existing output: err = %v, want a refusal naming the Force option", err)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, first) {
		t.Fatalf("existing output modified")
	}
	res, err := Run(Options{ModelDir: dir, Profile: p, ProfilePath: "hand.json", Format: FormatGGUF, Out: out, Force: true, Warn: &warn})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warn.String(), "hand.json: the profile records no model fingerprint") || len(res.Warnings) == 0 {
		t.Errorf("no fingerprint warning: %q", warn.String())
	}
	if b, _ := os.ReadFile(out); !bytes.HasPrefix(b, []byte("GGUF")) || bytes.Equal(b, first) {
		t.Errorf("--force did not replace the output")
	}
	entries, _ := os.ReadDir(tmp)
	if len(entries) != 2 {
		t.Errorf("temporary files left behind: %v", entries)
	}

	bad := dropProfile(strings.Repeat("0", 64))
	_, err = Run(Options{ModelDir: dir, Profile: bad, ProfilePath: "other.json", Format: FormatHF, Out: filepath.Join(tmp, "x")})
	if err == nil || !strings.Contains(err.Error(), "other.json") || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("fingerprint mismatch: err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "x")); !os.IsNotExist(err) {
		t.Errorf("failed export left output behind")
	}

	for _, tc := range []struct {
		o           Options
		field, want string
	}{
		{Options{Format: "onnx"}, "Format", "want hf or gguf"},
		{Options{Format: FormatGGUF, Type: "q4_k_m"}, "Type", "want a type evopress encodes (f32, f16, q4_0"},
		{Options{Format: FormatGGUF, Type: "iq2_xxs"}, "Type", "want a type evopress encodes"},
		{Options{Format: FormatGGUF, FileType: "Q9_K"}, "FileType", `"Q9_K": not one of llama-quantize's file types`},
		{Options{Format: FormatGGUF, FileType: "Q4_K_M", Type: "q4_k"}, "FileType", "exclude each other"},
		{Options{Format: FormatGGUF, FileType: "IQ3_M"}, "FileType", "gives token_embd.weight the type iq3_s, which evopress does not encode"},
		{Options{Format: FormatGGUF, FileType: "Q2_K_S"}, "Imatrix", "gives blk.0.attn_q.weight the type q2_K, which llama-quantize writes only with an importance matrix"},
		{Options{Format: FormatGGUF, Imatrix: filepath.Join(tmp, "none.imatrix")}, "Imatrix", "none.imatrix"},
		{Options{Format: FormatGGUF, OutputTensorType: "q4"}, "OutputTensorType", `"q4": want a type`},
		{Options{Format: FormatHF, Type: "f16"}, "Type", "the gguf format only"},
		{Options{Format: FormatHF, FileType: "Q4_K_M"}, "FileType", "the gguf format only"},
		{Options{Format: FormatHF, TokenEmbeddingType: "q8_0"}, "TokenEmbeddingType", "the gguf format only"},
		{Options{Format: FormatHF, Packed: true}, "Packed", "needs a quant profile"},
		{Options{Format: FormatGGUF, Packed: true}, "Packed", "the hf format only"},
	} {
		tc.o.ModelDir, tc.o.Profile, tc.o.Out = dir, p, filepath.Join(tmp, "y")
		_, err := Run(tc.o)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Option() != tc.field || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q about %s", tc.o, err, tc.want, tc.field)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "y")); !os.IsNotExist(err) {
		t.Errorf("failed export left output behind")
	}
	sp := profile.New(profile.ModeSparse)
	sp.Levels["model.layers.0.self_attn.q_proj"] = 1
	if _, err := Run(Options{ModelDir: dir, Profile: sp, ProfilePath: "s.json", Format: FormatHF, Out: filepath.Join(tmp, "z")}); err == nil || !strings.Contains(err.Error(), "level database") {
		t.Errorf("sparse profile without a database: err = %v", err)
	}
}

// TestExportTiedModel exports babyllama-1m (tied embeddings, F32, character-level SentencePiece
// vocabulary without byte fallback) with block 1 removed and block 3's MLP zeroed.
func TestExportTiedModel(t *testing.T) {
	dir := modelDir(t, "babyllama-1m")
	dense, fp, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := profile.New(profile.ModeDrop)
	p.Model = &profile.Ref{Fingerprint: fp}
	for b := 0; b < 5; b++ {
		p.Levels[fmt.Sprintf("model.layers.%d.self_attn", b)] = boolLevel(b == 1)
		p.Levels[fmt.Sprintf("model.layers.%d.mlp", b)] = boolLevel(b == 1 || b == 3)
	}
	want, err := candidate.ApplyDrop(dense, p.Levels)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	var warn bytes.Buffer
	if _, err := Run(Options{ModelDir: dir, Profile: p, Format: FormatHF, Out: filepath.Join(tmp, "hf"), Warn: &warn}); err != nil {
		t.Fatal(err)
	}
	got, _, err := model.Load(filepath.Join(tmp, "hf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Blocks) != 4 || !got.Config.TieWordEmbeddings {
		t.Fatalf("%d blocks, tied %v", len(got.Blocks), got.Config.TieWordEmbeddings)
	}
	ck, err := hf.OpenCheckpoint(filepath.Join(tmp, "hf"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if _, ok := ck.Info("lm_head.weight"); ok {
		t.Errorf("tied model exported with lm_head.weight")
	}
	sameFunction(t, want, got, testSeqs(dense.Vocab, 3, 40), 1e-6)

	res, err := Run(Options{ModelDir: dir, Profile: p, Format: FormatGGUF, Type: "q8_0", Out: filepath.Join(tmp, "m.gguf"), Warn: &warn})
	if err != nil {
		t.Fatal(err)
	}
	if warn.Len() != 0 {
		t.Errorf("warnings: %s", warn.String())
	}
	if res.Blocks != 4 {
		t.Errorf("%d blocks", res.Blocks)
	}
	gf, err := gguf.ParseGGUFFile(filepath.Join(tmp, "m.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	_, hasEmbd := gf.TensorInfos.Get("token_embd.weight")
	_, hasOut := gf.TensorInfos.Get("output.weight")
	if !hasEmbd || hasOut || len(gf.TensorInfos) != 1+4*9+1 {
		t.Errorf("tied GGUF: %d tensors, token_embd %v, output %v; want 38, true, false", len(gf.TensorInfos), hasEmbd, hasOut)
	}
	if n := len(kvArray(t, gf, "tokenizer.ggml.tokens").ValuesString()); n != dense.Vocab {
		t.Errorf("%d tokens, want %d", n, dense.Vocab)
	}
}

func boolLevel(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestRestampOldExport: the metadata of an export made by an evopress whose fingerprints did
// not cover the weights (no legacy_fingerprint; the legacy fingerprint as source_model's and the
// profile's) is re-stamped by stamp.Restamp for its source model, changing those digits only; a
// current export is left as it is, and another model's is refused.
func TestRestampOldExport(t *testing.T) {
	dir := modelDir(t, "llama-pd-11m")
	ck, err := hf.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := ck.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	legacy := ck.LegacyFingerprint()
	ck.Close()
	out := filepath.Join(t.TempDir(), "exported")
	if _, err := Run(Options{ModelDir: dir, Profile: dropProfile(fp), Format: FormatHF, Out: out}); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(out, ProvenanceFile)
	current, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	m := stamp.Model{Dir: dir, Fingerprint: fp, Legacy: legacy}
	if res, err := stamp.Restamp(m, []string{out}, false); err != nil || len(res.Changes) != 0 {
		t.Fatalf("restamp of a current export: %v, %+v", err, res)
	}
	// What an older evopress wrote.
	field := `,
    "legacy_fingerprint": "` + legacy + `"`
	if !bytes.Contains(current, []byte(field)) {
		t.Fatalf("%s does not record the legacy fingerprint as %q:\n%s", meta, field, current)
	}
	old := bytes.ReplaceAll(bytes.Replace(current, []byte(field), nil, 1), []byte(fp), []byte(legacy))
	if err := os.WriteFile(meta, old, 0o644); err != nil {
		t.Fatal(err)
	}
	other := m
	other.Legacy = strings.Repeat("1", 64)
	if _, err := stamp.Restamp(other, []string{out}, false); err == nil || !strings.Contains(err.Error(), "made from another model") {
		t.Errorf("restamp for another model: %v", err)
	}
	res, err := stamp.Restamp(m, []string{out}, false)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(meta)
	if want := bytes.Replace(current, []byte(field), nil, 1); !bytes.Equal(got, want) || len(res.Changes) != 1 || res.Changes[0].New != fp {
		t.Errorf("re-stamped %s (changes %+v):\n%s\nwant\n%s", meta, res.Changes, got, want)
	}
}

// TestExportFromFS checks an export whose model is a directory of an fs.FS (Options.ModelFS,
// the embedded default model): the GGUF file is byte for byte the one exported from the same
// files on the disk, and the Hugging Face export copies the tokenizer files out of the FS and
// records the directory's name as its source; IsGGUFExport recognises the files.
func TestExportFromFS(t *testing.T) {
	tmp := t.TempDir()
	fromFS, fromDisk := filepath.Join(tmp, "fs.gguf"), filepath.Join(tmp, "disk.gguf")
	for _, o := range []Options{
		{ModelFS: assets.FS(), ModelDir: assets.ModelDir, Out: fromFS},
		{ModelDir: embeddedModel, Out: fromDisk},
	} {
		o.Format, o.Type = FormatGGUF, "q8_0"
		if _, err := Run(o); err != nil {
			t.Fatalf("%s: %v", o.Out, err)
		}
	}
	a, errA := os.ReadFile(fromFS)
	b, errB := os.ReadFile(fromDisk)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("the GGUF export from the embedded FS (%d bytes) differs from the one from %s (%d bytes)", len(a), embeddedModel, len(b))
	}
	hfOut := filepath.Join(tmp, "hf")
	if _, err := Run(Options{ModelFS: assets.FS(), ModelDir: assets.ModelDir, Format: FormatHF, Out: hfOut}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		want, err := assets.ReadFile(assets.ModelDir + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(hfOut, f)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: not copied from the FS (%v)", f, err)
		}
	}
	var pv struct {
		Source struct{ Path string } `json:"source_model"`
	}
	if data, err := os.ReadFile(filepath.Join(hfOut, ProvenanceFile)); err != nil || json.Unmarshal(data, &pv) != nil || pv.Source.Path != assets.ModelDir {
		t.Errorf("provenance source %q (%v), want %q", pv.Source.Path, err, assets.ModelDir)
	}
	// IsGGUFExport tells this package's GGUF files (what Force replaces) from others.
	other := filepath.Join(tmp, "other.gguf")
	if err := os.WriteFile(other, []byte("GGUF\x03\x00\x00\x00 not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want bool
	}{{fromFS, true}, {fromDisk, true}, {other, false}, {filepath.Join(tmp, "absent.gguf"), false}, {hfOut, false}} {
		if got := IsGGUFExport(c.path); got != c.want {
			t.Errorf("IsGGUFExport(%s) = %v, want %v", c.path, got, c.want)
		}
	}
}
