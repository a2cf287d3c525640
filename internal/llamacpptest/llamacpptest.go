// Package llamacpptest finds llama.cpp's command-line tools (llama-quantize, llama-perplexity,
// llama-imatrix) for tests that check evopress against llama.cpp itself.
package llamacpptest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Env names the folder holding the tools, overriding the default.
const Env = "EVOPRESS_LLAMACPP"

var (
	once   sync.Once
	bin    string
	whyNot string
)

// Bin returns the folder holding llama-quantize, llama-perplexity and llama-imatrix: $EVOPRESS_LLAMACPP
// when set, else the folder ../shared/tools/llamacpp/build.sh installs them in
// ($XDG_CACHE_HOME or ~/.cache)/llamacpp-tools/bin. The test is skipped, saying why, when the
// tools are not there (build them once with that script: .ci/run does, before the tests) or in
// -short mode (these comparisons run llama.cpp's tools for tens of seconds). Tests never build
// the tools themselves: each package's test binary would race to build them into one folder.
func Bin(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("llama.cpp comparison: skipped in -short mode")
	}
	once.Do(find)
	if bin == "" {
		t.Skipf("llama.cpp tools unavailable: %s", whyNot)
	}
	return bin
}

func has(dir string) bool {
	for _, tool := range []string{"llama-quantize", "llama-perplexity", "llama-imatrix"} {
		if st, err := os.Stat(filepath.Join(dir, tool)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
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
	whyNot = "not in " + d + ": build them with ../shared/tools/llamacpp/build.sh (about two minutes; needs npm, git and g++) or set " + Env
}
