package tokenizer

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user+system) the process has used; the shared
// machine is noisy, so benchmarks also report CPU time per operation.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchText reads a text file of the shared material (skipping when absent).
func benchText(b *testing.B, path string) string {
	b.Helper()
	requireFile(b, path)
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return string(data)
}

func benchmarkEncode(b *testing.B, name, path string, cold bool) {
	tk := referenceTokenizer(b, name)
	text := benchText(b, path)
	b.SetBytes(int64(len(text)))
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if cold {
			tk.model.cache = newWordCache()
		}
		c0 := cpuTime()
		n := len(tk.Encode(text, false))
		cpu += cpuTime() - c0
		if n == 0 {
			b.Fatal("no ids")
		}
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N)/(float64(len(text))/1e6), "cpu-ms/MB")
}

// BenchmarkEncode* encode eval.txt (0.7 MB) with a warm per-word cache, and
// calib.txt (2.7 MB) starting from an empty cache each time.
func BenchmarkEncodePD11MEval(b *testing.B) { benchmarkEncode(b, "llama-pd-11m", evalTextPath, false) }
func BenchmarkEncodePD11MCalibCold(b *testing.B) {
	benchmarkEncode(b, "llama-pd-11m", calibTextPath, true)
}
func BenchmarkEncodeLlama2CalibCold(b *testing.B) { benchmarkEncode(b, "llama2", calibTextPath, true) }
func BenchmarkEncodeLlama3Eval(b *testing.B)      { benchmarkEncode(b, "llama3", evalTextPath, false) }
func BenchmarkEncodeLlama3CalibCold(b *testing.B) { benchmarkEncode(b, "llama3", calibTextPath, true) }

func BenchmarkLoadLlama3(b *testing.B) {
	dir := npmTokenizerDir(b, "llama3")
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := Load(dir); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-c0).Milliseconds())/float64(b.N), "cpu-ms/op")
}
