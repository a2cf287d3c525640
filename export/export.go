// Package export writes a compressed model (a profile applied to a model, through the level
// database for sparse and quant profiles) in formats other tools load:
//
//   - a Hugging Face model directory (FormatHF): config.json with num_hidden_layers updated,
//     safetensors in the original dtype (sharded above Options.ShardBytes, with
//     model.safetensors.index.json), the tokenizer and generation files copied, and evopress.json
//     recording the profile and its provenance; with Options.Packed, quant profiles are written as
//     GPTQ tensors (qweight, qzeros, scales, g_idx) with a quantization_config carrying per-module
//     bit-widths (GPTQModel "dynamic" overrides);
//   - a GGUF v3 file (FormatGGUF) that llama.cpp loads: "llama" architecture metadata, the
//     tokenizer, and tensors named as llama.cpp expects, with llama.cpp's rotary permutation of
//     the q/k rows (convert_hf_to_gguf.py LlamaModel.permute). The weight matrices are written in
//     one type (Options.Type: F32, F16 — the default —, BF16 or any block type package ggml
//     encodes, Q4_K, Q8_0, IQ4_XS …) as llama-quantize --pure writes them, or in the types a
//     llama.cpp file type such as Q4_K_M gives each of them (Options.FileType, package
//     llamarecipe), optionally with an importance matrix (Options.Imatrix) and llama-quantize's
//     token-embedding and output-tensor overrides; from the same float32 weights and importance
//     matrix the tensors are byte for byte those llama-quantize writes (package ggml). Norms
//     stay F32. Linear layers already encoded as ggml blocks can be supplied (Options.Encoded,
//     LayerBlocks). Tensors are encoded one at a time straight into the file.
//
// The model is loaded with its BF16 and F16 weights kept in their dtype (half the memory of
// float32): a Hugging Face export writes them as they are, a GGUF export converts a chunk of
// rows at a time (q/k rows permuted as they are read), so the output is byte for byte the one
// from float32 weights, and an export needs little more memory than the checkpoint's size.
//
// Without a profile the dense model is written.
//
// Dropped sub-blocks: a block whose attention and MLP are both dropped is removed and the blocks
// after it renumbered; a block with one sub-block dropped keeps its shape with that sub-block's
// output projection (o_proj or down_proj, weight and bias) zeroed, which adds exactly nothing to
// the residual stream, so every tool computes the same function.
//
// Outputs are written to a temporary path next to the target and renamed into place. An
// existing output is replaced only with Options.Force, and only when it is an earlier export
// (evopress.json of ExportFormat, holding only the files an export writes; a GGUF file with
// GGUFMarkerKey); an output path that is, is inside or contains an input (the model directory,
// the profile, the level database) is refused.
package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/stamp"
	"github.com/evopress/evopress/tokenizer"
)

// The output formats.
const (
	FormatHF   = "hf"
	FormatGGUF = "gguf"
)

// DefaultShardBytes is the shard size above which a Hugging Face export is split into several
// safetensors files (transformers' save_pretrained default is 5 GB; 2 GB keeps every file under
// the limits of older tools).
const DefaultShardBytes int64 = 2 << 30

