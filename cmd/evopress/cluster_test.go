package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evopress/evopress/profile"
)

// TestMain lets the test binary stand in for the evopress binary: with EVOPRESS_TEST_CLI=1 it
// runs its arguments as an evopress command line (the worker processes of the cluster test).
func TestMain(m *testing.M) {
	if os.Getenv("EVOPRESS_TEST_CLI") == "1" {
		os.Exit(runMain(os.Args[1:]))
	}
	code := m.Run()
	if smallDir != "" {
		os.RemoveAll(smallDir)
	}
	os.Exit(code)
}

// clusterSearchArgs is a short drop search on the embedded llama-pd-11m whose tasks take long
// enough (~0.1–0.5 s) to kill a worker in the middle of one.
func clusterSearchArgs(out string, extra ...string) []string {
	args := []string{"search", "drop", "--target", "0.25", "--calib-tokens", "16384", "--offspring", "8",
		"--stages", "2:512,1:2048", "--init-tokens", "512", "--generations", "4", "--seed", "3", "--out", out}
	return append(args, extra...)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sameProfileFiles reads the profiles at want and got, fails unless their levels and fitness
// are equal (what names got in the message), and returns got's.
func sameProfileFiles(t *testing.T, want, got, what string) *profile.Profile {
	t.Helper()
	a, err := profile.Read(want, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := profile.Read(got, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Levels, b.Levels) || *a.Fitness != *b.Fitness {
		t.Fatalf("%s profile %v (fitness %v) differs from %v (fitness %v)", what, b.Levels, *b.Fitness, a.Levels, *a.Fitness)
	}
	return b
}

// lineWatcher collects a process's stderr and signals when a line contains a pattern.
type lineWatcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	match func(string) bool
	hit   chan struct{}
	once  sync.Once
}

func (w *lineWatcher) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		w.mu.Lock()
		w.buf.WriteString(line + "\n")
		w.mu.Unlock()
		if w.match != nil && w.match(line) {
			w.once.Do(func() { close(w.hit) })
		}
	}
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startWorker runs `evopress worker` as a separate process (this test binary).
func startWorker(t *testing.T, url, id string, match func(string) bool) (*exec.Cmd, *lineWatcher) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "worker", "--nats", url, "--id", id, "--verbose")
	cmd.Env = append(os.Environ(), "EVOPRESS_TEST_CLI=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &lineWatcher{match: match, hit: make(chan struct{})}
	go w.consume(stderr)
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, w
}

// TestClusterWorkerKilledMidSearch is the loopback integration test: a search with the
// embedded NATS server listening on 127.0.0.1, two worker processes, one killed (SIGKILL) in
// the middle of a task; the search must end with exactly the profile and fitness of the
// single-process run, having re-sent the lost task.
func TestClusterWorkerKilledMidSearch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	dir := t.TempDir()
	single := filepath.Join(dir, "single.json")
	if out, err := run(t, clusterSearchArgs(single)...); err != nil {
		t.Fatalf("single-process search: %v\n%s", err, out)
	}

	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	dist := filepath.Join(dir, "dist.json")
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := run(t, clusterSearchArgs(dist, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", port), "--worker-timeout", "2s")...)
		done <- result{out, err}
	}()
	// The victim is killed as it starts its fourth task: past initialisation, mid-search.
	started := 0
	victim, vw := startWorker(t, url, "victim", func(line string) bool {
		if strings.Contains(line, "task started") {
			started++
		}
		return started == 4
	})
	_, sw := startWorker(t, url, "survivor", nil)
	select {
	case <-vw.hit:
		if err := victim.Process.Kill(); err != nil {
			t.Fatal(err)
		}
	case r := <-done:
		t.Fatalf("search ended before the victim took 4 tasks: %v\n%s\nvictim:\n%s", r.err, r.out, vw)
	case <-time.After(3 * time.Minute):
		t.Fatalf("victim took no 4th task in 3 minutes:\n%s", vw)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("distributed search did not finish\nsurvivor:\n%s", sw)
	}
	if r.err != nil {
		t.Fatalf("distributed search: %v\n%s", r.err, r.out)
	}
	if !strings.Contains(r.out, "worker lost") || !strings.Contains(r.out, "re-sending task") {
		t.Errorf("search log shows no lost worker and re-sent task:\n%s", r.out)
	}
	if !strings.Contains(r.out, "victim lost") {
		t.Errorf("progress lines do not show the lost worker:\n%s", r.out)
	}
	b := sameProfileFiles(t, single, dist, "distributed")
	if b.Search.ResentTasks < 1 {
		t.Errorf("profile records %v re-sent tasks, want ≥ 1", b.Search.ResentTasks)
	}
}

// A worker holding another model is refused and exits with the reason.
func TestClusterWrongModelRefused(t *testing.T) {
	small := smallModel(t)
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		root := newRootCmd()
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs(clusterSearchArgs(filepath.Join(t.TempDir(), "p.json"), "--nats-listen", fmt.Sprintf("127.0.0.1:%d", port)))
		root.ExecuteContext(ctx)
	}()
	defer func() { cancel(); <-done }()
	cmd := exec.Command(os.Args[0], "worker", "--nats", fmt.Sprintf("nats://127.0.0.1:%d", port), "--once",
		"--model", small)
	cmd.Env = append(os.Environ(), "EVOPRESS_TEST_CLI=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refused by the search") || !strings.Contains(string(out), "model fingerprint") {
		t.Fatalf("worker with another model: err %v\n%s", err, out)
	}
}

