package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
)

// chunkFitness is a deterministic, non-additive, non-negative function of a profile and a
// chunk, standing in for a candidate model's summed KL on one calibration sequence of 7
// predicting positions.
func chunkFitness(p search.Levels, c int) float64 {
	s := 0.0
	for i, l := range p {
		s += float64(l) * math.Sin(float64(i+1)*1.7)
	}
	return (s+0.15)*(s+0.15) + 1e-3*(1.1+math.Cos(float64(c)*float64(p[c%len(p)]+1)))
}

// fakeSubBatch is the fake evaluator's sequences per sub-batch (the test job's SubBatch).
const fakeSubBatch = 2

// rangeEval is the fake evaluator: sums of chunkFitness per sub-batch, merged with
// fitness.Combine like the real one.
type rangeEval struct{}

func (rangeEval) EvaluateRange(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch, lo, hi int) ([][]float64, int, error) {
	var sums [][]float64
	count := 0
	for k := lo; k < hi; k++ {
		row := make([]float64, len(cands))
		chunks := b.Chunks[k*fakeSubBatch : min((k+1)*fakeSubBatch, len(b.Chunks))]
		for i, c := range cands {
			for _, ch := range chunks {
				row[i] += chunkFitness(c, ch)
			}
		}
		sums = append(sums, row)
		count += 7 * len(chunks)
	}
	return sums, count, nil
}

func (e rangeEval) Evaluate(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
	sums, count, err := e.EvaluateRange(ctx, parent, cands, b, 0, (len(b.Chunks)+fakeSubBatch-1)/fakeSubBatch)
	if err != nil {
		return nil, err
	}
	return fitness.Combine([][][]float64{sums}, []int{count}, len(cands)), nil
}

var fakeEval search.Evaluator = rangeEval{}

func fakeFitness(p search.Levels, b search.Batch) float64 {
	f, _ := fakeEval.Evaluate(context.Background(), nil, []search.Levels{p}, b)
	return f[0]
}

var testIdentity = Identity{ModelFingerprint: "model-fp", CalibSHA256: "calib-sha", Kernels: "test-kernels"}

func testJob() Job {
	return Job{Mode: "drop", Model: "test-model", ModelFingerprint: "model-fp", CalibSHA256: "calib-sha", Kernels: "test-kernels", SeqLen: 8, PoolChunks: 64, SubBatch: fakeSubBatch}
}

// preparer serves the fake fitness; eval, when set, replaces it.
type preparer struct {
	id   Identity
	eval search.Evaluator
}

func (p *preparer) Identity() Identity { return p.id }
func (p *preparer) Prepare(job *Job) (search.Evaluator, error) {
	if p.eval != nil {
		return p.eval, nil
	}
	return fakeEval, nil
}

// harness is an in-process NATS server with a coordinator and workers on their own
// connections.
type harness struct {
	t    *testing.T
	srv  *Server
	co   *Coordinator
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs map[string]error
}

func newHarness(t *testing.T, opt Options) *harness {
	t.Helper()
	srv, err := StartServer(ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, errs: map[string]error{}}
	h.ctx, h.stop = context.WithCancel(context.Background())
	nc := h.conn()
	h.co, err = NewCoordinator(nc, testJob(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.stop()
		h.wg.Wait()
		h.co.Close()
		srv.Shutdown()
	})
	return h
}

func (h *harness) conn() *nats.Conn {
	nc, err := Connect(ConnectOptions{}, h.srv.InProcess())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(nc.Close)
	return nc
}

// worker starts a worker on its own connection, which it returns.
func (h *harness) worker(id string, p Preparer, o WorkerOptions) *nats.Conn {
	nc := h.conn()
	o.ID = id
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		err := RunWorker(h.ctx, nc, p, o)
		h.mu.Lock()
		h.errs[id] = err
		h.mu.Unlock()
	}()
	return nc
}

// err is what RunWorker returned for worker id (nil while it runs).
func (h *harness) err(id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.errs[id]
}

