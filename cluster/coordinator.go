package cluster

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/internal/optionerr"
	"github.com/evopress/evopress/search"
)

// FitnessSlack is how far below zero a fitness may be and still count as valid: a fitness is a
// mean KL or NLL per predicting position, never negative but for rounding (the KL of the dense
// model to itself comes out near −3e-7 from float16 teacher probabilities).
const FitnessSlack = 1e-3

// maxIDLen bounds a worker id.
const maxIDLen = 256

// Options configures a Coordinator. Zero fields take the defaults.
type Options struct {
	// Subject is the subject prefix (default DefaultSubject); one search per prefix and server.
	Subject string
	// WorkerTimeout is how long a worker may stay silent (no heartbeat, work request or result)
	// before it counts as lost and its tasks are re-sent (default 15 s).
	WorkerTimeout time.Duration
	// TaskTimeout re-sends a task still unanswered this long after it was handed out, even
	// from a worker that keeps sending heartbeats (a hung computation). 0: never.
	TaskTimeout time.Duration
	// Heartbeat is how often workers report (default 1 s); Poll how long a work request is
	// held when there is no task (default 5 s).
	Heartbeat, Poll time.Duration
	// Log receives events: workers joining, refused, lost, back, dropped; tasks re-sent;
	// messages dropped; waiting for workers. nil discards them.
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.Subject == "" {
		o.Subject = DefaultSubject
	}
	if o.WorkerTimeout <= 0 {
		o.WorkerTimeout = 15 * time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Coordinator hands the candidate evaluations of a search to workers; it implements
// search.Evaluator; pass its Workers to search.WithWorkerStatus.
type Coordinator struct {
	nc   *nats.Conn
	job  Job
	opt  Options
	subs []*nats.Subscription
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	workers map[string]*workerState
	order   []string // join order, for reports
	queue   []*task
	parked  []poll
	open    map[uint64]*task // unfinished tasks, queued or handed out
	nextID  uint64
	closed  bool
	waitLog time.Time
	stats   Stats
	// stranded says why no worker is left when the last one connected was dropped for failing
	// a task, at strandedAt: unless a worker connects within WorkerTimeout, calls fail with it.
	stranded   string
	strandedAt time.Time
	// rejectLog and rejectQuiet pace the log of dropped messages.
	rejectLog   time.Time
	rejectQuiet int
}

// Stats counts a coordinator's work since it started.
type Stats struct {
	// Tasks handed out (re-sends included) and Resent of them re-sent after a fault.
	Tasks, Resent int64
	// RangeTasks counts the tasks made that score part of a candidate's batch.
	RangeTasks int64
	// Evaluations is the candidates scored, Tokens the input tokens the workers processed.
	Evaluations, Tokens int64
	// BlocksRun and BlocksFull: block forwards computed, and those full forwards would need.
	BlocksRun, BlocksFull int64
	// Dropped counts the workers dropped from the search, Rejected the messages dropped
	// (failing authentication, replayed, malformed, or from a dropped worker).
	Dropped, Rejected int64
}

type workerState struct {
	id, host  string
	pid       int
	joined    time.Time
	lastSeen  time.Time
	connected bool
	evals     float64
	tokens    int64
	// The session (see Trust): the worker's public key, the coordinator's key pair for it, the
	// derived key and the last sequence number accepted. epoch counts the sessions of this id:
	// a task handed to an earlier session is not this one's.
	pub   string
	priv  *ecdh.PrivateKey
	key   []byte
	seq   uint64
	epoch int
	// dropped says why the worker was dropped ("" while it serves).
	dropped string
}

// session names one join of a worker.
type session struct {
	id    string
	epoch int
}

type poll struct {
	msg    *nats.Msg
	worker string
	at     time.Time
}

type task struct {
	id      uint64
	payload []byte // the WorkReply carrying the task
	n       int    // candidates
	call    *call
	index   int    // its first candidate in the call
	worker  string // "" while queued
	sent    time.Time
	// a Range task: sub-batches [subLo, subHi) of its candidates, the call's range number rng,
	// and the predicting positions per candidate of each of its sub-batches
	isRange      bool
	subLo, subHi int
	rng          int
	positions    []int
	tokens       int // the batch's tokens
	// holders are the sessions the task was handed to; failures the reasons of those that
	// failed it
	holders  []session
	failures []string
}

func (t *task) heldBy(w *workerState) bool {
	return slices.Contains(t.holders, session{w.id, w.epoch})
}

type call struct {
	fitness   []float64
	remaining int
	done      chan struct{}
	finished  bool
	err       error
	// split batches: parts[i][j] and counts[i][j] are candidate i's sums over the j-th range
	parts       [][][][]float64
	counts      [][]int
	batchChunks int
}

func (cl *call) finish(err error) {
	if cl.finished {
		return
	}
	cl.finished, cl.err = true, err
	close(cl.done)
}

// NewCoordinator starts a coordinator for job on the connection nc: it checks that no other
// coordinator answers on the subject prefix, subscribes, and starts its watchdog. The job's
// ID, Protocol, HeartbeatMS and PollMS are filled in; Job returns the result.
func NewCoordinator(nc *nats.Conn, job Job, opt Options) (*Coordinator, error) {
	opt.defaults()
	if job.ID == "" {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		job.ID = hex.EncodeToString(b[:])
	}
	if strings.ContainsAny(job.ID, ". *>") || strings.ContainsAny(opt.Subject, " *>") {
		return nil, fmt.Errorf("cluster: job id %q or subject %q contains a character NATS subjects reserve", job.ID, opt.Subject)
	}
	job.Protocol = Protocol
	job.HeartbeatMS = int(opt.Heartbeat / time.Millisecond)
	job.PollMS = int(opt.Poll / time.Millisecond)
	probe, _ := json.Marshal(Hello{Protocol: Protocol, Probe: true})
	if m, err := nc.Request(joinSubject(opt.Subject), probe, 500*time.Millisecond); err == nil {
		var r JoinReply
		other := "another search"
		if json.Unmarshal(m.Data, &r) == nil && r.Job != nil {
			other = fmt.Sprintf("search %s (%s on %s)", r.Job.ID, r.Job.Mode, r.Job.Model)
		}
		return nil, optionerr.New("Options", "Subject", "cluster: %s already serves subject %q on this NATS server: give this one another {}", other, opt.Subject)
	} else if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout) {
		return nil, fmt.Errorf("cluster: NATS: %w", err)
	}
	c := &Coordinator{nc: nc, job: job, opt: opt, stop: make(chan struct{}),
		workers: map[string]*workerState{}, open: map[uint64]*task{}}
	js, err := nc.Subscribe(joinSubject(opt.Subject), c.onJoin)
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	c.subs = append(c.subs, js)
	// One subscription for work requests, results and heartbeats: one goroutine handles them
	// in the order each worker sent them.
	ws, err := nc.Subscribe(opt.Subject+".job."+job.ID+".>", c.onJobMessage)
	if err != nil {
		js.Unsubscribe()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	c.subs = append(c.subs, ws)
	for _, s := range c.subs {
		s.SetPendingLimits(-1, -1)
	}
	if err := nc.Flush(); err != nil {
		c.unsubscribe()
		return nil, fmt.Errorf("cluster: NATS: %w", err)
	}
	c.wg.Add(1)
	go c.watchdog()
	return c, nil
}

// Job returns the job the workers are sent.
func (c *Coordinator) Job() Job { return c.job }

// Stats returns the counters so far.
func (c *Coordinator) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Workers reports every worker that joined, in join order (for search.WithWorkerStatus).
func (c *Coordinator) Workers() []search.WorkerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	out := make([]search.WorkerStatus, 0, len(c.order))
	for _, id := range c.order {
		w := c.workers[id]
		st := search.WorkerStatus{ID: id, Connected: w.connected, Evaluations: w.evals, Tokens: w.tokens}
		if s := now.Sub(w.joined).Seconds(); s > 0 {
			st.Rate = float64(w.evals) / s
		}
		out = append(out, st)
	}
	return out
}

// Connected returns how many workers are connected now.
func (c *Coordinator) Connected() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connectedLocked()
}

