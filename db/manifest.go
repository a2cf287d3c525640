package db

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"regexp"
	"strings"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/ggml"
)

// FormatV1 is the value of the manifest's "format" field.
const FormatV1 = "evopress-db/v1"

// ManifestFile is the manifest's file name inside a database directory.
const ManifestFile = "manifest.json"

// The database modes. A sparse database serves sparse profiles; quant and gguf databases serve
// quant profiles (see ProfileMode).
const (
	ModeSparse = "sparse"
	ModeQuant  = "quant"
	// ModeGGUF levels are llama.cpp's tensor types: each level of a layer is the layer encoded
	// as one ggml type, stored as the ggml blocks a GGUF file holds.
	ModeGGUF = "gguf"
)

// ProfileMode is the profile mode a database of the given mode serves: sparse for sparse
// databases, quant for quant and gguf ones ("" for an unknown mode).
func ProfileMode(dbMode string) string {
	switch dbMode {
	case ModeSparse:
		return ModeSparse
	case ModeQuant, ModeGGUF:
		return ModeQuant
	}
	return ""
}

// The compression methods.
const (
	MethodSparseGPT = "sparsegpt"
	MethodWanda     = "wanda"
	MethodMagnitude = "magnitude"
	MethodGPTQ      = "gptq"
	MethodRTN       = "rtn"
	// MethodGGML is llama.cpp's quantization (ggml_quantize_chunk, as llama-quantize runs it).
	MethodGGML = "ggml"
)

// Manifest describes a level database: what it was built from and how, and every level of every
// layer with its file and checksum. Its JSON form is the file manifest.json.
type Manifest struct {
	// Format is FormatV1.
	Format string `json:"format"`
	// Mode is ModeSparse, ModeQuant or ModeGGUF.
	Mode string `json:"mode"`
	// Method is the compressor: sparsegpt, wanda or magnitude (sparse); gptq or rtn (quant);
	// ggml (gguf).
	Method string `json:"method"`
	// Model identifies the model the database was built for.
	Model ModelInfo `json:"model"`
	// Calibration describes the calibration data.
	Calibration CalibInfo `json:"calibration"`
	// Sparse holds the sparse mode's parameters (nil for quant).
	Sparse *SparseParams `json:"sparse,omitempty"`
	// Quant holds the quant mode's parameters (nil for the other modes).
	Quant *QuantParams `json:"quant,omitempty"`
	// GGUF holds the gguf mode's parameters (nil for the other modes).
	GGUF *GGUFParams `json:"gguf,omitempty"`
	// Sequential records whether blocks were compressed sequentially (each block calibrated on the
	// outputs of the previous blocks at level SequentialLevel).
	Sequential bool `json:"sequential"`
	// SequentialLevel is the level that fed later blocks in sequential mode.
	SequentialLevel int `json:"sequential_level,omitempty"`
	// Complete is false while a build is under way (or was interrupted).
	Complete bool `json:"complete"`
	// Layers lists the finished layers in model order.
	Layers []LayerInfo `json:"layers"`
}

// ModelInfo identifies a model.
type ModelInfo struct {
	// Path is where the model was loaded from (informative).
	Path string `json:"path"`
	// Fingerprint is the model's fingerprint (hf.Checkpoint.Fingerprint); required.
	Fingerprint string `json:"fingerprint"`
	// Blocks is the number of transformer blocks.
	Blocks int `json:"blocks"`
	// Hidden is the hidden size.
	Hidden int `json:"hidden"`
	// DType is the checkpoint's torch_dtype, when known.
	DType string `json:"dtype,omitempty"`
}

