//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startCLI runs an evopress command line as a separate process (this test binary), its stderr
// watched for a line starting with prefix.
func startCLI(t *testing.T, prefix string, args ...string) (*exec.Cmd, *lineWatcher, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "EVOPRESS_TEST_CLI=1")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &lineWatcher{match: func(l string) bool { return strings.HasPrefix(l, prefix) }, hit: make(chan struct{})}
	go w.consume(stderr)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, w, &stdout
}

func waitLine(t *testing.T, w *lineWatcher, what string) {
	t.Helper()
	select {
	case <-w.hit:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s: no progress line\n%s", what, w.String())
	}
}

// TestConcurrentDBBuildProcesses runs two `db build` processes into one --out, the second with
// --force and other settings while the first holds the directory (stopped with SIGSTOP to make
// the overlap certain): exactly one succeeds, the other names the lock and the first's pid, and
// the database verifies. Then a build killed with SIGKILL mid-way releases the lock, and the
// same command resumes it.
func TestConcurrentDBBuildProcesses(t *testing.T) {
	model := smallModel(t)
	calib := smallCalib(t)
	out := filepath.Join(t.TempDir(), "db")
	common := []string{"db", "build", "sparse", "--model", model, "--calib", calib, "--calib-tokens", "1024", "--seq-len", "128",
		"--levels", "1", "--method", "magnitude", "--out", out}
	first, w, _ := startCLI(t, "db: ", append(common, "--target", "0.5")...)
	waitLine(t, w, "first build")
	if err := first.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	second := exec.Command(os.Args[0], append(common, "--target", "0.6", "--force")...)
	second.Env = append(os.Environ(), "EVOPRESS_TEST_CLI=1")
	msg, err := second.CombinedOutput()
	if err == nil {
		t.Errorf("the second build exited 0 while the first held the directory:\n%s", msg)
	}
	if want := fmt.Sprintf("database %s is being built by another process (pid %d)", out, first.Process.Pid); !strings.Contains(string(msg), want) {
		t.Errorf("the second build says %q, want %q", msg, want)
	}
	if err := first.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("the first build: %v\n%s", err, w.String())
	}
	if o, err := run(t, "db", "verify", out, "--model", model); err != nil {
		t.Fatalf("verify: %v\n%s", err, o)
	}

	// A forced rebuild killed after its first layer: the lock goes with the process, and the
	// same command resumes the build.
	rebuild := append(common, "--target", "0.6", "--force")
	killed, w, _ := startCLI(t, "db: [", rebuild...)
	waitLine(t, w, "the rebuild")
	if err := killed.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed.Wait()
	o, err := run(t, append(rebuild, "--json")...)
	if err != nil {
		t.Fatalf("resuming the killed build: %v\n%s", err, o)
	}
	var res struct{ Computed, Reused int }
	if err := json.Unmarshal([]byte(jsonPart(o)), &res); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	if res.Reused == 0 || res.Computed+res.Reused != 35 {
		t.Errorf("the resumed build computed %d and reused %d layers, want some reused of 35", res.Computed, res.Reused)
	}
	if o, err := run(t, "db", "verify", out, "--model", model); err != nil || !strings.Contains(o, "sparse database") {
		t.Fatalf("verify after the resumed build: %v\n%s", err, o)
	}
}
