package db

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/imatrix"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/quant"
)

// ggufConfig returns a gguf build of tm with the given types and importance matrix source.
func (tm *tiny) ggufConfig(out string, types []string, source string) BuildConfig {
	c := tm.config(out, ModeGGUF, MethodGGML)
	c.Quant = QuantParams{}
	c.GGUF = GGUFParams{Types: types, Imatrix: ImatrixInfo{Source: source}}
	return c
}

// calibImatrix computes the importance matrix of tm's calibration sequences independently of
// Build: calib.Collect's Hessians through imatrix.Collector.AddStats.
func calibImatrix(t *testing.T, tm *tiny) *imatrix.Matrix {
	t.Helper()
	c, err := imatrix.NewCollector(tm.m)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range hessians(t, tm, 5) {
		if err := c.AddStats(st); err != nil {
			t.Fatal(err)
		}
	}
	m, err := c.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGGUFDatabase builds gguf databases of a model whose attention rows (256 weights) fit the
// K-quants and whose down_proj rows (352) do not, and checks every level against ggml: its type
// (llama-quantize's fallback, once per distinct type), its stored bytes (ggml.Quantize of the
// weights with the importance vector of the calibration pass), its bits per weight (the block
// sizes exactly), its error, and the importance matrix written into the database.
func TestGGUFDatabase(t *testing.T) {
	tm := newModel(t, 11, hf.F32, 256, 352, 2, 4)
	out := filepath.Join(t.TempDir(), "gguf")
	res := build(t, tm.ggufConfig(out, []string{"Q8_0", "q2_k", "q3_K", "q4_k", "q5_k", "q6_k", "q4_K"}, ""))
	man := res.Manifest
	if man.Mode != ModeGGUF || man.Method != MethodGGML || !slices.Equal(man.GGUF.Types, []string{"q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"}) {
		t.Fatalf("mode %s, method %s, types %v", man.Mode, man.Method, man.GGUF.Types)
	}
	im := man.GGUF.Imatrix
	data, err := os.ReadFile(filepath.Join(out, ImatrixFile))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if im.Source != ImatrixCalibration || im.File != ImatrixFile || im.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("imatrix %+v, file SHA-256 %x", im, sum)
	}
	want := calibImatrix(t, tm)
	got, _, err := imatrix.Read(filepath.Join(out, ImatrixFile))
	if err != nil {
		t.Fatal(err)
	}
	if got.ChunkCount != len(tm.calib) || got.ChunkSize != len(tm.calib[0]) || len(got.Entries) != 14 {
		t.Fatalf("imatrix file: %d chunks of %d, %d entries", got.ChunkCount, got.ChunkSize, len(got.Entries))
	}
	d := open(t, out)
	if err := d.Verify(); err != nil {
		t.Fatal(err)
	}
	hs := hessians(t, tm, 5)
	for _, l := range man.Layers {
		k, _ := arch.ParseLinearKind(l.Kind)
		lin := tm.m.Blocks[l.Block].Layer(k)
		imp := want.Linear(l.Block, k).Mean()
		if g := got.Linear(l.Block, k).Mean(); !slices.Equal(g, imp) {
			t.Fatalf("%s: the database's importance vector differs from the calibration pass's", l.Name)
		}
		var wantTypes []int
		if l.Cols%256 == 0 {
			wantTypes = []int{int(ggml.Q8_0), int(ggml.Q2_K), int(ggml.Q3_K), int(ggml.Q4_K), int(ggml.Q5_K), int(ggml.Q6_K)}
		} else { // q2_K, q3_K → q4_0; q4_K → q5_0; q5_K → q5_1; q6_K, q8_0 → q8_0
			wantTypes = []int{int(ggml.Q4_0), int(ggml.Q5_0), int(ggml.Q5_1), int(ggml.Q8_0)}
		}
		var types []int
		for _, v := range l.Levels {
			types = append(types, v.Level)
		}
		if !slices.Equal(types, wantTypes) {
			t.Fatalf("%s (%d columns): types %v, want %v", l.Name, l.Cols, types, wantTypes)
		}
		for _, v := range l.Levels {
			typ := ggml.Type(v.Level)
			wantBlocks, err := ggml.Quantize(typ, lin.W, l.Cols, imp)
			if err != nil {
				t.Fatal(err)
			}
			gt, blocks, err := d.GGUFBlocks(l.Name, v.Level)
			if err != nil || gt != typ || !bytes.Equal(blocks, wantBlocks) {
				t.Fatalf("%s %s: stored blocks differ from ggml.Quantize with the importance vector (%v)", l.Name, typ, err)
			}
			bits := 8 * float64(typ.BlockBytes()) / float64(typ.BlockSize())
			if v.Type != typ.String() || v.TensorBytes != int64(len(wantBlocks)) || v.Bits != bits || v.Bits != typ.BitsPerWeight() {
				t.Fatalf("%s %s: type %q, tensor bytes %d (want %d), bits %v (want %v)", l.Name, typ, v.Type, v.TensorBytes, len(wantBlocks), v.Bits, bits)
			}
			cw, err := d.Weights(l.Name, v.Level)
			if err != nil {
				t.Fatal(err)
			}
			w := cw.Float32()
			dq, _ := ggml.Dequantize(typ, wantBlocks)
			if !bitsEqual(w, dq) || zerosOf(w) != v.Zeros {
				t.Fatalf("%s %s: decoded weights differ from ggml.Dequantize", l.Name, typ)
			}
			if l.Block != 0 || (k != arch.KProj && k != arch.DownProj) {
				continue // compress.LayerError (float64) is slow: two layers suffice
			}
			_, norm, err := compress.LayerError(lin.W, w, l.Rows, l.Cols, hs[l.Block].Hessian(k).H)
			if err != nil || math.Abs(norm-v.Error) > 1e-5*norm+1e-9 {
				t.Fatalf("%s %s: error %v, compress.LayerError %v (%v)", l.Name, typ, v.Error, norm, err)
			}
		}
		// more bits, less error: q8_0 against the cheapest type (q2_K or q4_0)
		q8, low := slices.IndexFunc(l.Levels, func(v LevelInfo) bool { return v.Level == int(ggml.Q8_0) }), 0
		if l.Cols%256 == 0 {
			low = 1
		}
		if l.Levels[q8].Error >= l.Levels[low].Error/10 {
			t.Errorf("%s: q8_0's error %v is not a tenth of %s's %v", l.Name, l.Levels[q8].Error, l.Levels[low].Type, l.Levels[low].Error)
		}
	}
	// The cost form of the search: levels by tensor bytes, errors in the same order.
	cfg, err := man.QuantConfig(4.5, search.GroupDefault)
	if err != nil {
		t.Fatal(err)
	}
	errs := man.LevelErrors()
	for i, cl := range cfg.CostLayers {
		l := &man.Layers[i]
		for j, id := range cl.Levels {
			v := l.Levels[slices.IndexFunc(l.Levels, func(v LevelInfo) bool { return v.Level == id })]
			if cl.Costs[j] != 8*v.TensorBytes || errs[i][j] != v.Error || (j > 0 && cl.Costs[j] <= cl.Costs[j-1]) {
				t.Fatalf("%s: cost layer %v, error row %v", l.Name, cl, errs[i])
			}
		}
	}
	m, err := quant.New(cfg)
	if err != nil || !m.CostForm() || m.Searchable() != nil {
		t.Fatalf("quant mode: %v", err)
	}
	// GGUFBlocks is for gguf databases only; a missing level is an error.
	if _, _, err := d.GGUFBlocks("model.layers.0.mlp.down_proj", int(ggml.Q4_K)); err == nil {
		t.Error("GGUFBlocks of a level down_proj does not have")
	}
}

