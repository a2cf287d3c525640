// Package llamacpptest finds llama.cpp's command-line tools (llama-quantize, llama-perplexity,
// llama-imatrix) for tests that check evopress against llama.cpp itself.
package llamacpptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Env names the folder holding the tools, overriding the default.
const Env = "EVOPRESS_LLAMACPP"

var (
	once     sync.Once
	bin      string
	whyNot   string
	building = "../shared/tools/llamacpp/build.sh"
)

// Bin returns the folder holding llama-quantize, llama-perplexity and llama-imatrix: $EVOPRESS_LLAMACPP
// when set, else the folder ../shared/tools/llamacpp/build.sh installs them in
// ($XDG_CACHE_HOME or ~/.cache)/llamacpp-tools/bin, running that script first (about a minute;
// it needs npm, git and g++) when they are not there yet. The test is skipped, saying why, when
// the tools are neither found nor built.
func Bin(t testing.TB) string {
	t.Helper()
	once.Do(find)
	if bin == "" {
		t.Skipf("llama.cpp tools unavailable: %s", whyNot)
	}
	return bin
}

func has(dir string) bool {
	for _, tool := range []string{"llama-quantize", "llama-perplexity", "llama-imatrix"} {
		if st, err := os.Stat(filepath.Join(dir, tool)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

func find() {
	if d := os.Getenv(Env); d != "" {
		if has(d) {
			bin = d
		} else {
			whyNot = Env + "=" + d + " does not hold llama-quantize, llama-perplexity and llama-imatrix"
		}
		return
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			whyNot = "no home directory: " + err.Error()
			return
		}
		cache = filepath.Join(home, ".cache")
	}
	d := filepath.Join(cache, "llamacpp-tools", "bin")
	if has(d) {
		bin = d
		return
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", building)
	if _, err := os.Stat(script); err != nil {
		whyNot = "not in " + d + ", and " + building + " (next to the repository) is missing; set " + Env
		return
	}
	out, err := exec.Command("bash", script).CombinedOutput()
	if err != nil {
		whyNot = "building them with " + script + " failed (" + err.Error() + "): " + tail(string(out))
		return
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if d := lines[len(lines)-1]; has(d) {
		bin = d
		return
	}
	whyNot = script + " ran but its folder lacks the tools: " + tail(string(out))
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}
