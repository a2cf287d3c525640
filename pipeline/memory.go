package pipeline

import (
	"io/fs"
	"os"
	"strconv"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/calib"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/eval/llamacpp"
	"github.com/evopress/evopress/eval/zeroshot"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/internal/memcheck"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
)

// Memory estimates: each command that loads a model first estimates the memory it will hold at
// its peak from the model's configuration and safetensors headers and the request, and refuses
// to start when that exceeds the memory available (package internal/memcheck; the
// EVOPRESS_MEMORY_LIMIT environment variable states the memory available, or turns the check
// off). The estimates follow the code that allocates: model.ActivationBytes and
// model.HeadBytes (a forward batch and the output head), fitness.EntryBytes (the teacher's
// cache), the level database's levels (held as their files store them), calib.Run (the calibration residual
// stream and one block's Hessians), db.Build's compression of the largest layer.

// modelShape returns the shape of the model in dir ("" the embedded one).
func modelShape(dir string) (*memcheck.Shape, error) {
	if dir == "" {
		return memcheck.ModelShapeFS(assets.FS(), assets.ModelDir)
	}
	return memcheck.ModelShape(dir)
}

// checkMemory refuses (with *memcheck.Error) a command whose estimate exceeds the memory
// available. A model already loaded is not checked (its command was, or the caller holds it),
// nor one whose shape cannot be read (the load then reports what is wrong with it).
func checkMemory(loaded *Loaded, dir string, estimate func(s *memcheck.Shape) *memcheck.Estimate) error {
	if loaded != nil {
		return nil
	}
	s, err := modelShape(dir)
	if err != nil {
		return nil
	}
	e := estimate(s)
	if dir != "" && loadOptions().Mmap {
		// The 16-bit weights of a checkpoint directory are mapped, not read into the heap
		// (LoadModel); the embedded model's count as heap.
		e.Mapped = s.Bytes16
	}
	return memcheck.CheckAvailable(e)
}

// newEstimate starts an estimate with the runtime's share and the model's weights.
func newEstimate(command string, s *memcheck.Shape) *memcheck.Estimate {
	e := &memcheck.Estimate{Command: command}
	e.Weights(s)
	e.Runtime()
	return e
}

// textBytes is the size of a text file ("" the embedded file embedded); 0 when unknown.
func textBytes(path, embedded string) int64 {
	var st fs.FileInfo
	var err error
	if path == "" {
		st, err = fs.Stat(assets.FS(), embedded)
	} else {
		st, err = os.Stat(path)
	}
	if err != nil {
		return 0
	}
	return st.Size()
}

// maxChunks bounds the number of chunks of seqLen tokens a text of size bytes holds (a token
// covers at least one byte; one more for a leading marker), capped by limit (0: none); 0 when
// the size is unknown and there is no limit.
func maxChunks(size int64, seqLen, limit int) int {
	n := 0
	if size > 0 && seqLen > 0 {
		n = int((size + 1) / int64(seqLen))
	}
	if limit > 0 && (n == 0 || limit < n) {
		n = limit
	}
	return n
}

// capBatch is batch, or chunks when it is known and smaller.
func capBatch(batch, chunks int) int {
	if chunks > 0 && chunks < batch {
		return max(chunks, 1)
	}
	return batch
}

// activations adds the forward of workers concurrent batches of b sequences of t tokens with the
// output head.
func activations(e *memcheck.Estimate, s *memcheck.Shape, workers, b, t int, knobs []string, detail string) {
	bytes := int64(workers) * (model.ActivationBytes(s.Config, b, t) + model.HeadBytes(s.Config) + int64(b*t)*8)
	e.Add("activations", bytes, knobs, "%s", detail)
}

// profileParts adds what applying the profile file holds besides the model
// (memcheck.Estimate.Profile and GGUFHeads). An unreadable profile adds nothing (applying it reports the
// error).
func profileParts(e *memcheck.Estimate, s *memcheck.Shape, path string) {
	if path == "" {
		return
	}
	if p, err := profile.Read(path, ""); err == nil {
		e.Profile(s, p)
		e.GGUFHeads(s, p)
	}
}

