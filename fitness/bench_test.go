package fitness

import (
	"context"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
)

// BenchmarkEvaluateDrop measures fitness evaluations per second of one EvoPress depth-pruning
// generation's first stage — 32 offspring of a parent, each 1–3 switches away (r =
// min(U{1..3}, U{1..3})), k = 25% of the blocks — on a batch of 8 chunks of 256 tokens of
// the embedded llama-pd-11m, with and without prefix reuse. The dense
// distributions are cached before the timer starts, as they are during a search. Besides
// wall-clock evaluations per second it reports evaluations per CPU-second of the process
// (user + system), which stays meaningful on a machine shared with other jobs.
//
//	go test ./fitness -run XXX -bench EvaluateDrop -benchtime 3x
func BenchmarkEvaluateDrop(b *testing.B) {
	m := loadModel(b)
	n := len(m.Blocks)
	mode, err := drop.New(n, 0.25, drop.Options{})
	if err != nil {
		b.Fatal(err)
	}
	units := mode.Units()
	build, err := candidate.DropBuilder(m, units)
	if err != nil {
		b.Fatal(err)
	}
	const chunks, T, lambda = 8, 256, 32
	p := pool(m, chunks, T)
	teacher, err := NewTeacher(m, p, Options{})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	parent := mode.Initial(rng)[0]
	var cands []search.Levels
	seen := map[string]bool{parent.String(): true}
	for len(cands) < lambda {
		c := parent.Clone()
		for range min(1+rng.IntN(3), 1+rng.IntN(3)) {
			c = mode.Mutate(rng, c)
		}
		if !seen[c.String()] {
			seen[c.String()] = true
			cands = append(cands, c)
		}
	}
	batch := search.Batch{Chunks: []int{0, 1, 2, 3, 4, 5, 6, 7}, Tokens: chunks * T}
	if _, err := teacher.entries(batch.Chunks); err != nil {
		b.Fatal(err)
	}
	for _, reuse := range []bool{false, true} {
		name := "full"
		if reuse {
			name = "prefix-reuse"
		}
		b.Run(name, func(b *testing.B) {
			ev, err := NewEvaluator(teacher, units, build, KL)
			if err != nil {
				b.Fatal(err)
			}
			ev.PrefixReuse = reuse
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := ev.Evaluate(context.Background(), parent, cands, batch); err != nil {
					b.Fatal(err)
				}
			}
			cpu := (cpuTime() - cpu0).Seconds()
			run, full, _ := ev.Stats()
			b.ReportMetric(float64(b.N*lambda)/b.Elapsed().Seconds(), "evals/s")
			b.ReportMetric(float64(b.N*lambda)/cpu, "evals/cpu-s")
			b.ReportMetric(float64(run)/float64(full), "blocks-run/full")
		})
	}
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