// In-process workers share the model, the teacher and the database: any number of them gives
// the single worker's profile. With 5 workers and one sequence per sub-batch, the last stage
// (2 survivors and the parent, 4 sequences) is split into ranges of sequences.
func TestSearchInProcessWorkersSameProfile(t *testing.T) {
	dir := t.TempDir()
	one, five := filepath.Join(dir, "one.json"), filepath.Join(dir, "five.json")
	if out, err := run(t, searchArgs(t, one, "--generations", "3", "--sub-batch", "1")...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := run(t, searchArgs(t, five, "--generations", "3", "--sub-batch", "1", "--workers", "5", "--log-json")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, `"workers":[{"id":"local`) || !strings.Contains(out, `"connected":true,"evaluations":`) {
		t.Errorf("JSON progress lacks the workers:\n%s", out)
	}
	b := sameProfileFiles(t, one, five, "5 workers")
	if b.Search.Workers != 5 || b.Search.RangeTasks == 0 {
		t.Errorf("profile records %v workers and %v range tasks, want 5 and some", b.Search.Workers, b.Search.RangeTasks)
	}
}

// Cluster command lines that must be refused at once, naming the flag, before anything is
// loaded or written: a listener other hosts can reach without credentials, URLs of other
// schemes, no possible worker, a worker with nothing to connect to.
func TestClusterFlagsRefused(t *testing.T) {
	port := freePort(t)
	seed := filepath.Join(t.TempDir(), "seed.nk")
	if err := os.WriteFile(seed, []byte("SUAJVAE5USM6BFMV6JZVTPTTDEJCEE5SEP6R7YM2K3UQY47T4HCZSEZHME\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	search := func(extra ...string) []string {
		return append([]string{"search", "drop", "--target", "0.25", "--out", "OUT"}, extra...)
	}
	cases := []struct {
		args []string
		want []string
	}{
		{search("--nats-listen", "0.0.0.0:4222"), []string{"--nats-listen 0.0.0.0:4222 accepts connections from other hosts", "nats://TOKEN@HOST:PORT", "--insecure"}},
		{search("--nats-listen", ":4222"), []string{"--nats-listen :4222 accepts connections", "--insecure"}},
		{search("--nats-listen", "0.0.0.0:4222", "--nats-tls-cert", seed, "--nats-tls-key", seed), []string{"--nats-tls-cert " + seed}},
		{search("--nats-listen", "0.0.0.0:4222", "--nats-tls-ca", seed), []string{"--nats-tls-cert"}},
		{search("--nats-listen", "nats://evo:pw@0.0.0.0:4222", "--nats-nkey", seed), []string{"--nats-listen", "not several"}},
		{search("--nats-listen", "127.0.0.1:4222", "--nats-creds", seed), []string{"--nats-creds"}},
		{search("--nats-listen", "tls://0.0.0.0:4222"), []string{"--nats-listen", "scheme"}},
		{search("--nats", "ws://search-host:4222"), []string{`--nats "ws://search-host:4222"`, "nats://HOST:PORT or tls://HOST:PORT"}},
		{search("--nats", "search-host:4222"), []string{`--nats "search-host:4222"`}},
		{search("--workers", "0"), []string{"--workers 0", "no worker could ever join"}},
		{[]string{"worker", "--nats", "http://search-host:4222"}, []string{`--nats "http://search-host:4222"`}},
		{[]string{"worker", "--nats", fmt.Sprintf("nats://127.0.0.1:%d", port), "--connect-timeout", "300ms"},
			[]string{fmt.Sprintf("cannot connect to NATS at nats://127.0.0.1:%d", port)}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			args := slices.Clone(c.args)
			for i, a := range args {
				if a == "OUT" {
					args[i] = filepath.Join(dir, "p.json")
				}
			}
			start := time.Now()
			out, err := run(t, args...)
			if err == nil {
				t.Fatalf("accepted:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the refused command wrote %v", entries)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("refused after %v", d)
			}
		})
	}
}

// The README's cluster example, with a token: the search listens on every interface, a worker
// without the token cannot connect and exits with the reason, a worker with it joins, and the
// search ends with the single-process profile.
func TestClusterListenWithToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	small := smallModel(t)
	dir := t.TempDir()
	single := filepath.Join(dir, "single.json")
	if out, err := run(t, searchArgs(t, single, "--generations", "2")...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	port := freePort(t)
	dist := filepath.Join(dir, "dist.json")
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := run(t, searchArgs(t, dist, "--generations", "2", "--nats-listen", fmt.Sprintf("nats://s3cret@0.0.0.0:%d", port))...)
		done <- result{out, err}
	}()
	worker := func(url string) (string, error) {
		cmd := exec.Command(os.Args[0], "worker", "--nats", url, "--once", "--connect-timeout", "2m", "--model", small, "--calib", embeddedCalib)
		cmd.Env = append(os.Environ(), "EVOPRESS_TEST_CLI=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := worker(fmt.Sprintf("nats://127.0.0.1:%d", port))
	if err == nil || !strings.Contains(strings.ToLower(out), "authorization") {
		t.Fatalf("worker without the token: err %v\n%s", err, out)
	}
	if out, err := worker(fmt.Sprintf("nats://s3cret@127.0.0.1:%d", port)); err != nil {
		t.Fatalf("worker with the token: %v\n%s", err, out)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Minute):
		t.Fatal("the search did not finish")
	}
	if r.err != nil {
		t.Fatalf("search: %v\n%s", r.err, r.out)
	}
	if !strings.Contains(r.out, "evopress worker --nats nats://TOKEN@") {
		t.Errorf("the search does not show how to join with the token:\n%s", r.out)
	}
	sameProfileFiles(t, single, dist, "token-authenticated")
}
