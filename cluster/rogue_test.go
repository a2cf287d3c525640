package cluster

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
)

// logBuffer collects a coordinator's log for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// rogue speaks the worker's side of the protocol by hand on its own connection: it joins with
// the search's fingerprints and then sends whatever a test tells it to.
type rogue struct {
	nc    *nats.Conn
	id    string
	key   []byte
	job   *Job
	seq   uint64
	inbox string
	sub   *nats.Subscription
	n     int
}

func joinRogue(t *testing.T, h *harness, id string) *rogue {
	t.Helper()
	nc := h.conn()
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hello, _ := json.Marshal(Hello{Protocol: Protocol, Worker: id, Host: "rogue-host", PID: 1, Identity: testIdentity,
		Key: hex.EncodeToString(priv.PublicKey().Bytes())})
	m, err := nc.Request(joinSubject(DefaultSubject), hello, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var jr JoinReply
	if err := json.Unmarshal(m.Data, &jr); err != nil || jr.Refused != "" || jr.Job == nil {
		t.Fatalf("rogue join: %s (%v)", m.Data, err)
	}
	key, err := sessionKey(priv, jr.Key, jr.Job.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	r := &rogue{nc: nc, id: id, key: key, job: jr.Job, inbox: nc.NewInbox()}
	if r.sub, err = nc.SubscribeSync(r.inbox + ".*"); err != nil {
		t.Fatal(err)
	}
	return r
}

// publish sends v on the job's subject of the given kind, signed with key and sequence seq
// (no signature when key is nil).
func (r *rogue) publish(kind string, v any, key []byte, seq uint64) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: DefaultSubject + ".job." + r.job.ID + "." + kind, Data: data}
	if key != nil {
		sign(msg, key, kind, seq)
	}
	if err := r.nc.PublishMsg(msg); err != nil {
		return err
	}
	return r.nc.Flush()
}

// send publishes v as the rogue itself, correctly signed.
func (r *rogue) send(kind string, v any) error {
	r.seq++
	return r.publish(kind, v, r.key, r.seq)
}

// ask requests work and returns the coordinator's reply, which must be signed for the request.
func (r *rogue) ask(wait time.Duration) (*WorkReply, error) {
	r.n++
	reply := fmt.Sprintf("%s.%d", r.inbox, r.n)
	data, _ := json.Marshal(WorkRequest{Worker: r.id})
	msg := &nats.Msg{Subject: workSubject(DefaultSubject, r.job.ID), Reply: reply, Data: data}
	r.seq++
	sign(msg, r.key, kindWork, r.seq)
	if err := r.nc.PublishMsg(msg); err != nil {
		return nil, err
	}
	for {
		m, err := r.sub.NextMsg(wait)
		if err != nil {
			return nil, err
		}
		if m.Subject != reply {
			continue
		}
		if _, ok := verify(m, r.key, replyKind(reply)); !ok {
			return nil, fmt.Errorf("unsigned work reply %s", m.Data)
		}
		var rep WorkReply
		return &rep, json.Unmarshal(m.Data, &rep)
	}
}

func forgeFitness(f ...float64) func(*Task, Result) Result {
	return func(t *Task, r Result) Result {
		vals := r.Fitness()
		for i := range vals {
			vals[i] = f[i%len(f)]
		}
		r.SetFitness(vals)
		return r
	}
}

func forgePartial(edit func(sums [][]float64, count int) ([][]float64, int)) func(*Task, Result) Result {
	return func(t *Task, r Result) Result {
		sums, count := edit(r.Partial(), r.Count)
		r.SetPartial(sums, count)
		return r
	}
}

