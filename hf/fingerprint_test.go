package hf

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain points the digest cache at a scratch folder: tests never write the user's cache.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "evopress-hf-cache")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(CacheDirEnv, dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func mustFingerprint(t testing.TB, ck *Checkpoint) string {
	t.Helper()
	fp, err := ck.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// writeModel writes tensors (and config when not nil) as a single-file checkpoint in a new
// folder and returns it.
func writeModel(t *testing.T, tensors []TensorData, config []byte, meta map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := WriteSafetensors(filepath.Join(dir, SafetensorsFileName), tensors, meta); err != nil {
		t.Fatal(err)
	}
	if config != nil {
		if err := os.WriteFile(filepath.Join(dir, ConfigFileName), config, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fingerprints opens dir and returns its fingerprint and legacy fingerprint.
func fingerprints(t *testing.T, dir string) (string, string) {
	t.Helper()
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	return mustFingerprint(t, ck), ck.LegacyFingerprint()
}

// The fingerprints recomputed from their documented definitions, and what changes them.
func TestFingerprint(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	tensors := syntheticTensors(rng)
	cfg := configJSON(t, nil)
	base, baseLegacy := fingerprints(t, writeModel(t, tensors, cfg, nil))

	// Independent recomputation: v2 with the SHA-256 of each tensor's stored bytes, v1 without.
	sorted := append([]TensorData(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	v1, v2 := sha256.New(), sha256.New()
	io.WriteString(v1, "evopress-model-fingerprint/v1\n")
	io.WriteString(v2, "evopress-model-fingerprint/v2\n")
	for _, h := range []io.Writer{v1, v2} {
		fmt.Fprintf(h, "config.json %d\n%s\n", len(cfg), cfg)
	}
	for _, td := range sorted {
		shape, _ := json.Marshal(td.Shape)
		raw := make([]byte, len(td.F32)*td.DType.Size())
		encodeFloats(td.DType, td.F32, raw)
		fmt.Fprintf(v1, "[%q,%q,%s]\n", td.Name, td.DType, shape)
		fmt.Fprintf(v2, "[%q,%q,%s,\"%x\"]\n", td.Name, td.DType, shape, sha256.Sum256(raw))
	}
	if want := fmt.Sprintf("%x", v2.Sum(nil)); base != want {
		t.Errorf("fingerprint %s, want %s", base, want)
	}
	if want := fmt.Sprintf("%x", v1.Sum(nil)); baseLegacy != want {
		t.Errorf("legacy fingerprint %s, want %s", baseLegacy, want)
	}

	change := func(f func(ts []TensorData)) []TensorData {
		out := make([]TensorData, len(tensors))
		for i, td := range tensors {
			td.Shape = append([]int(nil), td.Shape...)
			td.F32 = append([]float32(nil), td.F32...)
			out[i] = td
		}
		f(out)
		return out
	}
	tests := []struct {
		name          string
		tensors       []TensorData
		config        []byte
		meta          map[string]string
		same, legSame bool // fingerprint and legacy fingerprint unchanged
	}{
		{"metadata and layout", tensors, cfg, map[string]string{"format": "pt", "note": "x"}, true, true},
		{"one weight negated", change(func(ts []TensorData) { ts[1].F32[0] = -ts[1].F32[0] - 1 }), cfg, nil, false, true},
		{"a tensor scaled", change(func(ts []TensorData) {
			for i := range ts[4].F32 {
				ts[4].F32[i] *= -1.7
			}
		}), cfg, nil, false, true},
		{"two tensors' data swapped", change(func(ts []TensorData) {
			ts[0].F32, ts[3].F32 = ts[3].F32, ts[0].F32
			ts[0].Shape, ts[3].Shape = ts[3].Shape, ts[0].Shape
		}), cfg, nil, false, false},
		{"dtype", change(func(ts []TensorData) { ts[0].DType = BF16 }), cfg, nil, false, false},
		{"name", change(func(ts []TensorData) { ts[2].Name += "x" }), cfg, nil, false, false},
		{"config", tensors, configJSON(t, map[string]any{"num_hidden_layers": 3}), nil, false, false},
		{"config absent", tensors, nil, nil, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fp, legacy := fingerprints(t, writeModel(t, tc.tensors, tc.config, tc.meta))
			if (fp == base) != tc.same || (legacy == baseLegacy) != tc.legSame {
				t.Errorf("fingerprint unchanged %v (want %v), legacy unchanged %v (want %v)", fp == base, tc.same, legacy == baseLegacy, tc.legSame)
			}
		})
	}
}

// The embedded model's legacy fingerprint is the one version 946a529 recorded in its profiles
// and databases (cmd/evopress/testdata/main-946a529), and its fingerprint is pinned.
func TestFingerprintOfEmbeddedModel(t *testing.T) {
	fp, legacy := fingerprints(t, embeddedModel)
	if want := "142c8b1de49cf749bc87efdaafdfa51da611b25f6c009e55a4d896a552c55861"; legacy != want {
		t.Errorf("legacy fingerprint %s, want %s", legacy, want)
	}
	if want := "998b3d5ee09d2fc7b84d8ac0734225275b770bbfba1e25877fc87e763a720f89"; fp != want {
		t.Errorf("fingerprint %s, want %s", fp, want)
	}
	ck, err := OpenCheckpointFS(os.DirFS(embeddedModel), ".")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if got := mustFingerprint(t, ck); got != fp {
		t.Errorf("fs.FS fingerprint %s, want %s", got, fp)
	}
}

// cacheEntry returns the path of the only digest cache entry under the cache dir.
func cacheEntry(t *testing.T) string {
	t.Helper()
	dir, err := DigestCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(ents) != 1 {
		t.Fatalf("cache entries %v, want one", ents)
	}
	return ents[0]
}

// The digest cache: used when it matches the file, recomputed when it is corrupt, stale or
// describes other tensors, written atomically, and never fatal.
func TestFingerprintCache(t *testing.T) {
	old := minCachedFileSize
	minCachedFileSize = 0
	defer func() { minCachedFileSize = old }()
	rng := rand.New(rand.NewSource(9))
	tensors := syntheticTensors(rng)
	cfg := configJSON(t, nil)

	// fresh sets up a model and an empty cache, and returns the model's fingerprint (computed
	// without a cache) and the path of its safetensors file.
	fresh := func(t *testing.T) (string, string) {
		t.Setenv(CacheDirEnv, t.TempDir())
		dir := writeModel(t, tensors, cfg, nil)
		t.Setenv(CacheDirEnv, filepath.Join(t.TempDir(), "not-yet"))
		fp, _ := fingerprints(t, dir)
		t.Setenv(CacheDirEnv, t.TempDir())
		if got, _ := fingerprints(t, dir); got != fp {
			t.Fatalf("fingerprint %s with a cache, %s without", got, fp)
		}
		return fp, filepath.Join(dir, SafetensorsFileName)
	}
	// edit rewrites the cache entry's JSON through f.
	edit := func(t *testing.T, f func(e map[string]any)) {
		p := cacheEntry(t)
		var e map[string]any
		b, _ := os.ReadFile(p)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // keep nanosecond times exact
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		f(e)
		b, _ = json.Marshal(e)
		os.WriteFile(p, b, 0o644)
	}
	fakeDigest := strings.Repeat("ab", 32)
	firstTensor := func(e map[string]any) map[string]any { return e["tensors"].([]any)[0].(map[string]any) }

	t.Run("used when it matches", func(t *testing.T) {
		fp, st := fresh(t)
		// A digest changed in the entry shows in the fingerprint: the entry was used (this is
		// the one thing taken from it on trust).
		edit(t, func(e map[string]any) { firstTensor(e)["sha256"] = fakeDigest })
		if got, _ := fingerprints(t, filepath.Dir(st)); got == fp {
			t.Error("the cache entry was not used")
		}
	})
	tests := []struct {
		name  string
		spoil func(t *testing.T, st string)
	}{
		{"not JSON", func(t *testing.T, st string) { os.WriteFile(cacheEntry(t), []byte("{garbage"), 0o644) }},
		{"empty", func(t *testing.T, st string) { os.WriteFile(cacheEntry(t), nil, 0o644) }},
		{"another format", func(t *testing.T, st string) {
			edit(t, func(e map[string]any) { e["format"] = "x"; firstTensor(e)["sha256"] = fakeDigest })
		}},
		{"digest not hex", func(t *testing.T, st string) {
			edit(t, func(e map[string]any) { firstTensor(e)["sha256"] = strings.Repeat("zz", 32) })
		}},
		{"digest short", func(t *testing.T, st string) { edit(t, func(e map[string]any) { firstTensor(e)["sha256"] = "abcd" }) }},
		{"another tensor", func(t *testing.T, st string) {
			edit(t, func(e map[string]any) { firstTensor(e)["name"] = "other"; firstTensor(e)["sha256"] = fakeDigest })
		}},
		{"other offsets", func(t *testing.T, st string) {
			edit(t, func(e map[string]any) { firstTensor(e)["end"] = 1.0; firstTensor(e)["sha256"] = fakeDigest })
		}},
		{"a tensor missing", func(t *testing.T, st string) {
			edit(t, func(e map[string]any) { e["tensors"] = e["tensors"].([]any)[1:] })
		}},
		{"another header", func(t *testing.T, st string) {
			edit(t, func(e map[string]any) { e["header_sha256"] = fakeDigest; firstTensor(e)["sha256"] = fakeDigest })
		}},
		{"another path", func(t *testing.T, st string) {
			edit(t, func(e map[string]any) { e["path"] = "/elsewhere"; firstTensor(e)["sha256"] = fakeDigest })
		}},
		{"another size", func(t *testing.T, st string) {
			edit(t, func(e map[string]any) {
				e["file"].(map[string]any)["size"] = 1.0
				firstTensor(e)["sha256"] = fakeDigest
			})
		}},
		{"file touched", func(t *testing.T, st string) {
			edit(t, func(e map[string]any) { firstTensor(e)["sha256"] = fakeDigest })
			later := time.Now().Add(time.Hour)
			os.Chtimes(st, later, later)
		}},
		{"file rewritten in place, mtime restored", func(t *testing.T, st string) {
			// The same size and modification time: the status-change time (or the inode) tells.
			edit(t, func(e map[string]any) { firstTensor(e)["sha256"] = fakeDigest })
			fi, _ := os.Stat(st)
			b, _ := os.ReadFile(st)
			time.Sleep(10 * time.Millisecond)
			os.WriteFile(st, b, 0o644)
			os.Chtimes(st, fi.ModTime(), fi.ModTime())
		}},
		{"file replaced", func(t *testing.T, st string) {
			edit(t, func(e map[string]any) { firstTensor(e)["sha256"] = fakeDigest })
			b, _ := os.ReadFile(st)
			fi, _ := os.Stat(st)
			os.Remove(st)
			os.WriteFile(st, b, 0o644)
			os.Chtimes(st, fi.ModTime(), fi.ModTime())
		}},
	}
	for _, tc := range tests {
		t.Run("recomputed when "+tc.name, func(t *testing.T) {
			if tc.name == "file rewritten in place, mtime restored" && filepath.Separator != '/' {
				t.Skip("needs status-change times")
			}
			fp, st := fresh(t)
			tc.spoil(t, st)
			if got, _ := fingerprints(t, filepath.Dir(st)); got != fp {
				t.Fatalf("fingerprint %s, want %s", got, fp)
			}
			// The entry was rewritten and is used again.
			edit(t, func(e map[string]any) { firstTensor(e)["sha256"] = fakeDigest })
			if got, _ := fingerprints(t, filepath.Dir(st)); got == fp {
				t.Error("the rewritten entry is not used")
			}
		})
	}
	t.Run("unwritable cache", func(t *testing.T) {
		fp, st := fresh(t)
		blocker := filepath.Join(t.TempDir(), "file")
		os.WriteFile(blocker, nil, 0o644)
		t.Setenv(CacheDirEnv, blocker) // a regular file: the cache folder cannot be created
		if got, _ := fingerprints(t, filepath.Dir(st)); got != fp {
			t.Errorf("fingerprint %s, want %s", got, fp)
		}
	})
	t.Run("atomic write leaves no temporary files", func(t *testing.T) {
		fresh(t)
		dir, _ := DigestCacheDir()
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ".json") {
			t.Errorf("cache folder holds %v", ents)
		}
	})
	t.Run("no cache in tests without the variable", func(t *testing.T) {
		t.Setenv(CacheDirEnv, "")
		if _, err := DigestCacheDir(); err == nil {
			t.Error("a test binary has a digest cache without $" + CacheDirEnv)
		}
	})
	t.Run("small files are not cached", func(t *testing.T) {
		minCachedFileSize = 1 << 40
		defer func() { minCachedFileSize = 0 }()
		t.Setenv(CacheDirEnv, t.TempDir())
		fingerprints(t, writeModel(t, tensors, cfg, nil))
		dir, _ := DigestCacheDir()
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("cache folder holds %v", ents)
		}
	})
}

// Errors: a tensor that cannot be read (the file truncated after opening) names the file and
// the tensor, and is returned again; a closed checkpoint is refused. Concurrent calls agree.
func TestFingerprintErrors(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	tensors := syntheticTensors(rng)
	dir := writeModel(t, tensors, nil, nil)
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, SafetensorsFileName)
	fi, _ := os.Stat(st)
	if err := os.Truncate(st, fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = ck.Fingerprint()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil || !strings.Contains(err.Error(), st) || !strings.Contains(err.Error(), "fingerprint") {
			t.Errorf("error %v, want one naming %s", err, st)
		}
	}
	ck.Close()

	ck, err = OpenCheckpoint(writeModel(t, tensors, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	ck.Close()
	if _, err := ck.Fingerprint(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("closed checkpoint: %v", err)
	}
}

// BenchmarkFingerprint hashes llama-pd-11m without the cache.
func BenchmarkFingerprint(b *testing.B) {
	dir := modelDir(b, "llama-pd-11m")
	b.SetBytes(21913920)
	b.Setenv(CacheDirEnv, filepath.Join(b.TempDir(), "none"))
	old := minCachedFileSize
	minCachedFileSize = 1 << 62
	defer func() { minCachedFileSize = old }()
	for b.Loop() {
		ck, err := OpenCheckpoint(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ck.Fingerprint(); err != nil {
			b.Fatal(err)
		}
		ck.Close()
	}
}

// BenchmarkFingerprintCached opens llama-pd-11m and takes its fingerprint from the digest cache.
func BenchmarkFingerprintCached(b *testing.B) {
	dir := modelDir(b, "llama-pd-11m")
	b.Setenv(CacheDirEnv, b.TempDir())
	for b.Loop() {
		ck, err := OpenCheckpoint(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ck.Fingerprint(); err != nil {
			b.Fatal(err)
		}
		ck.Close()
	}
}