// Options describes one export.
type Options struct {
	// ModelDir is the source Hugging Face model directory.
	ModelDir string
	// ModelFS, when set, holds the source model: ModelDir is then a directory of ModelFS
	// (forward slashes; e.g. assets.FS() and assets.ModelDir, the embedded default model)
	// instead of the disk, and names the model in the output.
	ModelFS fs.FS
	// Profile is the compression profile (nil: the dense model); ProfilePath names it in
	// messages and evopress.json.
	Profile     *profile.Profile
	ProfilePath string
	// DBDir is the level database for sparse and quant profiles; empty means the profile's
	// db.path.
	DBDir string
	// Format is FormatHF or FormatGGUF.
	Format string
	// Type is the GGUF tensor type of every weight matrix, token embedding and output head
	// included, as llama-quantize --pure writes them: any type package ggml encodes, by ggml's
	// name, case-insensitively ("f32", "f16", "bf16", "q8_0", "q4_k", "iq4_xs", …; default f16).
	// A matrix whose rows do not fit the type's blocks gets llama.cpp's fallback type
	// (ggml.Fallback: Q4_K → Q5_0, Q6_K → Q8_0, …). general.file_type is the llama.cpp file type
	// of that base type (llamarecipe.FileTypeOf: Q4_K_M for q4_k). Norms stay F32.
	Type string
	// FileType is a llama.cpp file type ("Q4_K_M", "Q3_K_S", "Q6_K", "Q4_0", …, as
	// llama-quantize's TYPE argument): each weight matrix gets the type llama-quantize gives it
	// (package llamarecipe). It excludes Type.
	FileType string
	// Imatrix is an importance matrix file (llama.cpp's GGUF or legacy format, package imatrix)
	// that weights the quantization of block-quantized tensors, as llama-quantize --imatrix.
	Imatrix string
	// TokenEmbeddingType and OutputTensorType are the types of token_embd.weight and
	// output.weight (llama-quantize's --token-embedding-type and --output-tensor-type; ggml
	// names). Empty: llama-quantize's choice — with Type the Type (with its fallback), with
	// FileType the file type's rules (Q6_K for the output head, and for the token embedding when
	// tied, unless its rows do not fit; the base type for an untied token embedding).
	TokenEmbeddingType, OutputTensorType string
	// Encoded supplies linear layers already encoded (see LayerBlocks); nil: none.
	Encoded LayerBlocks
	// Packed writes a quant profile as GPTQ tensors (Hugging Face format only).
	Packed bool
	// Out is the output directory (hf) or file (gguf).
	Out string
	// Force replaces an existing output written by this package (see the package
	// documentation); anything else at Out is refused even with Force.
	Force bool
	// ShardBytes is the maximum size of one safetensors shard (0: DefaultShardBytes).
	ShardBytes int64
	// Warn receives warnings (nil: discarded).
	Warn io.Writer
}

// Result summarises an export.
type Result struct {
	// Out is the written path.
	Out string `json:"out"`
	// Format and Type are the output format and (GGUF) tensor type or llama.cpp file type
	// asked for; FileType is the GGUF file's general.file_type (llama.cpp's name).
	Format   string `json:"format"`
	Type     string `json:"type,omitempty"`
	FileType string `json:"file_type,omitempty"`
	// TensorTypes counts the GGUF file's tensors of each type (ggml's names).
	TensorTypes map[string]int `json:"tensor_types,omitempty"`
	// Bytes is the output's size on disk (all files).
	Bytes int64 `json:"bytes"`
	// Files lists the written files, relative to Out for a directory.
	Files []string `json:"files"`
	// Blocks is the number of blocks written; SourceBlocks the model's.
	Blocks       int `json:"blocks"`
	SourceBlocks int `json:"source_blocks"`
	// BlockMap[i] is the source block of written block i.
	BlockMap []int `json:"block_map"`
	// Removed lists the source blocks removed (both sub-blocks dropped); ZeroedAttn and
	// ZeroedMLP the source blocks whose o_proj or down_proj was zeroed.
	Removed    []int `json:"removed"`
	ZeroedAttn []int `json:"zeroed_attn"`
	ZeroedMLP  []int `json:"zeroed_mlp"`
	// Warnings repeats the warnings written to Options.Warn.
	Warnings []string `json:"warnings,omitempty"`
}

// source is the loaded input of an export.
type source struct {
	dir         string
	fsys        fs.FS // nil: dir is on the disk
	cfg         *hf.Config
	ck          *hf.Checkpoint
	fingerprint string
	dense       *model.Model
	tok         *tokenizer.Tokenizer
}

