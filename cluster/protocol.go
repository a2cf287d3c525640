// Package cluster spreads the candidate evaluations of a search over workers through NATS
// (github.com/nats-io/nats.go), so that one search can use many processes, hosts or GPUs.
//
// A Coordinator implements search.Evaluator: each Evaluate call (one selection stage) is cut
// into at most one task per connected worker, each a share of the candidates with the parent
// and the calibration batch (chunk indices into the calibration pool, never the tokens),
// restricted to a range of the batch's sub-batches when the batch has several, and the tasks
// are handed to the workers that ask for them. A Worker loads the model, the calibration text and the level
// database once, joins the search, checks the fingerprints it is sent, and then asks for tasks,
// scores them and publishes the fitness values.
//
// # Subjects and messages
//
// All subjects start with a prefix (DefaultSubject, "evopress"); the messages are JSON:
//
//	PREFIX.join             request/reply  Hello → JoinReply (the Job and a session key, or why the worker is refused)
//	PREFIX.job.ID.work      request/reply  WorkRequest → WorkReply (a Task, nothing yet, "join again" or "dropped")
//	PREFIX.job.ID.result    publish        Result (fitness per candidate, or an error)
//	PREFIX.job.ID.hb        publish        Heartbeat (every Job.HeartbeatMS, naming the task in hand)
//
// Workers pull: a work request is held by the coordinator for up to Job.PollMS when it has no
// task, so an idle worker costs one message per PollMS and a task is handed out the moment it
// exists. Pulling balances the load (a fast worker simply asks more often) and makes every
// assignment explicit, which is what fault handling needs.
//
// # Trust
//
// Who may connect is the NATS server's business: StartServer refuses to listen beyond the
// loopback interface without credentials (a user and password, a token, an NKey or TLS client
// certificates) unless ServerOptions.Insecure says so. Within the server, NATS does not
// authenticate the sender of a message, so the coordinator binds messages to workers itself: at
// join, worker and coordinator exchange ephemeral X25519 public keys and derive a session key
// that never travels (a client that reads every subject, inboxes included, cannot compute it).
// Every work request, heartbeat and result carries an increasing sequence number and an
// HMAC-SHA256 under that key (NATS headers); the coordinator's task replies carry one bound to
// the request. A message that fails the check (not from the worker it names, or replayed) is
// dropped and logged, and changes nothing: it cannot mark a worker alive, take a task, or
// deliver or fail a result. A worker's result counts only for a task that was handed to that
// worker's session, and its values must be valid (see Faults). The session key protects the
// search's result, not its availability: a client that can publish can still flood the server,
// and one that answers join requests first can keep a worker from joining; the job itself is
// sent to every worker that joins with the search's fingerprints.
//
// # Faults
//
// A worker that stops sending heartbeats for Options.WorkerTimeout (killed, stopped, cut off)
// is marked lost and its tasks are queued again, first in line; a worker whose heartbeats do
// not name a task assigned to it, or that asks for work while it holds one (the assignment
// never arrived), loses that task the same way; a task in flight longer than Options.TaskTimeout is re-sent too. The first valid result that
// arrives for a task from a worker it was handed to is kept and later duplicates are dropped,
// which is safe because scoring is deterministic. A worker whose model, database, calibration
// text or kernel implementation differs from the coordinator's is refused at join and exits
// with the reason.
//
// A worker is dropped from the search — its task re-sent to another worker, its next request
// answered with the reason, so that it exits with it, and a later join under its id refused —
// when it sends, authenticated:
//   - a result with an invalid value: not finite, below −FitnessSlack (a fitness is a mean KL or
//     NLL per predicting position, never negative but for rounding), a number of values other
//     than the task's candidates, or for a range task partial sums of another shape, a count of
//     positions other than the range's, or a sum below −FitnessSlack per position;
//   - an error result for a task it holds (it cannot score it: a database file unreadable on its
//     host, a candidate it cannot build);
//   - a result for a task never handed to it.
//
// An error or invalid result says either that the worker is broken or that the task cannot be
// scored anywhere (a genuine fault of the search: a candidate no worker can build, a model
// whose output is NaN). The coordinator tells them apart by a second opinion: when a second
// worker fails the same task, the search ends with both workers' reasons. When dropping a
// worker for failing a task leaves none connected, the search waits Options.WorkerTimeout for
// another and then ends with the reason (a single worker that cannot score is reported, not
// waited on for ever); a drop for a result about a task the worker does not hold only waits
// for workers as usual. A dishonest worker therefore cannot change the search's result with an
// implausible value, and ends it only as the sole worker; a worker sending plausible wrong
// values cannot be told from an honest one and is kept out only by the fingerprints and the
// server's credentials.
//
// # Determinism
//
// A candidate's fitness depends only on the candidate, the batch and the dense model, not on
// which worker scored it, with which other candidates, or after which parent (prefix reuse is
// exact), provided every worker computes with the same kernels: the Job names the kernel
// implementation and workers with another are refused. So a search gives the same profile for
// a seed whatever the number of workers and whatever faults happened on the way.
package cluster

