package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Record is how a profile was found: the settings and counters of the search or baseline that
// wrote it (the profile's "search" field). Every field is optional on input, so records written
// by earlier versions load; keys this version does not know are kept in Extra and written back.
//
// Searches fill the common and search fields; baselines the common fields and their method's.
type Record struct {
	// Common to searches and baselines.

	// Seed is the random seed.
	Seed uint64 `json:"seed"`
	// SeqLen is the calibration sequence length in tokens.
	SeqLen int `json:"seq_len,omitempty"`
	// Calib names the calibration text ("embedded:…" for the embedded one).
	Calib string `json:"calib,omitempty"`
	// CalibChunks is the calibration pool's number of sequences.
	CalibChunks int `json:"calib_chunks,omitempty"`
	// Fitness is the fitness kind: "kl" or "ppl".
	Fitness string `json:"fitness,omitempty"`
	// KLTopK restricts KL to the dense model's top-k tokens (0: full distributions).
	KLTopK int `json:"kl_topk,omitempty"`
	// CalibSHA256 is the calibration text's SHA-256, CalibTokens the pool's cap in tokens (0:
	// the whole text) and Kernels the kernel implementation that scored candidates (searches:
	// with the fields above, what a resumed run must share).
	CalibSHA256 string `json:"calib_sha256,omitempty"`
	CalibTokens int    `json:"calib_tokens,omitempty"`
	Kernels     string `json:"kernels,omitempty"`
	// Evaluations counts candidate evaluations and Tokens the input tokens they processed.
	Evaluations int64 `json:"evaluations,omitempty"`
	Tokens      int64 `json:"tokens,omitempty"`
	// ElapsedS is the wall time in seconds (a search's: over all its sessions).
	ElapsedS float64 `json:"elapsed_s,omitempty"`
	// Command is the command line that wrote the profile.
	Command Command `json:"command,omitempty"`

	// Searches.

	// Generations run, offspring per generation (λ), selection stages ("2:2048,1:32768") and
	// the tokens scoring the initial candidates.
	Generations int    `json:"generations,omitempty"`
	Offspring   int    `json:"offspring,omitempty"`
	Stages      string `json:"stages,omitempty"`
	InitTokens  int    `json:"init_tokens,omitempty"`
	// ThisRunS is the wall time of the last session (after a resume: since it).
	ThisRunS float64 `json:"this_run_s,omitempty"`
	// BlocksComputed and BlocksFullForward count block forwards with and without prefix reuse.
	BlocksComputed    int64 `json:"blocks_computed,omitempty"`
	BlocksFullForward int64 `json:"blocks_full_forward,omitempty"`
	// Workers, ResentTasks, SubBatch and RangeTasks describe distributed evaluation.
	Workers     int   `json:"workers,omitempty"`
	ResentTasks int64 `json:"resent_tasks,omitempty"`
	SubBatch    int   `json:"sub_batch,omitempty"`
	RangeTasks  int64 `json:"range_tasks,omitempty"`

	// Baselines.

	// BatchTokens and BatchChunks describe the calibration batch that scored the profile.
	BatchTokens int `json:"batch_tokens,omitempty"`
	BatchChunks int `json:"batch_chunks,omitempty"`
	// K is the number of dropped blocks (depth-pruning baselines); WholeBlocks whether whole
	// blocks were dropped.
	K           int  `json:"k,omitempty"`
	WholeBlocks bool `json:"whole_blocks,omitempty"`
	// Statistic describes a statistic-based method's score.
	Statistic string `json:"statistic,omitempty"`
	// Positions counts the token positions the statistic was computed on; WindowPositions is
	// window-cosine's choice ("last" or "all").
	Positions       int    `json:"positions,omitempty"`
	WindowPositions string `json:"window_positions,omitempty"`
	// BlockScores and WindowScores are the statistic per block or per window start (by index).
	BlockScores  map[string]float64 `json:"block_scores,omitempty"`
	WindowScores map[string]float64 `json:"window_scores,omitempty"`
	// PPLWithoutBlock is Shortened-LLaMA's calibration perplexity with each block removed.
	PPLWithoutBlock map[string]float64 `json:"ppl_without_block,omitempty"`
	// Profiles is the number of profiles an exhaustive baseline scored.
	Profiles int `json:"profiles,omitempty"`
	// Random's plan: profiles drawn, screening tokens, survivors re-scored, final tokens, and
	// the EvoPress budget it matches.
	Samples             int   `json:"samples,omitempty"`
	ScreenTokens        int   `json:"screen_tokens,omitempty"`
	Survivors           int   `json:"survivors,omitempty"`
	FinalTokens         int   `json:"final_tokens,omitempty"`
	EvopressEvaluations int64 `json:"evopress_evaluations,omitempty"`
	EvopressTokens      int64 `json:"evopress_tokens,omitempty"`
	// Top lists the best scored drop profiles (at most 10).
	Top []DropRanked `json:"top,omitempty"`
	// Candidates is the number of profiles a best-of method scored, CandidateFitness their
	// fitness and BestIndex the chosen one.
	Candidates       int       `json:"candidates,omitempty"`
	CandidateFitness []float64 `json:"candidate_fitness,omitempty"`
	BestIndex        *int      `json:"best_index,omitempty"`
	// Uniform explains a uniform baseline that is not uniform (a fractional bit target).
	Uniform string `json:"uniform,omitempty"`
	// FileType is the llamacpp baseline's llama.cpp file type ("Q3_K_M"), whose rules gave
	// every tensor its type.
	FileType string `json:"file_type,omitempty"`
	// SumError is the DP baseline's sum of normalised layer errors.
	SumError *float64 `json:"sum_error,omitempty"`
	// CodeBitsPerWeight and BitsPerWeight are a quant profile's mean bits per weight, codes
	// only and with scale/zero overhead.
	CodeBitsPerWeight float64 `json:"code_bits_per_weight,omitempty"`
	BitsPerWeight     float64 `json:"bits_per_weight,omitempty"`
	// GGUF profiles (a gguf level database): TargetBytes is the file size asked for (0: a
	// target in bits per weight), FileBytes the estimated size of the GGUF file, and
	// TokenEmbeddingType and OutputTensorType the ggml types it stores the token embedding and
	// the output tensor in (an exporter writes them so; "" output type: tied to the embedding).
	TargetBytes        int64  `json:"target_bytes,omitempty"`
	FileBytes          int64  `json:"file_bytes,omitempty"`
	TokenEmbeddingType string `json:"token_embedding_type,omitempty"`
	OutputTensorType   string `json:"output_tensor_type,omitempty"`
	// OWL's chosen grid point (λ, M), its block sparsities, the outlier ratios per M and the
	// whole grid.
	OWLLambda        float64              `json:"owl_lambda,omitempty"`
	OWLM             float64              `json:"owl_m,omitempty"`
	OWLBlockSparsity []float64            `json:"owl_block_sparsity,omitempty"`
	OWLOutlierRatios map[string][]float64 `json:"owl_outlier_ratios,omitempty"`
	OWLGrid          []OWLPoint           `json:"owl_grid,omitempty"`

	// Extra holds keys this version does not know (from files written by other versions).
	Extra map[string]json.RawMessage `json:"-"`
}

