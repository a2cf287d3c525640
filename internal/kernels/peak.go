package kernels

// fmaPeak runs n iterations of acc = a·acc + b on independent float32
// accumulators (2 flop per accumulator and iteration, no memory traffic) and
// returns the sum of the accumulators and their number: the floating-point
// peak of the selected path, for BenchmarkPeakFMA, which relates the Gemm
// benchmarks to the machine's peak. The portable loop and the AVX2 loop have
// 96 accumulators (12 vectors of 8 lanes), the AVX-512 loop 192 (12 of 16).
func fmaPeak(n int, a, b float32) (sum float32, lanes int) {
	switch {
	case useAVX512:
		return fmaPeakAsm(n, a, b), 192
	case useAsm:
		return fmaPeakAsm(n, a, b), 96
	}
	return fmaPeakGo(n, a, b), 96
}

// fmaPeakGo is the portable twin of the assembly loop: the same 96
// accumulators (12 vectors of 8 lanes) and the same final summation order,
// with a separate multiply and add (the assembly fuses them), so both return
// the same value whenever a·acc is exact.
func fmaPeakGo(n int, a, b float32) float32 {
	var acc [12][8]float32
	for range n {
		for v := range acc {
			for l := range acc[v] {
				acc[v][l] = a*acc[v][l] + b
			}
		}
	}
	lanes := acc[0]
	for v := 1; v < len(acc); v++ {
		for l := range lanes {
			lanes[l] += acc[v][l]
		}
	}
	s := lanes[0]
	for _, x := range lanes[1:] {
		s += x
	}
	return s
}