// A rogue worker that joined with the right fingerprints holds a task and answers it with an
// invalid result: it is dropped with the reason (its next request is refused with it), the task
// is re-sent to the honest worker, and the search ends with exactly the values of an honest
// run. The rogue answers honestly until it holds a task of the kind the case needs (the first
// stage is split into ranges of sub-batches, the second into groups of candidates).
func TestRogueWorkerInvalidResults(t *testing.T) {
	want := runSearch(t, fakeEval)
	isRange := func(t *Task) bool { return t.Range }
	whole := func(t *Task) bool { return !t.Range }
	cases := []struct {
		name   string
		target func(*Task) bool
		forge  func(*Task, Result) Result
		reason string
	}{
		{"negative fitness", whole, forgeFitness(-1000), "fitness -1000 for candidate 0"},
		{"NaN fitness", whole, forgeFitness(0.5, math.NaN()), "fitness NaN for candidate 1"},
		{"infinite fitness", whole, forgeFitness(math.Inf(1)), "fitness +Inf"},
		{"slightly negative fitness", whole, forgeFitness(0.1, -0.002), "fitness -0.002"},
		{"too few values", whole, func(t *Task, r Result) Result {
			r.FitnessBits = r.FitnessBits[:len(r.FitnessBits)-1]
			return r
		}, "fitness values"},
		{"too many values", whole, func(t *Task, r Result) Result {
			r.FitnessBits = append(r.FitnessBits, r.FitnessBits[0])
			return r
		}, "fitness values"},
		{"error result", whole, func(t *Task, r Result) Result {
			return Result{Task: r.Task, Worker: r.Worker, Err: "out of memory"}
		}, "the worker reported an error: out of memory"},
		{"impossible counters", whole, func(t *Task, r Result) Result {
			r.Tokens = -5
			return r
		}, "impossible counters"},
		{"range: NaN sum", isRange, forgePartial(func(s [][]float64, c int) ([][]float64, int) {
			s[0][0] = math.NaN()
			return s, c
		}), "fitness sum NaN"},
		{"range: negative sum", isRange, forgePartial(func(s [][]float64, c int) ([][]float64, int) {
			s[len(s)-1][0] = -3
			return s, c
		}), "fitness sum -3"},
		{"range: wrong count", isRange, forgePartial(func(s [][]float64, c int) ([][]float64, int) {
			return s, 2 * c
		}), "predicting positions"},
		{"range: missing sub-batch", isRange, forgePartial(func(s [][]float64, c int) ([][]float64, int) {
			return s[1:], c
		}), "rows of partial sums"},
		{"range: whole values instead", isRange, func(t *Task, r Result) Result {
			r.PartialBits, r.Count = nil, 0
			r.SetFitness(make([]float64, len(t.Cands)))
			return r
		}, "rows of partial sums"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var log logBuffer
			h := newHarness(t, Options{Log: log.logger(), Poll: 50 * time.Millisecond})
			h.worker("honest", &preparer{id: testIdentity}, WorkerOptions{})
			r := joinRogue(t, h, "rogue")
			h.waitWorkers(2)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			refused := make(chan string, 1)
			go func() {
				defer close(refused)
				forged := false
				for ctx.Err() == nil {
					rep, err := r.ask(5 * time.Second)
					if err != nil {
						refused <- "error: " + err.Error()
						return
					}
					if rep.Refused != "" || forged {
						refused <- rep.Refused // "" when the forged result went unnoticed
						return
					}
					if rep.Task == nil {
						continue
					}
					res := score(ctx, fakeEval, rep.Task)
					res.Worker = r.id
					if c.target(rep.Task) {
						res, forged = c.forge(rep.Task, res), true
					}
					if err := r.send(kindResult, res); err != nil {
						refused <- "error: " + err.Error()
						return
					}
				}
			}()
			mode, err := drop.New(10, 0.3, drop.Options{})
			if err != nil {
				t.Fatal(err)
			}
			sctx, scancel := context.WithTimeout(ctx, time.Minute)
			defer scancel()
			got, err := search.Run(sctx, searchConfig(), mode, h.co)
			if err != nil {
				t.Fatal(err)
			}
			sameRun(t, got, want)
			select {
			case reason := <-refused:
				if !strings.Contains(reason, c.reason) || !strings.HasPrefix(reason, "dropped from search") {
					t.Fatalf("the rogue's next request was answered %q, want a refusal naming %q", reason, c.reason)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the rogue was not refused")
			}
			if st := h.co.Stats(); st.Dropped != 1 || st.Resent == 0 {
				t.Fatalf("stats %+v: want 1 worker dropped and its task re-sent", st)
			}
			logged := log.String()
			if !strings.Contains(logged, "worker dropped") || !strings.Contains(logged, "worker=rogue") || !strings.Contains(logged, c.reason) {
				t.Fatalf("log does not show the rogue dropped for %q:\n%s", c.reason, logged)
			}
			for _, w := range h.co.Workers() {
				if w.ID == "honest" && !w.Connected {
					t.Fatal("the honest worker was dropped too")
				}
			}
		})
	}
}

