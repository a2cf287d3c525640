package hf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/evopress/evopress/internal/atomicfile"
)

// CacheDirEnv names the environment variable that overrides UserCacheDir.
const CacheDirEnv = "EVOPRESS_CACHE_DIR"

// digestFormat identifies a digest cache entry.
const digestFormat = "evopress-tensor-digests/v1"

// maxDigestEntry bounds what is read of a cache entry.
const maxDigestEntry = 64 << 20

// minCachedFileSize is the smallest safetensors file whose digests are cached: hashing a
// smaller one costs about what reading its cache entry does. A variable for tests.
var minCachedFileSize int64 = 1 << 20

// UserCacheDir returns the folder evopress keeps caches in: $EVOPRESS_CACHE_DIR when it is set,
// else the folder evopress in os.UserCacheDir.
func UserCacheDir() (string, error) {
	if d := os.Getenv(CacheDirEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "evopress"), nil
}

// DigestCacheDir returns the folder of the tensor digest cache behind Checkpoint.Fingerprint:
// tensor-digests in UserCacheDir. It holds one small JSON file per safetensors file hashed
// (named after a hash of the file's absolute path) and may be deleted at any time. In a test
// binary (testing.Testing) there is no cache unless $EVOPRESS_CACHE_DIR is set, so that tests
// of models in temporary folders leave nothing in the user's cache.
func DigestCacheDir() (string, error) {
	if testing.Testing() && os.Getenv(CacheDirEnv) == "" {
		return "", errors.New("hf: no digest cache in tests without $" + CacheDirEnv)
	}
	d, err := UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "tensor-digests"), nil
}

// fileID is what the digest cache keys a file's content on, besides its absolute path: size,
// modification and status-change times (ns) and device and inode numbers where the platform has
// them (zero otherwise).
type fileID struct {
	Size     int64  `json:"size"`
	ModNS    int64  `json:"mtime_ns"`
	ChangeNS int64  `json:"ctime_ns"`
	Device   uint64 `json:"device"`
	Inode    uint64 `json:"inode"`
}

// identify returns a file's fileID.
func identify(st os.FileInfo) fileID {
	id := fileID{Size: st.Size(), ModNS: st.ModTime().UnixNano()}
	id.Device, id.Inode, id.ChangeNS = sysIdentity(st)
	return id
}

// digestEntry is a cache entry: the digests of one safetensors file's tensors.
type digestEntry struct {
	Format  string              `json:"format"`
	Path    string              `json:"path"`
	File    fileID              `json:"file"`
	Header  string              `json:"header_sha256"`
	Tensors []digestEntryTensor `json:"tensors"`
}

type digestEntryTensor struct {
	Name   string `json:"name"`
	Begin  int64  `json:"begin"`
	End    int64  `json:"end"`
	SHA256 string `json:"sha256"`
}

// cachePath returns the cache entry of shard sh ("" when it is not cached).
func cachePath(sh *shard) string {
	if sh.osPath == "" || sh.size < minCachedFileSize {
		return ""
	}
	dir, err := DigestCacheDir()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(sh.osPath))
	return filepath.Join(dir, hex.EncodeToString(sum[:16])+".json")
}

// unchanged reports whether the file at sh.osPath is still the one sh was opened from.
func unchanged(sh *shard) bool {
	st, err := os.Stat(sh.osPath)
	return err == nil && st.Mode().IsRegular() && identify(st) == sh.id
}

// loadDigests returns the cached digests of tensors (all of shard sh's), or nil when the cache
// has no valid entry for the file as it is now: the entry must name the file's path, size,
// times, device and inode and its header's SHA-256, and list exactly its tensors with their data
// offsets. Only the digests are taken from it.
func loadDigests(sh *shard, tensors []TensorInfo) map[string][32]byte {
	p := cachePath(sh)
	if p == "" || !unchanged(sh) {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxDigestEntry+1))
	f.Close()
	if err != nil || len(data) > maxDigestEntry {
		return nil
	}
	var e digestEntry
	if json.Unmarshal(data, &e) != nil || e.Format != digestFormat || e.Path != sh.osPath || e.File != sh.id ||
		e.Header != hex.EncodeToString(sh.headSum[:]) || len(e.Tensors) != len(tensors) {
		return nil
	}
	want := make(map[string]TensorInfo, len(tensors))
	for _, t := range tensors {
		want[t.Name] = t
	}
	out := make(map[string][32]byte, len(tensors))
	for _, et := range e.Tensors {
		t, ok := want[et.Name]
		if _, dup := out[et.Name]; !ok || dup || et.Begin != t.Begin || et.End != t.End || len(et.SHA256) != 2*sha256.Size {
			return nil
		}
		var d [32]byte
		if n, err := hex.Decode(d[:], []byte(et.SHA256)); err != nil || n != len(d) {
			return nil
		}
		out[et.Name] = d
	}
	return out
}

// storeDigests writes the cache entry of shard sh (atomically) when the file is still the one
// sh was opened from; failures are ignored: the cache only saves time.
func storeDigests(sh *shard, tensors []TensorInfo, digests map[string][32]byte) {
	p := cachePath(sh)
	if p == "" || !unchanged(sh) {
		return
	}
	e := digestEntry{Format: digestFormat, Path: sh.osPath, File: sh.id, Header: hex.EncodeToString(sh.headSum[:])}
	for _, t := range tensors {
		d := digests[t.Name]
		e.Tensors = append(e.Tensors, digestEntryTensor{Name: t.Name, Begin: t.Begin, End: t.End, SHA256: hex.EncodeToString(d[:])})
	}
	data, err := json.MarshalIndent(e, "", " ")
	if err != nil {
		return
	}
	if os.MkdirAll(filepath.Dir(p), 0o755) != nil {
		return
	}
	atomicfile.WriteFile(p, append(data, '\n'), 0o644)
}
