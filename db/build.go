package db

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/calib"
	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/imatrix"
	"github.com/evopress/evopress/internal/atomicfile"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search/sparse"
)

// DefaultSparseParams returns the reference's sparse database settings for a target sparsity:
// 8 levels each way, the default weights diff (0: computed by Build with sparse.DefaultD),
// SparseGPT blocks of 128 columns and 1% damping.
func DefaultSparseParams(target float64) SparseParams {
	return SparseParams{Target: target, Levels: 8, BlockSize: 128, PercDamp: 0.01}
}

// DefaultQuantParams returns the reference's quant database settings: bit-widths 2..6, groups of
// 128, GPTQ blocks of 128, 1% damping, no activation reordering.
func DefaultQuantParams() QuantParams {
	return QuantParams{Bits: []int{2, 3, 4, 5, 6}, GroupSize: 128, BlockSize: 128, PercDamp: 0.01}
}

// DefaultGGUFTypes are the types of a gguf database when none are given: the K-quant ladder
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_0 (2.625, 3.4375, 4.5, 5.5, 6.5625 and 8.5 bits per
// weight). They are the types llama.cpp's own Q2_K … Q6_K mixes are made of, so a search
// competes with those recipes on their own ground; every llama.cpp and ollama backend has fast
// kernels for them; and their steps of about one bit per weight span 2.6 to 8.5 bits. Layers
// whose rows do not fit 256-weight blocks get llama-quantize's 32-weight fallbacks implicitly
// (Q4_0, Q5_0, Q5_1, Q8_0: ggml.Fallback). Q4_0 … Q5_1, IQ4_NL and IQ4_XS can be added (the
// 32-weight types are the only ones a model with 128-column rows can use).
func DefaultGGUFTypes() []string {
	return []string{"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0"}
}

// BuildConfig describes a database build.
type BuildConfig struct {
	// Out is the database directory (created if needed).
	Out string
	// Model is the dense model; it is not modified.
	Model *model.Model
	// ModelInfo identifies the model: Fingerprint is required, Path and DType are informative;
	// Blocks and Hidden are filled in from Model.
	ModelInfo ModelInfo
	// Calib holds the calibration sequences, all of one length.
	Calib [][]int
	// Calibration describes them: Source, SHA256, FileTokens and Seed as the caller chose them;
	// SeqLen, Sequences, Tokens and Batch are filled in by Build (FileTokens defaults to Tokens).
	Calibration CalibInfo
	// Batch is the number of sequences per forward batch (≤ 0: calib.DefaultBatch).
	Batch int
	// Mode is ModeSparse or ModeQuant; Method one of the methods of the mode.
	Mode, Method string
	// Sparse holds the sparse settings (start from DefaultSparseParams); WeightsDiff 0 selects
	// sparse.DefaultD(hidden, target, max(levels, 1)).
	Sparse SparseParams
	// Quant holds the quant settings (start from DefaultQuantParams).
	Quant QuantParams
	// GGUF holds the gguf settings: Types (ggml names in any spelling and order; DefaultGGUFTypes
	// when empty) and Imatrix: Source ImatrixCalibration (the default) computes the importance
	// matrix from the build's calibration pass and writes it into the database as ImatrixFile;
	// ImatrixFromFile uses Imatrix below (File and SHA256 name the file it was read from);
	// ImatrixNone quantizes without importance weights.
	GGUF GGUFParams
	// Imatrix is the importance matrix of an ImatrixFromFile build (checked against the model).
	Imatrix *imatrix.Matrix
	// Sequential calibrates each block on the outputs of the previous blocks compressed to
	// SequentialLevel (a bit-width of Quant.Bits, or a sparse level, usually 0).
	Sequential      bool
	SequentialLevel int
	// Force discards an existing database in Out built with other settings (or unreadable)
	// instead of failing: its level files (only those) are removed and its manifest replaced.
	// A database with the same settings is always resumed. Out must be empty, new or a
	// database whatever Force says, and is locked while the build runs (*BusyError when another
	// build holds it).
	Force bool
	// Progress, when set, receives build events.
	Progress func(Event)
}

// Event is a build progress report.
type Event struct {
	// Phase is "calib" (a batch of calibration forward passes: Done of Total sequences through
	// Block), "layer" (Layer compressed: Done of Total layers, Levels levels in Seconds) or "reuse"
	// (Layer taken from an earlier, interrupted build).
	Phase       string
	Block       int
	Layer       string
	Done, Total int
	Levels      int
	Seconds     float64
}

// BuildResult summarises a build.
type BuildResult struct {
	// Manifest is the finished manifest; Fingerprint the database's fingerprint (see DB.Fingerprint).
	Manifest    *Manifest
	Fingerprint string
	// Computed and Reused list the layers compressed by this build and those kept from an earlier one.
	Computed, Reused []string
	// Seconds is the whole build; CompressSeconds the part spent compressing layers and writing
	// levels, the rest being calibration forward passes and Hessians.
	Seconds, CompressSeconds float64
	// Bytes is the total size of the level files; Weights the number of weights of all layers.
	Bytes   int64
	Weights int64
}

type builder struct {
	ctx   context.Context // checked before each layer
	cfg   *BuildConfig
	man   *Manifest
	done  map[string]*LayerInfo
	work  *model.Model
	res   *BuildResult
	total int

	// gguf: the importance matrix, from a file (or the database's own intact ImatrixFile), or
	// being collected from the calibration pass (then every block's statistics are needed).
	imx       *imatrix.Matrix
	collector *imatrix.Collector
	prevSHA   string // the computed importance matrix's checksum in the resumed manifest
}

// Build builds (or resumes) a level database: it runs the calibration sequences through the
// model block by block (package calib), compresses each linear layer to every level with the
// chosen method against its calibration Hessian, writes each level packed to its own file and
// the manifest after every layer (all writes atomic). If Out already holds a manifest with the
// same settings, the layers it lists whose files are intact are kept and only the others are
// computed; the result is identical to an uninterrupted build. The manifest is written first (no
// layers, incomplete), so that an interrupted build's directory is always a database. A cancelled
// ctx stops the build with ctx's error between calibration batches and between layers.
func Build(ctx context.Context, cfg BuildConfig) (*BuildResult, error) {
	start := time.Now()
	b := &builder{ctx: ctx, cfg: &cfg, done: map[string]*LayerInfo{}, res: &BuildResult{}}
	var err error
	if b.man, err = header(&cfg); err != nil {
		return nil, err
	}
	m := cfg.Model
	b.total = len(m.Blocks) * int(arch.NumLinearKinds)
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	lock, err := lockBuildDir(cfg.Out)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	fresh, err := b.resume()
	if err != nil {
		return nil, err
	}
	if fresh { // a manifest from the start: the directory is a database (being built)
		if _, err := b.writeManifest(); err != nil {
			return nil, err
		}
	}
	last := -1
	for i := range m.Blocks {
		if !b.blockDone(i) {
			last = i
		}
	}
	if err := b.imatrixSource(); err != nil {
		return nil, err
	}
	needAll := b.collector != nil // the importance matrix needs every block's statistics
	if needAll {
		last = len(m.Blocks) - 1
	}
	b.work = m.Clone()
	if last >= 0 {
		opt := calib.Options{Batch: b.man.Calibration.Batch, Sequential: cfg.Sequential, Blocks: last + 1,
			NeedStats: func(i int) bool { return needAll || !b.blockDone(i) }}
		if cfg.Progress != nil {
			opt.Progress = func(block, done, total int) {
				cfg.Progress(Event{Phase: "calib", Block: block, Done: done, Total: total})
			}
		}
		if err := calib.Run(ctx, b.work, cfg.Calib, opt, b.block); err != nil {
			return nil, err
		}
	}
	if err := b.writeImatrix(); err != nil {
		return nil, err
	}
	b.man.Complete = true
	b.man.Layers = b.layers()
	data, err := b.writeManifest()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	b.res.Manifest = b.man
	b.res.Fingerprint = hex.EncodeToString(sum[:])
	for _, l := range b.man.Layers {
		b.res.Weights += l.Numel
		for _, v := range l.Levels {
			b.res.Bytes += v.Bytes
		}
	}
	b.res.Seconds = time.Since(start).Seconds()
	return b.res, nil
}

// header validates the configuration and returns the manifest without layers.
func header(cfg *BuildConfig) (*Manifest, error) {
	m := cfg.Model
	switch {
	case m == nil:
		return nil, fmt.Errorf("db: Build: nil model")
	case cfg.Out == "":
		return nil, fmt.Errorf("db: Build: no output directory")
	case len(cfg.Calib) == 0 || len(cfg.Calib[0]) == 0:
		return nil, fmt.Errorf("db: Build: no calibration sequences")
	}
	for i, s := range cfg.Calib {
		if len(s) != len(cfg.Calib[0]) {
			return nil, fmt.Errorf("db: Build: calibration sequence %d has %d tokens, want %d", i, len(s), len(cfg.Calib[0]))
		}
	}
	man := &Manifest{Format: FormatV1, Mode: cfg.Mode, Method: cfg.Method, Model: cfg.ModelInfo,
		Calibration: cfg.Calibration, Sequential: cfg.Sequential, SequentialLevel: cfg.SequentialLevel, Layers: []LayerInfo{}}
	man.Model.Blocks, man.Model.Hidden = len(m.Blocks), m.Hidden
	c := &man.Calibration
	c.SeqLen, c.Sequences = len(cfg.Calib[0]), len(cfg.Calib)
	c.Tokens = c.SeqLen * c.Sequences
	c.FileTokens = max(c.FileTokens, c.Tokens)
	c.Batch = cfg.Batch
	if c.Batch <= 0 {
		c.Batch = calib.DefaultBatch
	}
	switch cfg.Mode {
	case ModeSparse:
		p := cfg.Sparse
		if p.Levels < 0 {
			return nil, fmt.Errorf("db: Build: levels %d, want ≥ 0", p.Levels)
		}
		if p.WeightsDiff == 0 && p.Target > 0 && p.Target < 1 {
			d, err := sparse.DefaultD(int64(m.Hidden), p.Target, max(p.Levels, 1))
			if err != nil {
				return nil, fmt.Errorf("db: Build: %w", err)
			}
			p.WeightsDiff = d
		}
		man.Sparse = &p
	case ModeQuant:
		p := cfg.Quant
		p.Bits = slices.Clone(p.Bits)
		slices.Sort(p.Bits)
		if len(slices.Compact(slices.Clone(p.Bits))) != len(p.Bits) {
			return nil, fmt.Errorf("db: Build: bit-width listed twice in %v", p.Bits)
		}
		man.Quant = &p
	case ModeGGUF:
		p, err := ggufParams(cfg)
		if err != nil {
			return nil, err
		}
		man.GGUF = p
	}
	if !cfg.Sequential && cfg.SequentialLevel != 0 {
		return nil, fmt.Errorf("db: Build: a sequential level without sequential mode")
	}
	if err := man.validateHeader(); err != nil {
		return nil, fmt.Errorf("db: Build: %w", err)
	}
	return man, nil
}

// ggufParams returns the manifest's gguf parameters of a build: the types in ggml's spelling and
// id order, and the importance matrix's source (checked against the model).
func ggufParams(cfg *BuildConfig) (*GGUFParams, error) {
	p := GGUFParams{Imatrix: cfg.GGUF.Imatrix}
	names := cfg.GGUF.Types
	if len(names) == 0 {
		names = DefaultGGUFTypes()
	}
	var ts []ggml.Type
	for _, n := range names {
		t, err := ggml.ParseType(n)
		if err != nil {
			return nil, fmt.Errorf("db: Build: option GGUF.Types: %w", err)
		}
		if !t.Codec() || t == ggml.F32 {
			return nil, fmt.Errorf("db: Build: option GGUF.Types: %s is not a level evopress encodes (it encodes %s)", t, codecTypes())
		}
		ts = append(ts, t)
	}
	slices.Sort(ts)
	for _, t := range slices.Compact(ts) {
		p.Types = append(p.Types, t.String())
	}
	im := &p.Imatrix
	if im.Source == "" {
		im.Source = ImatrixCalibration
	}
	switch im.Source {
	case ImatrixCalibration:
		im.File, im.SHA256 = ImatrixFile, ""
	case ImatrixFromFile:
		if cfg.Imatrix == nil {
			return nil, fmt.Errorf("db: Build: option Imatrix: an importance matrix read from %s is required", im.File)
		}
		if err := cfg.Imatrix.Validate(cfg.Model); err != nil {
			return nil, fmt.Errorf("db: Build: option Imatrix: %s: %w", im.File, err)
		}
	}
	if im.Source != ImatrixFromFile && cfg.Imatrix != nil {
		return nil, fmt.Errorf("db: Build: option Imatrix: given with the importance matrix source %q", im.Source)
	}
	return &p, nil
}

// codecTypes lists the ggml types evopress encodes.
func codecTypes() string {
	var names []string
	for _, t := range ggml.Types() {
		if t.Codec() && t != ggml.F32 {
			names = append(names, t.String())
		}
	}
	return fmt.Sprint(names)
}

// imatrixSource sets up a gguf build's importance matrix: the file's, or — computed from the
// calibration pass — the one an earlier build of the database wrote, when intact, or a
// collector fed by every block's statistics.
func (b *builder) imatrixSource() error {
	g := b.man.GGUF
	if g == nil {
		return nil
	}
	switch g.Imatrix.Source {
	case ImatrixFromFile:
		b.imx = b.cfg.Imatrix
	case ImatrixCalibration:
		if b.prevSHA != "" {
			p := filepath.Join(b.cfg.Out, ImatrixFile)
			if data, err := os.ReadFile(p); err == nil {
				sum := sha256.Sum256(data)
				if hex.EncodeToString(sum[:]) == b.prevSHA {
					m, _, err := imatrix.Decode(bytes.NewReader(data), int64(len(data)), p)
					if err == nil && m.Validate(b.cfg.Model) == nil {
						b.imx = m
						g.Imatrix.SHA256 = b.prevSHA
						return nil
					}
				}
			}
		}
		var err error
		if b.collector, err = imatrix.NewCollector(b.cfg.Model); err != nil {
			return fmt.Errorf("db: %w", err)
		}
	}
	return nil
}

// importance returns the importance vector of layer k of block i (nil: none).
func (b *builder) importance(i int, k arch.LinearKind) ([]float32, error) {
	var m *imatrix.Matrix
	switch {
	case b.imx != nil:
		m = b.imx
	case b.collector != nil:
		var err error
		if m, err = b.collector.Matrix(); err != nil {
			return nil, fmt.Errorf("db: %w", err)
		}
	default:
		return nil, nil
	}
	if e := m.Linear(i, k); e != nil {
		return e.Mean(), nil
	}
	return nil, nil
}

// writeImatrix writes a computed importance matrix into the database (llama-imatrix's GGUF
// format: the calibration text as its dataset, its sequences as chunks) and records its checksum.
func (b *builder) writeImatrix() error {
	if b.collector == nil {
		return nil
	}
	m, err := b.collector.Matrix()
	if err != nil {
		return fmt.Errorf("db: %w", err)
	}
	c := b.man.Calibration
	m.Datasets = []string{c.Source}
	m.ChunkCount, m.ChunkSize = c.Sequences, c.SeqLen
	var buf bytes.Buffer
	if err := imatrix.Encode(&buf, m, imatrix.FormatGGUF); err != nil {
		return fmt.Errorf("db: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(b.cfg.Out, ImatrixFile), buf.Bytes(), 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(buf.Bytes())
	b.man.GGUF.Imatrix.SHA256 = hex.EncodeToString(sum[:])
	return nil
}

// resume reads an existing manifest in Out and keeps its intact layers. It reports whether Out
// holds no manifest (any more: Force discards one with other settings).
func (b *builder) resume() (fresh bool, err error) {
	mpath := filepath.Join(b.cfg.Out, ManifestFile)
	data, err := os.ReadFile(mpath)
	if os.IsNotExist(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	old, err := ParseManifest(data, mpath)
	if err != nil {
		if b.cfg.Force {
			return true, discardLevels(b.cfg.Out, nil)
		}
		return false, fmt.Errorf("cannot resume the database in %s: %w (use another output directory, or force a rebuild)", b.cfg.Out, err)
	}
	if diff := headerDiff(old, b.man); diff != "" {
		if b.cfg.Force {
			return true, discardLevels(b.cfg.Out, old)
		}
		return false, fmt.Errorf("%s holds a database built with other settings: field %s; use another output directory, or force a rebuild", mpath, diff)
	}
	if old.GGUF != nil && old.GGUF.Imatrix.Source == ImatrixCalibration {
		b.prevSHA = old.GGUF.Imatrix.SHA256
	}
	for i := range old.Layers {
		l := &old.Layers[i]
		if b.intact(l) {
			b.done[l.Name] = l
			b.res.Reused = append(b.res.Reused, l.Name)
			if b.cfg.Progress != nil {
				b.cfg.Progress(Event{Phase: "reuse", Block: l.Block, Layer: l.Name, Done: len(b.done), Total: b.total, Levels: len(l.Levels)})
			}
		}
	}
	return false, nil
}

// intact reports whether every level file of a layer is present with its recorded checksum.
func (b *builder) intact(l *LayerInfo) bool {
	for _, v := range l.Levels {
		data, err := os.ReadFile(filepath.Join(b.cfg.Out, filepath.FromSlash(v.File)))
		if err != nil || int64(len(data)) != v.Bytes {
			return false
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != v.SHA256 {
			return false
		}
		h, _, err := parseLevel(data)
		if err != nil || checkHeader(h, l, &v, b.man.Mode) != nil {
			return false
		}
	}
	return true
}

func (b *builder) blockDone(i int) bool {
	for k := range arch.NumLinearKinds {
		if b.done[arch.LinearUnit(i, k).String()] == nil {
			return false
		}
	}
	return true
}

// layers returns the finished layers in model order.
func (b *builder) layers() []LayerInfo {
	out := []LayerInfo{}
	for i := range b.cfg.Model.Blocks {
		for k := range arch.NumLinearKinds {
			if l := b.done[arch.LinearUnit(i, k).String()]; l != nil {
				out = append(out, *l)
			}
		}
	}
	return out
}

func (b *builder) writeManifest() ([]byte, error) {
	data, err := b.man.Marshal()
	if err != nil {
		return nil, err
	}
	return data, atomicfile.WriteFile(filepath.Join(b.cfg.Out, ManifestFile), data, 0o644)
}

// block is the calib.BlockFunc: it compresses the block's missing layers and, in sequential mode,
// swaps the block's weights for their stored SequentialLevel. A gguf build computing its
// importance matrix adds every block's statistics to it.
func (b *builder) block(i int, st *calib.Stats) error {
	if b.collector != nil {
		if err := b.collector.AddStats(st); err != nil {
			return fmt.Errorf("db: block %d: %w", i, err)
		}
	}
	for k := range arch.NumLinearKinds {
		name := arch.LinearUnit(i, k).String()
		if b.done[name] != nil {
			continue
		}
		if st == nil {
			return fmt.Errorf("db: block %d: no calibration statistics for %s", i, name)
		}
		// A layer can take minutes (a 1B down_proj: the 8192² Hessian's factorisation): stop
		// between layers, the finished ones kept in the manifest for a resumed build.
		if err := b.ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		lin := b.cfg.Model.Blocks[i].Layer(k) // the dense weights, never the swapped ones
		imp, err := b.importance(i, k)
		if err != nil {
			return err
		}
		info, err := b.layer(name, i, k, lin, st.Hessian(k), imp)
		if err != nil {
			return fmt.Errorf("db: %s: %w", name, err)
		}
		b.done[name] = info
		b.man.Layers = b.layers()
		if _, err := b.writeManifest(); err != nil {
			return err
		}
		sec := time.Since(t0).Seconds()
		b.res.Computed = append(b.res.Computed, name)
		b.res.CompressSeconds += sec
		if b.cfg.Progress != nil {
			b.cfg.Progress(Event{Phase: "layer", Block: i, Layer: name, Done: len(b.done), Total: b.total, Levels: len(info.Levels), Seconds: sec})
		}
	}
	if !b.cfg.Sequential {
		return nil
	}
	for k := range arch.NumLinearKinds {
		name := arch.LinearUnit(i, k).String()
		info := b.done[name]
		w := make([]float32, info.Numel)
		if err := b.decodeStored(info, b.cfg.SequentialLevel, w); err != nil {
			return err
		}
		b.work.Blocks[i].Layer(k).W = w
	}
	return nil
}

// decodeStored decodes a level from its file in Out (checking its checksum).
func (b *builder) decodeStored(l *LayerInfo, level int, dst []float32) error {
	for j := range l.Levels {
		v := &l.Levels[j]
		if v.Level != level {
			continue
		}
		p := filepath.Join(b.cfg.Out, filepath.FromSlash(v.File))
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != v.SHA256 {
			return fmt.Errorf("%s: checksum mismatch", p)
		}
		h, payload, err := parseLevel(data)
		if err == nil {
			err = checkHeader(h, l, v, b.man.Mode)
		}
		if err == nil {
			if h.Kind == ModeSparse {
				err = decodeSparse(h, payload, dst)
			} else {
				err = decodeQuant(h, payload, dst)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return nil
	}
	return fmt.Errorf("db: layer %s has no level %d for the sequential mode", l.Name, level)
}

// level is one computed level before it is written.
type level struct {
	level  int
	w      []float32           // the level's dense weights
	q      *compress.Quantized // quant only
	blocks []byte              // gguf only: the ggml blocks of type level
}

// layer compresses one layer to all its levels, writes them and returns its manifest entry; imp
// is a gguf layer's importance vector (nil: none).
func (b *builder) layer(name string, block int, kind arch.LinearKind, lin *model.Linear, h *compress.Hessian, imp []float32) (*LayerInfo, error) {
	rows, cols := lin.Out, lin.In
	if h == nil || h.Cols != cols {
		return nil, fmt.Errorf("no Hessian of width %d", cols)
	}
	info := &LayerInfo{Name: name, Block: block, Kind: kind.String(), Rows: rows, Cols: cols, Numel: int64(rows) * int64(cols)}
	var levels []level
	var err error
	w := lin.Float32() // a float32 copy when the model keeps 16-bit weights
	switch b.man.Mode {
	case ModeSparse:
		levels, err = b.sparseLevels(w, rows, cols, h.H)
	case ModeGGUF:
		levels, err = b.ggufLevels(w, cols, imp)
	default:
		levels, err = b.quantLevels(w, rows, cols, h.H)
	}
	if err != nil {
		return nil, err
	}
	ws := make([][]float32, len(levels))
	for i, l := range levels {
		ws[i] = l.w
	}
	abs, norm, err := layerErrors(w, rows, cols, h.H, ws)
	if err != nil {
		return nil, err
	}
	var files [][]byte
	for i, l := range levels {
		v := LevelInfo{Level: l.level, Error: norm[i], ErrorAbs: abs[i]}
		var data []byte
		switch b.man.Mode {
		case ModeSparse:
			var nnz int64
			data, nnz, v.Values = encodeSparse(name, l.level, rows, cols, l.w)
			v.Zeros = info.Numel - nnz
			v.Bits = 1 + float64(nnz)*float64(8*valueSize(v.Values))/float64(info.Numel)
			v.File = path.Join("levels", name, fmt.Sprintf("l%+d.evl", l.level))
		case ModeGGUF:
			t := ggml.Type(l.level)
			data = encodeGGUF(name, t, rows, cols, l.blocks)
			v.Type, v.TensorBytes = t.String(), int64(len(l.blocks))
			v.Bits = float64(8*v.TensorBytes) / float64(info.Numel)
			v.Zeros = zerosOf(l.w)
			v.File = path.Join("levels", name, t.String()+".evl")
		default:
			if data, err = encodeQuant(name, l.q); err != nil {
				return nil, err
			}
			v.Zeros = zerosOf(l.w)
			v.Bits = l.q.BitsPerWeight()
			v.File = path.Join("levels", name, fmt.Sprintf("b%d.evl", l.level))
		}
		v.Sparsity = float64(v.Zeros) / float64(info.Numel)
		v.Bytes = int64(len(data))
		sum := sha256.Sum256(data)
		v.SHA256 = hex.EncodeToString(sum[:])
		info.Levels = append(info.Levels, v)
		files = append(files, data)
	}
	// Write the level files concurrently: each write is atomic and synced, and concurrent syncs
	// share the file system's journal commits.
	if err := os.MkdirAll(filepath.Join(b.cfg.Out, "levels", name), 0o755); err != nil {
		return nil, err
	}
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i, data := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = atomicfile.WriteFile(filepath.Join(b.cfg.Out, filepath.FromSlash(info.Levels[i].File)), data, 0o644)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return info, nil
}

// sparseLevels prunes W to every level of the grid: level ℓ prunes exactly
// round(s·numel) + ℓ·D weights.
func (b *builder) sparseLevels(W []float32, rows, cols int, H []float32) (_ []level, err error) {
	p := b.man.Sparse
	numel := int64(rows) * int64(cols)
	lo, hi, err := sparse.LevelRange(numel, p.WeightsDiff, p.Target, p.Levels)
	if err != nil {
		return nil, err
	}
	base := int64(math.Floor(p.Target*float64(numel) + 0.5))
	var lv []int
	var sp []float64
	for l := lo; l <= hi; l++ {
		z := base + int64(l)*p.WeightsDiff
		if z < 0 || z > numel {
			continue // outside [0, numel] by the rounding of the base count
		}
		lv = append(lv, l)
		sp = append(sp, float64(z)/float64(numel))
	}
	out := make([]level, len(lv))
	defer func() {
		if err == nil && p.Values != "" {
			for _, l := range out {
				if err = roundValues(l.w, p.Values); err != nil {
					break
				}
			}
		}
	}()
	switch b.man.Method {
	case MethodSparseGPT:
		ws, err := compress.SparseGPT(W, rows, cols, H, sp, compress.SparseGPTOptions{BlockSize: p.BlockSize, PercDamp: p.PercDamp})
		if err != nil {
			return nil, err
		}
		for i := range out {
			out[i] = level{level: lv[i], w: ws[i]}
		}
	case MethodWanda, MethodMagnitude:
		for i := range out {
			var w []float32
			if b.man.Method == MethodWanda {
				w, err = compress.Wanda(W, rows, cols, H, sp[i])
			} else {
				w, err = compress.Magnitude(W, rows, cols, sp[i])
			}
			if err != nil {
				return nil, err
			}
			out[i] = level{level: lv[i], w: w}
		}
	}
	return out, nil
}

// zerosOf counts the weights stored as +0.
func zerosOf(w []float32) int64 {
	var n int64
	for _, x := range w {
		if math.Float32bits(x) == 0 {
			n++
		}
	}
	return n
}

// ggufLevels encodes W (rows of cols weights) as each of the database's types, or as the type
// llama-quantize writes instead where the rows do not fit it (ggml.Fallback), once per distinct
// type, in type-id order, with the importance vector imp (nil: none).
func (b *builder) ggufLevels(W []float32, cols int, imp []float32) ([]level, error) {
	var types []ggml.Type
	for _, name := range b.man.GGUF.Types {
		t, err := ggml.ParseType(name)
		if err == nil {
			t, err = ggml.Fallback(t, cols)
		}
		if err != nil {
			return nil, err
		}
		types = append(types, t)
	}
	slices.Sort(types)
	var out []level
	for _, t := range slices.Compact(types) {
		blocks, err := ggml.Quantize(t, W, cols, imp)
		if err != nil {
			return nil, err
		}
		w, err := ggml.Dequantize(t, blocks)
		if err != nil {
			return nil, err
		}
		out = append(out, level{level: int(t), w: w, blocks: blocks})
	}
	return out, nil
}

// quantLevels quantizes W to every bit-width.
func (b *builder) quantLevels(W []float32, rows, cols int, H []float32) ([]level, error) {
	p := b.man.Quant
	out := make([]level, len(p.Bits))
	var gptq []*compress.Quantized // one Hessian factorisation for all bit-widths
	if b.man.Method == MethodGPTQ {
		var err error
		gptq, err = compress.GPTQLevels(W, rows, cols, H, p.Bits, compress.GPTQOptions{GroupSize: p.GroupSize, BlockSize: p.BlockSize, PercDamp: p.PercDamp, ActOrder: p.ActOrder})
		if err != nil {
			return nil, err
		}
	}
	for i, bits := range p.Bits {
		var q *compress.Quantized
		if gptq != nil {
			q = gptq[i]
		} else {
			var err error
			if q, err = compress.RTN(W, rows, cols, bits, p.GroupSize); err != nil {
				return nil, err
			}
		}
		w := make([]float32, rows*cols)
		if err := q.Dequantize(w); err != nil {
			return nil, err
		}
		out[i] = level{level: bits, w: w, q: q}
	}
	return out, nil
}

// layerErrors returns, for each compressed version Wc of W, tr(ΔW·H·ΔWᵀ) and its ratio to
// tr(W·H·Wᵀ) (compress.LayerError's definition), with the products ΔW·H in float32 SGEMM and the
// traces summed in float64.
func layerErrors(W []float32, rows, cols int, H []float32, wcs [][]float32) (abs, norm []float64, err error) {
	n := rows * cols
	d := make([]float32, n)
	p := make([]float32, n)
	quad := func(x []float32) float64 {
		kernels.Gemm(false, false, rows, cols, cols, 1, x, cols, H, cols, 0, p, cols)
		var s float64
		for i, v := range x {
			s += float64(v) * float64(p[i])
		}
		return s
	}
	den := quad(W)
	abs = make([]float64, len(wcs))
	norm = make([]float64, len(wcs))
	for j, wc := range wcs {
		for i := range d {
			d[i] = float32(float64(wc[i]) - float64(W[i]))
		}
		a := quad(d)
		if a < 0 { // H is positive semi-definite: only rounding makes a tiny quadratic form negative
			a = 0
		}
		abs[j] = a
		switch {
		case den > 0:
			norm[j] = a / den
		case a == 0:
			norm[j] = 0
		default:
			return nil, nil, fmt.Errorf("the layer's output energy tr(W·H·Wᵀ) is %g while the error is %g", den, a)
		}
		if math.IsInf(norm[j], 0) || math.IsNaN(norm[j]) {
			return nil, nil, fmt.Errorf("layer error %g/%g is not finite", a, den)
		}
	}
	return abs, norm, nil
}

// roundValues rounds w's non-zero entries to float16 or bfloat16 (to nearest even), in place. An
// entry never becomes zero (one that would is set to the smallest subnormal of its sign), so the
// level's sparsity is unchanged; a value beyond float16's range is an error.
func roundValues(w []float32, dtype string) error {
	for i, v := range w {
		if math.Float32bits(v) == 0 {
			continue
		}
		var r float32
		var tiny uint16 = 1
		if dtype == "bf16" {
			r = hf.BFloat16ToFloat32(hf.Float32ToBFloat16(v))
		} else {
			r = hf.Float16ToFloat32(hf.Float32ToFloat16(v))
			if math.IsInf(float64(r), 0) {
				return fmt.Errorf("weight %g at %d exceeds the float16 range (store bf16 or f32 values)", v, i)
			}
		}
		if r == 0 {
			if dtype == "bf16" {
				r = hf.BFloat16ToFloat32(tiny)
			} else {
				r = hf.Float16ToFloat32(tiny)
			}
			if v < 0 {
				r = -r
			}
		}
		w[i] = r
	}
	return nil
}
