//go:build unix

package ggml

import "syscall"

// cpuSeconds is the process's user+system CPU time, to report speeds that hold on a busy machine.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