func (h *harness) waitWorkers(n int) {
	h.t.Helper()
	waitFor(h.t, 10*time.Second, func() bool { return h.co.Connected() >= n },
		func() string { return fmt.Sprintf("%d workers connected, want %d", h.co.Connected(), n) })
}

// pollEvery is how often waitFor checks its condition.
const pollEvery = 2 * time.Millisecond

// holdsWithin checks cond every pollEvery until it holds or timeout has passed, and reports whether
// it held: the tests wait for conditions this way rather than sleeping a fixed time, which is
// both faster and robust on a loaded machine.
func holdsWithin(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(pollEvery)
	}
	return true
}

// waitFor fails t with what() when cond does not hold within timeout (see holdsWithin).
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, what func() string) {
	t.Helper()
	if !holdsWithin(timeout, cond) {
		t.Fatalf("after %v: %s", timeout, what())
	}
}

func searchConfig() search.Config {
	return search.Config{Offspring: 12, Stages: []search.Stage{{Survivors: 3, Tokens: 16}, {Survivors: 1, Tokens: 64}},
		Generations: 15, InitTokens: 64, Seed: 7, SeqLen: 8, PoolChunks: 64}
}

func runSearch(t *testing.T, ev search.Evaluator) *search.Result {
	t.Helper()
	mode, err := drop.New(10, 0.3, drop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := search.Run(context.Background(), searchConfig(), mode, ev)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func sameRun(t *testing.T, got, want *search.Result) {
	t.Helper()
	if !got.Profile.Equal(want.Profile) || math.Float64bits(got.Fitness) != math.Float64bits(want.Fitness) {
		t.Fatalf("profile %v fitness %v, single-process run %v fitness %v", got.Profile, got.Fitness, want.Profile, want.Fitness)
	}
	if len(got.History) != len(want.History) {
		t.Fatalf("%d history records, want %d", len(got.History), len(want.History))
	}
	for i := range got.History {
		g, w := got.History[i], want.History[i]
		if math.Float64bits(g.Best) != math.Float64bits(w.Best) || g.Replaced != w.Replaced {
			t.Fatalf("generation %d: best %v replaced %v, want %v %v", i, g.Best, g.Replaced, w.Best, w.Replaced)
		}
	}
}

// The same seed gives the same run with 1, 3 or 9 workers as with the evaluator called
// directly; with several, the last stage (4 candidates, 4 sub-batches) is split into ranges
// of sub-batches (and, with 9, into groups of candidates too).
func TestSameResultAnyWorkerCount(t *testing.T) {
	want := runSearch(t, fakeEval)
	for _, n := range []int{1, 3, 9} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			h := newHarness(t, Options{})
			for i := range n {
				h.worker(fmt.Sprintf("w%d", i), &preparer{id: testIdentity}, WorkerOptions{})
			}
			h.waitWorkers(n)
			got := runSearch(t, h.co)
			sameRun(t, got, want)
			st := h.co.Stats()
			if st.Evaluations != got.Evaluations || st.Resent != 0 {
				t.Fatalf("stats %+v, want %d evaluations and nothing re-sent", st, got.Evaluations)
			}
			if (st.RangeTasks > 0) != (n > 1) {
				t.Fatalf("%d workers: %d range tasks", n, st.RangeTasks)
			}
			sum := 0.0
			for _, w := range h.co.Workers() {
				if !w.Connected || w.Evaluations == 0 || w.Rate <= 0 {
					t.Errorf("worker %+v: want connected with evaluations", w)
				}
				sum += w.Evaluations
			}
			if math.Abs(sum-float64(got.Evaluations)) > 1e-9*sum {
				t.Fatalf("workers scored %v candidates, the search %d", sum, got.Evaluations)
			}
		})
	}
}

// blockingEval blocks every task after the first `free` until ctx ends.
type blockingEval struct {
	free    int64
	n       atomic.Int64
	started chan struct{}
}

