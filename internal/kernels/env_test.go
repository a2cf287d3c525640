package kernels

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestKernelsEnv checks that EVOPRESS_KERNELS narrows the kernels chosen at start-up: the test
// binary runs itself with the variable set and reports what it chose.
func TestKernelsEnv(t *testing.T) {
	if os.Getenv("EVOPRESS_KERNELS_CHILD") != "" {
		t.Logf("chose asm=%v avx512=%v impl=%s", useAsm, useAVX512, Implementation())
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	for _, tc := range []struct{ env, want string }{
		{"generic", "asm=false avx512=false impl=generic/"},
		{"avx2", "avx512=false"},
	} {
		cmd := exec.Command(exe, "-test.run=^TestKernelsEnv$", "-test.v")
		cmd.Env = append(os.Environ(), "EVOPRESS_KERNELS_CHILD=1", KernelsEnv+"="+tc.env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s=%s: %v\n%s", KernelsEnv, tc.env, err, out)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s=%s: want %q in\n%s", KernelsEnv, tc.env, tc.want, out)
		}
	}
}