// gateEval blocks its first call until open is closed (after signalling held): the worker
// holds its first task while a test sends messages about it.
type gateEval struct {
	once sync.Once
	held chan struct{}
	open chan struct{}
}

func newGate() *gateEval { return &gateEval{held: make(chan struct{}), open: make(chan struct{})} }

func (g *gateEval) wait() {
	g.once.Do(func() {
		close(g.held)
		<-g.open
	})
}

func (g *gateEval) Evaluate(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
	g.wait()
	return fakeEval.Evaluate(ctx, parent, cands, b)
}

func (g *gateEval) EvaluateRange(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch, lo, hi int) ([][]float64, int, error) {
	g.wait()
	return rangeEval{}.EvaluateRange(ctx, parent, cands, b, lo, hi)
}

// Messages about a task the sender does not hold change nothing: while the honest worker holds
// task 1, a rogue sends a result for it — an error or good-looking values, as itself (it is
// dropped), or in the honest worker's name with a wrong key, no signature or a replayed
// sequence number (the message is dropped, the honest worker keeps serving). The search ends
// with exactly the values of an honest run, and the log says why each message was refused.
func TestSpoofedMessagesIgnored(t *testing.T) {
	want := runSearch(t, fakeEval)
	wrongKey := make([]byte, 32)
	rand.Read(wrongKey)
	goodValues := func() Result {
		var r Result
		r.SetPartial([][]float64{{0, 0, 0}, {0, 0, 0}}, 14)
		return r
	}
	cases := []struct {
		name    string
		spoof   func(r *rogue) error
		dropped bool // the rogue is dropped (else the message is only refused)
		reason  string
	}{
		{"error result as itself", func(r *rogue) error {
			return r.send(kindResult, Result{Task: 1, Worker: r.id, Err: "worker ghost: spoofed"})
		}, true, "result for task 1, which was not handed to it"},
		{"good result as itself", func(r *rogue) error {
			res := goodValues()
			res.Task, res.Worker = 1, r.id
			return r.send(kindResult, res)
		}, true, "result for task 1, which was not handed to it"},
		{"result for a task never handed out", func(r *rogue) error {
			return r.send(kindResult, Result{Task: 999999, Worker: r.id, Err: "boom"})
		}, true, "never handed out"},
		{"error result with a wrong key", func(r *rogue) error {
			return r.publish(kindResult, Result{Task: 1, Worker: "honest", Err: "worker ghost: spoofed"}, wrongKey, 1<<40)
		}, false, "fails authentication"},
		{"good result with a wrong key", func(r *rogue) error {
			res := goodValues()
			res.Task, res.Worker = 1, "honest"
			return r.publish(kindResult, res, wrongKey, 1<<40)
		}, false, "fails authentication"},
		{"unsigned error result", func(r *rogue) error {
			return r.publish(kindResult, Result{Task: 1, Worker: "honest", Err: "worker ghost: spoofed"}, nil, 0)
		}, false, "fails authentication"},
		{"heartbeat with a wrong key", func(r *rogue) error {
			return r.publish(kindHB, Heartbeat{Worker: "honest", Task: 0}, wrongKey, 1<<40)
		}, false, "fails authentication"},
		{"replayed result", func(r *rogue) error {
			if err := r.send(kindHB, Heartbeat{Worker: r.id}); err != nil {
				return err
			}
			return r.publish(kindResult, Result{Task: 1, Worker: r.id, Err: "replayed"}, r.key, r.seq)
		}, false, "replayed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var log logBuffer
			h := newHarness(t, Options{Log: log.logger()})
			gate := newGate()
			h.worker("honest", &preparer{id: testIdentity, eval: gate}, WorkerOptions{})
			h.waitWorkers(1)
			r := joinRogue(t, h, "rogue")
			type outcome struct {
				res *search.Result
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				mode, err := drop.New(10, 0.3, drop.Options{})
				if err != nil {
					done <- outcome{nil, err}
					return
				}
				res, err := search.Run(context.Background(), searchConfig(), mode, h.co)
				done <- outcome{res, err}
			}()
			select {
			case <-gate.held:
			case <-time.After(10 * time.Second):
				t.Fatal("the honest worker took no task")
			}
			if err := c.spoof(r); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, func() bool {
				st := h.co.Stats()
				return (c.dropped && st.Dropped == 1) || (!c.dropped && st.Rejected > 0)
			}, func() string { return fmt.Sprintf("stats %+v after the spoofed message", h.co.Stats()) })
			close(gate.open)
			var o outcome
			select {
			case o = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the search did not finish")
			}
			if o.err != nil {
				t.Fatalf("the search failed: %v", o.err)
			}
			sameRun(t, o.res, want)
			st := h.co.Stats()
			if c.dropped != (st.Dropped == 1) || st.Dropped > 1 {
				t.Fatalf("stats %+v: want the rogue dropped %v and no one else", st, c.dropped)
			}
			for _, w := range h.co.Workers() {
				if w.ID == "honest" && !w.Connected {
					t.Fatal("the honest worker was dropped")
				}
			}
			if logged := log.String(); !strings.Contains(logged, c.reason) {
				t.Fatalf("log does not say %q:\n%s", c.reason, logged)
			}
		})
	}
}

