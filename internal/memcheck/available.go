package memcheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
)

// ErrUnknown is returned by Available where the memory available cannot be measured (an
// operating system other than Linux, or no /proc/meminfo).
var ErrUnknown = errors.New("memory available unknown")

// Available returns the memory available to a command now: EVOPRESS_MEMORY_LIMIT's size when
// it is set (ErrOff when it is "off"); else, on Linux, the smaller of MemAvailable in
// /proc/meminfo and the headroom under the cgroup memory limits of the process's cgroup and its
// ancestors (limit − usage + inactive file cache, which the kernel reclaims first; cgroup v2's
// memory.max/memory.current/memory.stat or v1's memory.limit_in_bytes/memory.usage_in_bytes);
// elsewhere ErrUnknown.
func Available() (Limit, error) {
	if v, ok := os.LookupEnv(EnvLimit); ok && strings.TrimSpace(v) != "" {
		return fromEnv(v)
	}
	if runtime.GOOS != "linux" {
		return Limit{}, ErrUnknown
	}
	return system(os.DirFS("/"))
}

// fromEnv reads EVOPRESS_MEMORY_LIMIT's value.
func fromEnv(v string) (Limit, error) {
	if strings.EqualFold(strings.TrimSpace(v), "off") {
		return Limit{}, ErrOff
	}
	n, err := ParseSize(v)
	if err != nil {
		return Limit{}, fmt.Errorf("%s=%s: %v, or off", EnvLimit, v, err)
	}
	return Limit{Bytes: n, Source: EnvLimit + "=" + strings.TrimSpace(v)}, nil
}

// system measures the memory available from the file system root (a Linux /, or a test's
// fstest.MapFS holding proc/meminfo, proc/self/cgroup and sys/fs/cgroup/…).
func system(root fs.FS) (Limit, error) {
	avail, err := memAvailable(root)
	if err != nil {
		return Limit{}, err
	}
	l := Limit{Bytes: avail, Source: "MemAvailable in /proc/meminfo"}
	if c, ok := cgroupHeadroom(root); ok && c.Bytes < l.Bytes {
		l = c
	}
	return l, nil
}

// memAvailable reads MemAvailable from proc/meminfo.
func memAvailable(root fs.FS) (int64, error) {
	data, err := fs.ReadFile(root, "proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnknown, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemAvailable:" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || n < 0 {
				break
			}
			if len(f) >= 3 && strings.EqualFold(f[2], "kB") {
				n *= 1024
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: no MemAvailable line in /proc/meminfo", ErrUnknown)
}

// cgroupHeadroom returns the smallest headroom under the memory limits of the process's cgroup
// and its ancestors (false: no limit set, or none readable).
func cgroupHeadroom(root fs.FS) (Limit, bool) {
	data, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return Limit{}, false
	}
	var best Limit
	found := false
	consider := func(l Limit, ok bool) {
		if ok && (!found || l.Bytes < best.Bytes) {
			best, found = l, true
		}
	}
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "": // cgroup v2
			for _, dir := range ancestors("sys/fs/cgroup", parts[2]) {
				consider(headroom(root, dir, "memory.max", "memory.current", "inactive_file"))
			}
		case hasController(parts[1], "memory"): // cgroup v1
			for _, dir := range ancestors("sys/fs/cgroup/memory", parts[2]) {
				consider(headroom(root, dir, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"))
			}
		}
	}
	return best, found
}

// ancestors returns base/p and each of its parent folders up to base itself, deepest first.
func ancestors(base, p string) []string {
	p = path.Clean("/" + strings.TrimSpace(p))
	var out []string
	for {
		out = append(out, path.Join(base, p))
		if p == "/" {
			return out
		}
		p = path.Dir(p)
	}
}

func hasController(list, c string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == c {
			return true
		}
	}
	return false
}

// unlimited is the smallest limit read as "no limit" (cgroup v1 writes a page-rounded
// 2⁶³−1 for none).
const unlimited = 1 << 62

// headroom reads dir's limit and usage files: limit − (usage − inactive file cache), at least 0.
func headroom(root fs.FS, dir, maxFile, curFile, inactiveKey string) (Limit, bool) {
	limit, ok := readInt(root, path.Join(dir, maxFile))
	if !ok || limit >= unlimited {
		return Limit{}, false
	}
	used, ok := readInt(root, path.Join(dir, curFile))
	if !ok {
		return Limit{}, false
	}
	if stat, err := fs.ReadFile(root, path.Join(dir, "memory.stat")); err == nil {
		for _, line := range strings.Split(string(stat), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == inactiveKey {
				if n, err := strconv.ParseInt(f[1], 10, 64); err == nil && n > 0 && n <= used {
					used -= n
				}
			}
		}
	}
	return Limit{Bytes: max(limit-used, 0), Source: fmt.Sprintf("cgroup limit /%s minus its usage", path.Join(dir, maxFile))}, true
}

// readInt reads a file holding one integer ("max" reads as unlimited).
func readInt(root fs.FS, name string) (int64, bool) {
	data, err := fs.ReadFile(root, name)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return unlimited, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}