func (c *Coordinator) connectedLocked() int {
	n := 0
	for _, w := range c.workers {
		if w.connected {
			n++
		}
	}
	return n
}

// Evaluate implements search.Evaluator: the candidates are cut into tasks (see split), the
// tasks are handed to the workers that ask, and the call returns when every task is scored, a
// task fails on two workers, no worker connects within WorkerTimeout after the last one was
// dropped for failing a task, or ctx is cancelled (see Faults). Otherwise, with no worker
// connected it waits for one.
// Split candidates are merged with fitness.Combine, which repeats the additions of a
// whole-batch evaluation in order: the values are bit-identical to unsplit ones.
func (c *Coordinator) Evaluate(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
	if len(cands) == 0 {
		return nil, nil
	}
	cl := &call{fitness: make([]float64, len(cands)), done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("cluster: coordinator closed")
	}
	if c.strandedLocked(time.Now()) {
		c.mu.Unlock()
		return nil, c.strandedError()
	}
	tasks, err := c.split(cl, parent, cands, b)
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	cl.remaining = len(tasks)
	for _, t := range tasks {
		c.open[t.id] = t
		c.queue = append(c.queue, t)
	}
	c.dispatchLocked(time.Now())
	c.mu.Unlock()

	select {
	case <-cl.done:
	case <-ctx.Done():
		c.mu.Lock()
		c.dropCallLocked(cl)
		cl.finish(ctx.Err())
		c.mu.Unlock()
	}
	if cl.err != nil {
		return nil, cl.err
	}
	return cl.fitness, nil
}