// CalibInfo describes the calibration data of a database.
type CalibInfo struct {
	// Source names the calibration text (a path, or "embedded:…").
	Source string `json:"source"`
	// SHA256 is the hex SHA-256 of the calibration text's bytes.
	SHA256 string `json:"sha256"`
	// SeqLen is the tokens per sequence.
	SeqLen int `json:"seq_len"`
	// Sequences is the number of calibration sequences used.
	Sequences int `json:"sequences"`
	// Tokens is Sequences·SeqLen.
	Tokens int `json:"tokens"`
	// FileTokens is the number of tokens in the whole tokenized text.
	FileTokens int `json:"file_tokens"`
	// Seed seeded the choice of sequences (see calib.Sample).
	Seed uint64 `json:"seed"`
	// Batch is the number of sequences per forward batch (it fixes the float32 rounding of the
	// Hessians, so it is part of what makes a build reproducible).
	Batch int `json:"batch"`
}

// SparseParams are the parameters of a sparse database.
type SparseParams struct {
	// Target is the sparsity s the database serves: level ℓ of a layer of numel weights prunes
	// round(s·numel) + ℓ·WeightsDiff weights.
	Target float64 `json:"target"`
	// Levels is L, the most levels each way.
	Levels int `json:"levels"`
	// WeightsDiff is D, the weights one level moves.
	WeightsDiff int64 `json:"weights_diff"`
	// BlockSize and PercDamp are SparseGPT's settings (recorded for the other methods too).
	BlockSize int     `json:"block_size"`
	PercDamp  float64 `json:"perc_damp"`
	// Values, when "f16" or "bf16", rounds the kept weights of every level to that type (to
	// nearest even; a kept weight never rounds to zero: it becomes the smallest subnormal of its
	// sign), as the reference's float16 copies do, halving the stored values of SparseGPT levels.
	// Empty (the default) stores every level losslessly in the narrowest exact type. Errors and
	// sparsities are those of the stored, rounded levels.
	Values string `json:"values,omitempty"`
}

// QuantParams are the parameters of a quant database.
type QuantParams struct {
	// Bits lists the bit-widths, ascending.
	Bits []int `json:"bits"`
	// GroupSize is the columns per scale/zero group (0: one group per row).
	GroupSize int `json:"group_size"`
	// ActOrder records GPTQ's activation ordering (levels then carry g_idx).
	ActOrder bool `json:"act_order"`
	// BlockSize and PercDamp are GPTQ's settings.
	BlockSize int     `json:"block_size"`
	PercDamp  float64 `json:"perc_damp"`
}

// GGUFParams are the parameters of a gguf database.
type GGUFParams struct {
	// Types are the ggml types asked for (ggml's names, in type-id order). A layer holds, for
	// each, the type llama-quantize writes when asked for it (ggml.Fallback: rows that do not
	// fit its blocks take a 32-weight type, or F16), once per distinct type.
	Types []string `json:"types"`
	// Imatrix says which importance weights the quantizers used.
	Imatrix ImatrixInfo `json:"imatrix"`
}

// The sources of a gguf database's importance matrix.
const (
	// ImatrixCalibration: computed from the build's own calibration pass (the diagonals of the
	// Hessians, imatrix.Collector.AddStats) and written into the database as ImatrixFile.
	ImatrixCalibration = "calibration"
	// ImatrixFromFile: read from a file in llama.cpp's formats (llama-imatrix's or evopress's).
	ImatrixFromFile = "file"
	// ImatrixNone: no importance weights (ggml's reference quantizers).
	ImatrixNone = "none"
)

// ImatrixFile is the importance matrix a gguf database computed from its calibration pass, in
// llama-imatrix's GGUF format, inside the database folder (llama-quantize --imatrix reads it).
const ImatrixFile = "imatrix.gguf"

// ImatrixInfo identifies the importance matrix of a gguf database.
type ImatrixInfo struct {
	// Source is ImatrixCalibration, ImatrixFromFile or ImatrixNone.
	Source string `json:"source"`
	// File is the file's path: ImatrixFile (relative to the database) for a computed one, the
	// path given (informative) for one read from a file.
	File string `json:"file,omitempty"`
	// SHA256 is the hex SHA-256 of the file (of a computed one: set when the build completes).
	SHA256 string `json:"sha256,omitempty"`
}

