// Package memcheck refuses, before any heavy work, a command that will not fit in memory.
//
// A command estimates the memory it will hold at its peak (Estimate): the model's weights as it
// keeps them (16-bit weights stay 16-bit: Shape), the activations of its forward batches, the
// teacher's cache of dense distributions, the level database's levels (held as stored), a database
// build's Hessians and compression buffers, an export's conversion buffers. Check compares the
// estimate with the memory available (Available): on Linux the smaller of /proc/meminfo's
// MemAvailable and the headroom under the process's cgroup memory limit; elsewhere the check is
// skipped. The refusal (*Error) lists the estimate part by part with what lowers each part (a
// request field, which the command line names as its flag).
//
// The environment variable EVOPRESS_MEMORY_LIMIT overrides the measurement: a size
// ("24GiB", "64GB", a number of bytes; ParseSize) states the memory available, and "off" skips
// the check.
//
// An estimate counts live data and, as its "collector headroom" part (Headroom), the garbage the
// collector is let accumulate between collections: a command that passes the check sets the Go
// runtime's soft memory limit (SetRuntimeLimit) to the estimate less its memory-mapped part
// (Estimate.HeapLimit), so that the collector runs before the heap outgrows the estimate
// instead of letting garbage grow the heap to twice the live data (GOGC=100).
package memcheck

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"sync"
)

// EnvLimit is the environment variable that states the memory available ("off": no check).
const EnvLimit = "EVOPRESS_MEMORY_LIMIT"

// Part is one part of an estimate.
type Part struct {
	// Name says what the memory holds ("weights", "activations", "teacher cache", …).
	Name string
	// Bytes is its size.
	Bytes int64
	// Detail says how it was counted.
	Detail string
	// Knobs are the request fields whose smaller values lower it (none: fixed by the model).
	Knobs []string
}

// Estimate is the memory a command holds at its peak: the sum of its parts.
type Estimate struct {
	// Command names the command ("ppl", "search sparse", "db build quant", …).
	Command string
	Parts   []Part
	// Mapped is the part of the total held in memory-mapped files rather than in the Go heap
	// (the 16-bit weights of a checkpoint loaded with mmap): the runtime's soft memory limit,
	// which counts only the Go runtime's memory, leaves it out.
	Mapped int64
}

// Add appends a part (parts of zero bytes are dropped). knobs lists the request fields that
// lower it; detail is a format for fmt.Sprintf with args.
func (e *Estimate) Add(name string, bytes int64, knobs []string, detail string, args ...any) {
	if bytes <= 0 {
		return
	}
	e.Parts = append(e.Parts, Part{Name: name, Bytes: bytes, Detail: fmt.Sprintf(detail, args...), Knobs: knobs})
}

// Total is the sum of the parts.
func (e *Estimate) Total() int64 {
	var t int64
	for _, p := range e.Parts {
		t += p.Bytes
	}
	return t
}

// Bytes returns the size of the named part (0 when absent).
func (e *Estimate) Bytes(name string) int64 {
	var t int64
	for _, p := range e.Parts {
		if p.Name == name {
			t += p.Bytes
		}
	}
	return t
}