// pplEstimate estimates a perplexity evaluation (req with its defaults filled in).
func pplEstimate(s *memcheck.Shape, req PPLRequest, llama bool) *memcheck.Estimate {
	e := newEstimate("ppl", s)
	profileParts(e, s, req.ProfileFile)
	if llama {
		nCtx := req.SeqLen
		if nCtx == 0 {
			nCtx = llamacpp.DefaultCtx
		}
		batch := req.Batch
		if batch == 0 {
			batch = 32
		}
		if req.KLDBase == "" {
			batch = capBatch(batch, maxChunks(textBytes(req.DataFile, assets.EvalText), nCtx, req.MaxSeqs))
		}
		activations(e, s, 1, batch, nCtx, []string{"Batch"}, "forward of "+strconv.Itoa(batch)+" chunks × "+strconv.Itoa(nCtx)+" tokens, output head")
		_, n := llamacpp.Scored(nCtx)
		row := int64(n) * int64(llamacpp.RowWidth(s.Config.VocabSize)) * 2
		switch {
		case req.KLDBase != "":
			e.Add("base logits", 2*row, nil, "one chunk's %d scored rows of the base-logits file, read and decoded", n)
		case req.SaveKLDBase != "":
			e.Add("base logits", row, nil, "one chunk's %d scored rows of the base-logits file being written", n)
		}
		return e
	}
	chunks := maxChunks(textBytes(req.DataFile, assets.EvalText), req.SeqLen, req.MaxSeqs)
	batch := capBatch(req.Batch, chunks)
	activations(e, s, 1, batch, req.SeqLen, []string{"Batch"}, "forward of "+strconv.Itoa(batch)+" sequences × "+strconv.Itoa(req.SeqLen)+" tokens, output head")
	if req.KL {
		entry := fitness.EntryBytes(req.SeqLen, s.Config.VocabSize, 0)
		e.Add("teacher distributions", int64(batch)*entry, []string{"Batch"}, "the dense model's distributions over the batch, float16: %s per sequence", memcheck.FormatBytes(entry))
	}
	return e
}

// teacherCache adds the teacher's cache of dense distributions over a pool of chunks (0:
// unknown) of seqLen tokens: at most cacheMB, plus the batch being scored, whose entries
// outlive their eviction.
func teacherCache(e *memcheck.Estimate, s *memcheck.Shape, chunks, seqLen, topK, cacheMB, batch int, knobs []string) {
	entry := fitness.EntryBytes(seqLen, s.Config.VocabSize, topK)
	bytes := int64(cacheMB)<<20 + int64(batch)*entry
	if chunks > 0 {
		bytes = min(bytes, int64(chunks)*entry)
	}
	what := "full distributions, float16"
	if topK > 0 && topK < s.Config.VocabSize {
		what = "top-" + strconv.Itoa(topK) + " distributions"
	}
	e.Add("teacher cache", bytes, knobs, "%s: %s per chunk, at most %d MiB + a batch of %d", what, memcheck.FormatBytes(entry), cacheMB, batch)
}

// scoring describes how a search or baseline scores candidates.
type scoring struct {
	command string
	// kl: KL fitness (the teacher's cache is filled); topK its top-k.
	kl   bool
	topK int
	// subBatch: sequences per candidate forward; workers: in-process workers.
	subBatch, workers int
	prefixReuse       bool
	// db: a sparse or quant mode over a level database.
	db bool
}