// LayerInfo describes one linear layer and its levels.
type LayerInfo struct {
	// Name is the Hugging Face module name (arch.LinearUnit), e.g. model.layers.3.self_attn.q_proj.
	Name string `json:"name"`
	// Block and Kind locate the layer (Kind as arch.LinearKind.String, e.g. "self_attn.q_proj").
	Block int    `json:"block"`
	Kind  string `json:"kind"`
	// Rows (out) and Cols (in) are the weight matrix's shape.
	Rows int `json:"rows"`
	Cols int `json:"cols"`
	// Numel is Rows·Cols.
	Numel int64 `json:"numel"`
	// Levels are the layer's levels in ascending order.
	Levels []LevelInfo `json:"levels"`
}

// LevelInfo describes one stored level of a layer.
type LevelInfo struct {
	// Level is the level: the grid level ℓ (sparse, may be negative), the bit-width (quant) or
	// the ggml type id (gguf, ggml.Type).
	Level int `json:"level"`
	// Type is a gguf level's ggml type name ("q4_K"); TensorBytes the size of its ggml blocks:
	// the bytes the tensor takes in a GGUF file (rows × ggml.Type.RowBytes(cols)).
	Type        string `json:"type,omitempty"`
	TensorBytes int64  `json:"tensor_bytes,omitempty"`
	// Zeros is the exact number of weights stored as zero (sparse: the pruned weights).
	Zeros int64 `json:"zeros"`
	// Sparsity is Zeros/numel.
	Sparsity float64 `json:"sparsity"`
	// Bits is the storage cost in bits per weight including overhead: for quant the code width
	// plus per-group scale (16 bits) and zero (Level bits) plus g_idx (32 bits per column) when
	// present (compress.Quantized.BitsPerWeight); for sparse the bitmask (1 bit) plus the stored
	// values; for gguf 8·TensorBytes/numel, the block scales included. The level file's small
	// header is not counted (it is in Bytes).
	Bits float64 `json:"bits"`
	// Values is the stored value type of a sparse level: "f32", "bf16" or "f16" (the narrowest
	// that holds every value exactly).
	Values string `json:"values,omitempty"`
	// Error is the normalised layer error tr(ΔW·H·ΔWᵀ)/tr(W·H·Wᵀ) on the calibration Hessian H.
	Error float64 `json:"error"`
	// ErrorAbs is tr(ΔW·H·ΔWᵀ).
	ErrorAbs float64 `json:"error_abs"`
	// File is the level file's path relative to the database directory (slash-separated).
	File string `json:"file"`
	// Bytes is the file's size.
	Bytes int64 `json:"bytes"`
	// SHA256 is the hex SHA-256 of the file.
	SHA256 string `json:"sha256"`
}

var (
	hexRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fileRE = regexp.MustCompile(`^[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*$`)
)

// ParseManifest decodes and validates a manifest; name (the file) is used in error messages.
func ParseManifest(data []byte, name string) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: trailing data after the JSON object", name)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &m, nil
}

// Validate checks the manifest's consistency (it does not look at the level files).
func (m *Manifest) Validate() error {
	if m.Format != FormatV1 {
		return fmt.Errorf("field format: %q, want %q", m.Format, FormatV1)
	}
	if err := m.validateHeader(); err != nil {
		return err
	}
	seen := make(map[string]bool, len(m.Layers))
	files := make(map[string]bool)
	prev := -1
	for i := range m.Layers {
		l := &m.Layers[i]
		if err := m.validateLayer(l, files); err != nil {
			return fmt.Errorf("field layers[%d] (%s): %w", i, l.Name, err)
		}
		if seen[l.Name] {
			return fmt.Errorf("field layers[%d]: layer %s appears twice", i, l.Name)
		}
		seen[l.Name] = true
		k, _ := arch.ParseLinearKind(l.Kind)
		if idx := l.Block*int(arch.NumLinearKinds) + int(k); idx <= prev {
			return fmt.Errorf("field layers[%d]: layer %s out of model order", i, l.Name)
		} else {
			prev = idx
		}
	}
	if m.Complete && len(m.Layers) != m.Model.Blocks*int(arch.NumLinearKinds) {
		return fmt.Errorf("field complete: true, but %d layers listed for %d blocks of %d", len(m.Layers), m.Model.Blocks, arch.NumLinearKinds)
	}
	return nil
}

