package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// EVOPRESS_CPUPROFILE writes a CPU profile of the whole command (a gzip-compressed pprof
// protobuf) and never overwrites an existing file.
func TestCPUProfileEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	cli := func() (string, error) {
		cmd := exec.Command(os.Args[0], "ppl", "--max-seqs", "1")
		cmd.Env = append(os.Environ(), "EVOPRESS_TEST_CLI=1", "EVOPRESS_CPUPROFILE="+path)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := cli(); err != nil {
		t.Fatalf("ppl with EVOPRESS_CPUPROFILE: %v\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 100 || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("profile: %d bytes starting %x, want a gzip stream", len(b), b[:min(len(b), 4)])
	}
	out, err := cli()
	if err == nil || !strings.Contains(out, "EVOPRESS_CPUPROFILE") || !strings.Contains(out, "exists") {
		t.Fatalf("second run over the same profile: err %v, output %s", err, out)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
		t.Fatal("the existing profile was changed")
	}
}
