package pipeline

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/eval"
	"github.com/evopress/evopress/eval/llamacpp"
	"github.com/evopress/evopress/imatrix"
	"github.com/evopress/evopress/internal/atomicfile"
	"github.com/evopress/evopress/internal/memcheck"
	"github.com/evopress/evopress/internal/optionerr"
)

// perplexityLlamaCpp is Perplexity under llama-perplexity's protocol: the text tokenized as
// llama.cpp does (ImatrixTokens), chunks of SeqLen tokens with BOS first, the second half of
// each scored; against a base-logits file's tokens and log-probabilities when KLDBase is set,
// writing one when SaveKLDBase is.
func perplexityLlamaCpp(ctx context.Context, req PPLRequest) (*PPLOutcome, error) {
	if req.SeqLen != 0 && req.SeqLen < 3 {
		return nil, invalid("SeqLen", req.SeqLen, "llama.cpp's protocol scores positions n/2 … n−2 of each chunk: at least 3")
	}
	if req.MaxSeqs < 0 {
		return nil, invalid("MaxSeqs", req.MaxSeqs, "must be ≥ 0 (0: all)")
	}
	if req.Batch < 0 {
		return nil, invalid("Batch", req.Batch, "must be ≥ 1")
	}
	if req.KL {
		return nil, invalid("KL", req.KL, "llama.cpp's protocol measures the KL divergence against a base-logits file instead")
	}
	if req.KLDBase != "" && req.SaveKLDBase != "" {
		return nil, invalid("SaveKLDBase", req.SaveKLDBase, "cannot be written while another base-logits file is read: write it in a run of the base model")
	}
	if req.KLDBase != "" && req.DataFile != "" {
		return nil, invalid("DataFile", req.DataFile, "the tokens come from the base-logits file %s", req.KLDBase)
	}
	if req.Format == "" {
		req.Format = data.Raw
	}
	if req.KLDBase != "" && req.Format != data.Raw {
		return nil, invalid("Format", req.Format, "the tokens come from the base-logits file %s", req.KLDBase)
	}
	if out := req.SaveKLDBase; out != "" {
		if st, err := os.Stat(out); err == nil {
			if !st.Mode().IsRegular() {
				return nil, invalid("SaveKLDBase", out, "exists and is not a regular file")
			}
			if !req.Force {
				return nil, optionerr.New("PPLRequest", "Force", "ppl: %s exists (use {} to replace it)", out)
			}
		}
	}
	var base *llamacpp.BaseReader
	if req.KLDBase != "" {
		b, err := llamacpp.OpenBase(req.KLDBase)
		if err != nil {
			return nil, err
		}
		defer b.Close()
		if req.SeqLen != 0 && req.SeqLen != b.NCtx {
			return nil, invalid("SeqLen", req.SeqLen, "the base-logits file %s holds chunks of %d tokens", req.KLDBase, b.NCtx)
		}
		base = b
	}
	if err := checkMemory(req.Model, req.ModelDir, func(s *memcheck.Shape) *memcheck.Estimate { return pplEstimate(s, req, true) }); err != nil {
		return nil, err
	}
	lm, err := loadOr(req.Model, req.ModelDir)
	if err != nil {
		return nil, err
	}
	m, err := ApplyProfileFile(lm, req.ProfileFile, req.DBDir, req.Warn)
	if err != nil {
		return nil, err
	}
	bos := addedBOS(lm.Tokenizer)
	out := &PPLOutcome{Model: lm, Format: data.Raw}
	var ids []int
	nCtx := req.SeqLen
	if base != nil {
		ids, nCtx, out.Source = base.Tokens, base.NCtx, base.Name
	} else {
		if nCtx == 0 {
			nCtx = llamacpp.DefaultCtx
		}
		text, err := ReadText(req.DataFile, assets.EvalText, req.Format)
		if err != nil {
			return nil, err
		}
		out.Source, out.Format = text.Source, req.Format
		ids, _ = ImatrixTokens(lm.Tokenizer, text.Body)
		if len(ids) < 2*nCtx {
			return nil, fmt.Errorf("%s: %d tokens; llama.cpp's protocol needs at least %d (twice the context of %d)", text.Source, len(ids), 2*nCtx, nCtx)
		}
	}
	chunks, err := imatrix.Chunks(ids, nCtx, req.MaxSeqs, bos)
	if err != nil {
		return nil, err
	}
	opt := llamacpp.Options{Batch: req.Batch, Base: base}
	if req.Batch == 0 {
		opt.Batch = 32
	}
	if req.Progress != nil {
		opt.Progress = req.Progress
	}
	var res *llamacpp.Result
	run := func() (err error) {
		res, err = llamacpp.Run(ctx, m, chunks, opt)
		return err
	}
	if req.SaveKLDBase != "" {
		err = atomicfile.Write(req.SaveKLDBase, 0o644, func(w io.Writer) error {
			bw, err := llamacpp.NewBaseWriter(w, nCtx, m.Vocab, ids[:len(chunks)*nCtx])
			if err != nil {
				return err
			}
			opt.Save = bw
			if err := run(); err != nil {
				return err
			}
			return bw.Close()
		})
		out.Saved = req.SaveKLDBase
	} else {
		err = run()
	}
	if err != nil {
		return nil, err
	}
	out.PPLResult = eval.PPLResult{PPL: res.PPL, NLL: res.NLL, Tokens: res.Tokens, TotalTokens: len(ids),
		Seqs: res.Chunks, SeqLen: res.NCtx, Seconds: res.Seconds, Protocol: eval.ProtocolLlamaCpp, KLD: res.KLD}
	if res.Seconds > 0 {
		out.TokensPerSecond = float64(res.Chunks*res.NCtx) / res.Seconds
	}
	e := llamacpp.Num(res.PPLError)
	out.PPLError = &e
	return out, nil
}