// DropRanked is one scored drop profile: the blocks whose attention and MLP are dropped.
type DropRanked struct {
	Attn    []int    `json:"attn"`
	MLP     []int    `json:"mlp"`
	Fitness *float64 `json:"fitness,omitempty"`
}

// OWLPoint is one point of OWL's (λ, M) grid with its fitness and block sparsities.
type OWLPoint struct {
	Lambda        float64   `json:"lambda"`
	M             float64   `json:"m"`
	Fitness       float64   `json:"fitness"`
	BlockSparsity []float64 `json:"block_sparsity"`
}

// Command is a recorded command line. It is written as one string; a list of arguments (as
// other tools write it) is read too and joined with shell quoting.
type Command string

// UnmarshalJSON accepts a string or a list of strings.
func (c *Command) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = Command(s)
		return nil
	}
	var parts []string
	if err := json.Unmarshal(b, &parts); err != nil {
		return fmt.Errorf("command: want a string or a list of strings")
	}
	for i, p := range parts {
		parts[i] = ShellQuote(p)
	}
	*c = Command(strings.Join(parts, " "))
	return nil
}

// ShellQuote quotes s for a POSIX shell when it needs it.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// recordFields is Record without its methods (for the default JSON coding).
type recordFields Record

// MarshalJSON writes the known fields and then Extra's keys.
func (r Record) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(recordFields(r))
	if err != nil || len(r.Extra) == 0 {
		return b, err
	}
	keys := make([]string, 0, len(r.Extra))
	known := knownKeys()
	for k := range r.Extra {
		if !known[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1])
	for _, k := range keys {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(r.Extra[k])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads the known fields and keeps the other keys in Extra.
func (r *Record) UnmarshalJSON(b []byte) error {
	var f recordFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	known := knownKeys()
	for k, v := range all {
		if !known[k] {
			if f.Extra == nil {
				f.Extra = map[string]json.RawMessage{}
			}
			f.Extra[k] = v
		}
	}
	*r = Record(f)
	return nil
}

// Fields returns the record's JSON keys with their values as JSON text, sorted by key: what a
// report lists as "everything the run recorded".
func (r Record) Fields() []Field {
	b, err := json.Marshal(r)
	if err != nil {
		return nil
	}
	var all map[string]json.RawMessage
	if json.Unmarshal(b, &all) != nil {
		return nil
	}
	out := make([]Field, 0, len(all))
	for k, v := range all {
		s := string(v)
		var str string
		if json.Unmarshal(v, &str) == nil {
			s = str
		}
		out = append(out, Field{Key: k, Value: s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Field is one recorded key and its value (a string as it is, anything else as JSON).
type Field struct{ Key, Value string }

// knownKeys are the JSON keys of Record's fields.
func knownKeys() map[string]bool {
	t := reflect.TypeFor[recordFields]()
	m := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	return m
}
