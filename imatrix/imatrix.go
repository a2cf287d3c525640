// Package imatrix is llama.cpp's importance matrix: for every weight matrix W of a model, the sum
// over calibration tokens of the squared activations entering W, per input column,
//
//	Sums[j] = Σₜ xₜⱼ²   and   Counts = the number of tokens t,
//
// whose per-column mean Sums[j]/Counts weights the rounding error of column j when llama-quantize
// (and ggml's importance-weighted quantizers) quantize W. It is the diagonal of the calibration
// Hessian XᵀX that package calib gathers for the level database.
//
// The definition follows llama.cpp's tools/imatrix/imatrix.cpp (llama-imatrix), version of
// node-llama-cpp 3.21.1:
//
//   - Collected: the input of every matrix multiplication whose weight is named "blk.*" — in a
//     Llama-family block attn_q, attn_k, attn_v (which read the same input and so hold the same
//     values), attn_output, ffn_gate, ffn_up (the same input) and ffn_down — accumulated for
//     each tensor on its own; output.weight only on request (llama-imatrix --process-output,
//     off by default). Mixture-of-experts weights (one row of sums per expert, one count per
//     expert) are read and written but not computed: evopress's models have none.
//   - Chunks: the text (one trailing newline removed, as llama.cpp's -f does) is tokenized once
//     with BOS when the model adds one, and cut into consecutive chunks of n_ctx tokens (the
//     remainder dropped, --chunks keeping the first ones); the first token of every chunk is
//     replaced by BOS. Every token of a chunk is counted (not only the second half that the
//     perplexity printed alongside uses). See Chunks.
//   - Accumulated: llama-imatrix sums in float32 in token order; Collector sums in float64 and
//     rounds once, which is more accurate and agrees with llama-imatrix to float32 rounding.
//
// Where the two differ: llama-imatrix runs the model with llama.cpp's F16 KV cache by default,
// which moves the sums by about 1e-3 relative (on llama-pd-11m, 6.6e-4 at most); with -ctk f32
// -ctv f32 -fa off they agree within 2e-6. And llama-imatrix ignores matrix multiplications of
// fewer than 16 tokens, which a context that does not split evenly into its 512-token
// micro-batches leaves at the end of each chunk (-c 1030: 6 tokens of every chunk uncounted);
// evopress counts every token, and the counts in the file show the difference.
//
// Two file formats hold it, both read and written here (Read detects which):
//
//   - GGUF (FormatGGUF, llama-imatrix's default): metadata general.type = "imatrix",
//     imatrix.datasets (array of strings), imatrix.chunk_count and imatrix.chunk_size (uint32),
//     and per weight tensor NAME two F32 tensors, "NAME.in_sum2" [cols, experts] holding the raw
//     sums and "NAME.counts" [1, experts] holding the token counts (float32: exact up to 2²⁴
//     tokens), in tensor-name order.
//   - The legacy binary format (FormatDat, llama-imatrix --output-format dat): int32 entry
//     count; per entry an int32 name length, the name, int32 ncall, int32 nval and nval float32
//     values (sum/count)·ncall where ncall = ⌈count/chunk size⌉; then int32 chunk count, int32
//     length and the dataset name. Read keeps its values as Sums and ncall as the count, so
//     Sums/Counts is the mean in either case.
//
// llama-quantize reads both and uses, per tensor and expert, the mean Sums/Counts (1 where the
// count is 0): see Entry.Mean.
//
// Tensor names are llama.cpp's (GGUF) names, "blk.3.ffn_down.weight"; package arch gives each
// its Hugging Face name (Tensor, Matrix.Linear).
package imatrix

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/model"
)

// Entry is the importance data of one weight tensor: Sums holds len(Counts) rows (one per
// expert; one for a dense tensor) of Cols() values each, row e the sums of squared inputs of
// expert e over Counts[e] tokens.
type Entry struct {
	Sums   []float32
	Counts []int64
}

// Cols is the number of input columns of the tensor (its row length): len(Sums)/len(Counts).
func (e *Entry) Cols() int {
	if e == nil || len(e.Counts) == 0 {
		return 0
	}
	return len(e.Sums) / len(e.Counts)
}

// Mean returns the per-column mean squared input as llama-quantize computes it from the file:
// Sums/Counts row by row in float32, and 1 for every column of a row whose count is 0.
func (e *Entry) Mean() []float32 {
	out := make([]float32, len(e.Sums))
	n := e.Cols()
	for r, c := range e.Counts {
		row, dst := e.Sums[r*n:(r+1)*n], out[r*n:(r+1)*n]
		if c <= 0 {
			for j := range dst {
				dst[j] = 1
			}
			continue
		}
		fc := float32(c)
		for j, v := range row {
			dst[j] = v / fc
		}
	}
	return out
}

// clone returns a deep copy.
func (e *Entry) clone() *Entry {
	return &Entry{Sums: slices.Clone(e.Sums), Counts: slices.Clone(e.Counts)}
}

