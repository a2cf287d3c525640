package pipeline

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/search"
)

// objectiveItems are the items of a search's objective (docs/design.md, "Run folder"), with the
// request field that sets each ("" when none does) and what it is.
var objectiveItems = []struct{ item, field, what string }{
	{"model_fingerprint", "ModelDir", "model fingerprint"},
	{"db_fingerprint", "DBDir", "database fingerprint"},
	{"calib_sha256", "CalibFile", "calibration text SHA-256"},
	{"seq_len", "SeqLen", "sequence length"},
	{"calib_tokens", "CalibTokens", "calibration tokens"},
	{"pool_chunks", "", "calibration pool chunks"},
	{"fitness", "Fitness", "fitness"},
	{"kl_topk", "KLTopK", "KL top-k"},
	{"sub_batch", "SubBatch", "sequences per forward"},
	{"kernels", "", "kernel implementation"},
	{"token_embedding_type", "Mode.TokenEmbeddingType", "GGUF token embedding type"},
	{"output_tensor_type", "Mode.OutputTensorType", "GGUF output tensor type"},
}

// searchObjective is what a search's fitness values depend on besides its mode and settings:
// the model, the database, the calibration text and pool, the fitness kind and top-k, the
// sub-batch (fitness sums in float64 are grouped by it), the kernels that compute it and, for a
// GGUF database, the types of the file's token embedding and output the candidates are scored with.
func searchObjective(pt *parts, kind fitness.Kind, topK, subBatch int) search.Objective {
	obj := search.Objective{
		"model_fingerprint": pt.lm.Fingerprint,
		"calib_sha256":      pt.cal.Text.SHA256,
		"seq_len":           strconv.Itoa(pt.cal.SeqLen),
		"calib_tokens":      strconv.Itoa(pt.cal.Tokens),
		"pool_chunks":       strconv.Itoa(len(pt.cal.Pool)),
		"fitness":           string(kind),
		"kl_topk":           strconv.Itoa(topK),
		"sub_batch":         strconv.Itoa(subBatch),
		"kernels":           kernels.Implementation(),
	}
	if pt.mode.DB != nil {
		obj["db_fingerprint"] = pt.mode.DB.Fingerprint()
	}
	// A GGUF search scores candidates with the file's token embedding and output.
	if tok, out, err := pt.mode.fileTensorTypes(); err == nil && tok != "" {
		obj["token_embedding_type"] = tok
		obj["output_tensor_type"] = out
	}
	return obj
}

// ObjectiveError refuses to resume a search whose checkpoint was written for another objective:
// Changes lists each item that differs with the checkpoint's (Old) and the request's (New)
// value; Unrecorded says that the checkpoint records none (written by an older version), so
// that it cannot be checked.
type ObjectiveError struct {
	Checkpoint string
	Changes    []search.ObjectiveChange
	Unrecorded bool
}

func (e *ObjectiveError) Error() string { return e.DescribeWith(nil) }

// DescribeWith is the message with each request field called name(field) (nil: the Go names).
func (e *ObjectiveError) DescribeWith(name func(field string) string) string {
	if name == nil {
		name = func(f string) string { return f }
	}
	afresh := fmt.Sprintf("or start afresh with %s (and without %s)", name("Force"), name("Resume"))
	if e.Unrecorded {
		return fmt.Sprintf("%s: checkpoint %s was written by an older version that did not record the objective (model, database, calibration text and pool, fitness, KL top-k, sub-batch, kernels): it cannot be checked against this run, so it is not resumed; finish it with the version that wrote it, %s",
			name("Resume"), e.Checkpoint, afresh)
	}
	parts := make([]string, len(e.Changes))
	for i, c := range e.Changes {
		label := c.Item
		for _, it := range objectiveItems {
			if it.item == c.Item {
				label = it.what
				if it.field != "" {
					label = name(it.field) + " (" + it.what + ")"
				}
			}
		}
		parts[i] = fmt.Sprintf("%s %s → %s", label, orUnset(c.Old), orUnset(c.New))
	}
	return fmt.Sprintf("%s: checkpoint %s was written for another objective: %s; resume with the checkpoint's settings, %s",
		name("Resume"), e.Checkpoint, strings.Join(parts, "; "), afresh)
}

func orUnset(s string) string {
	if s == "" {
		return "(not recorded)"
	}
	return s
}