// plan is the compressed model to write: blocks in output order.
type plan struct {
	src    *source
	m      *model.Model // weights of the compressed model (sub-blocks not yet zeroed)
	blocks []planBlock
	prof   *profile.Profile
	db     *db.DB
	quant  map[string]int // quant profile levels (bits) by layer name, for --packed
	warn   func(format string, args ...any)
	// zeroBuf backs zeros.
	zeroBuf []float32
}

// planBlock is one written block.
type planBlock struct {
	src               int  // source block index
	zeroAttn, zeroMLP bool // output projection zeroed
}

// Run performs the export described by o.
func Run(o Options) (*Result, error) {
	res := &Result{Format: o.Format}
	warn := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		res.Warnings = append(res.Warnings, s)
		if o.Warn != nil {
			fmt.Fprintf(o.Warn, "warning: %s\n", s)
		}
	}
	if o.Out == "" {
		return nil, optionError("Out", "no output path ({})")
	}
	var spec *ggufSpec
	switch o.Format {
	case FormatHF:
		for _, f := range []struct{ field, val string }{{"Type", o.Type}, {"FileType", o.FileType}, {"Imatrix", o.Imatrix},
			{"TokenEmbeddingType", o.TokenEmbeddingType}, {"OutputTensorType", o.OutputTensorType}} {
			if f.val != "" {
				return nil, optionError(f.field, "{} %s applies to the gguf format only", f.val)
			}
		}
		if o.Encoded != nil {
			return nil, optionError("Encoded", "{} applies to the gguf format only")
		}
	case FormatGGUF:
		var err error
		if spec, err = parseGGUFSpec(o); err != nil {
			return nil, err
		}
		res.Type, res.FileType = spec.name, spec.fileType.String()
		if o.Packed {
			return nil, optionError("Packed", "{} applies to the hf format only (GGUF is written from the dequantized weights)")
		}
	default:
		return nil, optionError("Format", "{} %q, want hf or gguf", o.Format)
	}
	if o.Packed && (o.Profile == nil || o.Profile.Mode != profile.ModeQuant) {
		what := "no profile"
		if o.Profile != nil {
			what = fmt.Sprintf("%s is a %s profile", o.ProfilePath, o.Profile.Mode)
		}
		return nil, optionError("Packed", "{} needs a quant profile, %s", what)
	}
	if _, err := checkOut(&o); err != nil {
		return nil, err
	}

	if err := checkMemory(o); err != nil {
		return nil, err
	}
	src, err := loadSource(o.ModelDir, o.ModelFS)
	if err != nil {
		return nil, err
	}
	defer src.ck.Close()
	if err := spec.checkModel(src.dense); err != nil {
		return nil, err
	}
	pl, err := makePlan(src, o, warn)
	if err != nil {
		return nil, err
	}
	if o.Format == FormatGGUF {
		if err := useGGUFProfile(o, pl, spec); err != nil {
			return nil, err
		}
		if spec.fileTypeKey != nil {
			res.Type, res.FileType = "", spec.fileTypeKey.String()
		}
	}
	res.SourceBlocks = len(src.dense.Blocks)
	for _, b := range pl.blocks {
		res.BlockMap = append(res.BlockMap, b.src)
		if b.zeroAttn {
			res.ZeroedAttn = append(res.ZeroedAttn, b.src)
		}
		if b.zeroMLP {
			res.ZeroedMLP = append(res.ZeroedMLP, b.src)
		}
	}
	res.Blocks = len(pl.blocks)
	kept := map[int]bool{}
	for _, b := range pl.blocks {
		kept[b.src] = true
	}
	for i := range src.dense.Blocks {
		if !kept[i] {
			res.Removed = append(res.Removed, i)
		}
	}
	if len(pl.blocks) == 0 {
		return nil, fmt.Errorf("export: %s drops every block; there is nothing to export", o.ProfilePath)
	}

	switch o.Format {
	case FormatHF:
		err = writeDirAtomic(&o, func(dir string) error {
			return writeHF(dir, pl, o, res)
		})
	case FormatGGUF:
		err = writeFileAtomic(&o, func(path string) error {
			return writeGGUF(path, pl, spec, res)
		})
	}
	if err != nil {
		return nil, err
	}
	res.Out = o.Out
	res.Bytes, res.Files, err = diskUsage(o.Out)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// loadSource reads the model directory (of fsys when not nil, else of the disk): config,