func (b *blockingEval) Evaluate(ctx context.Context, parent search.Levels, cands []search.Levels, bt search.Batch) ([]float64, error) {
	if b.n.Add(1) > b.free {
		select {
		case b.started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return fakeEval.Evaluate(ctx, parent, cands, bt)
}

func (b *blockingEval) EvaluateRange(ctx context.Context, parent search.Levels, cands []search.Levels, bt search.Batch, lo, hi int) ([][]float64, int, error) {
	if _, err := b.Evaluate(ctx, parent, cands, bt); err != nil {
		return nil, 0, err
	}
	return rangeEval{}.EvaluateRange(ctx, parent, cands, bt, lo, hi)
}

// A worker that dies mid-task (its connection closes while it holds a task) is detected by
// the heartbeat timeout; its task goes to another worker and the run is unchanged. The last
// stage is split into ranges of sub-batches.
func TestWorkerDiesMidTask(t *testing.T) {
	want := runSearch(t, fakeEval)
	for _, healthy := range []int{1, 8} {
		t.Run(fmt.Sprint(healthy), func(t *testing.T) {
			h := newHarness(t, Options{Heartbeat: 50 * time.Millisecond, WorkerTimeout: time.Second})
			be := &blockingEval{free: 3, started: make(chan struct{}, 1)}
			dying := h.worker("dying", &preparer{id: testIdentity, eval: be}, WorkerOptions{})
			h.waitWorkers(1)
			go func() {
				<-be.started
				dying.Close() // the process is gone: no heartbeats, no result
			}()
			for i := range healthy {
				h.worker(fmt.Sprintf("healthy%d", i), &preparer{id: testIdentity}, WorkerOptions{})
			}
			h.waitWorkers(1 + healthy)
			got := runSearch(t, h.co)
			sameRun(t, got, want)
			if st := h.co.Stats(); st.Resent == 0 || st.RangeTasks == 0 {
				t.Fatalf("stats %+v: want a re-sent task and range tasks", st)
			}
			var ws []search.WorkerStatus
			waitFor(t, 10*time.Second, func() bool {
				ws = h.co.Workers()
				return len(ws) == 1+healthy && !ws[0].Connected && ws[1].Connected
			}, func() string { return fmt.Sprintf("workers %+v: want dying lost and the others connected", ws) })
		})
	}
}

// A worker whose computation hangs while its heartbeats go on is caught by the task timeout.
func TestHungTaskResent(t *testing.T) {
	want := runSearch(t, fakeEval)
	h := newHarness(t, Options{Heartbeat: 20 * time.Millisecond, TaskTimeout: 300 * time.Millisecond})
	be := &blockingEval{free: 2, started: make(chan struct{}, 1)}
	h.worker("hung", &preparer{id: testIdentity, eval: be}, WorkerOptions{})
	h.waitWorkers(1)
	h.worker("healthy", &preparer{id: testIdentity}, WorkerOptions{})
	got := runSearch(t, h.co)
	sameRun(t, got, want)
	if st := h.co.Stats(); st.Resent == 0 {
		t.Fatalf("stats %+v: want a re-sent task", st)
	}
}

func TestWrongWorkerRefused(t *testing.T) {
	cases := []struct {
		name string
		id   Identity
		want string
	}{
		{"model", Identity{ModelFingerprint: "other", CalibSHA256: "calib-sha", Kernels: "test-kernels"}, "model fingerprint"},
		{"calib", Identity{ModelFingerprint: "model-fp", CalibSHA256: "other", Kernels: "test-kernels"}, "calibration text"},
		{"kernels", Identity{ModelFingerprint: "model-fp", CalibSHA256: "calib-sha", Kernels: "generic/arm64"}, "kernels"},
	}
	h := newHarness(t, Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := RunWorker(ctx, h.conn(), &preparer{id: c.id}, WorkerOptions{ID: c.name})
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want refusal naming %q", err, c.want)
			}
		})
	}
	if n := h.co.Connected(); n != 0 {
		t.Fatalf("%d workers connected after refusals", n)
	}
}