import (
	"fmt"
	"math"

	"github.com/evopress/evopress/search"
)

// Protocol is the version of the message formats; coordinator and workers must agree.
const Protocol = "evopress-cluster/v2"

// DefaultSubject is the default subject prefix.
const DefaultSubject = "evopress"

// Job describes a search to its workers: what they must hold (fingerprints) and how to score.
type Job struct {
	Protocol string `json:"protocol"`
	// ID identifies this coordinator session; the work, result and heartbeat subjects include it.
	ID string `json:"id"`
	// Mode is the search mode ("drop", "sparse", "quant") and Units its units in profile order.
	Mode  string   `json:"mode"`
	Units []string `json:"units"`
	// Model names the coordinator's model (informational) and ModelFingerprint identifies it.
	Model            string `json:"model"`
	ModelFingerprint string `json:"model_fingerprint"`
	// DBFingerprint identifies the level database (sparse and quant); empty for drop.
	DBFingerprint string `json:"db_fingerprint,omitempty"`
	// CalibSHA256 is the SHA-256 of the calibration text as read (after normalisation), and
	// SeqLen, CalibTokens and PoolChunks say how the pool of chunks is cut from it.
	CalibSHA256 string `json:"calib_sha256"`
	SeqLen      int    `json:"seq_len"`
	CalibTokens int    `json:"calib_tokens"`
	PoolChunks  int    `json:"pool_chunks"`
	// Fitness is "kl" or "ppl"; TopK restricts the KL to the dense model's top-k tokens.
	Fitness string `json:"fitness"`
	TopK    int    `json:"kl_topk"`
	// PrefixReuse lets workers start candidates from the parent's hidden states.
	PrefixReuse bool `json:"prefix_reuse"`
	// SubBatch is how many sequences one forward processes. With several workers a batch of
	// several sub-batches is split into ranges of them (the fitness sums of ranges merge
	// exactly); 0 keeps every candidate's batch whole.
	SubBatch int `json:"sub_batch"`
	// Kernels names the kernel implementation (kernels.Implementation); results are
	// bit-identical only between equal implementations.
	Kernels string `json:"kernels"`
	// TokenEmbeddingType and OutputTensorType (searches over a GGUF database) are the ggml
	// types the file stores its token embedding and output head in; candidates are scored with
	// those tensors as the file holds them. OutputTensorType is "" for a tied output; both are
	// "" for other searches.
	TokenEmbeddingType string `json:"token_embedding_type,omitempty"`
	OutputTensorType   string `json:"output_tensor_type,omitempty"`
	// HeartbeatMS is how often a worker reports, PollMS how long the coordinator holds a work
	// request when it has no task.
	HeartbeatMS int `json:"heartbeat_ms"`
	PollMS      int `json:"poll_ms"`
}

// Identity is what a worker holds: it is checked against the Job both by the coordinator (at
// join) and by the worker (Preparer.Prepare).
type Identity struct {
	ModelFingerprint string `json:"model_fingerprint"`
	DBFingerprint    string `json:"db_fingerprint,omitempty"`
	CalibSHA256      string `json:"calib_sha256"`
	Kernels          string `json:"kernels"`
}

// Mismatch returns why a worker holding id cannot serve job, or "" when it can.
func (job *Job) Mismatch(id Identity) string {
	switch {
	case id.ModelFingerprint != job.ModelFingerprint:
		return fmt.Sprintf("model fingerprint %s, the search's model %s has %s", short(id.ModelFingerprint), job.Model, short(job.ModelFingerprint))
	case job.DBFingerprint != "" && id.DBFingerprint == "":
		return fmt.Sprintf("the search needs level database %s and the worker has none (--db)", short(job.DBFingerprint))
	case job.DBFingerprint != "" && id.DBFingerprint != job.DBFingerprint:
		return fmt.Sprintf("level database fingerprint %s, the search's is %s", short(id.DBFingerprint), short(job.DBFingerprint))
	case id.CalibSHA256 != job.CalibSHA256:
		return fmt.Sprintf("calibration text SHA-256 %s, the search's is %s", short(id.CalibSHA256), short(job.CalibSHA256))
	case id.Kernels != job.Kernels:
		return fmt.Sprintf("kernels %s, the search's are %s (results would differ in rounding)", id.Kernels, job.Kernels)
	}
	return ""
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	if s == "" {
		return "(none)"
	}
	return s
}

