package kernels

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// TestFMAPeak checks the peak loop's arithmetic on every path against closed
// forms (all exact in float32): each lane runs n steps of acc = a·acc + b.
func TestFMAPeak(t *testing.T) {
	for _, p := range paths() {
		for _, tc := range []struct {
			n    int
			a, b float32
			lane float32 // one accumulator's final value
		}{
			{0, 1, 1, 0},
			{1, 1, 3, 3},
			{1000, 1, 1, 1000},
			{100000, 1, 0.25, 25000},
			{10, 2, 1, 1023}, // 2^n − 1
			{7, -1, 5, 5},    // alternates b, 0
			{8, -1, 5, 0},
			{3, 0.5, 1, 1.75},  // 1, 1.5, 1.75
			{4, 0, -2.5, -2.5}, // a = 0: acc = b after one step
		} {
			t.Run(fmt.Sprintf("%s/n=%d/a=%v/b=%v", pathName(p), tc.n, tc.a, tc.b), func(t *testing.T) {
				withPath(t, p, func() {
					wantLanes := 96
					if p == pathAVX512 {
						wantLanes = 192
					}
					got, lanes := fmaPeak(tc.n, tc.a, tc.b)
					if lanes != wantLanes || got != float32(lanes)*tc.lane {
						t.Fatalf("fmaPeak(%d, %v, %v) = %v over %d lanes, want %v over %d", tc.n, tc.a, tc.b,
							got, lanes, float32(wantLanes)*tc.lane, wantLanes)
					}
				})
			})
		}
	}
}

// BenchmarkPeakFMA measures the floating-point peak of each path: one
// goroutine (per core) and GOMAXPROCS goroutines (the machine). GFLOP/cpu-s,
// flop per CPU-second, is the per-core peak that the GFLOP/cpu-s of
// BenchmarkGemm and BenchmarkGemmW compare with.
func BenchmarkPeakFMA(b *testing.B) {
	const iters = 1 << 16
	for _, p := range paths() {
		for _, par := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", pathName(p), par), func(b *testing.B) {
				withPath(b, p, func() {
					var sink float32
					_, lanes := fmaPeak(0, 1, 1)
					cpu0 := processCPUSeconds()
					for b.Loop() {
						var wg sync.WaitGroup
						sums := make([]float32, par)
						for g := range par {
							wg.Go(func() { sums[g], _ = fmaPeak(iters, 1, 1) })
						}
						wg.Wait()
						sink += sums[0]
					}
					cpu := processCPUSeconds() - cpu0
					flops := 2 * float64(lanes) * float64(iters) * float64(par) * float64(b.N)
					b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					if cpu > 0 {
						b.ReportMetric(flops/cpu/1e9, "GFLOP/cpu-s")
					}
					if sink == 0 {
						b.Fatal("fmaPeak returned 0")
					}
				})
			})
		}
	}
}
