package dirlock

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestMain makes the test binary a lock holder when DIRLOCK_HOLD names a lock file: it takes
// the lock, says "held" and waits to be killed.
func TestMain(m *testing.M) {
	if p := os.Getenv("DIRLOCK_HOLD"); p != "" {
		if _, err := Acquire(p); err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func enforced(t *testing.T) {
	switch runtime.GOOS {
	case "linux", "darwin", "freebsd", "netbsd", "openbsd", "dragonfly", "windows":
	default:
		t.Skip("locks are not enforced on " + runtime.GOOS)
	}
}

func TestLockInProcess(t *testing.T) {
	enforced(t)
	p := filepath.Join(t.TempDir(), "x.lock")
	a, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(p)
	var busy *BusyError
	if !errors.As(err, &busy) || busy.PID != os.Getpid() || busy.Path != p {
		t.Fatalf("second Acquire: %v, want a BusyError naming pid %d", err, os.Getpid())
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	if b, _ := os.ReadFile(p); len(b) != 0 {
		t.Errorf("released lock still records %q", b)
	}
	b, err := Acquire(p)
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	b.Release()
}

// TestLockReleasedWhenTheHolderDies kills (SIGKILL) a process holding the lock and takes it.
func TestLockReleasedWhenTheHolderDies(t *testing.T) {
	enforced(t)
	p := filepath.Join(t.TempDir(), "x.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DIRLOCK_HOLD="+p)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "held\n" {
		t.Fatalf("holder: %q", line)
	}
	_, err = Acquire(p)
	var busy *BusyError
	if !errors.As(err, &busy) || busy.PID != cmd.Process.Pid {
		t.Fatalf("Acquire while held: %v, want a BusyError naming pid %d", err, cmd.Process.Pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	l, err := Acquire(p)
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	l.Release()
}

// TestCheck: Check reports a held lock (with its holder) without creating a missing lock file,
// and leaves a free lock free.
func TestCheck(t *testing.T) {
	enforced(t)
	p := filepath.Join(t.TempDir(), "x.lock")
	if err := Check(p); err != nil {
		t.Fatalf("Check of a missing lock: %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Check created the lock file: %v", err)
	}
	a, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	var busy *BusyError
	if err := Check(p); !errors.As(err, &busy) || busy.PID != os.Getpid() {
		t.Errorf("Check of a held lock: %v, want a BusyError naming pid %d", err, os.Getpid())
	}
	a.Release()
	if err := Check(p); err != nil {
		t.Errorf("Check of a released lock: %v", err)
	}
	b, err := Acquire(p)
	if err != nil {
		t.Fatalf("Acquire after Check: %v", err)
	}
	b.Release()
}