// checkpoint, model (BF16 and F16 weights kept in their dtype: model.LoadOptions.KeepDType) and
// tokenizer.
func loadSource(dir string, fsys fs.FS) (*source, error) {
	if dir == "" {
		return nil, optionError("ModelDir", "no model directory ({})")
	}
	src := &source{dir: dir, fsys: fsys}
	var err error
	if fsys != nil {
		src.cfg, err = hf.LoadConfigFS(fsys, dir)
	} else {
		src.cfg, err = hf.LoadConfig(dir)
	}
	if err != nil {
		return nil, err
	}
	if fsys != nil {
		src.ck, err = hf.OpenCheckpointFS(fsys, dir)
	} else {
		src.ck, err = hf.OpenCheckpoint(dir)
	}
	if err != nil {
		return nil, err
	}
	if src.dense, err = model.NewWith(src.cfg, src.ck, loadOptions); err == nil {
		src.tok, err = src.tokenizer()
	}
	if err == nil {
		src.fingerprint, err = src.ck.Fingerprint()
	}
	if err != nil {
		src.ck.Close()
		return nil, err
	}
	return src, nil
}

// open opens the file name of the source directory; the path names it in messages. A missing
// file is an error satisfying errors.Is(err, fs.ErrNotExist).
func (s *source) open(name string) (io.ReadCloser, string, error) {
	if s.fsys != nil {
		p := path.Join(s.dir, name)
		f, err := s.fsys.Open(p)
		return f, p, err
	}
	p := filepath.Join(s.dir, name)
	f, err := os.Open(p)
	return f, p, err
}