// TestGGUFImatrixSources checks the other importance matrix sources: a file (the database's
// own, written by the calibration build, gives byte-identical levels) and none (ggml's
// reference quantizers), and that a changed source is another database.
func TestGGUFImatrixSources(t *testing.T) {
	tm := newTiny(t, 5, hf.F32)
	tmp := t.TempDir()
	calibDB := build(t, tm.ggufConfig(filepath.Join(tmp, "calib"), []string{"q4_0", "q8_0"}, ""))
	imPath := filepath.Join(tmp, "calib", ImatrixFile)
	m, _, err := imatrix.Read(imPath)
	if err != nil {
		t.Fatal(err)
	}
	fileCfg := tm.ggufConfig(filepath.Join(tmp, "file"), []string{"q8_0", "q4_0"}, ImatrixFromFile)
	fileCfg.Imatrix = m
	fileCfg.GGUF.Imatrix.File = imPath
	fileCfg.GGUF.Imatrix.SHA256 = calibDB.Manifest.GGUF.Imatrix.SHA256
	fileDB := build(t, fileCfg)
	moved := fileCfg
	moved.GGUF.Imatrix.File = "elsewhere/" + ImatrixFile // the same file elsewhere: resumed
	if res := build(t, moved); len(res.Reused) != 14 {
		t.Errorf("the importance matrix file at another path: %d layers reused", len(res.Reused))
	}
	noneDB := build(t, tm.ggufConfig(filepath.Join(tmp, "none"), []string{"q4_0", "q8_0"}, ImatrixNone))
	if _, err := os.Stat(filepath.Join(tmp, "file", ImatrixFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a database with an importance matrix file wrote its own: %v", err)
	}
	for i, l := range calibDB.Manifest.Layers {
		fl, nl := fileDB.Manifest.Layers[i], noneDB.Manifest.Layers[i]
		for j, v := range l.Levels {
			if fl.Levels[j].SHA256 != v.SHA256 {
				t.Errorf("%s %s: the importance matrix from the file gives other blocks than the computed one", l.Name, v.Type)
			}
			k, _ := arch.ParseLinearKind(l.Kind)
			w := tm.m.Blocks[l.Block].Layer(k).W
			ref, _ := ggml.Quantize(ggml.Type(v.Level), w, l.Cols, nil)
			_, blocks, err := open(t, filepath.Join(tmp, "none")).GGUFBlocks(l.Name, v.Level)
			if err != nil || !bytes.Equal(blocks, ref) {
				t.Errorf("%s %s: without an importance matrix the blocks are not ggml's reference quantizer's", l.Name, v.Type)
			}
			if v.Level == int(ggml.Q4_0) && nl.Levels[j].SHA256 == v.SHA256 {
				t.Errorf("%s q4_0: the importance matrix changed nothing", l.Name)
			}
		}
	}
	// Another importance matrix is another database: refused, or replaced with Force.
	other := tm.ggufConfig(filepath.Join(tmp, "calib"), []string{"q4_0", "q8_0"}, ImatrixNone)
	if _, err := Build(context.Background(), other); err == nil || !strings.Contains(err.Error(), "field gguf") {
		t.Errorf("rebuilding with another importance matrix source: %v", err)
	}
	other.Force = true
	build(t, other)
	if _, err := os.Stat(imPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the replaced database's computed %s is still there: %v", ImatrixFile, err)
	}
	// Bad configurations.
	for _, tc := range []struct {
		name string
		mod  func(*BuildConfig)
		want string
	}{
		{"unknown type", func(c *BuildConfig) { c.GGUF.Types = []string{"q4_k", "q9_9"} }, `unknown tensor type "q9_9"`},
		{"no codec", func(c *BuildConfig) { c.GGUF.Types = []string{"iq2_xxs"} }, "iq2_xxs is not a level evopress encodes"},
		{"file without matrix", func(c *BuildConfig) {
			c.GGUF.Imatrix = ImatrixInfo{Source: ImatrixFromFile, File: "x", SHA256: strings.Repeat("0", 64)}
		}, "option Imatrix"},
		{"matrix without file", func(c *BuildConfig) { c.Imatrix = m }, "option Imatrix: given with"},
		{"bad source", func(c *BuildConfig) { c.GGUF.Imatrix.Source = "elsewhere" }, "imatrix.source"},
		{"sequential", func(c *BuildConfig) { c.Sequential = true }, "not sequential"},
		{"wrong width", func(c *BuildConfig) {
			c.GGUF.Imatrix = ImatrixInfo{Source: ImatrixFromFile, File: "x", SHA256: strings.Repeat("0", 64)}
			bad := m.Clone()
			bad.Entries["blk.0.ffn_down.weight"] = &imatrix.Entry{Sums: make([]float32, 7), Counts: []int64{1}}
			c.Imatrix = bad
		}, "blk.0.ffn_down.weight"},
	} {
		cfg := tm.ggufConfig(filepath.Join(t.TempDir(), "x"), nil, "")
		tc.mod(&cfg)
		if _, err := Build(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestGGUFResume interrupts gguf builds (levels missing, a level file corrupt, the importance
// matrix file missing) and checks that the rebuilt database is byte for byte the
// uninterrupted one.
func TestGGUFResume(t *testing.T) {
	tm := newTiny(t, 6, hf.F32)
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	build(t, tm.ggufConfig(a, nil, ""))
	ref := snapshot(t, a)
	cfg := tm.ggufConfig(b, nil, "")
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Progress = func(e Event) {
		if e.Phase == "layer" && e.Done == 5 {
			cancel()
		}
	}
	if _, err := Build(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted build: %v", err)
	}
	cancel()
	man, err := ParseManifest(snapshot(t, b)[ManifestFile], "manifest")
	if err != nil || man.Complete || len(man.Layers) != 5 || man.GGUF.Imatrix.SHA256 != "" { // stopped before layer 6
		t.Fatalf("interrupted manifest: %v, complete %v, %d layers", err, man.Complete, len(man.Layers))
	}
	cfg.Progress = nil
	res := build(t, cfg)
	if len(res.Reused) != 5 || len(res.Computed) != 9 {
		t.Errorf("resumed: %d reused, %d computed", len(res.Reused), len(res.Computed))
	}
	sameSnapshots(t, ref, snapshot(t, b))

	// A corrupt level file of a finished database: that layer only, with the intact imatrix.
	l := man.Layers[3]
	if err := os.WriteFile(filepath.Join(b, l.Levels[0].File), []byte("corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := build(t, cfg); !slices.Equal(res.Computed, []string{l.Name}) {
		t.Errorf("recomputed %v, want %s", res.Computed, l.Name)
	}
	sameSnapshots(t, ref, snapshot(t, b))
	// The importance matrix file removed: written again, the same.
	if err := os.Remove(filepath.Join(b, ImatrixFile)); err != nil {
		t.Fatal(err)
	}
	if res := build(t, cfg); len(res.Computed) != 0 {
		t.Errorf("recomputed %v", res.Computed)
	}
	sameSnapshots(t, ref, snapshot(t, b))
	if err := open(t, b).Verify(); err != nil {
		t.Fatal(err)
	}
	// Verify catches a replaced importance matrix file.
	if err := os.WriteFile(filepath.Join(b, ImatrixFile), []byte("GGUF"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := open(t, b).Verify(); err == nil || !strings.Contains(err.Error(), "gguf.imatrix.sha256") {
		t.Errorf("Verify with a replaced %s: %v", ImatrixFile, err)
	}
}

// TestGGUFProfiles checks the uniform profile of a gguf database (one type, with llama-quantize's
// fallback), that quant profiles apply to it, and the manifest's checks of gguf levels.
func TestGGUFProfiles(t *testing.T) {
	tm := newModel(t, 12, hf.F32, 256, 352, 1, 4)
	out := filepath.Join(t.TempDir(), "g")
	build(t, tm.ggufConfig(out, nil, ""))
	d := open(t, out)
	if d.Mode() != ModeGGUF || d.ProfileMode() != profile.ModeQuant || ProfileMode("sparse") != "sparse" || ProfileMode("x") != "" {
		t.Fatalf("modes %s %s", d.Mode(), d.ProfileMode())
	}
	p, err := UniformProfile(d, int(ggml.Q4_K))
	if err != nil {
		t.Fatal(err)
	}
	var bytes, numel float64
	for _, l := range d.Manifest().Layers {
		want := ggml.Q4_K
		if l.Cols%256 != 0 {
			want = ggml.Q5_0
		}
		if p.Levels[l.Name] != int(want) || p.Values[l.Name] != want.BitsPerWeight() {
			t.Errorf("%s: uniform q4_K gives %d (%v bits), want %s", l.Name, p.Levels[l.Name], p.Values[l.Name], want)
		}
		bytes += float64(l.Numel) * want.BitsPerWeight() / 8
		numel += float64(l.Numel)
	}
	if p.Mode != profile.ModeQuant || math.Abs(p.Target-8*bytes/numel) > 1e-12 {
		t.Errorf("mode %s, target %v, want %v", p.Mode, p.Target, 8*bytes/numel)
	}
	m, warn, err := ApplyProfile(tm.m, tm.fp, p, d)
	if err != nil || len(warn) != 0 {
		t.Fatal(err, warn)
	}
	w, _ := d.Weights("model.layers.0.mlp.up_proj", int(ggml.Q4_K))
	if m.Blocks[0].Up.W != nil || m.Blocks[0].Up.Stored.Dec != w.Dec {
		t.Error("the applied profile does not use the cached level")
	}
	if _, err := UniformProfile(d, int(ggml.IQ4_XS)); err == nil {
		t.Error("a uniform profile of a type the database does not hold")
	}
	sp := profile.New(profile.ModeSparse)
	if _, _, err := ApplyProfile(tm.m, tm.fp, sp, d); err == nil || !strings.Contains(err.Error(), "a gguf database") {
		t.Errorf("a sparse profile on a gguf database: %v", err)
	}

	// The manifest's checks of gguf levels.
	good, err := os.ReadFile(filepath.Join(out, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Manifest)
		want string
	}{
		{"tensor bytes", func(m *Manifest) { m.Layers[0].Levels[1].TensorBytes++ }, "tensor_bytes"},
		{"bits", func(m *Manifest) { m.Layers[0].Levels[1].Bits += 1e-9 }, "levels[1].bits"},
		{"type name", func(m *Manifest) { m.Layers[0].Levels[1].Type = "q4_k" }, `type: "q4_k"`},
		{"no fit", func(m *Manifest) {
			m.Layers[6].Levels[0].Level, m.Layers[6].Levels[0].Type = int(ggml.Q2_K), "q2_K"
		}, "does not fit"},
		{"not a codec", func(m *Manifest) { m.Layers[0].Levels[0].Level = int(ggml.IQ2_XXS) }, "not a ggml type evopress encodes"},
		{"types order", func(m *Manifest) { m.GGUF.Types = []string{"q4_K", "q2_K"} }, "type-id order"},
		{"types name", func(m *Manifest) { m.GGUF.Types = []string{"Q4_K"} }, `"Q4_K" is not a ggml type name`},
		{"no imatrix sha", func(m *Manifest) { m.GGUF.Imatrix.SHA256 = "xyz" }, "imatrix.sha256"},
		{"file source", func(m *Manifest) { m.GGUF.Imatrix = ImatrixInfo{Source: ImatrixFromFile, File: "f"} }, "SHA-256"},
		{"method", func(m *Manifest) { m.Method = MethodRTN }, "built with ggml"},
		{"quant params", func(m *Manifest) { m.Quant = &QuantParams{Bits: []int{4}} }, "field gguf"},
		{"values", func(m *Manifest) { m.Layers[0].Levels[0].Values = "f16" }, "values"},
	} {
		m, err := ParseManifest(good, "m")
		if err != nil {
			t.Fatal(err)
		}
		tc.mod(m)
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	q, err := ParseManifest(good, "m")
	if err != nil {
		t.Fatal(err)
	}
	q.Mode, q.Method, q.GGUF, q.Quant = ModeQuant, MethodRTN, nil, &QuantParams{Bits: []int{2, 6, 7, 8}}
	for i := range q.Layers {
		q.Layers[i].Levels = slices.DeleteFunc(q.Layers[i].Levels, func(v LevelInfo) bool { return v.Level > 8 })
	}
	if err := q.Validate(); err == nil || !strings.Contains(err.Error(), "type: set in a quant database") {
		t.Errorf("gguf levels in a quant manifest: %v", err)
	}
}
