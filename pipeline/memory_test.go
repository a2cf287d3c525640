package pipeline

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/internal/memcheck"
	"github.com/evopress/evopress/internal/modelspec"
	"github.com/evopress/evopress/profile"
)

// shapeOf is the embedded model's shape ("pd") or a published architecture's.
func shapeOf(t *testing.T, key string) *memcheck.Shape {
	t.Helper()
	var s *memcheck.Shape
	var err error
	if key == "pd" {
		s, err = modelShape("")
	} else {
		s, err = memcheck.SpecShape(modelspec.Specs[key])
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The estimates of known configurations, part by part, against the sizes worked out by hand
// from the architectures (the comments give the arithmetic); each part within 1% (the attention
// score buffers, GOMAXPROCS·T²·4 bytes, are the only machine-dependent term).
func TestMemoryEstimates(t *testing.T) {
	const gib = 1 << 30
	cliData := Data{SeqLen: 256, CalibTokens: DefaultCalibTokens, CacheMB: DefaultCacheMB, DBCacheMB: DefaultDBCacheMB}
	// Forward activations per token row, floats: residual + normed input (2h), q and attention
	// output (2·nq), k and v (2·nkv), gate and up (2·I); the head: 256 rows × (h + vocab).
	row := func(h, nq, nkv, inter int) int64 { return int64(4 * (2*h + 2*nq + 2*nkv + 2*inter)) }
	head := func(h, vocab int) int64 { return int64(4 * 256 * (h + vocab)) }
	rows := func(b, t int) int64 { return int64(b * t) }
	pdRow, row1b, row8b := row(256, 256, 128, 704), row(2048, 2048, 512, 8192), row(4096, 4096, 1024, 14336)
	pdHead, head1b, head8b := head(256, 4096), head(2048, 128256), head(4096, 128256)
	entry := int64(255 * (2*128256 + 16)) // one 256-token chunk's float16 distribution, 128,256 tokens
	for _, c := range []struct {
		name, model string
		est         func(s *memcheck.Shape) *memcheck.Estimate
		parts       map[string]float64 // bytes (besides runtime); weights are checked separately
		total       [2]float64         // GiB, stated bounds of the whole estimate
	}{
		{"ppl llama-pd-11m", "pd", func(s *memcheck.Shape) *memcheck.Estimate {
			return pplEstimate(s, PPLRequest{SeqLen: 256, Batch: 32}, false)
		}, map[string]float64{"activations": float64(rows(32, 256)*pdRow + pdHead)}, [2]float64{0.16, 0.18}},
		{"ppl 1B, 8 sequences", "llama-3.2-1b", func(s *memcheck.Shape) *memcheck.Estimate {
			return pplEstimate(s, PPLRequest{SeqLen: 256, Batch: 8, MaxSeqs: 8}, false)
		}, map[string]float64{"activations": float64(rows(8, 256)*row1b + head1b)}, [2]float64{2.65, 2.70}},
		{"ppl 1B", "llama-3.2-1b", func(s *memcheck.Shape) *memcheck.Estimate {
			return pplEstimate(s, PPLRequest{SeqLen: 256, Batch: 32}, false)
		}, map[string]float64{"activations": float64(rows(32, 256)*row1b + head1b)}, [2]float64{3.2, 3.3}},
		{"ppl 8B", "llama-3.1-8b", func(s *memcheck.Shape) *memcheck.Estimate {
			return pplEstimate(s, PPLRequest{SeqLen: 256, Batch: 32}, false)
		}, map[string]float64{"activations": float64(rows(32, 256)*row8b + head8b)}, [2]float64{16.5, 16.7}},
		{"ppl --kl 8B", "llama-3.1-8b", func(s *memcheck.Shape) *memcheck.Estimate {
			return pplEstimate(s, PPLRequest{SeqLen: 256, Batch: 32, KL: true}, false)
		}, map[string]float64{"activations": float64(rows(32, 256)*row8b + head8b), "teacher distributions": float64(32 * entry)},
			[2]float64{18.5, 18.6}},
		{"ppl llama.cpp protocol 8B", "llama-3.1-8b", func(s *memcheck.Shape) *memcheck.Estimate {
			return pplEstimate(s, PPLRequest{}, true) // 32 chunks of 512
		}, map[string]float64{"activations": float64(rows(32, 512)*row8b + head8b)}, [2]float64{18.0, 18.1}},
		{"search drop 8B", "llama-3.1-8b", func(s *memcheck.Shape) *memcheck.Estimate {
			return scoringEstimate(s, cliData, scoring{command: "search drop", kl: true, subBatch: 16, workers: 1, prefixReuse: true})
		}, map[string]float64{
			"activations":   float64(rows(16, 256)*row8b + head8b),
			"prefix states": 34 * 16 * 256 * 4096 * 4, // the parent's state at each of 32 blocks, its running copy, the candidate's
			"teacher cache": 2*gib + float64(16*entry),
		}, [2]float64{20.9, 21.1}},
		{"search quant 8B", "llama-3.1-8b", func(s *memcheck.Shape) *memcheck.Estimate {
			return scoringEstimate(s, cliData, scoring{command: "search quant", kl: true, subBatch: 16, workers: 1, prefixReuse: true, db: true})
		}, map[string]float64{
			"levels": 4 * 32 * (2*4096*4096 + 2*4096*1024 + 3*4096*14336), // no database to read: every linear layer in float32
		}, [2]float64{46.9, 47.1}},
		{"search drop --kl-topk 64 --sub-batch 4 1B", "llama-3.2-1b", func(s *memcheck.Shape) *memcheck.Estimate {
			return scoringEstimate(s, cliData, scoring{command: "search drop", kl: true, topK: 64, subBatch: 4, workers: 1, prefixReuse: true})
		}, map[string]float64{
			"activations":   float64(rows(16, 256)*row1b + head1b), // the teacher's batches of 16
			"prefix states": 18 * 4 * 256 * 2048 * 4,
			"teacher cache": 512 * 255 * (12*64 + 8), // the whole pool of 512 chunks fits the cache
		}, [2]float64{3.1, 3.13}},
		{"db build quant 8B", "llama-3.1-8b", func(s *memcheck.Shape) *memcheck.Estimate {
			return dbBuildEstimate(s, DBRequest{Data: cliData, Build: db.BuildConfig{Mode: db.ModeQuant, Method: db.MethodGPTQ, Quant: db.DefaultQuantParams()}})
		}, map[string]float64{
			"calibration states": 512 * 256 * 4096 * 4,
			"Hessians":           4 * (2*4096*4096 + 4096*4096 + 14336*14336),
			// down_proj (4096×14336): its float32 copy, 5 levels, 2 error buffers (8 float32
			// copies); packed levels (2+3+4+5+6 bits) and codes (5 bytes); GPTQ's float64 copy
			// and its 14336² factor, factored and inverted in place, with two 14336×128 panels.
			"compression": 4096*14336*(8*4+20.0/8+5+8) + 8*14336*14336 + 2*8*14336*128,
		}, [2]float64{22.9, 23.1}},
		{"db build sparse 1B", "llama-3.2-1b", func(s *memcheck.Shape) *memcheck.Estimate {
			return dbBuildEstimate(s, DBRequest{Data: cliData, Build: db.BuildConfig{Mode: db.ModeSparse, Method: db.MethodSparseGPT, Sparse: db.DefaultSparseParams(0.5)}})
		}, map[string]float64{
			"calibration states": 512 * 256 * 2048 * 4,
			// 2048×8192: 20 float32 copies (17 levels), 17 level files of a bitmask and half the
			// values in float32, SparseGPT's float64 copy, its 8192² factor and two panels.
			"compression": 2048*8192*(20*4+17*(1.0/8+2)+8) + 8*8192*8192 + 2*8*8192*128,
		}, [2]float64{6.55, 6.7}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := shapeOf(t, c.model)
			e := c.est(s)
			if got := e.Bytes("weights"); got != s.WeightBytes {
				t.Errorf("weights %d, want the shape's %d", got, s.WeightBytes)
			}
			if got := e.Bytes("runtime"); got != memcheck.RuntimeBytes {
				t.Errorf("runtime %d, want %d", got, memcheck.RuntimeBytes)
			}
			for name, want := range c.parts {
				if got := float64(e.Bytes(name)); math.Abs(got-want) > 0.01*want {
					t.Errorf("%s: %.4g bytes, want %.4g", name, got, want)
				}
			}
			if tot := float64(e.Total()) / gib; tot < c.total[0] || tot > c.total[1] {
				t.Errorf("total %.3f GiB, outside [%g, %g]:\n%s", tot, c.total[0], c.total[1], e.Describe(nil))
			}
		})
	}
}

// noTokenizerModel is the embedded model without its tokenizer: its shape reads, but loading
// it fails, so a command that reports the memory estimate checked it before loading.
func noTokenizerModel(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors"} {
		data, err := assets.ReadFile(assets.ModelDir + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Every command that loads a model refuses, before loading it and writing anything, when its
// estimate exceeds EVOPRESS_MEMORY_LIMIT; with the check off the same request goes on to the
// load (which fails here on the missing tokenizer).
func TestMemoryRefusedBeforeLoad(t *testing.T) {
	dir := noTokenizerModel(t)
	out := t.TempDir()
	task := filepath.Join(out, "arc.jsonl")
	if err := os.WriteFile(task, []byte(`{"question": "Which is a mammal?", "choices": {"text": ["cat", "trout"], "label": ["A", "B"]}, "answerKey": "A"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		command string
		run     func() error
	}{
		{"ppl", func() error { _, err := Perplexity(ctx, PPLRequest{ModelDir: dir}); return err }},
		{"ppl", func() error {
			_, err := Perplexity(ctx, PPLRequest{ModelDir: dir, Protocol: "llamacpp"})
			return err
		}},
		{"search drop", func() error {
			_, err := RunSearch(ctx, SearchRequest{Data: Data{ModelDir: dir}, Mode: ModeSpec{Kind: profile.ModeDrop, Target: 0.25},
				Out: filepath.Join(out, "search.json")})
			return err
		}},
		{"baseline drop shortgpt", func() error {
			_, err := RunBaseline(ctx, BaselineRequest{Data: Data{ModelDir: dir}, Mode: ModeSpec{Kind: profile.ModeDrop, Target: 0.25},
				Method: "shortgpt", Out: filepath.Join(out, "baseline.json")})
			return err
		}},
		{"db build quant", func() error {
			_, err := BuildDB(ctx, DBRequest{Data: Data{ModelDir: dir}, Build: db.BuildConfig{Out: filepath.Join(out, "db"),
				Mode: db.ModeQuant, Method: db.MethodGPTQ, Quant: db.DefaultQuantParams()}})
			return err
		}},
		{"eval", func() error {
			_, _, err := ZeroShot(ctx, ZeroShotRequest{ModelDir: dir, Tasks: []string{task}, Batch: 4})
			return err
		}},
	} {
		t.Setenv(memcheck.EnvLimit, "1MiB")
		err := c.run()
		var me *memcheck.Error
		if !errors.As(err, &me) {
			t.Errorf("%s under %s=1MiB: %v, want *memcheck.Error", c.command, memcheck.EnvLimit, err)
			continue
		}
		if me.Estimate.Command != c.command || me.Limit.Bytes != 1<<20 || me.Estimate.Bytes("weights") == 0 {
			t.Errorf("%s: refused as %q with %d bytes available, weights %d", c.command, me.Estimate.Command, me.Limit.Bytes, me.Estimate.Bytes("weights"))
		}
		t.Setenv(memcheck.EnvLimit, "off")
		if err := c.run(); err == nil || errors.As(err, &me) || !strings.Contains(err.Error(), "tokenizer") {
			t.Errorf("%s with the check off: %v, want the load's missing-tokenizer error", c.command, err)
		}
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "arc.jsonl" && e.Name() != "db" {
			t.Errorf("a refused command left %s", e.Name())
		}
	}
}

// TestLevelsEstimate checks the levels a search over a gguf database is estimated to hold: what
// one level of every layer holds at most, read from the manifest (db.Manifest.MaxHeldBytes), no
// less than the compact levels a model of the largest type holds (summed from the levels
// themselves), at most the float32 copy it replaces; the cache budget when that is larger.
func TestLevelsEstimate(t *testing.T) {
	lm := sharedModel(t, babyllamaDir)
	d := buildGGUF(t, lm, filepath.Join(t.TempDir(), "db"), []string{"q4_0", "q8_0"}, 512)
	s, err := modelShape(babyllamaDir)
	if err != nil {
		t.Fatal(err)
	}
	named := func(e *memcheck.Estimate, name string) memcheck.Part {
		for _, p := range e.Parts {
			if p.Name == name {
				return p
			}
		}
		t.Fatalf("no %s part in %+v", name, e.Parts)
		return memcheck.Part{}
	}
	part := func(e *memcheck.Estimate) memcheck.Part { return named(e, "levels") }
	sc := scoring{command: "search quant", kl: true, subBatch: 16, workers: 1, prefixReuse: true, db: true}
	got := part(scoringEstimate(s, Data{SeqLen: 256, DBDir: d.Dir()}, sc))
	// The file's token embedding (tied or not, as the config says) decoded to float32.
	copies := int64(2)
	if s.Config.TieWordEmbeddings {
		copies = 1
	}
	if ft := named(scoringEstimate(s, Data{SeqLen: 256, DBDir: d.Dir()}, sc), "file tensors"); ft.Bytes != copies*4*int64(s.Config.VocabSize*s.Config.HiddenSize) {
		t.Errorf("file tensors %+v, want %d copies of %d×%d float32", ft, copies, s.Config.VocabSize, s.Config.HiddenSize)
	}
	if got.Bytes != d.Manifest().MaxHeldBytes() || !strings.Contains(got.Detail, "held as the gguf database stores them") {
		t.Fatalf("levels %+v, want %d bytes", got, d.Manifest().MaxHeldBytes())
	}
	var held int64
	for _, l := range d.Layers() {
		w, err := d.Weights(l, int(ggml.Q8_0))
		if err != nil {
			t.Fatal(err)
		}
		held += w.Dec.(interface{ Bytes() int64 }).Bytes()
	}
	if got.Bytes < held || got.Bytes > held+int64(len(d.Layers()))*512 || got.Bytes >= 4*s.LinearWeights {
		t.Errorf("estimated %d bytes; the Q8_0 levels hold %d, float32 %d", got.Bytes, held, 4*s.LinearWeights)
	}
	// Every level (Q4_0 and Q8_0 of each layer) as held: the blocks, and at most 512 bytes of
	// header and padding per level.
	var all int64
	for _, l := range d.Layers() {
		for _, typ := range []ggml.Type{ggml.Q4_0, ggml.Q8_0} {
			w, err := d.Weights(l, int(typ))
			if err != nil {
				t.Fatal(err)
			}
			all += w.Dec.(interface{ Bytes() int64 }).Bytes()
		}
	}
	total, most := d.Manifest().TotalHeldBytes(), d.Manifest().MaxHeldBytes()
	if total < all || total > all+int64(2*len(d.Layers()))*512 || total <= 1<<20 || total >= 64<<20 {
		t.Fatalf("every level holds %d bytes (the blocks: %d); the cases below need it between 1 and 64 MiB", total, all)
	}
	for _, c := range []struct {
		cacheMB, workers int
		want             int64
		knob             bool
	}{
		{0, 1, most, true},                        // no cache: the model being scored holds its levels
		{1, 1, 1<<20 + most, true},                // the cache, and the levels it dropped that the model holds
		{1, 2, 1<<20 + 2*most, true},              // one model per worker
		{64, 1, total, false},                     // every level read once and shared
		{64, 4, total, false},                     // whatever the workers
		{int(total >> 20), 1, 1<<20 + most, true}, // a cache short of every level by less than a MiB
	} {
		sc := sc
		sc.workers = c.workers
		p := part(scoringEstimate(s, Data{SeqLen: 256, DBDir: d.Dir(), DBCacheMB: c.cacheMB}, sc))
		if p.Bytes != c.want || (len(p.Knobs) > 0) != c.knob {
			t.Errorf("--db-cache-mb %d, %d workers: %+v, want %d bytes (lowered by the cache: %v)", c.cacheMB, c.workers, p, c.want, c.knob)
		}
	}
}
