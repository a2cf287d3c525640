package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/evopress/evopress/search"
)

// Preparer is what a worker holds: a loaded model, calibration text and, for sparse and quant
// searches, a level database.
type Preparer interface {
	// Identity returns the fingerprints of what the worker holds, sent when joining.
	Identity() Identity
	// Prepare checks job against what the worker holds (Job.Mismatch and anything else the
	// job needs, such as the size of the calibration pool) and returns the evaluator that
	// scores its tasks. It is called once per job joined; it may cache across jobs.
	Prepare(job *Job) (search.Evaluator, error)
}

// BlockStats is implemented by evaluators that count block forwards (fitness.Evaluator); the
// worker reports the counts with each result.
type BlockStats interface {
	Stats() (blocksRun, blocksFull, tokens int64)
}

// RangeEvaluator is implemented by evaluators that can score part of a batch
// (fitness.Evaluator): the summed fitness per sub-batch of [lo, hi) and candidate, and the
// number of predicting positions per candidate. Workers need it for Range tasks.
type RangeEvaluator interface {
	EvaluateRange(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch, lo, hi int) ([][]float64, int, error)
}

// WorkerOptions configures a worker. Zero fields take the defaults.
type WorkerOptions struct {
	// Subject is the subject prefix (default DefaultSubject).
	Subject string
	// ID names the worker (default HOST-PID); it must be unique among a search's workers.
	ID string
	// Once makes RunWorker return when its first job ends instead of waiting for the next.
	Once bool
	// Log receives events (joined, waiting for a search, job ended; at debug level every
	// task); nil discards them.
	Log *slog.Logger
	// OnTask, when set, is called as a task starts (tests use it to interrupt a worker
	// mid-task).
	OnTask func(id uint64)
}

// ErrRefused wraps the reason a coordinator refused a worker.
var ErrRefused = errors.New("refused by the search")

// RunWorker joins searches on nc and scores their tasks until ctx is cancelled (it then
// returns nil), the coordinator refuses or drops it (an error wrapping ErrRefused) or, with
// Once, the first job ends. Without a coordinator on the subject it waits, asking every second.
func RunWorker(ctx context.Context, nc *nats.Conn, p Preparer, o WorkerOptions) error {
	if o.Subject == "" {
		o.Subject = DefaultSubject
	}
	host, _ := os.Hostname()
	if o.ID == "" {
		o.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	priv, err := newSessionKey()
	if err != nil {
		return fmt.Errorf("cluster: session key: %w", err)
	}
	hello, err := json.Marshal(Hello{Protocol: Protocol, Worker: o.ID, Host: host, PID: os.Getpid(), Identity: p.Identity(), Key: publicHex(priv)})
	if err != nil {
		return err
	}
	out := &signer{nc: nc}
	waiting := false
	for {
		if ctx.Err() != nil {
			return nil
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := nc.RequestWithContext(rctx, joinSubject(o.Subject), hello)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, nats.ErrConnectionClosed) {
				return fmt.Errorf("cluster: NATS connection closed")
			}
			if !waiting {
				o.Log.Info("waiting for a search", "subject", joinSubject(o.Subject))
				waiting = true
			}
			sleep(ctx, time.Second)
			continue
		}
		var r JoinReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return fmt.Errorf("cluster: malformed join reply: %w", err)
		}
		if r.Refused != "" {
			return fmt.Errorf("%w: %s", ErrRefused, r.Refused)
		}
		if r.Job == nil {
			return fmt.Errorf("cluster: join reply without a job")
		}
		job := r.Job
		if job.Protocol != Protocol {
			return fmt.Errorf("%w: protocol %q, this worker speaks %q", ErrRefused, job.Protocol, Protocol)
		}
		if reason := job.Mismatch(p.Identity()); reason != "" {
			return fmt.Errorf("%w: this worker has %s", ErrRefused, reason)
		}
		key, err := sessionKey(priv, r.Key, job.ID, o.ID)
		if err != nil {
			return fmt.Errorf("cluster: the join reply of search %s: %w", job.ID, err)
		}
		ev, err := p.Prepare(job)
		if err != nil {
			return fmt.Errorf("cluster: preparing for search %s: %w", job.ID, err)
		}
		waiting = false
		o.Log.Info("joined", "search", job.ID, "mode", job.Mode, "model", job.Model, "worker", o.ID)
		out.setKey(key)
		if err := serve(ctx, out, job, ev, o); err != nil {
			return err
		}
		o.Log.Info("search ended", "search", job.ID)
		if o.Once {
			return nil
		}
	}
}

// signer publishes a worker's messages signed with its session key, numbered in the order they
// leave (the coordinator refuses a number that does not increase). The number keeps counting
// when the worker joins again: a coordinator that sees the same session again goes on from
// the last number it accepted.
type signer struct {
	nc  *nats.Conn
	key []byte
	mu  sync.Mutex
	seq uint64
}

func (s *signer) setKey(key []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = key
}

func (s *signer) sessionKey() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key
}

func (s *signer) publish(subject, kind, reply string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	msg := &nats.Msg{Subject: subject, Reply: reply, Data: data}
	sign(msg, s.key, kind, s.seq)
	return s.nc.PublishMsg(msg)
}

