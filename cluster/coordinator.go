package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/internal/optionerr"
	"github.com/evopress/evopress/search"
)

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
	// Log receives events: workers joining, refused, lost, back; tasks re-sent; waiting for
	// workers. nil discards them.
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
}

type workerState struct {
	id, host  string
	pid       int
	joined    time.Time
	lastSeen  time.Time
	connected bool
	evals     float64
	tokens    int64
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
	// a Range task: sub-batches [subLo, subHi) of its candidates, the call's range number rng
	isRange      bool
	subLo, subHi int
	rng          int
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
// worker reports an error, or ctx is cancelled. With no worker connected it waits for one.
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
	for j := range r {
		lo, hi := j*nSub/r, (j+1)*nSub/r
		for g := range groups {
			clo, chi := g*len(cands)/groups, (g+1)*len(cands)/groups
			wire := Task{Parent: parent, Cands: cands[clo:chi], Batch: b}
			t := &task{n: chi - clo, index: clo, call: cl}
			if r > 1 {
				wire.Range, wire.SubLo, wire.SubHi = true, lo, hi
				t.isRange, t.subLo, t.subHi, t.rng = true, lo, hi, j
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
			c.respond(p.msg, WorkReply{})
			continue
		}
		t := c.queue[0]
		if err := p.msg.Respond(t.payload); err != nil {
			c.opt.Log.Warn("handing out a task failed", "worker", w.id, "task", t.id, "err", err)
			continue
		}
		c.queue = c.queue[1:]
		t.worker, t.sent = w.id, now
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

// requeueLocked puts a handed-out task back at the front of the queue.
func (c *Coordinator) requeueLocked(t *task, why string) {
	c.opt.Log.Warn("re-sending task", "task", t.id, "candidates", t.n, "worker", t.worker, "reason", why)
	t.worker = ""
	c.queue = append([]*task{t}, c.queue...)
	c.stats.Resent++
}

func (c *Coordinator) seenLocked(w *workerState, now time.Time) {
	w.lastSeen = now
	if !w.connected {
		w.connected = true
		c.opt.Log.Info("worker back", "worker", w.id)
	}
}

func (c *Coordinator) onJoin(m *nats.Msg) {
	var h Hello
	if err := json.Unmarshal(m.Data, &h); err != nil {
		c.respond(m, JoinReply{Refused: "malformed join request: " + err.Error()})
		return
	}
	if h.Probe {
		job := c.job
		c.respond(m, JoinReply{Job: &job, Refused: "probe"})
		return
	}
	refuse := func(reason string) {
		c.opt.Log.Warn("worker refused", "worker", h.Worker, "host", h.Host, "reason", reason)
		c.respond(m, JoinReply{Refused: reason})
	}
	if h.Protocol != Protocol {
		refuse(fmt.Sprintf("protocol %q, the search speaks %q (update evopress)", h.Protocol, Protocol))
		return
	}
	if h.Worker == "" {
		refuse("no worker id")
		return
	}
	if reason := c.job.Mismatch(h.Identity); reason != "" {
		refuse("the worker has " + reason)
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
	case w == nil:
		w = &workerState{id: h.Worker, host: h.Host, pid: h.PID, joined: now}
		c.workers[h.Worker] = w
		c.order = append(c.order, h.Worker)
		c.opt.Log.Info("worker joined", "worker", h.Worker, "host", h.Host, "pid", h.PID)
	case w.connected && (w.host != h.Host || w.pid != h.PID):
		c.mu.Unlock()
		refuse(fmt.Sprintf("worker id %q is in use by process %d on %s", h.Worker, w.pid, w.host))
		return
	default:
		w.host, w.pid = h.Host, h.PID
	}
	c.seenLocked(w, now)
	job := c.job
	c.mu.Unlock()
	c.respond(m, JoinReply{Job: &job})
}

func (c *Coordinator) onJobMessage(m *nats.Msg) {
	switch {
	case strings.HasSuffix(m.Subject, ".work"):
		c.onWork(m)
	case strings.HasSuffix(m.Subject, ".result"):
		c.onResult(m)
	case strings.HasSuffix(m.Subject, ".hb"):
		c.onHeartbeat(m)
	}
}

func (c *Coordinator) onWork(m *nats.Msg) {
	var req WorkRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		c.opt.Log.Warn("malformed work request", "err", err)
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.workers[req.Worker]
	if w == nil || c.closed {
		c.respond(m, WorkReply{Rejoin: true})
		return
	}
	c.seenLocked(w, now)
	// A worker has one request outstanding: an older parked one was given up by its sender.
	c.parked = slices.DeleteFunc(c.parked, func(p poll) bool { return p.worker == w.id })
	c.parked = append(c.parked, poll{msg: m, worker: w.id, at: now})
	c.dispatchLocked(now)
}

func (c *Coordinator) onResult(m *nats.Msg) {
	var r Result
	if err := json.Unmarshal(m.Data, &r); err != nil {
		c.opt.Log.Warn("malformed result", "err", err)
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.workers[r.Worker]
	if w != nil {
		c.seenLocked(w, now)
	}
	t := c.open[r.Task]
	if t == nil {
		return // a duplicate of a re-sent task, or a task of a finished call
	}
	delete(c.open, r.Task)
	c.queue = slices.DeleteFunc(c.queue, func(q *task) bool { return q == t })
	cl := t.call
	if r.Err != "" {
		c.dropCallLocked(cl)
		cl.finish(fmt.Errorf("worker %s: %s", r.Worker, r.Err))
		return
	}
	evals, share := int64(t.n), float64(t.n)
	if t.isRange {
		part := r.Partial()
		if len(part) != t.subHi-t.subLo || r.Count <= 0 || slices.ContainsFunc(part, func(row []float64) bool { return len(row) != t.n }) {
			c.dropCallLocked(cl)
			cl.finish(fmt.Errorf("cluster: worker %s returned %d partial sums (count %d) for sub-batches [%d, %d) of %d candidates", r.Worker, len(part), r.Count, t.subLo, t.subHi, t.n))
			return
		}
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
		f := r.Fitness()
		if len(f) != t.n {
			c.dropCallLocked(cl)
			cl.finish(fmt.Errorf("cluster: worker %s returned %d fitness values for %d candidates", r.Worker, len(f), t.n))
			return
		}
		copy(cl.fitness[t.index:], f)
	}
	if w != nil {
		w.evals += share
		w.tokens += r.Tokens
	}
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

func (c *Coordinator) onHeartbeat(m *nats.Msg) {
	var hb Heartbeat
	if err := json.Unmarshal(m.Data, &hb); err != nil {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.workers[hb.Worker]
	if w == nil {
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
			c.respond(p.msg, WorkReply{})
			continue
		}
		keep = append(keep, p)
	}
	c.parked = keep
	c.dispatchLocked(now)
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