func TestDatabaseRequired(t *testing.T) {
	job := testJob()
	job.DBFingerprint = "db-fp"
	if r := job.Mismatch(testIdentity); !strings.Contains(r, "--db") {
		t.Fatalf("mismatch %q, want it to ask for --db", r)
	}
	id := testIdentity
	id.DBFingerprint = "other-db"
	if r := job.Mismatch(id); !strings.Contains(r, "level database fingerprint") {
		t.Fatalf("mismatch %q", r)
	}
	id.DBFingerprint = "db-fp"
	if r := job.Mismatch(id); r != "" {
		t.Fatalf("mismatch %q for a matching worker", r)
	}
}

func TestWorkerErrorFailsEvaluate(t *testing.T) {
	h := newHarness(t, Options{Heartbeat: 20 * time.Millisecond, WorkerTimeout: 300 * time.Millisecond})
	bad := search.EvaluatorFunc(func(ctx context.Context, parent search.Levels, cands []search.Levels, b search.Batch) ([]float64, error) {
		return nil, fmt.Errorf("chunk 99 outside the pool")
	})
	h.worker("bad", &preparer{id: testIdentity, eval: bad}, WorkerOptions{})
	h.waitWorkers(1)
	_, err := h.co.Evaluate(context.Background(), nil, []search.Levels{{0, 1}}, search.Batch{Chunks: []int{1}, Tokens: 8})
	if err == nil || !strings.Contains(err.Error(), "worker bad was dropped") || !strings.Contains(err.Error(), "chunk 99 outside the pool") {
		t.Fatalf("err %v, want the worker's error", err)
	}
	// The search does not wait for ever for another worker; the dropped one is told why and exits.
	waitFor(t, 10*time.Second, func() bool {
		err := h.err("bad")
		return errors.Is(err, ErrRefused) && strings.Contains(err.Error(), "chunk 99")
	}, func() string { return fmt.Sprintf("worker error %v, want a refusal with the reason", h.err("bad")) })
	if _, err := h.co.Evaluate(context.Background(), nil, []search.Levels{{0, 1}}, search.Batch{Chunks: []int{1}, Tokens: 8}); err == nil || !strings.Contains(err.Error(), "no worker left") {
		t.Fatalf("next call: err %v, want no worker left", err)
	}
}

func TestEvaluateCancelledWithoutWorkers(t *testing.T) {
	h := newHarness(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := h.co.Evaluate(ctx, nil, []search.Levels{{0, 1}}, search.Batch{Chunks: []int{1}, Tokens: 8})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's", err)
	}
	// A worker that joins later gets nothing of the cancelled call, and new calls work.
	h.worker("late", &preparer{id: testIdentity}, WorkerOptions{})
	got, err := h.co.Evaluate(context.Background(), nil, []search.Levels{{0, 1}, {1, 0}}, search.Batch{Chunks: []int{1}, Tokens: 8})
	if err != nil || len(got) != 2 || got[0] != fakeFitness(search.Levels{0, 1}, search.Batch{Chunks: []int{1}, Tokens: 8}) {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestSecondCoordinatorRefused(t *testing.T) {
	h := newHarness(t, Options{})
	_, err := NewCoordinator(h.conn(), testJob(), Options{})
	if err == nil || !strings.Contains(err.Error(), "another Options.Subject") {
		t.Fatalf("err %v, want a clash on the subject", err)
	}
	other, err := NewCoordinator(h.conn(), testJob(), Options{Subject: "other"})
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
}

// A worker with Once returns when its search ends; a worker without waits for the next.
func TestWorkerOutlivesSearch(t *testing.T) {
	h := newHarness(t, Options{})
	done := make(chan error, 1)
	nc := h.conn()
	go func() {
		done <- RunWorker(h.ctx, nc, &preparer{id: testIdentity}, WorkerOptions{ID: "once", Once: true})
	}()
	h.waitWorkers(1)
	h.co.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("worker with Once still running after the search ended")
	}
}

// A worker without Once says, when its search has ended, that it waits for the next one and
// where.
func TestWorkerWaitsForTheNextSearch(t *testing.T) {
	h := newHarness(t, Options{})
	var logs logBuffer
	h.worker("next", &preparer{id: testIdentity}, WorkerOptions{Log: logs.logger()})
	h.waitWorkers(1)
	h.co.Close()
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(logs.String(), "waiting for the next search") },
		func() string { return "the worker's log:\n" + logs.String() })
	if l := logs.String(); !strings.Contains(l, "search ended") || !strings.Contains(l, "nats=") {
		t.Errorf("the worker's log does not say the search ended and which server it waits on:\n%s", l)
	}
	if err := h.err("next"); err != nil {
		t.Errorf("the worker stopped: %v", err)
	}
}

