//go:build amd64 && !noasm

package db

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/evopress/evopress/internal/kernels"
)

// EVOPRESS_KERNELS narrows the level decoders' assembly with the kernels': the test binary runs
// itself with the variable set and reports what it chose.
func TestDecodersFollowKernelsEnv(t *testing.T) {
	if os.Getenv("EVOPRESS_DECODE_CHILD") != "" {
		t.Logf("chose avx512=%v", useAVX512)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	for _, env := range []string{"generic", "avx2"} {
		cmd := exec.Command(exe, "-test.run=^TestDecodersFollowKernelsEnv$", "-test.v")
		cmd.Env = append(os.Environ(), "EVOPRESS_DECODE_CHILD=1", kernels.KernelsEnv+"="+env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s=%s: %v\n%s", kernels.KernelsEnv, env, err, out)
		}
		if !strings.Contains(string(out), "chose avx512=false") {
			t.Errorf("%s=%s: the AVX-512 decoders stay chosen:\n%s", kernels.KernelsEnv, env, out)
		}
	}
}
