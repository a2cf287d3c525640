// Package eval measures models: perplexity under the protocols of docs/design.md (and, later,
// zero-shot accuracy).
package eval

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/evopress/evopress/eval/llamacpp"
	"github.com/evopress/evopress/model"
)

// PPLResult is the outcome of a perplexity run; its JSON form is the `evopress ppl --json` contract.
type PPLResult struct {
	PPL             float64 `json:"ppl"`
	NLL             float64 `json:"nll"`          // mean natural-log loss per predicted token
	Tokens          int     `json:"tokens"`       // predicted tokens: seqs × (seq_len − 1)
	TotalTokens     int     `json:"total_tokens"` // tokens in the tokenized text
	Seqs            int     `json:"seqs"`
	SeqLen          int     `json:"seq_len"`
	TokensPerSecond float64 `json:"tokens_per_second"` // input tokens per second of forward computation
	Seconds         float64 `json:"seconds"`           // forward computation time
	// Kernels names the kernel implementation that computed it (kernels.Implementation):
	// "avx512-bf16/amd64" under --compute bf16.
	Kernels string `json:"kernels,omitempty"`
	// KL is the mean KL(dense ‖ model) per predicted token on the same chunks, when asked for
	// (ppl --kl with a profile).
	KL *float64 `json:"kl,omitempty"`
	// Protocol is "llamacpp" when the run followed llama-perplexity's protocol (package
	// eval/llamacpp: BOS, chunks of SeqLen, the second half of each scored; Tokens counts the
	// scored positions), empty for evopress's own.
	Protocol Protocol `json:"protocol,omitempty"`
	// PPLError is llama-perplexity's ± of the perplexity (llamacpp protocol; null when it prints
	// none).
	PPLError *llamacpp.Num `json:"ppl_error,omitempty"`
	// KLD holds llama-perplexity --kl-divergence's statistics against a base model's logits.
	KLD *llamacpp.KLDStats `json:"kld,omitempty"`
}

// Protocol names how a text is cut into sequences and which predictions are scored.
type Protocol string

// The perplexity protocols.
const (
	// ProtocolEvopress cuts the tokens (no special tokens) into non-overlapping sequences and
	// scores every next-token prediction: evopress's default, the EvoPress paper's protocol.
	ProtocolEvopress Protocol = "evopress"
	// ProtocolLlamaCpp is llama-perplexity's: BOS in front, chunks whose first token is
	// replaced by BOS, only the second half of each chunk scored (package eval/llamacpp).
	ProtocolLlamaCpp Protocol = "llamacpp"
)

// ParseProtocol checks a protocol name.
func ParseProtocol(s string) (Protocol, error) {
	switch Protocol(s) {
	case ProtocolEvopress, ProtocolLlamaCpp:
		return Protocol(s), nil
	}
	return "", fmt.Errorf("unknown protocol %q (want evopress or llamacpp)", s)
}

// Progress, when not nil, is called after each batch with the sequences done so far.
type Progress func(done, total int, elapsed time.Duration)

// Perplexity runs m over the chunks (all of one length) in batches of batch sequences and returns
// the perplexity of every next-token prediction. TotalTokens is left for the caller to fill in.
func Perplexity(ctx context.Context, m *model.Model, chunks [][]int, batch int, progress Progress) (PPLResult, error) {
	if batch < 1 {
		batch = 1
	}
	var res PPLResult
	res.Seqs = len(chunks)
	if len(chunks) > 0 {
		res.SeqLen = len(chunks[0])
	}
	var sum float64
	var elapsed time.Duration
	for lo := 0; lo < len(chunks); lo += batch {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		hi := min(lo+batch, len(chunks))
		start := time.Now()
		s, n, err := m.SequenceNLL(chunks[lo:hi])
		if err != nil {
			return res, err
		}
		elapsed += time.Since(start)
		sum += s
		res.Tokens += n
		if progress != nil {
			progress(hi, len(chunks), elapsed)
		}
	}
	if res.Tokens > 0 {
		res.NLL = sum / float64(res.Tokens)
		res.PPL = math.Exp(res.NLL)
	}
	res.Seconds = elapsed.Seconds()
	if res.Seconds > 0 {
		res.TokensPerSecond = float64(res.Seqs*res.SeqLen) / res.Seconds
	}
	return res, nil
}