// TestWorkerServerGone: when the NATS server goes away (a search's embedded server stops with
// it) a worker with Once exits with ErrServerGone, whether it had joined the search or was still
// waiting for one; a worker without Once says so and waits for the next search.
func TestWorkerServerGone(t *testing.T) {
	defer func(d time.Duration) { ServerGone = d }(ServerGone)
	ServerGone = 300 * time.Millisecond
	start := func(t *testing.T) (*Server, func(o WorkerOptions) (<-chan error, *logBuffer, context.CancelFunc)) {
		srv, err := StartServer(ServerOptions{Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		url := srv.ClientURL()
		return srv, func(o WorkerOptions) (<-chan error, *logBuffer, context.CancelFunc) {
			nc, err := Connect(ConnectOptions{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			logs := &logBuffer{}
			o.Log = logs.logger()
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			done := make(chan error, 1)
			go func() { done <- RunWorker(ctx, nc, &preparer{id: testIdentity}, o) }()
			return done, logs, cancel
		}
	}
	wantGone := func(t *testing.T, done <-chan error, within time.Duration, what string) {
		t.Helper()
		select {
		case err := <-done:
			if !errors.Is(err, ErrServerGone) || !strings.Contains(err.Error(), what) || !strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("worker with Once: %v, want ErrServerGone saying %q and naming the server", err, what)
			}
		case <-time.After(within):
			t.Fatalf("worker with Once still running %v after its server went away", within)
		}
	}

	t.Run("before joining", func(t *testing.T) {
		srv, worker := start(t)
		done, logs, _ := worker(WorkerOptions{ID: "early", Once: true})
		waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "waiting for a search") },
			func() string { return "the worker's log:\n" + logs.String() })
		srv.Shutdown()
		wantGone(t, done, 10*time.Second, "before this worker joined a search")
	})

	t.Run("while serving", func(t *testing.T) {
		srv, worker := start(t)
		nc, err := Connect(ConnectOptions{URL: srv.ClientURL()})
		if err != nil {
			t.Fatal(err)
		}
		co, err := NewCoordinator(nc, testJob(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			nc.Close() // first: the coordinator's last flush would wait for the server
			co.Close()
		}()
		once, onceLogs, _ := worker(WorkerOptions{ID: "once", Once: true})
		stays, logs, stop := worker(WorkerOptions{ID: "stays"})
		// Joined on both sides: the coordinator counts a worker when it answers its join, the
		// worker when it has prepared for the job (it logs "joined").
		waitFor(t, 10*time.Second, func() bool {
			return co.Connected() == 2 && strings.Contains(onceLogs.String(), "joined") && strings.Contains(logs.String(), "joined")
		}, func() string {
			return fmt.Sprintf("%d workers joined; logs:\n%s\n%s", co.Connected(), onceLogs.String(), logs.String())
		})
		srv.Shutdown() // without the coordinator's goodbye
		wantGone(t, once, 30*time.Second, "before the search said it ended")
		waitFor(t, 30*time.Second, func() bool { return strings.Contains(logs.String(), "waiting for the next search") },
			func() string { return "the worker without Once:\n" + logs.String() })
		if !strings.Contains(logs.String(), "lost the search's NATS server") {
			t.Errorf("the worker without Once does not say it lost the server:\n%s", logs.String())
		}
		stop()
		if err := <-stays; err != nil {
			t.Errorf("the worker without Once, stopped: %v", err)
		}
	})
}

func TestResultBitsRoundTrip(t *testing.T) {
	in := []float64{0.1, math.NaN(), math.Inf(1), -0, 1e-300}
	var r Result
	r.SetFitness(in)
	out := r.Fitness()
	for i := range in {
		if math.Float64bits(in[i]) != math.Float64bits(out[i]) {
			t.Fatalf("value %d: %v became %v", i, in[i], out[i])
		}
	}
}

func TestParseListen(t *testing.T) {
	cases := []struct {
		in                       string
		host                     string
		port                     int
		user, pass, token, fails string
	}{
		{in: "127.0.0.1:4222", host: "127.0.0.1", port: 4222},
		{in: ":0", host: "0.0.0.0", port: -1},
		{in: "nats://u:p@10.0.0.1:5000", host: "10.0.0.1", port: 5000, user: "u", pass: "p"},
		{in: "nats://s3cret@localhost:4222", host: "localhost", port: 4222, token: "s3cret"},
		{in: "tls://h:1", fails: "scheme"},
		{in: "localhost", fails: "HOST:PORT"},
		{in: "h:99999", fails: "bad port"},
	}
	for _, c := range cases {
		h, p, u, pw, tok, err := parseListen(c.in)
		if c.fails != "" {
			if err == nil || !strings.Contains(err.Error(), c.fails) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.fails)
			}
			continue
		}
		if err != nil || h != c.host || p != c.port || u != c.user || pw != c.pass || tok != c.token {
			t.Errorf("%q: %q %d %q %q %q %v", c.in, h, p, u, pw, tok, err)
		}
	}
}