// readFile reads the file name of the source directory; the path names it in messages.
func (s *source) readFile(name string) ([]byte, string, error) {
	f, p, err := s.open(name)
	if err != nil {
		return nil, p, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return b, p, err
}

// tokenizer reads the source's tokenizer.json (and tokenizer_config.json when present).
func (s *source) tokenizer() (*tokenizer.Tokenizer, error) {
	if s.fsys == nil {
		return tokenizer.Load(s.dir)
	}
	tj, p, err := s.readFile("tokenizer.json")
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	tc, _, err := s.readFile("tokenizer_config.json")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return tokenizer.Parse(tj, tc, p)
}

// loadOptions is how an export loads the model: BF16 and F16 weights stay in their dtype (half
// the memory of float32); they are written as they are or converted exactly, so the output is
// the same bytes as from float32 weights.
var loadOptions = model.LoadOptions{KeepDType: true}

// fromProfile is candidate.FromProfile, refusing first a profile or database stamped by an
// older evopress (see package stamp).
func fromProfile(src *source, p *profile.Profile, path string, d *db.DB) (*model.Model, []string, error) {
	sm := stamp.Model{Dir: src.dir, Fingerprint: src.fingerprint, Legacy: src.ck.LegacyFingerprint()}
	if src.fsys != nil {
		sm.Dir = "" // not a directory a command could name: the embedded model's
	}
	if d != nil {
		if err := sm.CheckDB(d); err != nil {
			return nil, nil, err
		}
	}
	if err := sm.CheckProfile(p, path, d); err != nil {
		return nil, nil, err
	}
	return candidate.FromProfile(src.dense, src.fingerprint, p, d)
}

// makePlan checks the profile against the model and builds the compressed model.
func makePlan(src *source, o Options, warn func(string, ...any)) (*plan, error) {
	p := o.Profile
	name := o.ProfilePath
	if name == "" {
		name = "the profile"
	}
	pl := &plan{src: src, prof: p, warn: warn}
	if p == nil {
		pl.m = src.dense
		for i := range src.dense.Blocks {
			pl.blocks = append(pl.blocks, planBlock{src: i})
		}
		return pl, nil
	}
	var d *db.DB
	switch p.Mode {
	case profile.ModeDrop:
	case profile.ModeSparse, profile.ModeQuant:
		dir := p.DatabaseDir(o.DBDir)
		if dir == "" {
			return nil, optionError("DBDir", "%s is a %s profile: it needs its level database ({}, or the profile's db.path)", name, p.Mode)
		}
		var err error
		if d, err = db.Open(dir); err != nil {
			return nil, fmt.Errorf("export: %s: %w", name, p.DatabaseError(o.DBDir, err))
		}
	default:
		return nil, fmt.Errorf("export: %s: mode %q, want drop, sparse or quant", name, p.Mode)
	}
	m, warnings, err := fromProfile(src, p, o.ProfilePath, d)
	if err != nil {
		return nil, fmt.Errorf("export: %s: %w", name, err)
	}
	for _, w := range warnings {
		warn("%s: %s", name, w)
	}
	pl.m, pl.db = m, d
	if p.Mode == profile.ModeQuant {
		pl.quant = p.Levels
	}
	n := len(m.Blocks)
	dropAttn := make([]bool, n)
	dropMLP := make([]bool, n)
	for i, b := range m.Blocks {
		dropAttn[i], dropMLP[i] = b.SkipAttn, b.SkipMLP
	}
	for i := 0; i < n; i++ {
		if dropAttn[i] && dropMLP[i] {
			continue
		}
		pl.blocks = append(pl.blocks, planBlock{src: i, zeroAttn: dropAttn[i], zeroMLP: dropMLP[i]})
	}
	return pl, nil
}

// layerWeights returns the weight, as the model holds it (16-bit weights not converted), and
// the bias of written block b's layer k, with the output projection of a dropped sub-block
// zeroed (slices of one shared zero buffer; the model is not modified).
func (pl *plan) layerWeights(b planBlock, k arch.LinearKind) (w kernels.Weights, bias []float32) {
	l := pl.m.Blocks[b.src].Layer(k)
	if b.zeroed(k) {
		w = kernels.F32Weights(pl.zeros(l.Numel()))
		if l.B != nil {
			bias = pl.zeros(len(l.B))
		}
		return w, bias
	}
	return l.Weights(), l.B
}

// float32s returns w's elements as float32: w.F32 itself, or a converted copy of 16-bit ones.
func float32s(w kernels.Weights) []float32 {
	if w.DType == kernels.F32 {
		return w.F32
	}
	return w.Float32()
}

// zeros returns n zeros, read-only: a slice of one buffer as long as the longest asked for
// (the zeroed projections of all dropped sub-blocks share it).
func (pl *plan) zeros(n int) []float32 {
	if len(pl.zeroBuf) < n {
		pl.zeroBuf = make([]float32, n)
	}
	return pl.zeroBuf[:n]
}

// zeroed reports whether layer k of written block b is a zeroed output projection.
func (b planBlock) zeroed(k arch.LinearKind) bool {
	return (k == arch.OProj && b.zeroAttn) || (k == arch.DownProj && b.zeroMLP)
}

// sourceRef names an export's source model.
type sourceRef struct {
	Path string `json:"path,omitempty"`
	// Fingerprint covers the weights (hf.FingerprintVersion); LegacyFingerprint is the one
	// versions before it gave the model (hf.LegacyFingerprintVersion), which older databases
	// and profiles record.
	Fingerprint       string `json:"fingerprint,omitempty"`
	LegacyFingerprint string `json:"legacy_fingerprint,omitempty"`
}

// provenance is the content of evopress.json.
type provenance struct {
	Format  string           `json:"format"`
	Created string           `json:"created"`
	Source  sourceRef        `json:"source_model"`
	Profile *profile.Profile `json:"profile"`
	// ProfilePath is the profile file exported.
	ProfilePath string       `json:"profile_path,omitempty"`
	DB          *profile.Ref `json:"db,omitempty"`
	Export      struct {
		Format string `json:"format"`
		Packed bool   `json:"packed,omitempty"`
		// BlockMap[i] is the source block of exported block i.
		BlockMap   []int `json:"block_map"`
		Removed    []int `json:"removed_blocks"`
		ZeroedAttn []int `json:"zeroed_attention"`
		ZeroedMLP  []int `json:"zeroed_mlp"`
	} `json:"export"`
}

func (pl *plan) provenance(o Options, res *Result) ([]byte, error) {
	var pv provenance
	pv.Format = ExportFormat
	pv.Created = time.Now().UTC().Format(time.RFC3339)
	abs, err := filepath.Abs(pl.src.dir)
	if err != nil || pl.src.fsys != nil {
		abs = pl.src.dir
	}
	pv.Source = sourceRef{Path: abs, Fingerprint: pl.src.fingerprint, LegacyFingerprint: pl.src.ck.LegacyFingerprint()}
	pv.Profile = pl.prof
	pv.ProfilePath = o.ProfilePath
	if pl.db != nil {
		pv.DB = &profile.Ref{Path: pl.db.Dir(), Fingerprint: pl.db.Fingerprint()}
	}
	pv.Export.Format = o.Format
	pv.Export.Packed = o.Packed
	pv.Export.BlockMap = nonNil(res.BlockMap)
	pv.Export.Removed = nonNil(res.Removed)
	pv.Export.ZeroedAttn = nonNil(res.ZeroedAttn)
	pv.Export.ZeroedMLP = nonNil(res.ZeroedMLP)
	b, err := json.MarshalIndent(pv, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func nonNil(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

// writeDirAtomic fills a fresh temporary directory next to o.Out and puts it in place (see
// replace).
func writeDirAtomic(o *Options, fill func(dir string) error) (err error) {
	out := o.Out
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("export: %v", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp*")
	if err != nil {
		return fmt.Errorf("export: %v", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("export: %v", err)
	}
	if err := fill(tmp); err != nil {
		return err
	}
	return replace(tmp, o)
}

// writeFileAtomic writes a file through a temporary path next to o.Out and puts it in place
// (see replace).
func writeFileAtomic(o *Options, fill func(path string) error) (err error) {
	out := o.Out
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("export: %v", err)
	}
	f, err := os.CreateTemp(parent, "."+filepath.Base(out)+".tmp*")
	if err != nil {
		return fmt.Errorf("export: %v", err)
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := fill(tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("export: %v", err)
	}
	return replace(tmp, o)
}

// replace renames the finished output tmp to o.Out. What o.Out holds is checked again
// (checkOut): an earlier export (only with Force) or an empty folder or file is moved aside
// first and removed once the new output is in place, so a failure never loses it.
func replace(tmp string, o *Options) error {
	out := o.Out
	ex, err := checkOut(o)
	if err != nil {
		return err
	}
	if ex == absent {
		if err := os.Rename(tmp, out); err != nil {
			return fmt.Errorf("export: %v", err)
		}
		return nil
	}
	old := tmp + ".old"
	if err := os.Rename(out, old); err != nil {
		return fmt.Errorf("export: moving the existing %s aside: %v", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Rename(old, out)
		return fmt.Errorf("export: %v", err)
	}
	remove := os.RemoveAll
	if ex == empty {
		remove = os.Remove // it was empty: never remove more than that
	}
	if err := remove(old); err != nil {
		return fmt.Errorf("export: removing the previous %s (now %s): %v", out, old, err)
	}
	return nil
}

// diskUsage returns the total size of path (a file or a directory) and its files.
func diskUsage(path string) (int64, []string, error) {
	var total int64
	var files []string
	err := filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			total += info.Size()
			rel, _ := filepath.Rel(path, p)
			if rel == "." {
				rel = filepath.Base(p)
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("export: %v", err)
	}
	return total, files, nil
}
