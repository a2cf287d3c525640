package hf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sort"
	"sync"
)

// The versions of the model fingerprint: the first line of what Fingerprint and
// LegacyFingerprint hash.
const (
	FingerprintVersion       = "evopress-model-fingerprint/v2"
	LegacyFingerprintVersion = "evopress-model-fingerprint/v1"
)

// hashChunk is the size of the buffer each hashing goroutine reads tensor data through.
const hashChunk = 4 << 20

// Fingerprint identifies the model by its content: the hex SHA-256 of the line
// "evopress-model-fingerprint/v2", then "config.json <length>" and the exact bytes of
// config.json (or "config.json absent"), then for each tensor in name order the JSON array
// [name, dtype, shape, sha256] on its own line, sha256 being the hex SHA-256 of the tensor's
// data bytes as stored. Any change of the weights, config.json, a tensor's name, dtype or shape
// changes it; sharding and file layout (tensor order, headers, metadata, padding) do not.
//
// It is computed on the first call, not by OpenCheckpoint, so that a program that never asks
// pays nothing; the first call reads every tensor once (SHA-256 on all cores, tensors in
// parallel), later calls return the same value. Per-file tensor digests are kept in the user
// cache (see DigestCacheDir) for the files of a directory opened with OpenCheckpoint, keyed by
// absolute path, size, modification and change times and device/inode, and checked against
// the file's header: a cached file costs a stat and a small read instead of a pass over its
// bytes. A cache entry that is unreadable, corrupt or describes another file state is
// recomputed; failing to write one is not an error. Files of an fs.FS (OpenCheckpointFS) are
// always hashed. Fingerprint must be called before Close; an error reading a tensor is
// returned (and returned again by later calls).
func (c *Checkpoint) Fingerprint() (string, error) {
	c.fpOnce.Do(func() { c.fp, c.fpErr = c.fingerprintV2() })
	return c.fp, c.fpErr
}

// LegacyFingerprint is the fingerprint evopress gave models before version v2: the hex SHA-256
// of the line "evopress-model-fingerprint/v1", config.json as in Fingerprint, then for each
// tensor in name order the JSON array [name, dtype, shape] on its own line. It does not cover
// the weights (two checkpoints with equal config.json and tensor names, dtypes and shapes
// share it); it is kept to recognise databases, profiles and runs stamped by older versions.
// It is computed by OpenCheckpoint from the headers.
func (c *Checkpoint) LegacyFingerprint() string { return c.legacy }

// writeConfig hashes the config.json part shared by both versions.
func (c *Checkpoint) writeConfig(h io.Writer) {
	if c.config == nil {
		io.WriteString(h, "config.json absent\n")
		return
	}
	fmt.Fprintf(h, "config.json %d\n", len(c.config))
	h.Write(c.config)
	io.WriteString(h, "\n")
}

// fingerprintV1 computes LegacyFingerprint.
func (c *Checkpoint) fingerprintV1() string {
	h := sha256.New()
	io.WriteString(h, LegacyFingerprintVersion+"\n")
	c.writeConfig(h)
	for _, name := range c.names {
		t := c.tensors[name].info
		line, _ := json.Marshal([]any{t.Name, t.DType, t.Shape})
		h.Write(line)
		io.WriteString(h, "\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fingerprintV2 computes Fingerprint.
func (c *Checkpoint) fingerprintV2() (string, error) {
	if c.shards == nil {
		return "", fmt.Errorf("hf: %s: checkpoint is closed", c.dir)
	}
	digests, err := c.tensorDigests()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	io.WriteString(h, FingerprintVersion+"\n")
	c.writeConfig(h)
	for _, name := range c.names {
		t := c.tensors[name].info
		d := digests[name]
		line, _ := json.Marshal([]any{t.Name, t.DType, t.Shape, hex.EncodeToString(d[:])})
		h.Write(line)
		io.WriteString(h, "\n")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// tensorDigests returns the SHA-256 of every tensor's data bytes: from the cache for the files
// it holds, computed (and cached) for the others.
func (c *Checkpoint) tensorDigests() (map[string][32]byte, error) {
	out := make(map[string][32]byte, len(c.names))
	byShard := make([][]string, len(c.shards))
	for _, name := range c.names {
		s := c.tensors[name].shard
		byShard[s] = append(byShard[s], name)
	}
	var todo []string
	var compute []int // shards to compute
	for i, sh := range c.shards {
		if cached := loadDigests(sh, c.tensorsOf(i, byShard[i])); cached != nil {
			for name, d := range cached {
				out[name] = d
			}
			continue
		}
		compute = append(compute, i)
		todo = append(todo, byShard[i]...)
	}
	if len(todo) == 0 {
		return out, nil
	}
	computed, err := c.hashTensors(todo)
	if err != nil {
		return nil, err
	}
	for name, d := range computed {
		out[name] = d
	}
	for _, i := range compute {
		storeDigests(c.shards[i], c.tensorsOf(i, byShard[i]), out)
	}
	return out, nil
}

// tensorsOf returns the descriptions of the named tensors of shard i.
func (c *Checkpoint) tensorsOf(i int, names []string) []TensorInfo {
	out := make([]TensorInfo, len(names))
	for j, n := range names {
		out[j] = c.tensors[n].info
	}
	return out
}

// hashTensors hashes the data of the named tensors, largest first, on GOMAXPROCS goroutines.
func (c *Checkpoint) hashTensors(names []string) (map[string][32]byte, error) {
	names = append([]string(nil), names...)
	sort.SliceStable(names, func(i, j int) bool { return c.tensors[names[i]].info.Size > c.tensors[names[j]].info.Size })
	workers := min(runtime.GOMAXPROCS(0), len(names))
	out := make(map[string][32]byte, len(names))
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, hashChunk)
			h := sha256.New()
			for {
				mu.Lock()
				if next == len(names) || first != nil {
					mu.Unlock()
					return
				}
				name := names[next]
				next++
				mu.Unlock()
				d, err := c.hashTensor(name, h, buf)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				out[name] = d
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}

// hashTensor returns the SHA-256 of one tensor's data bytes, read through buf.
func (c *Checkpoint) hashTensor(name string, h hash.Hash, buf []byte) ([32]byte, error) {
	ref := c.tensors[name]
	t := ref.info
	r := c.shards[ref.shard].r
	h.Reset()
	for done := int64(0); done < t.Size; {
		b := buf[:min(int64(len(buf)), t.Size-done)]
		if _, err := readFull(r, b, t.Offset+done); err != nil {
			return [32]byte{}, fmt.Errorf("hf: %s: tensor %s: reading %d bytes at %d for the fingerprint: %v", t.File, name, len(b), t.Offset+done, err)
		}
		h.Write(b)
		done += int64(len(b))
	}
	var d [32]byte
	h.Sum(d[:0])
	return d, nil
}
