package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/evopress/evopress/calib"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/imatrix"
	"github.com/evopress/evopress/internal/memcheck"
)

// DBRequest is a level-database build: cfg says what to build (mode, method, parameters, Out,
// Force, Sequential); the model and calibration text come from the request's Data.
type DBRequest struct {
	Data
	Build db.BuildConfig
	// ImatrixFile (gguf databases) is an importance matrix file in llama.cpp's GGUF or legacy
	// format (llama-imatrix's or evopress's) for the quantizers; "none" quantizes without
	// importance weights; "" computes it from the build's calibration pass (written into the
	// database as db.ImatrixFile).
	ImatrixFile string
	// Seed chooses the calibration sequences: Data.CalibTokens/SeqLen of the text's chunks drawn
	// without repetition (CalibTokens 0 or more than the text: every chunk).
	Seed uint64
	// Progress, when set, receives the build's events.
	Progress func(db.Event)
}

// BuildDB builds (or resumes, or reuses) the level database req describes.
func BuildDB(ctx context.Context, req DBRequest) (*db.BuildResult, error) {
	if req.Build.Out == "" {
		return nil, missing("Build.Out", "the database directory")
	}
	if err := db.CheckBuildDir(req.Build.Out); err != nil { // before the model is loaded
		return nil, err
	}
	if err := req.Data.defaults(); err != nil {
		return nil, err
	}
	if req.Build.Batch < 0 {
		return nil, invalid("Build.Batch", req.Build.Batch, "must be ≥ 1 (0: %d)", calib.DefaultBatch)
	}
	if req.SeqLen < 2 {
		return nil, invalid("SeqLen", req.SeqLen, "must be at least 2")
	}
	if req.CalibTokens < 0 {
		return nil, invalid("CalibTokens", req.CalibTokens, "must be ≥ 0")
	}
	if req.ImatrixFile != "" && req.Build.Mode != db.ModeGGUF {
		return nil, invalid("ImatrixFile", req.ImatrixFile, "importance matrices are for gguf databases")
	}
	for _, name := range req.Build.GGUF.Types {
		if t, err := ggml.ParseType(name); err != nil || !t.Codec() || t == ggml.F32 {
			return nil, invalid("Build.GGUF.Types", name, "not a ggml type evopress encodes as a level (q4_0, q4_1, q5_0, q5_1, q8_0, q2_k … q6_k, iq4_nl, iq4_xs, f16, bf16)")
		}
	}
	if err := checkMemory(req.Data.Model, req.ModelDir, func(s *memcheck.Shape) *memcheck.Estimate { return dbBuildEstimate(s, req) }); err != nil {
		return nil, err
	}
	lm, err := loadOr(req.Data.Model, req.ModelDir)
	if err != nil {
		return nil, err
	}
	cfg := req.Build
	if cfg.Mode == db.ModeGGUF {
		if err := ggufImatrix(&cfg, req.ImatrixFile, lm); err != nil {
			return nil, err
		}
	}
	text, err := ReadText(req.CalibFile, defaultCalib, rawFormat)
	if err != nil {
		return nil, err
	}
	if err := checkContext(lm, req.SeqLen); err != nil {
		return nil, err
	}
	ids := lm.Tokenizer.Encode(text.Body, false)
	chunks, err := data.Chunks(ids, req.SeqLen, 0)
	if err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return nil, fmt.Errorf("%s: %d tokens, fewer than one sequence of %d", text.Source, len(ids), req.SeqLen)
	}
	n := 0
	if req.CalibTokens > 0 {
		if n = req.CalibTokens / req.SeqLen; n == 0 {
			return nil, invalid("CalibTokens", req.CalibTokens, "less than one sequence of %d tokens", req.SeqLen)
		}
	}
	cfg.Calib = calib.Sample(chunks, n, req.Seed)
	cfg.Model = lm.Model
	cfg.ModelInfo = db.ModelInfo{Path: lm.Name, Fingerprint: lm.Fingerprint, DType: lm.Model.Config.TorchDtype}
	cfg.Calibration = db.CalibInfo{Source: text.Source, SHA256: text.SHA256, FileTokens: len(ids), Seed: req.Seed}
	cfg.Progress = req.Progress
	return db.Build(ctx, cfg)
}

// VerifyDB reads and checks every level file of the database in dir (checksums, decodes,
// exact sparsities, quantization grids); with lm it also checks that the database was built
// for that model. It returns the opened database and its number of level files.
func VerifyDB(dir string, lm *Loaded) (*db.DB, int, error) {
	d, err := db.Open(dir)
	if err != nil {
		return nil, 0, err
	}
	d.SetCacheBudget(0)
	if lm != nil {
		if err := lm.Stamps().CheckDB(d); err != nil {
			return nil, 0, err
		}
		if err := d.Check(lm.Fingerprint); err != nil {
			return nil, 0, err
		}
	}
	if err := d.Verify(); err != nil {
		return nil, 0, err
	}
	files := 0
	for _, l := range d.Manifest().Layers {
		files += len(l.Levels)
	}
	return d, files, nil
}

// ggufImatrix sets a gguf build's importance matrix from the request's file: none, computed
// (""), or read and checked against the model, with the file's SHA-256 recorded.
func ggufImatrix(cfg *db.BuildConfig, file string, lm *Loaded) error {
	switch file {
	case "":
		cfg.GGUF.Imatrix = db.ImatrixInfo{Source: db.ImatrixCalibration}
		return nil
	case "none":
		cfg.GGUF.Imatrix = db.ImatrixInfo{Source: db.ImatrixNone}
		return nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return invalid("ImatrixFile", file, "%v", err)
	}
	m, _, err := imatrix.Decode(bytes.NewReader(data), int64(len(data)), file)
	if err != nil {
		return invalid("ImatrixFile", file, "%v", err)
	}
	if err := m.Validate(lm.Model); err != nil {
		return invalid("ImatrixFile", file, "%v (made for another model?)", err)
	}
	sum := sha256.Sum256(data)
	cfg.GGUF.Imatrix = db.ImatrixInfo{Source: db.ImatrixFromFile, File: file, SHA256: hex.EncodeToString(sum[:])}
	cfg.Imatrix = m
	return nil
}