// split cuts a stage into at most max(1, connected workers) tasks: r ranges of the batch's
// sub-batches (r = min(sub-batches, workers)) times c groups of the candidates (c =
// min(candidates, ⌊workers/r⌋)). Ranges come first because they cost nothing extra: every
// sub-batch needs its own dense distributions and parent prefix anyway, while two groups of
// candidates on the same sub-batch both compute them. With r = 1 the tasks score whole
// batches. Called with c.mu held.
func (c *Coordinator) split(cl *call, parent search.Levels, cands []search.Levels, b search.Batch) ([]*task, error) {
	workers := max(1, c.connectedLocked())
	nSub := c.subBatches(len(b.Chunks))
	cl.batchChunks = len(b.Chunks)
	r := min(nSub, workers)
	groups := min(len(cands), max(1, workers/r))
	var tasks []*task
	if r > 1 {
		cl.parts = make([][][][]float64, len(cands))
		cl.counts = make([][]int, len(cands))
		for i := range cands {
			cl.parts[i] = make([][][]float64, r)
			cl.counts[i] = make([]int, r)
		}
	}
	// the predicting positions of sub-batch k: its chunks times (tokens per chunk − 1)
	positions := func(k int) int {
		if len(b.Chunks) == 0 {
			return 0
		}
		per := max(1, c.job.SubBatch)
		return (min((k+1)*per, len(b.Chunks)) - k*per) * (b.Tokens/len(b.Chunks) - 1)
	}
	for j := range r {
		lo, hi := j*nSub/r, (j+1)*nSub/r
		for g := range groups {
			clo, chi := g*len(cands)/groups, (g+1)*len(cands)/groups
			wire := Task{Parent: parent, Cands: cands[clo:chi], Batch: b}
			t := &task{n: chi - clo, index: clo, call: cl, tokens: b.Tokens}
			if r > 1 {
				wire.Range, wire.SubLo, wire.SubHi = true, lo, hi
				t.isRange, t.subLo, t.subHi, t.rng = true, lo, hi, j
				for k := lo; k < hi; k++ {
					t.positions = append(t.positions, positions(k))
				}
				c.stats.RangeTasks++
			}
			c.nextID++
			wire.ID, t.id = c.nextID, c.nextID
			payload, err := json.Marshal(WorkReply{Task: &wire})
			if err != nil {
				return nil, fmt.Errorf("cluster: encoding task: %w", err)
			}
			t.payload = payload
			tasks = append(tasks, t)
		}
	}
	return tasks, nil
}