// Describe lists the parts, one per line, naming each knob with name (nil: the field name).
func (e *Estimate) Describe(name func(field string) string) string {
	var b strings.Builder
	for _, p := range e.Parts {
		fmt.Fprintf(&b, "  %-22s %10s  %s", p.Name, FormatBytes(p.Bytes), p.Detail)
		if len(p.Knobs) > 0 {
			ks := make([]string, len(p.Knobs))
			for i, k := range p.Knobs {
				ks[i] = k
				if name != nil {
					ks[i] = name(k)
				}
			}
			fmt.Fprintf(&b, " (lowered by %s)", strings.Join(ks, ", "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// RuntimeBytes is the memory a command holds besides what its estimate itemises: the Go
// runtime, the program, the tokenizer and the text (docs/results.md measures it).
const RuntimeBytes = 64 << 20

// Runtime adds RuntimeBytes.
func (e *Estimate) Runtime() {
	e.Add("runtime", RuntimeBytes, nil, "Go runtime, program, tokenizer, text")
}

// HeadroomName names the part Headroom adds.
const HeadroomName = "collector headroom"

// MinHeadroom is the least collector headroom.
const MinHeadroom = 64 << 20

// Headroom adds, once, the garbage the collector is let accumulate between collections: an
// eighth of the parts held in the Go heap (the total less Mapped), at least MinHeadroom. The
// runtime's soft memory limit is the estimate's heap parts with half this headroom
// (HeapLimit): garbage fills what the live data leaves of them, and when the live data
// reaches the parts, the collector still has a sixteenth of them to collect in, where
// GOGC=100 would let the heap double.
func (e *Estimate) Headroom() {
	if e.Bytes(HeadroomName) > 0 {
		return
	}
	e.Add(HeadroomName, max((e.Total()-e.Mapped)/8, MinHeadroom), nil,
		"garbage between collections and resident memory outside the Go heap: 1/8 of the heap parts (the Go soft memory limit is the estimate less mapped files and half this)")
}

// HeapLimit is the soft memory limit CheckAvailable sets for the estimate: its total less its
// memory-mapped part and less half its collector headroom (Headroom). Garbage gets the first
// half; the second stands for resident memory beyond the limit: the program's own pages (the
// binary's text and data, tens of MiB), which the Go limit does not count, and the allocations
// that overshoot the heap goal while a collection runs (50–60 MiB in a 1B gguf search,
// docs/results.md, issue 15).
func (e *Estimate) HeapLimit() int64 { return e.Total() - e.Mapped - e.Bytes(HeadroomName)/2 }

// Limit is the memory available to a command.
type Limit struct {
	Bytes int64
	// Source says where the number comes from.
	Source string
}

// Error is a refused command: its estimate exceeds the memory available.
type Error struct {
	Estimate *Estimate
	Limit    Limit
}

// Error describes the refusal with the request fields' names.
func (e *Error) Error() string { return e.DescribeWith(nil) }

// DescribeWith describes the refusal, naming each request field with name (the command line
// passes its flag names; nil: the field names).
func (e *Error) DescribeWith(name func(field string) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s needs an estimated %s of memory, more than the %s available (%s):\n",
		e.Estimate.Command, FormatBytes(e.Estimate.Total()), FormatBytes(e.Limit.Bytes), e.Limit.Source)
	b.WriteString(e.Estimate.Describe(name))
	var knobs []string
	seen := map[string]bool{}
	for _, p := range e.Estimate.Parts {
		for _, k := range p.Knobs {
			if name != nil {
				k = name(k)
			}
			if !seen[k] {
				seen[k] = true
				knobs = append(knobs, k)
			}
		}
	}
	if len(knobs) > 0 {
		fmt.Fprintf(&b, "Lower %s, ", strings.Join(knobs, ", "))
	} else {
		b.WriteString("Use a machine with more memory, ")
	}
	fmt.Fprintf(&b, "free memory, or set %s=SIZE to state the memory available (%s=off skips this check)", EnvLimit, EnvLimit)
	return b.String()
}

// ErrOff is returned by Available when EVOPRESS_MEMORY_LIMIT is "off".
var ErrOff = errors.New("memory check off (" + EnvLimit + "=off)")

// Check returns *Error when the estimate exceeds the limit, else nil.
func Check(e *Estimate, l Limit) error {
	if e.Total() > l.Bytes {
		return &Error{Estimate: e, Limit: l}
	}
	return nil
}

// CheckAvailable adds the collector's headroom to the estimate (Headroom) and checks it against
// the memory available now (Available): nil when it fits, when the check is off or the memory
// cannot be known (another operating system, an unreadable /proc). When it fits, the Go
// runtime's soft memory limit is set to the estimate less its memory-mapped part and half its
// headroom (SetRuntimeLimit with HeapLimit), so that garbage does not grow the heap past the
// estimate.
func CheckAvailable(e *Estimate) error {
	e.Headroom()
	l, err := Available()
	if err != nil {
		if errors.Is(err, ErrOff) || errors.Is(err, ErrUnknown) {
			return nil
		}
		return err
	}
	if err := Check(e, l); err != nil {
		return err
	}
	SetRuntimeLimit(Limit{Bytes: min(e.HeapLimit(), l.Bytes), Source: "the memory estimate"})
	return nil
}

// SetRuntimeLimit sets the Go runtime's soft memory limit (debug.SetMemoryLimit) to l, unless
// GOMEMLIMIT is set or a lower limit is that SetRuntimeLimit did not set: the garbage collector
// then runs more often as the heap nears the limit instead of letting garbage grow the heap to
// twice the live data. A limit it set itself is replaced, lower or higher, so that each command
// of a process running several in turn (a test binary, a library user) gets its own estimate's.
func SetRuntimeLimit(l Limit) {
	if l.Bytes <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	setMu.Lock()
	defer setMu.Unlock()
	if cur := debug.SetMemoryLimit(-1); cur == math.MaxInt64 || cur > l.Bytes || cur == lastSet {
		debug.SetMemoryLimit(l.Bytes)
		lastSet = l.Bytes
	}
}

// lastSet is the limit SetRuntimeLimit last set (0: none), guarded by setMu.
var (
	setMu   sync.Mutex
	lastSet int64
)