// scoringEstimate estimates a search or baseline over dt (its defaults filled in).
func scoringEstimate(s *memcheck.Shape, dt Data, sc scoring) *memcheck.Estimate {
	e := newEstimate(sc.command, s)
	seqLen := dt.SeqLen
	chunks := maxChunks(textBytes(dt.CalibFile, defaultCalib), seqLen, 0)
	if dt.CalibTokens > 0 {
		chunks = min(max(chunks, 1), max(dt.CalibTokens/seqLen, 1))
	}
	teacherBatch := 16 // fitness.Options.Batch's default
	b := capBatch(max(teacherBatch, sc.subBatch), chunks)
	workers := max(sc.workers, 1)
	activations(e, s, workers, b, seqLen, []string{"SubBatch"}, strconv.Itoa(workers)+" worker(s): forward of "+strconv.Itoa(b)+" sequences × "+strconv.Itoa(seqLen)+" tokens, output head")
	states := 1 // the candidate's copy of the input states
	if sc.prefixReuse {
		states = s.Blocks() + 2 // and the parent's states at each block a candidate may start from
	}
	sb := capBatch(sc.subBatch, chunks)
	e.Add("prefix states", int64(workers)*int64(states)*int64(sb)*int64(seqLen)*int64(s.Config.HiddenSize)*4, []string{"SubBatch"},
		"%d saved hidden states of %d sequences × %d tokens", states, sb, seqLen)
	if sc.kl {
		teacherCache(e, s, chunks, seqLen, sc.topK, dt.CacheMB, max(teacherBatch, sc.subBatch), []string{"CacheMB", "KLTopK"})
	}
	if sc.db {
		levels(e, s, dt, workers)
	}
	return e
}

// levels adds the level database's levels a search or baseline holds with workers in-process
// workers (levels are held as their files store them: db.Manifest.MaxHeldBytes). A cache
// budget at least every level's size (db.Manifest.TotalHeldBytes) reads each level once and
// shares it: every level. A smaller one holds the budget, and each worker's model being scored
// (a candidate, or the parent whose states prefix reuse saves; fitness.Evaluator builds one at a
// time) holds its own copy of the levels the cache has dropped, at most one level of every
// layer. A database whose manifest cannot be read counts every linear layer in float32
// (opening it will say why).
func levels(e *memcheck.Estimate, s *memcheck.Shape, dt Data, workers int) {
	budget := int64(dt.DBCacheMB) << 20
	man, err := db.ReadManifest(dt.DBDir)
	if err != nil {
		held := 4 * s.LinearWeights
		if budget > held {
			e.Add("levels", budget, []string{"DBCacheMB"}, "the level database's cache of levels, held as stored")
		} else {
			e.Add("levels", held, nil, "every layer of the candidates in float32 (the %d MiB cache is smaller)", dt.DBCacheMB)
		}
		return
	}
	if man.Mode == db.ModeGGUF {
		// Candidates are scored with the file's quantized token embedding (and output, when
		// not tied), decoded to float32 once (fileTensors).
		copies, which := int64(1), "token embedding (tied to the output)"
		if !s.Config.TieWordEmbeddings {
			copies, which = 2, "token embedding and output"
		}
		e.Add("file tensors", copies*4*int64(s.Config.VocabSize)*int64(s.Config.HiddenSize), nil,
			"the GGUF file's %s that candidates are scored with, decoded to float32", which)
	}
	if total := man.TotalHeldBytes(); budget >= total {
		e.Add("levels", total, nil, "every level of the %s database, read once into the %d MiB cache and shared, held as stored", man.Mode, dt.DBCacheMB)
		return
	}
	held := man.MaxHeldBytes()
	e.Add("levels", budget+int64(workers)*held, []string{"DBCacheMB"},
		"the %d MiB cache of levels held as the %s database stores them, and %d model(s) being scored holding the levels it dropped: %s each at most",
		dt.DBCacheMB, man.Mode, workers, memcheck.FormatBytes(held))
}