// subBatches is the number of sub-batches of a batch of n chunks (1 when SubBatch is 0).
func (c *Coordinator) subBatches(n int) int {
	if c.job.SubBatch <= 0 {
		return 1
	}
	return max(1, (n+c.job.SubBatch-1)/c.job.SubBatch)
}

// dropCallLocked forgets the unfinished tasks of cl.
func (c *Coordinator) dropCallLocked(cl *call) {
	for id, t := range c.open {
		if t.call == cl {
			delete(c.open, id)
		}
	}
	c.queue = slices.DeleteFunc(c.queue, func(t *task) bool { return t.call == cl })
}

// dispatchLocked hands queued tasks to parked work requests of connected workers.
func (c *Coordinator) dispatchLocked(now time.Time) {
	for len(c.queue) > 0 && len(c.parked) > 0 {
		p := c.parked[0]
		c.parked = c.parked[1:]
		w := c.workers[p.worker]
		if w == nil || !w.connected {
			c.answer(p.msg, w, WorkReply{})
			continue
		}
		t := c.queue[0]
		if err := c.answerRaw(p.msg, w, t.payload); err != nil {
			c.opt.Log.Warn("handing out a task failed", "worker", w.id, "task", t.id, "err", err)
			continue
		}
		c.queue = c.queue[1:]
		t.worker, t.sent = w.id, now
		if s := (session{w.id, w.epoch}); !slices.Contains(t.holders, s) {
			t.holders = append(t.holders, s)
		}
		c.stats.Tasks++
	}
}

func (c *Coordinator) respond(m *nats.Msg, v any) {
	data, err := json.Marshal(v)
	if err == nil {
		err = m.Respond(data)
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.opt.Log.Warn("reply failed", "subject", m.Subject, "err", err)
	}
}

// answer replies to w's work request m, signed with w's session key (unsigned when w is nil:
// only "join again" goes to an unknown worker).
func (c *Coordinator) answer(m *nats.Msg, w *workerState, v WorkReply) {
	data, err := json.Marshal(v)
	if err == nil {
		err = c.answerRaw(m, w, data)
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.opt.Log.Warn("reply failed", "subject", m.Subject, "err", err)
	}
}

func (c *Coordinator) answerRaw(m *nats.Msg, w *workerState, data []byte) error {
	msg := &nats.Msg{Data: data}
	if w != nil {
		sign(msg, w.key, replyKind(m.Reply), 0)
	}
	return m.RespondMsg(msg)
}

// requeueLocked puts a handed-out task back at the front of the queue.
func (c *Coordinator) requeueLocked(t *task, why string) {
	c.opt.Log.Warn("re-sending task", "task", t.id, "candidates", t.n, "worker", t.worker, "reason", why)
	t.worker = ""
	c.queue = append([]*task{t}, c.queue...)
	c.stats.Resent++
}

func (c *Coordinator) seenLocked(w *workerState, now time.Time) {
	if w.dropped != "" {
		return
	}
	w.lastSeen = now
	c.stranded = ""
	if !w.connected {
		w.connected = true
		c.opt.Log.Info("worker back", "worker", w.id)
	}
}

// authLocked returns the worker named id when m is its message of the given kind: signed with
// its session key and newer than the last one accepted. Otherwise it drops and logs m.
func (c *Coordinator) authLocked(m *nats.Msg, kind, id string, now time.Time) *workerState {
	w := c.workers[id]
	if w == nil {
		c.rejectLocked(now, kind, id, "unknown worker")
		return nil
	}
	seq, ok := verify(m, w.key, kind)
	switch {
	case !ok:
		c.rejectLocked(now, kind, id, "it fails authentication: not sent by the worker it names")
	case seq <= w.seq:
		c.rejectLocked(now, kind, id, fmt.Sprintf("replayed: sequence number %d after %d", seq, w.seq))
	default:
		w.seq = seq
		return w
	}
	return nil
}

