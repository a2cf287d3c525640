package memcheck

import (
	"errors"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
)

const meminfo = "MemTotal:       24683664 kB\nMemFree:         1000000 kB\nMemAvailable:   19929696 kB\n"

// The memory available is MemAvailable, or the smallest headroom under the limits of the
// process's cgroup and its ancestors (usage less the inactive file cache), v2 or v1.
func TestSystemAvailable(t *testing.T) {
	const memAvail = 19929696 * 1024
	for _, c := range []struct {
		name   string
		files  map[string]string
		want   int64
		source string // a substring of Limit.Source
	}{
		{"meminfo only", map[string]string{"proc/meminfo": meminfo}, memAvail, "MemAvailable"},
		{"v2 without limit", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"sys/fs/cgroup/memory.max": "max\n", "sys/fs/cgroup/memory.current": "5000\n"}, memAvail, "MemAvailable"},
		{"v2 limit", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"sys/fs/cgroup/memory.max": "8589934592\n", "sys/fs/cgroup/memory.current": "1073741824\n"}, 7 << 30, "/sys/fs/cgroup/memory.max"},
		{"v2 limit, inactive file cache reclaimable", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"sys/fs/cgroup/memory.max": "8589934592\n", "sys/fs/cgroup/memory.current": "3221225472\n",
			"sys/fs/cgroup/memory.stat": "anon 1073741824\nactive_file 1\ninactive_file 2147483648\n"}, 7 << 30, "cgroup"},
		{"v2 nested, the parent's limit binds", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/a/b\n",
			"sys/fs/cgroup/a/b/memory.max": "17179869184\n", "sys/fs/cgroup/a/b/memory.current": "0\n",
			"sys/fs/cgroup/a/memory.max": "4294967296\n", "sys/fs/cgroup/a/memory.current": "1073741824\n"}, 3 << 30, "/sys/fs/cgroup/a/memory.max"},
		{"v2 over its limit", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"sys/fs/cgroup/memory.max": "1000\n", "sys/fs/cgroup/memory.current": "5000\n"}, 0, "cgroup"},
		{"v1 limit", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "4:memory:/job\n2:cpu:/\n",
			"sys/fs/cgroup/memory/job/memory.limit_in_bytes": "2147483648\n", "sys/fs/cgroup/memory/job/memory.usage_in_bytes": "1073741824\n",
			"sys/fs/cgroup/memory/job/memory.stat": "total_inactive_file 536870912\n"}, 1<<30 + 512<<20, "memory.limit_in_bytes"},
		{"v1 unlimited", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "4:cpuacct,memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n", "sys/fs/cgroup/memory/memory.usage_in_bytes": "1\n"}, memAvail, "MemAvailable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, body := range c.files {
				fsys[name] = &fstest.MapFile{Data: []byte(body)}
			}
			l, err := system(fsys)
			if err != nil {
				t.Fatal(err)
			}
			if l.Bytes != c.want || !strings.Contains(l.Source, c.source) {
				t.Errorf("got %d bytes (%s), want %d (%s)", l.Bytes, l.Source, c.want, c.source)
			}
		})
	}
	if _, err := system(fstest.MapFS{}); !errors.Is(err, ErrUnknown) {
		t.Errorf("without /proc/meminfo: %v, want ErrUnknown", err)
	}
	if _, err := system(fstest.MapFS{"proc/meminfo": &fstest.MapFile{Data: []byte("MemTotal: 1 kB\n")}}); !errors.Is(err, ErrUnknown) {
		t.Errorf("without MemAvailable: %v, want ErrUnknown", err)
	}
}

// EVOPRESS_MEMORY_LIMIT states the memory available, or turns the check off; anything else is
// an error naming the variable.
func TestEnvLimit(t *testing.T) {
	for _, c := range []struct {
		val  string
		want int64
		err  error
	}{{"24GiB", 24 << 30, nil}, {" 64GB ", 64e9, nil}, {"1048576", 1 << 20, nil}, {"2TiB", 2 << 40, nil},
		{"off", 0, ErrOff}, {"OFF", 0, ErrOff}} {
		t.Setenv(EnvLimit, c.val)
		l, err := Available()
		if !errors.Is(err, c.err) || (c.err == nil && (l.Bytes != c.want || !strings.Contains(l.Source, EnvLimit))) {
			t.Errorf("%s=%q: %d (%s), %v; want %d, %v", EnvLimit, c.val, l.Bytes, l.Source, err, c.want, c.err)
		}
	}
	for _, bad := range []string{"lots", "-1GB", "0"} {
		t.Setenv(EnvLimit, bad)
		if _, err := Available(); err == nil || errors.Is(err, ErrOff) || !strings.Contains(err.Error(), EnvLimit) {
			t.Errorf("%s=%q: %v, want an error naming the variable", EnvLimit, bad, err)
		}
	}
}