// WriteText prints the evaluation for people: the model, the text, the sequences, the
// perplexity (llama-perplexity's final line under its protocol) and, against a base-logits file,
// llama-perplexity --kl-divergence's statistics in its own layout.
func (o *PPLOutcome) WriteText(w io.Writer) error {
	r := &o.PPLResult
	fmt.Fprintf(w, "model      %s\n", o.Model.Name)
	if r.Protocol != eval.ProtocolLlamaCpp {
		fmt.Fprintf(w, "data       %s (%s), %d tokens\n", o.Source, o.Format, r.TotalTokens)
		fmt.Fprintf(w, "sequences  %d × %d tokens, %d predicted\n", r.Seqs, r.SeqLen, r.Tokens)
		fmt.Fprintf(w, "perplexity %.4f (mean NLL %.6f)\n", r.PPL, r.NLL)
		if r.KL != nil {
			fmt.Fprintf(w, "KL         %.5f nats/token to the dense model\n", *r.KL)
		}
		_, err := fmt.Fprintf(w, "speed      %.0f tokens/s (%.1f s forward)\n", r.TokensPerSecond, r.Seconds)
		return err
	}
	if r.KLD != nil {
		fmt.Fprintf(w, "base       %s (llama.cpp base logits), %d tokens\n", o.Source, r.TotalTokens)
	} else {
		fmt.Fprintf(w, "data       %s (%s, llama.cpp's protocol), %d tokens with BOS\n", o.Source, o.Format, r.TotalTokens)
	}
	fmt.Fprintf(w, "chunks     %d × %d tokens, BOS first, the second half scored: %d predicted\n", r.Seqs, r.SeqLen, r.Tokens)
	fmt.Fprintf(w, "perplexity %.4f (mean NLL %.6f)\n", r.PPL, r.NLL)
	if o.Saved != "" {
		fmt.Fprintf(w, "wrote      %s (llama.cpp base logits: llama-perplexity --kl-divergence-base %s --kl-divergence)\n", o.Saved, o.Saved)
	}
	fmt.Fprintf(w, "speed      %.0f tokens/s (%.1f s)\n\n", r.TokensPerSecond, r.Seconds)
	lr := &llamacpp.Result{PPL: r.PPL, PPLError: math.NaN()}
	if r.PPLError != nil {
		lr.PPLError = float64(*r.PPLError)
	}
	if err := llamacpp.WriteEstimate(w, lr); err != nil {
		return err
	}
	if r.KLD != nil {
		fmt.Fprintln(w)
		return r.KLD.WriteText(w)
	}
	return nil
}