// serve scores the tasks of one job until the coordinator goes away or asks the worker to
// join again (nil), drops the worker (ErrRefused), or ctx is cancelled (nil).
func serve(ctx context.Context, out *signer, job *Job, ev search.Evaluator, o WorkerOptions) error {
	nc := out.nc
	var current atomic.Uint64
	beat := func() {
		data, _ := json.Marshal(Heartbeat{Worker: o.ID, Task: current.Load()})
		out.publish(heartbeatSubject(o.Subject, job.ID), kindHB, "", data)
	}
	// Answers to work requests come to this worker's inbox, each request on its own subject;
	// only an answer signed for that request counts (anyone may publish to an inbox).
	inbox := nc.NewInbox()
	replies, err := nc.SubscribeSync(inbox + ".*")
	if err != nil {
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	defer replies.Unsubscribe()
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go func() {
		t := time.NewTicker(time.Duration(max(job.HeartbeatMS, 10)) * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				beat()
			}
		}
	}()
	req, _ := json.Marshal(WorkRequest{Worker: o.ID})
	wait := time.Duration(job.PollMS)*time.Millisecond + 10*time.Second
	timeouts := 0
	for n := 1; ; n++ {
		reply := fmt.Sprintf("%s.%d", inbox, n)
		if err := out.publish(workSubject(o.Subject, job.ID), kindWork, reply, req); err != nil {
			if errors.Is(err, nats.ErrConnectionClosed) {
				return fmt.Errorf("cluster: NATS connection closed")
			}
			return fmt.Errorf("cluster: asking for work: %w", err)
		}
		rep, err := awaitReply(ctx, replies, reply, out.sessionKey(), wait, o.Log)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
				return fmt.Errorf("cluster: NATS connection closed")
			}
			if errors.Is(err, nats.ErrNoResponders) {
				return nil // the coordinator is gone
			}
			if timeouts++; timeouts >= 2 {
				return nil
			}
			continue
		}
		timeouts = 0
		if rep.Refused != "" {
			return fmt.Errorf("%w: %s", ErrRefused, rep.Refused)
		}
		if rep.Rejoin {
			return nil
		}
		if rep.Task == nil {
			continue
		}
		t := rep.Task
		current.Store(t.ID)
		beat()
		o.Log.Debug("task started", "task", t.ID, "candidates", len(t.Cands), "stage", t.Batch.Stage, "generation", t.Batch.Generation, "tokens", t.Batch.Tokens)
		if o.OnTask != nil {
			o.OnTask(t.ID)
		}
		res := score(ctx, ev, t)
		res.Worker = o.ID
		o.Log.Debug("task done", "task", t.ID, "seconds", res.Seconds, "error", res.Err)
		if ctx.Err() != nil {
			return nil
		}
		data, err := json.Marshal(res)
		if err != nil {
			return err
		}
		if err := out.publish(resultSubject(o.Subject, job.ID), kindResult, "", data); err != nil {
			return fmt.Errorf("cluster: publishing a result: %w", err)
		}
		// Only now may heartbeats stop naming the task: the coordinator reads this connection's
		// messages in order, so it sees the result before a heartbeat without the task.
		current.Store(0)
		nc.Flush()
	}
}

// awaitReply waits up to wait for the coordinator's answer to the work request sent with reply
// subject reply: signed with the session key for that request, or an unsigned "join again"
// (harmless from anyone). Other messages are dropped.
func awaitReply(ctx context.Context, sub *nats.Subscription, reply string, key []byte, wait time.Duration, log *slog.Logger) (*WorkReply, error) {
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		m, err := sub.NextMsgWithContext(rctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, nats.ErrTimeout
			}
			return nil, err
		}
		if m.Subject != reply {
			continue // the late answer to an earlier request
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			return nil, nats.ErrNoResponders
		}
		var rep WorkReply
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			log.Warn("dropped a malformed work reply", "err", err)
			continue
		}
		if _, ok := verify(m, key, replyKind(reply)); ok {
			return &rep, nil
		}
		if rep.Rejoin && rep.Task == nil && rep.Refused == "" {
			return &rep, nil
		}
		log.Warn("dropped a work reply that is not the search's (it fails authentication)")
	}
}

// score evaluates one task.
func score(ctx context.Context, ev search.Evaluator, t *Task) Result {
	res := Result{Task: t.ID}
	var run0, full0, tok0 int64
	bs, hasStats := ev.(BlockStats)
	if hasStats {
		run0, full0, tok0 = bs.Stats()
	}
	start := time.Now()
	if t.Range {
		re, ok := ev.(RangeEvaluator)
		if !ok {
			res.Err = "this worker's evaluator cannot score part of a batch"
			return res
		}
		sums, count, err := re.EvaluateRange(ctx, t.Parent, t.Cands, t.Batch, t.SubLo, t.SubHi)
		res.Seconds = time.Since(start).Seconds()
		if err != nil {
			res.Err = err.Error()
			return res
		}
		res.SetPartial(sums, count)
	} else {
		f, err := ev.Evaluate(ctx, t.Parent, t.Cands, t.Batch)
		res.Seconds = time.Since(start).Seconds()
		if err != nil {
			res.Err = err.Error()
			return res
		}
		if len(f) != len(t.Cands) {
			res.Err = fmt.Sprintf("evaluator returned %d values for %d candidates", len(f), len(t.Cands))
			return res
		}
		res.SetFitness(f)
	}
	if hasStats {
		run, full, tok := bs.Stats()
		res.BlocksRun, res.BlocksFull, res.Tokens = run-run0, full-full0, tok-tok0
	} else {
		res.Tokens = int64(len(t.Cands) * t.Batch.Tokens)
	}
	return res
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
