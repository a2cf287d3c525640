// Package llamacpp measures models in llama.cpp's own terms, as its llama-perplexity tool does
// (tools/perplexity/perplexity.cpp), so that evopress's numbers can be compared with the tables
// llama.cpp users publish (docs/design.md, "Comparing with llama.cpp"):
//
//   - the protocol: the text tokenized with BOS in front, cut into chunks of n_ctx tokens (the
//     remainder dropped), each chunk's first token replaced by BOS, and only the second half of
//     each chunk scored — the predictions made at positions n_ctx/2 … n_ctx−2;
//   - the perplexity and its ± (Final estimate: PPL = … +/- …);
//   - the base-logits file of --kl-divergence-base (the base model's compressed log-probabilities
//     at every scored position), read and written;
//   - the KL-divergence statistics of --kl-divergence against such a file (mean KLD, its
//     percentiles, Δp, same top token), printed in llama.cpp's order and names.
//
// The per-position arithmetic follows llama.cpp's float32 and float64 steps.
package llamacpp

import (
	"context"
	"fmt"
	"time"

	"github.com/evopress/evopress/model"
)

// DefaultCtx is llama-perplexity's default context, -c 512.
const DefaultCtx = 512

// Scored returns the first scored position of a chunk of nCtx tokens (nCtx/2) and the number of
// scored positions (nCtx − 1 − nCtx/2): position t predicts token t+1.
func Scored(nCtx int) (first, n int) {
	first = nCtx / 2
	return first, max(nCtx-1-first, 0)
}

// Options configures Run.
type Options struct {
	// Batch is the chunks per forward (≤ 0: 8).
	Batch int
	// Progress, when set, is called after every batch with the chunks done, the total and the
	// time spent.
	Progress func(done, total int, elapsed time.Duration)
	// Base, when set, holds the base model's log-probabilities of the same chunks: Run then
	// computes llama-perplexity --kl-divergence's statistics against them.
	Base *BaseReader
	// Save, when set, receives the model's compressed log-probabilities of every chunk (a
	// base-logits file, as --kl-divergence-base writes it).
	Save *BaseWriter
}

// Result is a finished run.
type Result struct {
	// NCtx is the tokens per chunk, Chunks the chunks, Tokens the scored positions.
	NCtx, Chunks, Tokens int
	// NLL is the mean negative log-likelihood of the scored tokens, PPL = exp(NLL), PPLError
	// llama-perplexity's ± of it (NaN when it prints none).
	NLL, PPL, PPLError float64
	// KLD holds the statistics against Options.Base.
	KLD *KLDStats
	// Seconds is the time the forwards and the scoring took.
	Seconds float64
}

// Run evaluates m on the chunks (all of NCtx ≥ 3 tokens, their first tokens already replaced by
// BOS when the model adds one) under llama-perplexity's protocol.
func Run(ctx context.Context, m *model.Model, chunks [][]int, opt Options) (*Result, error) {
	if len(chunks) == 0 {
		return nil, fmt.Errorf("llamacpp: no chunks to evaluate")
	}
	nCtx := len(chunks[0])
	if nCtx < 3 {
		return nil, fmt.Errorf("llamacpp: chunks of %d tokens: llama.cpp's protocol scores positions n/2 … n−2 and needs at least 3", nCtx)
	}
	for i, c := range chunks {
		if len(c) != nCtx {
			return nil, fmt.Errorf("llamacpp: chunk %d has %d tokens, want %d", i, len(c), nCtx)
		}
	}
	if b := opt.Base; b != nil {
		if b.NVocab != m.Vocab {
			return nil, fmt.Errorf("%s: the base model's vocabulary has %d tokens, this model's %d", b.Name, b.NVocab, m.Vocab)
		}
		if b.NCtx != nCtx || b.NChunk-b.next < len(chunks) {
			return nil, fmt.Errorf("%s: %d chunks of %d tokens left, want %d of %d", b.Name, b.NChunk-b.next, b.NCtx, len(chunks), nCtx)
		}
	}
	if s := opt.Save; s != nil && (s.nVocab != m.Vocab || s.nCtx != nCtx || s.nChunk-s.done != len(chunks)) {
		return nil, fmt.Errorf("llamacpp: the base-logits file being written is for %d chunks of %d tokens over %d ids, not %d of %d over %d",
			s.nChunk-s.done, s.nCtx, s.nVocab, len(chunks), nCtx, m.Vocab)
	}
	batch := opt.Batch
	if batch <= 0 {
		batch = 8
	}
	first, n := Scored(nCtx)
	nv := RowWidth(m.Vocab)
	var (
		ppl     PPL
		kld     KLD
		base    []uint16
		save    []uint16
		rows    = make([]int, n)
		nll     = make([]float64, n)
		pos     = make([]Position, n)
		elapsed time.Duration
	)
	if opt.Save != nil {
		save = make([]uint16, n*nv)
	}
	for lo := 0; lo < len(chunks); lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		hi := min(lo+batch, len(chunks))
		a, err := m.Embedding(chunks[lo:hi])
		if err != nil {
			return nil, err
		}
		m.Forward(a, 0, len(m.Blocks), nil)
		for b := 0; b < hi-lo; b++ {
			chunk := chunks[lo+b]
			row0 := b*nCtx + first
			for i := range rows {
				rows[i] = row0 + i
			}
			if opt.Base != nil {
				if base, err = opt.Base.ReadChunk(base); err != nil {
					return nil, err
				}
			}
			// Each position is computed by one goroutine into its own slot, then summed in order.
			m.ForLogitsAt(a, rows, func(row int, logits []float32) {
				i := row - row0
				tok := chunk[first+i+1]
				switch {
				case opt.Base != nil:
					pos[i] = Compare(logits, base[i*nv:(i+1)*nv], tok)
				case opt.Save != nil:
					nll[i] = float64(Compress(logits, save[i*nv:(i+1)*nv], tok))
				default:
					nll[i] = NLL(logits, tok)
				}
			})
			for i := 0; i < n; i++ {
				if opt.Base != nil {
					kld.Add(pos[i])
					nll[i] = float64(pos[i].NLL)
				}
				ppl.Add(nll[i])
			}
			if opt.Save != nil {
				if err := opt.Save.WriteChunk(save); err != nil {
					return nil, err
				}
			}
		}
		elapsed += time.Since(start)
		if opt.Progress != nil {
			opt.Progress(hi, len(chunks), elapsed)
		}
	}
	res := &Result{NCtx: nCtx, Chunks: len(chunks), Tokens: ppl.Count(), Seconds: elapsed.Seconds()}
	res.NLL, res.PPL, res.PPLError = ppl.Estimate()
	if opt.Base != nil {
		res.KLD = kld.Stats()
	}
	return res, nil
}