// rejectLocked counts and logs a dropped message, at most one line a second.
func (c *Coordinator) rejectLocked(now time.Time, kind, worker, reason string) {
	c.stats.Rejected++
	if now.Sub(c.rejectLog) < time.Second {
		c.rejectQuiet++
		return
	}
	c.opt.Log.Warn("message dropped", "kind", kind, "worker", clip(worker, maxIDLen), "reason", reason, "dropped_before_unlogged", c.rejectQuiet)
	c.rejectLog, c.rejectQuiet = now, 0
}

// clip shortens s for a log line.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// dropLocked drops w from the search (see Faults): its tasks are re-sent and its parked request
// answered with the reason. When w failed a task (taskFault) and no worker is left connected,
// the calls fail unless one connects within WorkerTimeout.
func (c *Coordinator) dropLocked(w *workerState, reason string, taskFault bool, now time.Time) {
	if w.dropped != "" {
		return
	}
	w.dropped, w.connected = reason, false
	c.stats.Dropped++
	c.opt.Log.Warn("worker dropped", "worker", w.id, "host", w.host, "pid", w.pid, "reason", reason)
	refused := WorkReply{Refused: fmt.Sprintf("dropped from search %s: %s", c.job.ID, reason)}
	c.parked = slices.DeleteFunc(c.parked, func(p poll) bool {
		if p.worker == w.id {
			c.answer(p.msg, w, refused)
			return true
		}
		return false
	})
	for _, t := range c.open {
		if t.worker == w.id {
			c.requeueLocked(t, "the worker was dropped")
		}
	}
	if taskFault && c.connectedLocked() == 0 {
		c.stranded, c.strandedAt = fmt.Sprintf("worker %s was dropped: %s", w.id, reason), now
	}
	c.dispatchLocked(now)
}

// strandedLocked reports whether calls are to fail for want of workers: the last connected one
// was dropped for failing a task, WorkerTimeout ago, and none has connected since.
func (c *Coordinator) strandedLocked(now time.Time) bool {
	return c.stranded != "" && c.connectedLocked() == 0 && now.Sub(c.strandedAt) >= c.opt.WorkerTimeout
}

func (c *Coordinator) strandedError() error {
	return fmt.Errorf("cluster: no worker left to score the candidates: %s", c.stranded)
}

// failTaskLocked drops w, which held t, for reason; a task failed by two workers ends its call.
func (c *Coordinator) failTaskLocked(t *task, w *workerState, reason string, now time.Time) {
	t.failures = append(t.failures, fmt.Sprintf("worker %s: %s", w.id, reason))
	if len(t.failures) >= 2 {
		cl := t.call
		c.dropCallLocked(cl)
		cl.finish(fmt.Errorf("cluster: task %d (%d candidates) failed on two workers, it cannot be scored: %s", t.id, t.n, strings.Join(t.failures, "; ")))
	}
	c.dropLocked(w, fmt.Sprintf("task %d: %s", t.id, reason), true, now)
}