// validateHeader checks everything but the layers.
func (m *Manifest) validateHeader() error {
	switch m.Mode {
	case ModeSparse:
		if m.Method != MethodSparseGPT && m.Method != MethodWanda && m.Method != MethodMagnitude {
			return fmt.Errorf("field method: %q, a sparse database is built with sparsegpt, wanda or magnitude", m.Method)
		}
		if m.Sparse == nil || m.Quant != nil || m.GGUF != nil {
			return fmt.Errorf("field sparse: a sparse database has sparse parameters and no quant or gguf parameters")
		}
		p := m.Sparse
		if !(p.Target > 0 && p.Target < 1) {
			return fmt.Errorf("field sparse.target: %v, want a fraction in (0, 1)", p.Target)
		}
		if p.Levels < 0 || p.Levels > 1<<20 {
			return fmt.Errorf("field sparse.levels: %d, want 0..%d", p.Levels, 1<<20)
		}
		if p.WeightsDiff <= 0 {
			return fmt.Errorf("field sparse.weights_diff: %d, want at least 1", p.WeightsDiff)
		}
		if p.BlockSize < 0 || !(p.PercDamp >= 0) {
			return fmt.Errorf("field sparse: negative block_size or perc_damp")
		}
		if p.Values != "" && p.Values != "f16" && p.Values != "bf16" {
			return fmt.Errorf("field sparse.values: %q, want f16, bf16 or nothing (lossless)", p.Values)
		}
	case ModeQuant:
		if m.Method != MethodGPTQ && m.Method != MethodRTN {
			return fmt.Errorf("field method: %q, a quant database is built with gptq or rtn", m.Method)
		}
		if m.Quant == nil || m.Sparse != nil || m.GGUF != nil {
			return fmt.Errorf("field quant: a quant database has quant parameters and no sparse or gguf parameters")
		}
		p := m.Quant
		if len(p.Bits) == 0 {
			return fmt.Errorf("field quant.bits: empty")
		}
		for i, b := range p.Bits {
			if b < 1 || b > 8 {
				return fmt.Errorf("field quant.bits: %d outside 1..8", b)
			}
			if i > 0 && b <= p.Bits[i-1] {
				return fmt.Errorf("field quant.bits: %v is not strictly ascending", p.Bits)
			}
		}
		if p.GroupSize < 0 || p.BlockSize < 0 || !(p.PercDamp >= 0) {
			return fmt.Errorf("field quant: negative group_size, block_size or perc_damp")
		}
	case ModeGGUF:
		if m.Method != MethodGGML {
			return fmt.Errorf("field method: %q, a gguf database is built with ggml", m.Method)
		}
		if m.GGUF == nil || m.Sparse != nil || m.Quant != nil || m.Sequential {
			return fmt.Errorf("field gguf: a gguf database has gguf parameters, no sparse or quant parameters and is not sequential")
		}
		if err := m.GGUF.validate(); err != nil {
			return fmt.Errorf("field gguf.%w", err)
		}
	default:
		return fmt.Errorf("field mode: %q, want sparse, quant or gguf", m.Mode)
	}
	if m.Model.Fingerprint == "" {
		return fmt.Errorf("field model.fingerprint: missing")
	}
	if m.Model.Blocks < 1 || m.Model.Blocks > 1<<20 || m.Model.Hidden < 1 {
		return fmt.Errorf("field model: blocks %d and hidden %d must be positive", m.Model.Blocks, m.Model.Hidden)
	}
	c := &m.Calibration
	if c.SeqLen < 1 || c.Sequences < 1 || c.Tokens != c.SeqLen*c.Sequences || c.FileTokens < c.Tokens || c.Batch < 1 {
		return fmt.Errorf("field calibration: seq_len %d × sequences %d must equal tokens %d ≤ file_tokens %d, batch %d ≥ 1",
			c.SeqLen, c.Sequences, c.Tokens, c.FileTokens, c.Batch)
	}
	if !hexRE.MatchString(c.SHA256) {
		return fmt.Errorf("field calibration.sha256: %q is not 64 lower-case hex digits", c.SHA256)
	}
	if m.Sequential {
		if err := m.checkLevel(m.SequentialLevel); err != nil {
			return fmt.Errorf("field sequential_level: %w", err)
		}
	} else if m.SequentialLevel != 0 {
		return fmt.Errorf("field sequential_level: %d set without sequential", m.SequentialLevel)
	}
	return nil
}