// TestJoinURL: the address printed for workers is one they can use.
func TestJoinURL(t *testing.T) {
	host := func() (string, error) { return "node7.example", nil }
	noHost := func() (string, error) { return "", errors.New("no host name") }
	for _, c := range []struct {
		in, want string
		hostname func() (string, error)
	}{
		{"nats://0.0.0.0:4222", "nats://node7.example:4222", host},
		{"tls://[::]:4222", "tls://node7.example:4222", host},
		{"nats://0.0.0.0:4222", "nats://127.0.0.1:4222", noHost},
		{"nats://localhost:5000", "nats://127.0.0.1:5000", host},
		{"nats://127.0.0.1:5000", "nats://127.0.0.1:5000", host},
		{"nats://[::1]:5000", "nats://[::1]:5000", host},
		{"nats://10.1.2.3:5000", "nats://10.1.2.3:5000", host},
		{"nats://gpu-box:5000", "nats://gpu-box:5000", host},
	} {
		if got := joinURL(c.in, c.hostname); got != c.want {
			t.Errorf("joinURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Over TCP with a password: a worker without it cannot connect, one with it serves.
func TestListenWithPassword(t *testing.T) {
	srv, err := StartServer(ServerOptions{Listen: "nats://evo:pw@127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	u := srv.ClientURL()
	if _, err := Connect(ConnectOptions{URL: u}); err == nil {
		t.Fatal("connected without credentials")
	}
	authed := strings.Replace(u, "nats://", "nats://evo:pw@", 1)
	nc, err := Connect(ConnectOptions{URL: authed})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	co, err := NewCoordinator(nc, testJob(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	wc, err := Connect(ConnectOptions{URL: authed})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go RunWorker(ctx, wc, &preparer{id: testIdentity}, WorkerOptions{ID: "tcp"})
	got, err := co.Evaluate(context.Background(), nil, []search.Levels{{1, 0}}, search.Batch{Chunks: []int{3}, Tokens: 8})
	if err != nil || got[0] != fakeFitness(search.Levels{1, 0}, search.Batch{Chunks: []int{3}, Tokens: 8}) {
		t.Fatalf("got %v, %v", got, err)
	}
}

// BenchmarkRoundTrip measures the coordinator's overhead per task: one Evaluate call of one
// candidate scored by a worker that does no work, through an in-process connection or TCP on
// loopback, with profiles of 84 units (llama-pd-11m's linear layers) and 1 or 16 candidates
// per task.
func BenchmarkRoundTrip(b *testing.B) {
	nothing := search.EvaluatorFunc(func(ctx context.Context, parent search.Levels, cands []search.Levels, bt search.Batch) ([]float64, error) {
		return make([]float64, len(cands)), nil
	})
	for _, transport := range []string{"inprocess", "tcp"} {
		for _, nc := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/cands=%d", transport, nc), func(b *testing.B) {
				listen := ""
				if transport == "tcp" {
					listen = "127.0.0.1:0"
				}
				srv, err := StartServer(ServerOptions{Listen: listen})
				if err != nil {
					b.Fatal(err)
				}
				defer srv.Shutdown()
				conn := func() *nats.Conn {
					var c *nats.Conn
					if transport == "tcp" {
						c, err = Connect(ConnectOptions{URL: srv.ClientURL()})
					} else {
						c, err = Connect(ConnectOptions{}, srv.InProcess())
					}
					if err != nil {
						b.Fatal(err)
					}
					return c
				}
				cc, wc := conn(), conn()
				defer cc.Close()
				defer wc.Close()
				co, err := NewCoordinator(cc, testJob(), Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer co.Close()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go RunWorker(ctx, wc, &preparer{id: testIdentity, eval: nothing}, WorkerOptions{ID: "w"})
				waitFor(b, 10*time.Second, func() bool { return co.Connected() > 0 },
					func() string { return "no worker connected" })
				parent := make(search.Levels, 84)
				cands := make([]search.Levels, nc)
				for i := range cands {
					cands[i] = parent.Clone()
					cands[i][i%84] = 4
				}
				batch := search.Batch{Stage: 1, Generation: 1, Chunks: make([]int, 32), Tokens: 8192}
				for i := range batch.Chunks {
					batch.Chunks[i] = 7 * i
				}
				b.ResetTimer()
				for b.Loop() {
					if _, err := co.Evaluate(context.Background(), parent, cands, batch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestMessageSizes logs the size of the messages of a typical task (llama-pd-11m sparse
// search, λ = 16 on 2 chunks, 84 units), for the scaling notes.
func TestMessageSizes(t *testing.T) {
	parent := make(search.Levels, 84)
	cands := make([]search.Levels, 16)
	for i := range cands {
		cands[i] = parent.Clone()
		cands[i][i] = -3
		cands[i][83-i] = 3
	}
	task, _ := json.Marshal(WorkReply{Task: &Task{ID: 12345, Parent: parent, Cands: cands, Batch: search.Batch{Stage: 1, Generation: 100, Chunks: []int{17, 403}, Tokens: 512}}})
	var r Result
	r.Task, r.Worker, r.Tokens, r.Seconds = 12345, "gpu-node-17-12345", 8192, 1.25
	r.SetFitness(make([]float64, 16))
	res, _ := json.Marshal(r)
	hb, _ := json.Marshal(Heartbeat{Worker: "gpu-node-17-12345", Task: 12345})
	t.Logf("task of 16 candidates × 84 units: %d bytes; result: %d bytes; heartbeat: %d bytes", len(task), len(res), len(hb))
	if len(task) > 8<<10 || len(res) > 1<<10 {
		t.Fatalf("messages larger than expected: task %d, result %d bytes", len(task), len(res))
	}
}