// brokenEval fails every task, as a worker that cannot build candidates does.
type brokenEval struct{}

func (brokenEval) Evaluate(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
	return nil, errors.New("cannot build the candidate: level 9 of layer 3 is missing")
}

func (e brokenEval) EvaluateRange(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch, lo, hi int) ([][]float64, int, error) {
	_, err := e.Evaluate(ctx, parent, cands, b)
	return nil, 0, err
}

// Workers that cannot score — every value NaN, or an error on every task — are dropped, and a
// search left with none ends with the reason after WorkerTimeout unless a worker joins in
// time (it does not wait for workers for ever); a task that fails on two workers ends the
// search with both reasons; a failing worker next to a healthy one costs nothing but its
// tasks' re-sending.
func TestFailingWorkers(t *testing.T) {
	nan := search.EvaluatorFunc(func(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
		out := make([]float64, len(cands))
		for i := range out {
			out[i] = math.NaN()
		}
		return out, nil
	})
	broken := brokenEval{}
	batch := search.Batch{Chunks: []int{1}, Tokens: 8}
	cands := []search.Levels{{0, 1}, {1, 0}, {1, 1}}

	t.Run("only a NaN worker", func(t *testing.T) {
		h := newHarness(t, Options{Heartbeat: 20 * time.Millisecond, WorkerTimeout: 300 * time.Millisecond})
		h.worker("nan", &preparer{id: testIdentity, eval: nan}, WorkerOptions{})
		h.waitWorkers(1)
		_, err := h.co.Evaluate(context.Background(), nil, cands, batch)
		if err == nil || !strings.Contains(err.Error(), "no worker left") || !strings.Contains(err.Error(), "worker nan was dropped") || !strings.Contains(err.Error(), "fitness NaN") {
			t.Fatalf("err %v, want no worker left, naming the NaN", err)
		}
		waitFor(t, 10*time.Second, func() bool { return errors.Is(h.err("nan"), ErrRefused) },
			func() string { return fmt.Sprintf("worker returned %v, want a refusal", h.err("nan")) })
		if !strings.Contains(h.err("nan").Error(), "fitness NaN") {
			t.Fatalf("worker refused with %v, want the reason", h.err("nan"))
		}
		// A worker under the dropped id is refused at join.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = RunWorker(ctx, h.conn(), &preparer{id: testIdentity}, WorkerOptions{ID: "nan"})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "was dropped from this search") {
			t.Fatalf("rejoin under a dropped id: %v", err)
		}
	})
	t.Run("a worker joining after the last was dropped", func(t *testing.T) {
		h := newHarness(t, Options{Heartbeat: 20 * time.Millisecond, WorkerTimeout: 5 * time.Second})
		h.worker("nan", &preparer{id: testIdentity, eval: nan}, WorkerOptions{})
		h.waitWorkers(1)
		type outcome struct {
			f   []float64
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			f, err := h.co.Evaluate(context.Background(), nil, cands, batch)
			done <- outcome{f, err}
		}()
		waitFor(t, 10*time.Second, func() bool { return h.co.Stats().Dropped == 1 },
			func() string { return fmt.Sprintf("stats %+v: want the NaN worker dropped", h.co.Stats()) })
		h.worker("healthy", &preparer{id: testIdentity}, WorkerOptions{})
		o := <-done
		if o.err != nil {
			t.Fatalf("the search did not wait for the healthy worker: %v", o.err)
		}
		for i, c := range cands {
			if o.f[i] != fakeFitness(c, batch) {
				t.Fatalf("candidate %d: %v, want %v", i, o.f[i], fakeFitness(c, batch))
			}
		}
	})
	t.Run("a rogue alone cannot end the search", func(t *testing.T) {
		h := newHarness(t, Options{Heartbeat: 20 * time.Millisecond, WorkerTimeout: 300 * time.Millisecond})
		r := joinRogue(t, h, "rogue")
		done := make(chan error, 1)
		go func() {
			_, err := h.co.Evaluate(context.Background(), nil, cands, batch)
			done <- err
		}()
		if err := r.send(kindResult, Result{Task: 999999, Worker: r.id, Err: "worker ghost: spoofed"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, func() bool { return h.co.Stats().Dropped == 1 },
			func() string { return fmt.Sprintf("stats %+v: want the rogue dropped", h.co.Stats()) })
		select {
		case err := <-done:
			t.Fatalf("the call ended with %v after the rogue was dropped", err)
		case <-time.After(time.Second): // three worker timeouts
		}
		h.worker("healthy", &preparer{id: testIdentity}, WorkerOptions{})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a task failing on two workers", func(t *testing.T) {
		h := newHarness(t, Options{})
		h.worker("b1", &preparer{id: testIdentity, eval: broken}, WorkerOptions{})
		h.worker("b2", &preparer{id: testIdentity, eval: broken}, WorkerOptions{})
		h.worker("b3", &preparer{id: testIdentity, eval: broken}, WorkerOptions{})
		h.waitWorkers(3)
		_, err := h.co.Evaluate(context.Background(), nil, cands[:1], batch)
		if err == nil || !strings.Contains(err.Error(), "failed on two workers") || strings.Count(err.Error(), "level 9 of layer 3 is missing") != 2 {
			t.Fatalf("err %v, want the task failed on two workers with both reasons", err)
		}
	})
	t.Run("a broken worker next to a healthy one", func(t *testing.T) {
		want := runSearch(t, fakeEval)
		var log logBuffer
		h := newHarness(t, Options{Log: log.logger()})
		h.worker("broken", &preparer{id: testIdentity, eval: broken}, WorkerOptions{})
		h.waitWorkers(1)
		h.worker("healthy", &preparer{id: testIdentity}, WorkerOptions{})
		h.waitWorkers(2)
		sameRun(t, runSearch(t, h.co), want)
		if st := h.co.Stats(); st.Dropped != 1 {
			t.Fatalf("stats %+v: want the broken worker dropped", st)
		}
		if !strings.Contains(log.String(), "level 9 of layer 3 is missing") {
			t.Fatalf("log lacks the reason:\n%s", log.String())
		}
	})
}