// validate checks the gguf parameters; errors start with the field's name.
func (p *GGUFParams) validate() error {
	if len(p.Types) == 0 {
		return fmt.Errorf("types: empty")
	}
	prev := -1
	for _, name := range p.Types {
		t, err := ggml.ParseType(name)
		if err != nil || t.String() != name || !t.Codec() || t == ggml.F32 {
			return fmt.Errorf("types: %q is not a ggml type name evopress encodes (as ggml spells it, e.g. q4_K)", name)
		}
		if int(t) <= prev {
			return fmt.Errorf("types: %v are not in type-id order without repetition", p.Types)
		}
		prev = int(t)
	}
	im := &p.Imatrix
	switch im.Source {
	case ImatrixCalibration:
		if im.File != ImatrixFile {
			return fmt.Errorf("imatrix.file: %q, a computed importance matrix is %s", im.File, ImatrixFile)
		}
		if im.SHA256 != "" && !hexRE.MatchString(im.SHA256) {
			return fmt.Errorf("imatrix.sha256: %q is not 64 lower-case hex digits", im.SHA256)
		}
	case ImatrixFromFile:
		if im.File == "" || !hexRE.MatchString(im.SHA256) {
			return fmt.Errorf("imatrix: a file's path and its SHA-256 (64 lower-case hex digits) are required")
		}
	case ImatrixNone:
		if im.File != "" || im.SHA256 != "" {
			return fmt.Errorf("imatrix: no file or SHA-256 without an importance matrix")
		}
	default:
		return fmt.Errorf("imatrix.source: %q, want %s, %s or %s", im.Source, ImatrixCalibration, ImatrixFromFile, ImatrixNone)
	}
	return nil
}

// checkLevel checks that a level is possible in this database at all.
func (m *Manifest) checkLevel(level int) error {
	if m.Mode == ModeGGUF {
		if level <= 0 || !ggml.Type(level).Codec() {
			return fmt.Errorf("%d is not a ggml type evopress encodes", level)
		}
		return nil
	}
	if m.Mode == ModeQuant {
		for _, b := range m.Quant.Bits {
			if b == level {
				return nil
			}
		}
		return fmt.Errorf("%d bits is not one of the database's bit-widths %v", level, m.Quant.Bits)
	}
	if level < -m.Sparse.Levels || level > m.Sparse.Levels {
		return fmt.Errorf("level %d outside ±%d", level, m.Sparse.Levels)
	}
	return nil
}