// A refusal names the command, every part with its size and what lowers it (as the caller
// names the fields), the memory available and its source, and the two ways around the check;
// CheckAvailable refuses with the variable's limit and passes when the check is off.
func TestCheckRefuses(t *testing.T) {
	e := &Estimate{Command: "ppl"}
	e.Add("weights", 15<<30, nil, "32 blocks")
	e.Add("activations", 3<<29, []string{"Batch"}, "forward of %d sequences", 32)
	e.Add("teacher cache", 0, []string{"CacheMB"}, "dropped: zero bytes")
	l := Limit{Bytes: 16 << 30, Source: "MemAvailable in /proc/meminfo"}
	err := Check(e, l)
	var me *Error
	if !errors.As(err, &me) || me.Estimate != e {
		t.Fatalf("Check = %v, want *Error", err)
	}
	msg := me.DescribeWith(func(f string) string { return map[string]string{"Batch": "--batch"}[f] })
	for _, want := range []string{"ppl needs an estimated 16.5 GiB", "16.0 GiB available (MemAvailable in /proc/meminfo)",
		"weights", "15.0 GiB", "32 blocks", "activations", "1.50 GiB", "forward of 32 sequences (lowered by --batch)",
		"Lower --batch", EnvLimit + "=SIZE", EnvLimit + "=off"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "teacher cache") {
		t.Errorf("message lists a part of zero bytes:\n%s", msg)
	}
	if !strings.Contains(err.Error(), "(lowered by Batch)") {
		t.Errorf("Error() does not name the field: %s", err)
	}
	if err := Check(e, Limit{Bytes: e.Total()}); err != nil {
		t.Errorf("an estimate equal to the limit: %v", err)
	}

	t.Setenv(EnvLimit, "1GiB")
	if err := CheckAvailable(e); !errors.As(err, &me) || me.Limit.Bytes != 1<<30 {
		t.Errorf("CheckAvailable under %s=1GiB: %v", EnvLimit, err)
	}
	t.Setenv(EnvLimit, "off")
	if err := CheckAvailable(e); err != nil {
		t.Errorf("CheckAvailable under %s=off: %v", EnvLimit, err)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.00 KiB", 64 << 20: "64.0 MiB",
		2471628800: "2.30 GiB", 160 << 30: "160 GiB", 3 << 40: "3.00 TiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// The collector's headroom is an eighth of the parts held in the Go heap (at least
// MinHeadroom), added once; a command that passes the check gets the estimate less its mapped
// files and half its headroom as the runtime's soft memory limit (HeapLimit).
func TestHeadroomAndRuntimeLimit(t *testing.T) {
	for _, c := range []struct {
		name           string
		heap, mapped   int64
		headroom, soft int64
	}{
		{"1B search, weights mapped", 3 << 30, 2 << 30, 3 << 27, 3<<30 + 3<<26},
		{"nothing mapped", 8 << 30, 0, 1 << 30, 8<<30 + 1<<29},
		{"small: the least headroom", 100 << 20, 0, MinHeadroom, 100<<20 + MinHeadroom/2},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &Estimate{Command: "search quant", Mapped: c.mapped}
			e.Add("weights", c.mapped, nil, "mapped")
			e.Add("levels", c.heap, nil, "heap")
			e.Headroom()
			e.Headroom() // once only
			if got := e.Bytes(HeadroomName); got != c.headroom {
				t.Errorf("headroom %d, want %d", got, c.headroom)
			}
			if last := e.Parts[len(e.Parts)-1]; last.Name != HeadroomName || len(e.Parts) < 2 || e.Parts[len(e.Parts)-2].Name == HeadroomName {
				t.Errorf("parts %+v, want one headroom, last", e.Parts)
			}
			if got := e.HeapLimit(); got != c.soft {
				t.Errorf("HeapLimit %d, want %d", got, c.soft)
			}
			if e.HeapLimit()+e.Mapped+c.headroom/2 != e.Total() {
				t.Errorf("HeapLimit %d + mapped %d + half the headroom ≠ total %d", e.HeapLimit(), e.Mapped, e.Total())
			}
		})
	}

	t.Setenv("GOMEMLIMIT", "")
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv(EnvLimit, "64GiB")
	e := &Estimate{Command: "search quant", Mapped: 2 << 30}
	e.Add("weights", 2<<30, nil, "mapped")
	e.Add("levels", 3<<30, nil, "heap")
	if err := CheckAvailable(e); err != nil {
		t.Fatal(err)
	}
	if got, want := debug.SetMemoryLimit(-1), int64(3<<30+3<<26); got != want {
		t.Errorf("runtime limit %d after CheckAvailable, want the estimate less its mapped part and half its headroom, %d", got, want)
	}
	// A later, larger command raises the limit it set; one set by someone else that is lower
	// stays.
	SetRuntimeLimit(Limit{Bytes: 5 << 30})
	if got := debug.SetMemoryLimit(-1); got != 5<<30 {
		t.Errorf("runtime limit %d after a larger command's, want %d", got, int64(5<<30))
	}
	debug.SetMemoryLimit(1 << 30)
	SetRuntimeLimit(Limit{Bytes: 6 << 30})
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("runtime limit %d, want the lower one set outside memcheck, %d", got, int64(1<<30))
	}
}