func (c *Coordinator) onJoin(m *nats.Msg) {
	var h Hello
	if err := json.Unmarshal(m.Data, &h); err != nil {
		c.respond(m, JoinReply{Refused: "malformed join request: " + err.Error()})
		return
	}
	if h.Probe {
		// Another coordinator checking the subject: who serves it, and nothing a worker needs.
		c.respond(m, JoinReply{Job: &Job{ID: c.job.ID, Mode: c.job.Mode, Model: c.job.Model}, Refused: "probe"})
		return
	}
	refuse := func(reason string) {
		c.opt.Log.Warn("worker refused", "worker", clip(h.Worker, maxIDLen), "host", clip(h.Host, maxIDLen), "reason", reason)
		c.respond(m, JoinReply{Refused: reason})
	}
	if h.Protocol != Protocol {
		refuse(fmt.Sprintf("protocol %q, the search speaks %q (update evopress)", clip(h.Protocol, 64), Protocol))
		return
	}
	if h.Worker == "" || len(h.Worker) > maxIDLen {
		refuse(fmt.Sprintf("a worker id must have 1 to %d bytes", maxIDLen))
		return
	}
	if reason := c.job.Mismatch(h.Identity); reason != "" {
		refuse("the worker has " + reason)
		return
	}
	priv, err := newSessionKey()
	if err != nil {
		refuse("the search cannot make a session key: " + err.Error())
		return
	}
	key, err := sessionKey(priv, h.Key, c.job.ID, h.Worker)
	if err != nil {
		refuse("no valid session key in the join request: " + err.Error())
		return
	}
	now := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	w := c.workers[h.Worker]
	switch {
	case w != nil && w.dropped != "":
		c.mu.Unlock()
		refuse(fmt.Sprintf("worker %s was dropped from this search: %s", w.id, w.dropped))
		return
	case w != nil && w.pub == h.Key:
		// The same session joining again (its requests went unanswered): the same keys. The
		// join request is not authenticated, so it does not count as a sign of life.
	case w != nil && w.connected:
		c.mu.Unlock()
		refuse(fmt.Sprintf("worker id %q is in use by process %d on %s", h.Worker, w.pid, w.host))
		return
	default:
		if w == nil {
			w = &workerState{id: h.Worker, joined: now}
			c.workers[h.Worker] = w
			c.order = append(c.order, h.Worker)
			c.opt.Log.Info("worker joined", "worker", h.Worker, "host", clip(h.Host, maxIDLen), "pid", h.PID)
		} else {
			w.epoch++ // a new process under a lost worker's id: a new session
			c.opt.Log.Info("worker joined again", "worker", h.Worker, "host", clip(h.Host, maxIDLen), "pid", h.PID)
		}
		w.host, w.pid = clip(h.Host, maxIDLen), h.PID
		w.pub, w.priv, w.key, w.seq = h.Key, priv, key, 0
		w.connected = true
		c.seenLocked(w, now)
	}
	job := c.job
	reply := JoinReply{Job: &job, Key: publicHex(w.priv)}
	c.mu.Unlock()
	c.respond(m, reply)
}

func (c *Coordinator) onJobMessage(m *nats.Msg) {
	switch m.Subject[strings.LastIndexByte(m.Subject, '.')+1:] {
	case kindWork:
		c.onWork(m)
	case kindResult:
		c.onResult(m)
	case kindHB:
		c.onHeartbeat(m)
	}
}

// malformed drops a message that does not decode.
func (c *Coordinator) malformed(kind string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rejectLocked(time.Now(), kind, "", "malformed: "+clip(err.Error(), 200))
}

func (c *Coordinator) onWork(m *nats.Msg) {
	var req WorkRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		c.malformed(kindWork, err)
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.workers[req.Worker] == nil || c.closed {
		c.answer(m, nil, WorkReply{Rejoin: true})
		return
	}
	w := c.authLocked(m, kindWork, req.Worker, now)
	if w == nil {
		return // not the worker's: no answer
	}
	if w.dropped != "" {
		c.answer(m, w, WorkReply{Refused: fmt.Sprintf("dropped from search %s: %s", c.job.ID, w.dropped)})
		return
	}
	c.seenLocked(w, now)
	// A worker scores one task at a time and sends its result before it asks again: a task
	// still handed to it never reached it (or it gave it up).
	for _, t := range c.open {
		if t.worker == w.id {
			c.requeueLocked(t, "the worker asked for work without answering it")
		}
	}
	// A worker has one request outstanding: an older parked one was given up by its sender.
	c.parked = slices.DeleteFunc(c.parked, func(p poll) bool { return p.worker == w.id })
	c.parked = append(c.parked, poll{msg: m, worker: w.id, at: now})
	c.dispatchLocked(now)
}