func (m *Manifest) validateLayer(l *LayerInfo, files map[string]bool) error {
	block, kind, err := arch.ParseLinear(l.Name)
	if err != nil {
		return fmt.Errorf("field name: %w", err)
	}
	if block != l.Block || kind.String() != l.Kind {
		return fmt.Errorf("fields block/kind: %d/%q do not match the name", l.Block, l.Kind)
	}
	if l.Block >= m.Model.Blocks {
		return fmt.Errorf("field block: %d, the model has %d blocks", l.Block, m.Model.Blocks)
	}
	if l.Rows < 1 || l.Cols < 1 || l.Rows > math.MaxInt32/l.Cols || l.Numel != int64(l.Rows)*int64(l.Cols) {
		return fmt.Errorf("fields rows/cols/numel: %d × %d ≠ %d (or too large)", l.Rows, l.Cols, l.Numel)
	}
	if len(l.Levels) == 0 {
		return fmt.Errorf("field levels: empty")
	}
	has0 := false
	for j := range l.Levels {
		v := &l.Levels[j]
		if j > 0 && v.Level <= l.Levels[j-1].Level {
			return fmt.Errorf("field levels: not strictly ascending at %d", v.Level)
		}
		if err := m.checkLevel(v.Level); err != nil {
			return fmt.Errorf("field levels[%d].level: %w", j, err)
		}
		has0 = has0 || v.Level == 0
		if v.Zeros < 0 || v.Zeros > l.Numel {
			return fmt.Errorf("field levels[%d].zeros: %d outside [0, %d]", j, v.Zeros, l.Numel)
		}
		if math.Abs(v.Sparsity-float64(v.Zeros)/float64(l.Numel)) > 1e-12 {
			return fmt.Errorf("field levels[%d].sparsity: %v ≠ zeros/numel = %v", j, v.Sparsity, float64(v.Zeros)/float64(l.Numel))
		}
		if !(v.Bits > 0 && v.Bits <= 64) {
			return fmt.Errorf("field levels[%d].bits: %v outside (0, 64]", j, v.Bits)
		}
		if !(v.Error >= 0) || !(v.ErrorAbs >= 0) {
			return fmt.Errorf("field levels[%d].error: %v/%v must be ≥ 0", j, v.Error, v.ErrorAbs)
		}
		switch {
		case m.Mode == ModeSparse && v.Values != "f32" && v.Values != "bf16" && v.Values != "f16":
			return fmt.Errorf("field levels[%d].values: %q, want f32, bf16 or f16", j, v.Values)
		case m.Mode != ModeSparse && v.Values != "":
			return fmt.Errorf("field levels[%d].values: %q set in a %s database", j, v.Values, m.Mode)
		case m.Mode != ModeGGUF && (v.Type != "" || v.TensorBytes != 0):
			return fmt.Errorf("field levels[%d].type: set in a %s database", j, m.Mode)
		case m.Mode == ModeGGUF:
			if err := checkGGUFLevel(l, v); err != nil {
				return fmt.Errorf("field levels[%d].%w", j, err)
			}
		}
		if !fileRE.MatchString(v.File) || path.Clean(v.File) != v.File || strings.HasPrefix(v.File, ".") ||
			strings.Contains(v.File, "/.") || v.File == ManifestFile {
			return fmt.Errorf("field levels[%d].file: %q is not a plain relative path inside the database", j, v.File)
		}
		if files[v.File] {
			return fmt.Errorf("field levels[%d].file: %q used twice", j, v.File)
		}
		files[v.File] = true
		if v.Bytes < levelHeaderMin {
			return fmt.Errorf("field levels[%d].bytes: %d is too small for a level file", j, v.Bytes)
		}
		if !hexRE.MatchString(v.SHA256) {
			return fmt.Errorf("field levels[%d].sha256: %q is not 64 lower-case hex digits", j, v.SHA256)
		}
	}
	if m.Mode == ModeSparse && !has0 {
		return fmt.Errorf("field levels: level 0 (the target sparsity) missing")
	}
	return nil
}

// checkGGUFLevel checks a gguf level's type, tensor bytes and bits per weight against the
// layer's shape; errors start with the field's name.
func checkGGUFLevel(l *LayerInfo, v *LevelInfo) error {
	t := ggml.Type(v.Level)
	if v.Type != t.String() {
		return fmt.Errorf("type: %q, level %d is ggml type %s", v.Type, v.Level, t)
	}
	rb, err := t.RowBytes(l.Cols)
	if err != nil {
		return fmt.Errorf("type: %s does not fit the layer's rows of %d weights", t, l.Cols)
	}
	if want := int64(l.Rows) * int64(rb); v.TensorBytes != want {
		return fmt.Errorf("tensor_bytes: %d, %d rows of %s take %d", v.TensorBytes, l.Rows, t, want)
	}
	if want := float64(8*v.TensorBytes) / float64(l.Numel); v.Bits != want {
		return fmt.Errorf("bits: %v, 8·tensor_bytes/numel is %v", v.Bits, want)
	}
	return nil
}

