package pipeline

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/evopress/evopress/imatrix"
	"github.com/evopress/evopress/internal/optionerr"
	"github.com/evopress/evopress/tokenizer"
)

// DefaultImatrixSeqLen is the tokens per chunk of an importance matrix: llama-imatrix's default
// context (-c 512).
const DefaultImatrixSeqLen = 512

// ImatrixRequest asks for a model's importance matrix on a text, computed as llama-imatrix
// computes it (package imatrix: the same chunks, BOS handling and sums), and written in one of
// llama.cpp's imatrix formats.
type ImatrixRequest struct {
	// ModelDir is the model ("" for the embedded one); Model, when set, is used instead.
	ModelDir string
	Model    *Loaded
	// CalibFile is the text ("" for the embedded calibration text), read as it is.
	CalibFile string
	// SeqLen is the tokens per chunk, llama-imatrix's -c (0: DefaultImatrixSeqLen); Chunks keeps
	// the first chunks, llama-imatrix's --chunks (0: all); Batch is the chunks per forward
	// (0: imatrix.DefaultBatch).
	SeqLen, Chunks, Batch int
	// Out is the file to write; Format is "gguf" or "dat" ("": dat for a .dat file, else gguf).
	Out, Format string
	// Force replaces an existing Out.
	Force bool
	// Progress, when set, is called after each batch with the chunks done, the total and the
	// time spent.
	Progress func(done, total int, elapsed time.Duration)
}

// ImatrixOutcome is a written importance matrix.
type ImatrixOutcome struct {
	Out    string `json:"out"`
	Format string `json:"format"`
	// Model and Dataset name the model and the text (Dataset is recorded in the file).
	Model   string `json:"model"`
	Dataset string `json:"dataset"`
	// TextTokens is the length of the tokenized text (BOS included); Chunks × SeqLen of them were
	// run, the first token of each chunk replaced by BOS when BOS is true.
	TextTokens int  `json:"text_tokens"`
	Chunks     int  `json:"chunks"`
	SeqLen     int  `json:"seq_len"`
	BOS        bool `json:"bos"`
	// Entries is the number of weight tensors in the file; Seconds the time the forward passes
	// and the writing took.
	Entries int     `json:"entries"`
	Seconds float64 `json:"seconds"`
	// Matrix is what was written.
	Matrix *imatrix.Matrix `json:"-"`
}

// ImatrixTokens tokenizes text as llama-imatrix does (common_tokenize with special tokens added):
// one trailing newline removed (llama.cpp's -f), and the BOS token in front when the model adds
// one — the rule evopress's GGUF export writes as tokenizer.ggml.add_bos_token. bos is that token,
// or -1 when the model adds none. (evopress recognises special tokens written in the text, as
// Hugging Face does; llama-imatrix does only with --parse-special.)
func ImatrixTokens(tok *tokenizer.Tokenizer, text string) (ids []int, bos int) {
	text = strings.TrimSuffix(text, "\n")
	bos = addedBOS(tok)
	if bos >= 0 {
		ids = append(ids, bos)
	}
	return append(ids, tok.Encode(text, false)...), bos
}

// addedBOS is the BOS token when the tokenizer adds one in front of a text, else −1.
func addedBOS(tok *tokenizer.Tokenizer) int {
	bos := tok.BOS()
	if prefix, _ := tok.SpecialIDs(); bos < 0 || len(prefix) == 0 || prefix[0] != bos {
		return -1
	}
	return bos
}

// ComputeImatrix computes the importance matrix req describes and writes it atomically to
// req.Out; an existing file is replaced only with req.Force.
func ComputeImatrix(ctx context.Context, req ImatrixRequest) (*ImatrixOutcome, error) {
	if req.SeqLen == 0 {
		req.SeqLen = DefaultImatrixSeqLen
	}
	if req.SeqLen < 2 {
		return nil, invalid("SeqLen", req.SeqLen, "must be at least 2")
	}
	if req.Chunks < 0 {
		return nil, invalid("Chunks", req.Chunks, "must be ≥ 0 (0: all)")
	}
	if req.Batch < 0 {
		return nil, invalid("Batch", req.Batch, "must be ≥ 1 (0: the default)")
	}
	if req.Out == "" {
		return nil, missing("Out", "the importance matrix file to write")
	}
	format := imatrix.FormatForPath(req.Out)
	if req.Format != "" {
		f, err := imatrix.ParseFormat(req.Format)
		if err != nil {
			return nil, invalid("Format", req.Format, "want gguf or dat")
		}
		format = f
	}
	if st, err := os.Stat(req.Out); err == nil {
		if !st.Mode().IsRegular() {
			return nil, invalid("Out", req.Out, "exists and is not a regular file")
		}
		if !req.Force {
			return nil, optionerr.New("ImatrixRequest", "Force", "imatrix: %s exists (use {} to replace it)", req.Out)
		}
	}
	lm, err := loadOr(req.Model, req.ModelDir)
	if err != nil {
		return nil, err
	}
	text, err := ReadText(req.CalibFile, defaultCalib, rawFormat)
	if err != nil {
		return nil, err
	}
	dataset := req.CalibFile
	if dataset == "" {
		dataset = text.Source
	}
	ids, bos := ImatrixTokens(lm.Tokenizer, text.Body)
	chunks, err := imatrix.Chunks(ids, req.SeqLen, req.Chunks, bos)
	if err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return nil, fmt.Errorf("%s: %d tokens, fewer than one chunk of %d", text.Source, len(ids), req.SeqLen)
	}
	start := time.Now()
	opt := imatrix.Options{Batch: req.Batch}
	if req.Progress != nil {
		opt.Progress = func(done, total int) { req.Progress(done, total, time.Since(start)) }
	}
	m, err := imatrix.Compute(ctx, lm.Model, chunks, opt)
	if err != nil {
		return nil, err
	}
	m.Datasets = []string{dataset}
	if err := imatrix.Write(req.Out, m, format); err != nil {
		return nil, err
	}
	return &ImatrixOutcome{Out: req.Out, Format: string(format), Model: lm.Name, Dataset: dataset, TextTokens: len(ids),
		Chunks: len(chunks), SeqLen: req.SeqLen, BOS: bos >= 0, Entries: len(m.Entries),
		Seconds: time.Since(start).Seconds(), Matrix: m}, nil
}
