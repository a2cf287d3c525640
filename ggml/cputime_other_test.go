//go:build !unix

package ggml

// cpuSeconds is unavailable: the benchmarks report wall-clock speeds only.
func cpuSeconds() float64 { return 0 }