func (c *Coordinator) onResult(m *nats.Msg) {
	var r Result
	if err := json.Unmarshal(m.Data, &r); err != nil {
		c.malformed(kindResult, err)
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	w := c.authLocked(m, kindResult, r.Worker, now)
	if w == nil {
		return
	}
	if w.dropped != "" {
		c.rejectLocked(now, kindResult, w.id, "the worker was dropped")
		return
	}
	c.seenLocked(w, now)
	t := c.open[r.Task]
	if t == nil {
		if r.Task == 0 || r.Task > c.nextID {
			c.dropLocked(w, fmt.Sprintf("it sent a result for task %d, which was never handed out", r.Task), false, now)
		}
		return // a duplicate of a re-sent task, or a task of a finished call
	}
	if !t.heldBy(w) {
		c.dropLocked(w, fmt.Sprintf("it sent a result for task %d, which was not handed to it", r.Task), false, now)
		return
	}
	if reason := t.invalid(&r); reason != "" {
		c.failTaskLocked(t, w, reason, now)
		return
	}
	delete(c.open, r.Task)
	c.queue = slices.DeleteFunc(c.queue, func(q *task) bool { return q == t })
	cl := t.call
	evals, share := int64(t.n), float64(t.n)
	if t.isRange {
		part := r.Partial()
		for i := range t.n {
			col := make([][]float64, len(part))
			for k, row := range part {
				col[k] = []float64{row[i]}
			}
			cl.parts[t.index+i][t.rng], cl.counts[t.index+i][t.rng] = col, r.Count
		}
		share *= float64(t.subHi-t.subLo) / float64(c.subBatches(cl.batchChunks))
		if t.rng > 0 {
			evals = 0 // a candidate counts once in the totals, on its first range
		}
	} else {
		copy(cl.fitness[t.index:], r.Fitness())
	}
	w.evals += share
	w.tokens += r.Tokens
	c.stats.Evaluations += evals
	c.stats.Tokens += r.Tokens
	c.stats.BlocksRun += r.BlocksRun
	c.stats.BlocksFull += r.BlocksFull
	if cl.remaining--; cl.remaining == 0 {
		for i := range cl.parts {
			// the additions of one whole-batch evaluation, in the same order: bit-identical
			cl.fitness[i] = fitness.Combine(cl.parts[i], cl.counts[i], 1)[0]
		}
		cl.finish(nil)
	}
}

// invalid says why r cannot be t's result, or "" when it can (see Faults).
func (t *task) invalid(r *Result) string {
	if r.Err != "" {
		return "the worker reported an error: " + clip(r.Err, 1000)
	}
	rows := max(1, t.subHi-t.subLo)
	if r.Tokens < 0 || r.Tokens > int64(t.n)*int64(t.tokens) || r.BlocksRun < 0 || r.BlocksFull < r.BlocksRun ||
		r.BlocksFull > int64(t.n)*int64(rows)<<20 || !(r.Seconds >= 0 && r.Seconds < 1e9) {
		return fmt.Sprintf("impossible counters: %d tokens, %d of %d block forwards, %v s", r.Tokens, r.BlocksRun, r.BlocksFull, r.Seconds)
	}
	bad := func(v float64, positions int) bool {
		return math.IsNaN(v) || math.IsInf(v, 0) || v < -FitnessSlack*float64(positions)
	}
	if !t.isRange {
		f := r.Fitness()
		if len(f) != t.n || len(r.PartialBits) != 0 {
			return fmt.Sprintf("%d fitness values (and %d rows of partial sums) for %d candidates", len(f), len(r.PartialBits), t.n)
		}
		for i, v := range f {
			if bad(v, 1) {
				return fmt.Sprintf("fitness %v for candidate %d: a fitness is finite and at least %v", v, i, -FitnessSlack)
			}
		}
		return ""
	}
	part := r.Partial()
	if len(part) != rows || len(r.FitnessBits) != 0 || slices.ContainsFunc(part, func(row []float64) bool { return len(row) != t.n }) {
		return fmt.Sprintf("%d rows of partial sums (and %d fitness values) for sub-batches [%d, %d) of %d candidates", len(part), len(r.FitnessBits), t.subLo, t.subHi, t.n)
	}
	want := 0
	for _, p := range t.positions {
		want += p
	}
	if r.Count != want || want <= 0 {
		return fmt.Sprintf("a count of %d predicting positions for sub-batches [%d, %d), which have %d", r.Count, t.subLo, t.subHi, want)
	}
	for k, row := range part {
		for i, v := range row {
			if bad(v, t.positions[k]) {
				return fmt.Sprintf("fitness sum %v for candidate %d on sub-batch %d of %d positions: a sum is finite and at least %v per position", v, i, t.subLo+k, t.positions[k], -FitnessSlack)
			}
		}
	}
	return ""
}

func (c *Coordinator) onHeartbeat(m *nats.Msg) {
	var hb Heartbeat
	if err := json.Unmarshal(m.Data, &hb); err != nil {
		c.malformed(kindHB, err)
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.authLocked(m, kindHB, hb.Worker, now)
	if w == nil || w.dropped != "" {
		return
	}
	c.seenLocked(w, now)
	// A worker scores one task at a time: a task handed to it a while ago that its heartbeat
	// does not name never reached it (or its result is on the way and will be taken if it
	// comes first).
	grace := 3 * c.opt.Heartbeat
	for _, t := range c.open {
		if t.worker == w.id && t.id != hb.Task && now.Sub(t.sent) > grace {
			c.requeueLocked(t, "the worker is not scoring it")
		}
	}
	c.dispatchLocked(now)
}

// watchdog detects silent workers and overdue tasks, answers work requests held too long and
// reports when no worker is there to do queued work.
func (c *Coordinator) watchdog() {
	defer c.wg.Done()
	tick := time.NewTicker(max(c.opt.Heartbeat/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-tick.C:
			c.check(now)
		}
	}
}

func (c *Coordinator) check(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.workers {
		if w.connected && now.Sub(w.lastSeen) > c.opt.WorkerTimeout {
			w.connected = false
			c.opt.Log.Warn("worker lost", "worker", w.id, "silent_s", now.Sub(w.lastSeen).Seconds())
		}
	}
	for _, t := range c.open {
		if t.worker == "" {
			continue
		}
		if w := c.workers[t.worker]; w == nil || !w.connected {
			c.requeueLocked(t, "the worker was lost")
		} else if c.opt.TaskTimeout > 0 && now.Sub(t.sent) > c.opt.TaskTimeout {
			c.requeueLocked(t, fmt.Sprintf("no result after %s", c.opt.TaskTimeout))
		}
	}
	keep := c.parked[:0]
	for _, p := range c.parked {
		w := c.workers[p.worker]
		if now.Sub(p.at) >= c.opt.Poll || w == nil || !w.connected {
			c.answer(p.msg, w, WorkReply{})
			continue
		}
		keep = append(keep, p)
	}
	c.parked = keep
	c.dispatchLocked(now)
	if c.strandedLocked(now) && len(c.open) > 0 {
		err := c.strandedError()
		for _, t := range c.open {
			c.dropCallLocked(t.call)
			t.call.finish(err)
		}
	}
	if len(c.queue) > 0 && c.connectedLocked() == 0 && now.Sub(c.waitLog) > 30*time.Second {
		c.waitLog = now
		c.opt.Log.Warn("waiting for workers", "subject", c.opt.Subject, "queued_tasks", len(c.queue))
	}
}

func (c *Coordinator) unsubscribe() {
	for _, s := range c.subs {
		s.Unsubscribe()
	}
	c.subs = nil
}

// Close stops the coordinator: workers asking for work are told to join again (and find no
// search until the next one starts), and calls in progress fail.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for _, p := range c.parked {
		c.respond(p.msg, WorkReply{Rejoin: true})
	}
	c.parked = nil
	for _, t := range c.open {
		t.call.finish(fmt.Errorf("cluster: coordinator closed"))
	}
	c.open = map[uint64]*task{}
	c.queue = nil
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	c.unsubscribe()
	return c.nc.Flush()
}

var _ search.Evaluator = (*Coordinator)(nil)
