package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/export"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
)

const babyllamaDir = "../../shared/models/babyllama-1m"

// sharedModel loads a model of ../shared or skips.
func sharedModel(t *testing.T, dir string) *Loaded {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared model %s not available (%v); this test needs ../shared next to the repository", dir, err)
	}
	lm, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	return lm
}

// buildGGUF builds a gguf database of lm's in dir on the first calibTokens of the embedded
// calibration text.
func buildGGUF(t *testing.T, lm *Loaded, dir string, types []string, calibTokens int) *db.DB {
	t.Helper()
	_, err := BuildDB(context.Background(), DBRequest{Data: Data{Model: lm, CalibTokens: calibTokens},
		Build: db.BuildConfig{Out: dir, Mode: db.ModeGGUF, Method: db.MethodGGML, GGUF: db.GGUFParams{Types: types}}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestGGUFSizeEstimate checks EstimateGGUF against the files evopress export writes: a uniform
// Q8_0 profile of a gguf database of the embedded llama-pd-11m (untied output) and of
// babyllama-1m (tied), exported with every matrix in Q8_0, is exactly the estimated size; and
// GGUFTensorTypes's rules.
func TestGGUFSizeEstimate(t *testing.T) {
	type tc struct {
		name string
		lm   func(t *testing.T) *Loaded
		dir  string
	}
	for _, c := range []tc{
		{"llama-pd-11m", func(t *testing.T) *Loaded { lm, _ := LoadModel(""); return lm }, filepath.Join("..", "assets", assets.ModelDir)},
		{"babyllama-1m", func(t *testing.T) *Loaded { return sharedModel(t, babyllamaDir) }, babyllamaDir},
	} {
		t.Run(c.name, func(t *testing.T) {
			lm := c.lm(t)
			tmp := t.TempDir()
			d := buildGGUF(t, lm, filepath.Join(tmp, "db"), []string{"q8_0"}, 512)
			p, err := db.UniformProfile(d, int(ggml.Q8_0))
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(tmp, "m.gguf")
			if _, err := export.Run(export.Options{ModelDir: c.dir, Profile: p, DBDir: d.Dir(), Format: export.FormatGGUF, Type: "q8_0", Out: out}); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			types := map[string]ggml.Type{}
			for u, l := range p.Levels {
				types[u] = ggml.Type(l)
			}
			est, err := EstimateGGUF(lm, types, "q8_0", "q8_0")
			if err != nil {
				t.Fatal(err)
			}
			if est.Total != st.Size() || est.Reserve != 0 {
				t.Fatalf("estimate %+v, the exported file has %d bytes", est, st.Size())
			}
			t.Logf("%s: %d bytes (metadata %d, fixed tensors %d, layers %d)", c.name, est.Total, est.Metadata, est.Fixed, est.Layers)
		})
	}
	lm, err := LoadModel("")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tok, out         string
		wantTok, wantOut ggml.Type
		err              string
	}{
		{"", "", ggml.Q4_K, ggml.Q6_K, ""},
		{"q8_0", "", ggml.Q8_0, ggml.Q6_K, ""},
		{"", "Q5_K", ggml.Q4_K, ggml.Q5_K, ""},
		{"q4_k", "bf16", ggml.Q4_K, ggml.BF16, ""},
		{"x", "", 0, 0, "Mode.TokenEmbeddingType x: not a ggml type"},
		{"", "iq2_xxs", 0, 0, "Mode.OutputTensorType iq2_xxs: evopress does not encode iq2_xxs"},
	} {
		tok, out, err := GGUFTensorTypes(lm, c.tok, c.out)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q %q: %v, want %q", c.tok, c.out, err, c.err)
			}
			continue
		}
		if err != nil || tok != c.wantTok || out != c.wantOut {
			t.Errorf("%q %q: %s %s %v, want %s %s", c.tok, c.out, tok, out, err, c.wantTok, c.wantOut)
		}
	}
	// 128-weight rows (babyllama's hidden size, tied): Q8_0 by llama.cpp's rule; a K-quant given
	// explicitly does not fit.
	baby := *lm
	m := *lm.Model
	cfg := *m.Config
	m.Hidden, cfg.TieWordEmbeddings, m.Config = 128, true, &cfg
	baby.Model = &m
	if tok, out, err := GGUFTensorTypes(&baby, "", ""); err != nil || tok != ggml.Q8_0 || out != 0 {
		t.Errorf("tied, 128 columns: %s %s %v", tok, out, err)
	}
	if tok, _, err := GGUFTensorTypes(&baby, "", "q4_0"); err != nil || tok != ggml.Q4_0 {
		t.Errorf("tied with an output type: %s %v", tok, err)
	}
	if _, _, err := GGUFTensorTypes(&baby, "q4_k", ""); err == nil || !strings.Contains(err.Error(), "do not fit q4_K's blocks") {
		t.Errorf("q4_K rows of 128: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"123456789", 123456789}, {"5.2MB", 5200000}, {"5.2 mb", 5200000}, {"0.3MB", 300000}, {"2KiB", 2048},
		{"1.5GiB", 1610612736}, {"7k", 7000}, {"1G", 1e9}, {"10b", 10}, {"1.9", 1}} {
		if got, err := ParseSize(c.in); err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "MB", "-5MB", "0", "0.1", "5XB", "1e6", "5..2MB", "99999999999GB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

// TestGGUFSearchBeatsBaselines builds a gguf database of babyllama-1m (its 128- and 352-column
// rows take the 32-weight types Q4_0, Q5_0, Q5_1, Q8_0), runs the uniform Q5_0 baseline, and at
// exactly its file size the DP baseline and a short search, and compares the three by KL to the
// dense model on held-out text: the search must win. It also checks the budget (the profiles'
// files no larger than the size asked for) and that a uniform Q8_0 profile is close to dense.
func TestGGUFSearchBeatsBaselines(t *testing.T) {
	lm := sharedModel(t, babyllamaDir)
	tmp := t.TempDir()
	ctx := context.Background()
	d := buildGGUF(t, lm, filepath.Join(tmp, "db"), nil, 8192)
	if _, files, err := VerifyDB(d.Dir(), lm); err != nil || files != 35*4 {
		t.Fatalf("verify: %d level files, %v", files, err)
	}
	data := Data{Model: lm, DBDir: d.Dir(), SeqLen: 128, CalibTokens: 16384}
	base := func(method, typ string, size int64) *profile.Profile {
		t.Helper()
		out, err := RunBaseline(ctx, BaselineRequest{Data: data, Mode: ModeSpec{Kind: profile.ModeQuant, TargetSize: size},
			Method: method, Type: typ, Tokens: 2048, Out: filepath.Join(tmp, method+typ+".json")})
		if err != nil {
			t.Fatal(err)
		}
		return out.Profile
	}
	uniform := base("uniform", "q5_0", 0)
	size := uniform.Search.FileBytes
	dp := base("dp", "", size)
	q8 := base("uniform", "q8_0", 0)
	res, err := RunSearch(ctx, SearchRequest{Data: data, Mode: ModeSpec{Kind: profile.ModeQuant, TargetSize: size},
		Settings: search.Overrides{Offspring: ptr(8), Generations: ptr(12), InitTokens: ptr(1024),
			Stages: []search.Stage{{Survivors: 2, Tokens: 256}, {Survivors: 1, Tokens: 1024}}},
		Out: filepath.Join(tmp, "evopress.json")})
	if err != nil {
		t.Fatal(err)
	}
	evo := res.Profile
	// The search scored its candidates with the file's token embedding (q8_0, tied), and its
	// checkpoint records that, so a resume with other types is refused.
	st, err := search.LoadCheckpoint(filepath.Join(res.RunDir, "checkpoint.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Objective["token_embedding_type"]; got != "q8_0" {
		t.Errorf("checkpoint objective token_embedding_type %q, want q8_0", got)
	}
	for _, p := range []*profile.Profile{dp, evo} {
		if r := p.Search; r.TargetBytes != size || r.FileBytes > size || r.TokenEmbeddingType != "q8_0" || r.OutputTensorType != "" {
			t.Errorf("%s: target %d bytes, file %d, types %q %q", p.Method, r.TargetBytes, r.FileBytes, r.TokenEmbeddingType, r.OutputTensorType)
		}
	}
	// KL to the dense model and perplexity on the held-out text (ppl --profile: ApplyProfile),
	// every profile on the same chunks.
	dense, err := Perplexity(ctx, PPLRequest{Model: lm, Format: rawFormat, SeqLen: 128, MaxSeqs: 64})
	if err != nil {
		t.Fatal(err)
	}
	kl := map[string]float64{}
	ppl := map[string]float64{}
	for name, p := range map[string]*profile.Profile{"uniform": uniform, "dp": dp, "evopress": evo, "q8_0": q8} {
		path := filepath.Join(tmp, name+"-eval.json")
		if err := p.Write(path); err != nil {
			t.Fatal(err)
		}
		out, err := Perplexity(ctx, PPLRequest{Model: lm, Format: rawFormat, SeqLen: 128, MaxSeqs: 64, ProfileFile: path, KL: true})
		if err != nil {
			t.Fatal(err)
		}
		kl[name], ppl[name] = *out.KL, out.PPL
	}
	t.Logf("babyllama-1m at %d bytes (%.4f bits per weight of the linear layers), held-out %d tokens: KL uniform q5_0 %.5f, dp %.5f, evopress %.5f (ppl %.4f, %.4f, %.4f; dense %.4f); uniform q8_0 (%d bytes) KL %.6f, ppl %.4f",
		size, uniform.Search.BitsPerWeight, dense.Tokens, kl["uniform"], kl["dp"], kl["evopress"], ppl["uniform"], ppl["dp"], ppl["evopress"], dense.PPL,
		q8.Search.FileBytes, kl["q8_0"], ppl["q8_0"])
	if !(kl["evopress"] < kl["uniform"] && kl["evopress"] < kl["dp"]) {
		t.Errorf("the search (KL %.5f) does not beat uniform (%.5f) and dp (%.5f) at the same size", kl["evopress"], kl["uniform"], kl["dp"])
	}
	if kl["q8_0"] > 1e-3 || ppl["q8_0"]/dense.PPL > 1.002 {
		t.Errorf("uniform q8_0: KL %v, perplexity %v (dense %v): not close to dense", kl["q8_0"], ppl["q8_0"], dense.PPL)
	}
}

func ptr[T any](v T) *T { return &v }