// Hello is a worker's join request.
type Hello struct {
	Protocol string   `json:"protocol"`
	Worker   string   `json:"worker"`
	Host     string   `json:"host"`
	PID      int      `json:"pid"`
	Identity Identity `json:"identity"`
	// Key is the worker's ephemeral X25519 public key (hex), from which both sides derive the
	// session key that authenticates the worker's messages (see Trust).
	Key string `json:"key"`
	// Probe marks a coordinator checking that no other coordinator serves the subject.
	Probe bool `json:"probe,omitempty"`
}

// JoinReply answers a Hello: the Job and the coordinator's X25519 public key for this worker
// (hex), or Refused with the reason.
type JoinReply struct {
	Job     *Job   `json:"job,omitempty"`
	Key     string `json:"key,omitempty"`
	Refused string `json:"refused,omitempty"`
}

// WorkRequest asks for a task.
type WorkRequest struct {
	Worker string `json:"worker"`
}

// WorkReply answers a WorkRequest: a task, nothing for now (Task nil), Rejoin when the
// coordinator does not know the worker (it was restarted, or the worker was refused), or
// Refused when the worker was dropped from the search (the reason; the worker exits).
type WorkReply struct {
	Task    *Task  `json:"task,omitempty"`
	Rejoin  bool   `json:"rejoin,omitempty"`
	Refused string `json:"refused,omitempty"`
}

// Task is a share of one selection stage: candidates scored on one batch or, when Range is
// set, on its sub-batches [SubLo, SubHi) (sub-batch k holds the chunks
// Batch.Chunks[k·Job.SubBatch : (k+1)·Job.SubBatch]).
type Task struct {
	ID     uint64          `json:"id"`
	Parent search.Levels   `json:"parent,omitempty"`
	Cands  []search.Levels `json:"cands"`
	Batch  search.Batch    `json:"batch"`
	Range  bool            `json:"range,omitempty"`
	SubLo  int             `json:"sub_lo,omitempty"`
	SubHi  int             `json:"sub_hi,omitempty"`
}

// Result answers a Task. Fitness values travel as IEEE-754 bits so that NaN and ±Inf survive
// JSON and every bit of the value arrives.
type Result struct {
	Task        uint64   `json:"task"`
	Worker      string   `json:"worker"`
	FitnessBits []uint64 `json:"fitness_bits,omitempty"`
	// Tokens counts the input tokens scored; BlocksRun and BlocksFull the block forwards
	// computed and those a full forward per candidate would have needed (prefix reuse).
	Tokens     int64   `json:"tokens"`
	BlocksRun  int64   `json:"blocks_run"`
	BlocksFull int64   `json:"blocks_full"`
	Seconds    float64 `json:"seconds"`
	Err        string  `json:"error,omitempty"`
	// PartialBits answers a Range task: per sub-batch of the range, per candidate, the summed
	// fitness (IEEE-754 bits), over Count predicting positions per candidate.
	PartialBits [][]uint64 `json:"partial_bits,omitempty"`
	Count       int        `json:"count,omitempty"`
}

// Fitness decodes the fitness values.
func (r *Result) Fitness() []float64 {
	out := make([]float64, len(r.FitnessBits))
	for i, b := range r.FitnessBits {
		out[i] = math.Float64frombits(b)
	}
	return out
}

// SetFitness encodes fitness values.
func (r *Result) SetFitness(f []float64) {
	r.FitnessBits = make([]uint64, len(f))
	for i, v := range f {
		r.FitnessBits[i] = math.Float64bits(v)
	}
}

// Partial decodes the partial sums of a Range task.
func (r *Result) Partial() [][]float64 {
	out := make([][]float64, len(r.PartialBits))
	for k, row := range r.PartialBits {
		out[k] = make([]float64, len(row))
		for i, b := range row {
			out[k][i] = math.Float64frombits(b)
		}
	}
	return out
}

// SetPartial encodes the partial sums of a Range task.
func (r *Result) SetPartial(sums [][]float64, count int) {
	r.PartialBits = make([][]uint64, len(sums))
	for k, row := range sums {
		r.PartialBits[k] = make([]uint64, len(row))
		for i, v := range row {
			r.PartialBits[k][i] = math.Float64bits(v)
		}
	}
	r.Count = count
}

// Heartbeat tells the coordinator a worker is alive and which task it is scoring (0: none).
type Heartbeat struct {
	Worker string `json:"worker"`
	Task   uint64 `json:"task"`
}

func joinSubject(prefix string) string           { return prefix + ".join" }
func workSubject(prefix, job string) string      { return prefix + ".job." + job + ".work" }
func resultSubject(prefix, job string) string    { return prefix + ".job." + job + ".result" }
func heartbeatSubject(prefix, job string) string { return prefix + ".job." + job + ".hb" }
