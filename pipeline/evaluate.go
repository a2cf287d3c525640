package pipeline

import (
	"context"
	"fmt"
	"io"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/eval"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/internal/memcheck"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
)

// PPLRequest is a perplexity evaluation of a model, optionally compressed by a profile.
type PPLRequest struct {
	// ModelDir is the model ("" for the embedded one); Model, when set, is used instead.
	ModelDir string
	Model    *Loaded
	// DataFile is the text ("" for the embedded held-out text) in Format.
	DataFile string
	Format   data.Format
	// SeqLen is the sequence length (0: DefaultSeqLen); MaxSeqs keeps the first sequences
	// (0: all); Batch is the sequences per forward (0: 32).
	SeqLen, MaxSeqs, Batch int
	// ProfileFile, when set, is applied first; DBDir is its level database (default: the one
	// the profile names).
	ProfileFile, DBDir string
	// KL also measures the mean KL(dense ‖ compressed) per predicted token.
	KL bool
	// Protocol is how the text is cut and scored ("": evopress's own, or llama.cpp's when a
	// base-logits file is read or written). Under eval.ProtocolLlamaCpp, SeqLen is llama-perplexity's
	// -c (0: 512) and MaxSeqs its --chunks.
	Protocol eval.Protocol
	// KLDBase is a base-logits file (llama-perplexity --kl-divergence-base, or SaveKLDBase): the
	// evaluation runs on its tokens (no DataFile) and adds llama-perplexity --kl-divergence's
	// statistics against it.
	KLDBase string
	// SaveKLDBase writes the evaluated model's base-logits file, atomically; an existing file is
	// replaced only with Force.
	SaveKLDBase string
	Force       bool
	// Progress, when set, is called after each batch.
	Progress eval.Progress
	// Warn receives warnings about the profile (nil: discarded).
	Warn io.Writer
}

// PPLOutcome is a finished evaluation.
type PPLOutcome struct {
	eval.PPLResult
	Model *Loaded
	// Source names the text (or the base-logits file whose tokens were evaluated); Format is
	// its format.
	Source string
	Format data.Format
	// Saved is the base-logits file written (SaveKLDBase).
	Saved string
}

// Perplexity evaluates the model req describes on its text.
func Perplexity(ctx context.Context, req PPLRequest) (*PPLOutcome, error) {
	switch {
	case req.Protocol == "" && (req.KLDBase != "" || req.SaveKLDBase != ""):
		req.Protocol = eval.ProtocolLlamaCpp
	case req.Protocol == "":
		req.Protocol = eval.ProtocolEvopress
	}
	if _, err := eval.ParseProtocol(string(req.Protocol)); err != nil {
		return nil, invalid("Protocol", req.Protocol, "want evopress or llamacpp")
	}
	if req.Protocol == eval.ProtocolLlamaCpp {
		return perplexityLlamaCpp(ctx, req)
	}
	if req.KLDBase != "" || req.SaveKLDBase != "" {
		return nil, invalid("Protocol", req.Protocol, "base-logits files hold llama.cpp's protocol: use llamacpp")
	}
	if req.SeqLen == 0 {
		req.SeqLen = DefaultSeqLen
	}
	if req.SeqLen < 2 {
		return nil, invalid("SeqLen", req.SeqLen, "must be at least 2")
	}
	if req.MaxSeqs < 0 {
		return nil, invalid("MaxSeqs", req.MaxSeqs, "must be ≥ 0 (0: all)")
	}
	if req.Batch == 0 {
		req.Batch = 32
	}
	if req.Batch < 0 {
		return nil, invalid("Batch", req.Batch, "must be ≥ 1")
	}
	if err := checkMemory(req.Model, req.ModelDir, func(s *memcheck.Shape) *memcheck.Estimate { return pplEstimate(s, req, false) }); err != nil {
		return nil, err
	}
	lm, err := loadOr(req.Model, req.ModelDir)
	if err != nil {
		return nil, err
	}
	if err := checkContext(lm, req.SeqLen); err != nil {
		return nil, err
	}
	m, err := ApplyProfileFile(lm, req.ProfileFile, req.DBDir, req.Warn)
	if err != nil {
		return nil, err
	}
	text, err := ReadText(req.DataFile, assets.EvalText, req.Format)
	if err != nil {
		return nil, err
	}
	ids := lm.Tokenizer.Encode(text.Body, false)
	chunks, err := data.Chunks(ids, req.SeqLen, req.MaxSeqs)
	if err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return nil, fmt.Errorf("%s: %d tokens, fewer than one sequence of %d", text.Source, len(ids), req.SeqLen)
	}
	res, err := eval.Perplexity(ctx, m, chunks, req.Batch, req.Progress)
	if err != nil {
		return nil, err
	}
	res.TotalTokens = len(ids)
	if req.KL {
		// Each chunk is measured once: nothing is worth caching beyond the batch being measured.
		teacher, err := fitness.NewTeacher(lm.Model, chunks, fitness.Options{Batch: req.Batch, CacheBytes: 1})
		if err != nil {
			return nil, err
		}
		idx := make([]int, len(chunks))
		for i := range idx {
			idx[i] = i
		}
		kl, _, err := teacher.Measure(m, idx)
		if err != nil {
			return nil, err
		}
		kl = max(kl, 0) // the dense model's KL to itself is 0 up to the cache's float16 rounding
		res.KL = &kl
	}
	return &PPLOutcome{PPLResult: res, Model: lm, Source: text.Source, Format: req.Format}, nil
}

// ApplyProfileFile returns lm's model compressed by the profile file path (the dense model when
// path is empty), warning on warn about what cannot be checked or is left dense.
func ApplyProfileFile(lm *Loaded, path, dbDir string, warn io.Writer) (*model.Model, error) {
	if path == "" {
		return lm.Model, nil
	}
	p, err := profile.Read(path, "")
	if err != nil {
		return nil, err
	}
	m, warns, err := applyProfile(lm, p, path, dbDir)
	if err == nil {
		m, err = ggufFixedTensors(m, p) // a GGUF profile: its file's token embedding and output
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if warn != nil {
		for _, w := range warns {
			fmt.Fprintf(warn, "warning: %s: %s\n", path, w)
		}
	}
	return m, nil
}