// Marshal returns the manifest's JSON form (indented, deterministic).
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Layer returns the named layer's entry, or nil.
func (m *Manifest) Layer(name string) *LayerInfo {
	for i := range m.Layers {
		if m.Layers[i].Name == name {
			return &m.Layers[i]
		}
	}
	return nil
}

// headerDiff names the first top-level field in which two manifests' build settings differ ("" when
// they agree), ignoring the layers, the completion flag and the informative paths of the model and
// the calibration text (their identities are the fingerprint and the SHA-256).
func headerDiff(a, b *Manifest) string {
	ha, hb := *a, *b
	ha.Layers, hb.Layers = nil, nil
	ha.Complete, hb.Complete = false, false
	ha.Model.Path, hb.Model.Path = "", ""
	ha.Calibration.Source, hb.Calibration.Source = "", ""
	// A computed importance matrix follows from the other settings (its checksum is only known
	// at the end of the build); a file is identified by its checksum, not its path.
	for _, h := range []*Manifest{&ha, &hb} {
		if h.GGUF != nil {
			g := *h.GGUF
			switch g.Imatrix.Source {
			case ImatrixCalibration:
				g.Imatrix.SHA256 = ""
			case ImatrixFromFile:
				g.Imatrix.File = ""
			}
			h.GGUF = &g
		}
	}
	ja, _ := json.Marshal(&ha)
	jb, _ := json.Marshal(&hb)
	if bytes.Equal(ja, jb) {
		return ""
	}
	var ma, mb map[string]json.RawMessage
	json.Unmarshal(ja, &ma)
	json.Unmarshal(jb, &mb)
	for _, k := range []string{"format", "mode", "method", "model", "calibration", "sparse", "quant", "gguf", "sequential", "sequential_level"} {
		if !bytes.Equal(ma[k], mb[k]) {
			return fmt.Sprintf("%s (%s vs %s)", k, orNone(ma[k]), orNone(mb[k]))
		}
	}
	return "settings"
}

func orNone(b json.RawMessage) string {
	if b == nil {
		return "absent"
	}
	return string(b)
}

// HeldBytes bounds the memory level v of layer l holds once read (DB.Weights keeps levels
// compactly): its file's size (the payload and its small header) plus, for a sparse level, 4
// bytes of running count per 64 weights, and 2 bytes of padding.
func HeldBytes(l *LayerInfo, v *LevelInfo, mode string) int64 {
	b := v.Bytes + 2
	if mode == ModeSparse {
		b += 4 * ((l.Numel + 63) / 64)
	}
	return b
}

// MaxHeldBytes is the most a model with one level of m's in every layer holds in levels
// (HeldBytes of each layer's largest level): what the candidates of a search share at most
// besides the level cache.
func (m *Manifest) MaxHeldBytes() int64 {
	var total int64
	for i := range m.Layers {
		l := &m.Layers[i]
		var most int64
		for j := range l.Levels {
			most = max(most, HeldBytes(l, &l.Levels[j], m.Mode))
		}
		total += most
	}
	return total
}

// TotalHeldBytes is the memory every level of every layer holds in memory (HeldBytes): a level
// cache at least this large reads each level once and never evicts one.
func (m *Manifest) TotalHeldBytes() int64 {
	var total int64
	for i := range m.Layers {
		l := &m.Layers[i]
		for j := range l.Levels {
			total += HeldBytes(l, &l.Levels[j], m.Mode)
		}
	}
	return total
}
