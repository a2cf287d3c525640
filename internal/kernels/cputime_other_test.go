//go:build !unix

package kernels

// processCPUSeconds is unavailable here; benchmarks then skip the metric.
func processCPUSeconds() float64 { return 0 }