// dbBuildEstimate estimates a database build (req with its Data defaults filled in).
func dbBuildEstimate(s *memcheck.Shape, req DBRequest) *memcheck.Estimate {
	cfg := req.Build
	e := newEstimate("db build "+cfg.Mode, s)
	c := s.Config
	seqLen, h := req.SeqLen, int64(c.HiddenSize)
	chunks := maxChunks(textBytes(req.CalibFile, defaultCalib), seqLen, 0)
	if req.CalibTokens > 0 {
		chunks = min(max(chunks, 1), max(req.CalibTokens/seqLen, 1))
	}
	batch := cfg.Batch
	if batch <= 0 {
		batch = calib.DefaultBatch
	}
	batch = capBatch(batch, chunks)
	e.Add("calibration states", int64(chunks)*int64(seqLen)*h*4, []string{"CalibTokens"},
		"the residual stream of %d sequences × %d tokens", chunks, seqLen)
	activations(e, s, 1, batch, seqLen, []string{"Build.Batch"}, "forward of "+strconv.Itoa(batch)+" sequences × "+strconv.Itoa(seqLen)+" tokens")
	nq, inter := int64(c.NumAttentionHeads*c.HeadDim), int64(c.IntermediateSize)
	e.Add("Hessians", 4*(2*h*h+nq*nq+inter*inter), nil, "one block's four input Hessians, float32")

	// Compressing the largest layer: its float32 copy, every level's weights, the errors'
	// products, the encoded level files, and the method's working memory.
	n, in := s.MaxLinear, int64(s.MaxIn)
	var levels int
	var encoded, method int64
	switch cfg.Mode {
	case db.ModeSparse:
		p := cfg.Sparse
		levels = 2*p.Levels + 1
		density := 1 - p.Target
		encoded = int64(levels) * (n/8 + int64(float64(n)*density*4))
		if cfg.Method == db.MethodSparseGPT || cfg.Method == "" {
			method = gptqBuffers(n, in)
		} else {
			method = 8 * n
		}
	case db.ModeQuant:
		p := cfg.Quant
		levels = len(p.Bits)
		for _, b := range p.Bits {
			encoded += int64(b)*n/8 + n // the packed level, and its codes one byte each until packed
		}
		if cfg.Method == db.MethodGPTQ || cfg.Method == "" {
			method = gptqBuffers(n, in)
		}
	case db.ModeGGUF:
		types := cfg.GGUF.Types
		if len(types) == 0 {
			types = db.DefaultGGUFTypes()
		}
		levels = len(types)
		for _, name := range types {
			if t, err := ggml.ParseType(name); err == nil {
				if t, err = ggml.Fallback(t, int(h)); err == nil {
					if rb, err := t.RowBytes(int(h)); err == nil {
						encoded += 2 * n / h * int64(rb) // the blocks, and the level file holding them
					}
				}
			}
		}
	}
	e.Add("compression", 4*n*int64(levels+3)+encoded+method, nil,
		"the largest layer (%d weights) at %d levels, its level files and the method's buffers", n, levels)
	return e
}

// zeroShotEstimate estimates a zero-shot evaluation of the tasks: batches of req.Batch requests
// padded to the longest (a token covers at least one byte of text; the window caps it) and the
// logits of their continuations.
func zeroShotEstimate(s *memcheck.Shape, req ZeroShotRequest, tasks []*zeroshot.Task) *memcheck.Estimate {
	e := newEstimate("eval", s)
	profileParts(e, s, req.ProfileFile)
	window := req.MaxLen
	if window <= 0 {
		window = s.Config.MaxPositionEmbeddings
	}
	requests, longest, cont := 0, 0, 0
	for _, t := range tasks {
		for _, it := range t.Items {
			for _, c := range it.Choices {
				requests++
				longest = max(longest, len(c.Context)+len(c.Continuation)+2)
				cont = max(cont, len(c.Continuation)+1)
			}
		}
	}
	if window > 0 {
		longest, cont = min(longest, window), min(cont, window)
	}
	batch := capBatch(req.Batch, requests)
	activations(e, s, 1, batch, longest, []string{"Batch", "MaxLen"}, "forward of "+strconv.Itoa(batch)+" requests × up to "+strconv.Itoa(longest)+" tokens")
	e.Add("logits", int64(batch)*int64(cont)*int64(s.Config.VocabSize)*4, []string{"Batch"},
		"the continuations' logits: %d requests × up to %d tokens", batch, cont)
	return e
}

// gptqBuffers is the working memory of SparseGPT and GPTQ on a layer of n weights with in
// inputs: the float64 working copy of the weights, the factor of the damped Hessian (one in×in
// float64 matrix, factored and inverted in place) and the factorisation's panel buffers.
func gptqBuffers(n, in int64) int64 {
	return 8*n + 8*in*in + 2*8*in*128
}