// check reports what makes e unusable: no counts, sums not a whole number of rows, a negative
// count, or a sum that is negative or not finite.
func (e *Entry) check() error {
	if e == nil || len(e.Counts) == 0 {
		return fmt.Errorf("no counts")
	}
	if len(e.Sums) == 0 || len(e.Sums)%len(e.Counts) != 0 {
		return fmt.Errorf("%d sums are not a whole number of rows for %d counts", len(e.Sums), len(e.Counts))
	}
	for i, c := range e.Counts {
		if c < 0 {
			return fmt.Errorf("count %d is %d", i, c)
		}
	}
	for i, v := range e.Sums {
		if !(v >= 0) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("sum %d is %g (sums of squares are finite and ≥ 0)", i, v)
		}
	}
	return nil
}

// Matrix is an importance matrix: the entries of a model's weight tensors by GGUF name, with the
// provenance the file formats record.
type Matrix struct {
	// Entries maps a weight tensor's GGUF name ("blk.0.attn_q.weight") to its data.
	Entries map[string]*Entry
	// Datasets names the calibration texts (llama-imatrix records the -f path as given).
	Datasets []string
	// ChunkCount is the number of chunks the sums cover.
	ChunkCount int
	// ChunkSize is the tokens per chunk (llama-imatrix's n_ctx); 0 when unknown (legacy files),
	// in which case the counts are legacy ncall values.
	ChunkSize int
}

// New returns an empty matrix.
func New() *Matrix { return &Matrix{Entries: map[string]*Entry{}} }

// Names returns the entries' names in byte order (the order both file formats use).
func (m *Matrix) Names() []string {
	names := make([]string, 0, len(m.Entries))
	for n := range m.Entries {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Get returns the entry of tensor t (stored under t.GGUF()), or nil.
func (m *Matrix) Get(t arch.Tensor) *Entry { return m.Entries[t.GGUF()] }

// Linear returns the entry of linear layer k of block i (arch.Weight(i, k)), or nil.
func (m *Matrix) Linear(block int, k arch.LinearKind) *Entry {
	if block < 0 || block >= arch.MaxBlocks || k < 0 || k >= arch.NumLinearKinds {
		return nil
	}
	return m.Get(arch.Weight(block, k))
}

// Clone returns a deep copy.
func (m *Matrix) Clone() *Matrix {
	c := &Matrix{Entries: make(map[string]*Entry, len(m.Entries)), Datasets: slices.Clone(m.Datasets),
		ChunkCount: m.ChunkCount, ChunkSize: m.ChunkSize}
	for n, e := range m.Entries {
		c.Entries[n] = e.clone()
	}
	return c
}

// Check reports the first entry that is unusable (see the package documentation), naming it.
func (m *Matrix) Check() error {
	if m == nil {
		return fmt.Errorf("imatrix: nil matrix")
	}
	if m.ChunkCount < 0 || m.ChunkSize < 0 || m.ChunkCount > math.MaxUint32 || m.ChunkSize > math.MaxUint32 {
		return fmt.Errorf("imatrix: chunk count %d and chunk size %d must be in [0, 2³²)", m.ChunkCount, m.ChunkSize)
	}
	for _, n := range m.Names() {
		if n == "" {
			return fmt.Errorf("imatrix: an entry has an empty name")
		}
		if err := m.Entries[n].check(); err != nil {
			return fmt.Errorf("imatrix: entry %s: %w", n, err)
		}
	}
	return nil
}

// Validate checks m against model md as llama-quantize does: every entry that names one of md's
// linear layers (or output.weight, the LM head) must be one row as wide as the layer's input.
// Entries of other tensors are ignored, as llama-quantize ignores them; layers without an entry
// are allowed (llama-quantize quantizes them without importance weights).
func (m *Matrix) Validate(md *model.Model) error {
	if err := m.Check(); err != nil {
		return err
	}
	for i := range md.Blocks {
		b := &md.Blocks[i]
		for _, k := range arch.LinearKinds() {
			e := m.Linear(i, k)
			if e == nil {
				continue
			}
			if in := b.Layer(k).In; len(e.Counts) != 1 || e.Cols() != in {
				return fmt.Errorf("imatrix: entry %s has %d×%d values, the model's layer has %d input columns",
					arch.Weight(i, k).GGUF(), len(e.Counts), e.Cols(), in)
			}
		}
	}
	if e := m.Get(arch.LMHead()); e != nil && (len(e.Counts) != 1 || e.Cols() != md.Hidden) {
		return fmt.Errorf("imatrix: entry %s has %d×%d values, the model's hidden size is %d",
			arch.LMHead().GGUF(), len(e.Counts), e.Cols(), md.Hidden)
	}
	return nil
}

// Tensor returns the tensor a GGUF entry name stands for — a block's linear weight
// ("blk.3.ffn_down.weight") or the LM head ("output.weight") — so that callers can print its
// Hugging Face name (Tensor.HF); ok is false for any other name.
func Tensor(name string) (t arch.Tensor, ok bool) {
	if name == arch.LMHead().GGUF() {
		return arch.LMHead(), true
	}
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return arch.Tensor{}, false
	}
	num, layer, ok := strings.Cut(rest, ".")
	if !ok || num == "" || (len(num) > 1 && num[0] == '0') {
		return arch.Tensor{}, false
	}
	b, err := strconv.Atoi(num)
	if err != nil || b < 0 || b >= arch.MaxBlocks || num[0] == '+' || num[0] == '-' {
		return arch.Tensor{}, false
	}
	for _, k := range arch.LinearKinds() {
		if layer == k.GGUF()+".weight" {
			return arch.Weight(b, k), true
		}
	}
	return arch.Tensor{}, false
}
