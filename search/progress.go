package search

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress reports the state of a run after a generation (Generation 0: initialisation).
type Progress struct {
	Mode        string
	Generation  int
	Generations int
	// Best is the parent's fitness (NaN when not scored yet).
	Best float64
	// Replaced tells whether an offspring displaced the parent this generation.
	Replaced    bool
	Evaluations int64
	Tokens      int64
	// Elapsed is the wall time of the run so far, over all sessions.
	Elapsed time.Duration
	// ETA estimates the time left from this session's pace; negative when unknown.
	ETA time.Duration
	// Workers describes the workers that scored candidates, when the evaluator reports them
	// (WithWorkerStatus); nil otherwise.
	Workers []WorkerStatus
	// Short counts the offspring this generation lacked (Record.Short).
	Short int
}

// WorkerStatus describes one worker of a distributed evaluator.
type WorkerStatus struct {
	// ID names the worker (host, process and index).
	ID string `json:"id"`
	// Connected tells whether the worker is answering (it has sent a heartbeat recently).
	Connected bool `json:"connected"`
	// Evaluations counts the candidates it scored (a share of a candidate's batch counts as
	// that share) and Tokens the input tokens it processed.
	Evaluations float64 `json:"evaluations"`
	Tokens      int64   `json:"tokens"`
	// Rate is its candidates scored per second since it joined.
	Rate float64 `json:"evals_per_s"`
}

// Observer receives progress reports; it runs on the search goroutine and should be quick.
type Observer func(Progress)

// ProgressPrinter writes one human-readable line per report. On a terminal it rewrites the
// line in place with a carriage return (and ends it at the last generation); otherwise it
// writes one line per generation.
type ProgressPrinter struct {
	mu sync.Mutex
	w  io.Writer
	// Terminal selects in-place rewriting; NewProgressPrinter sets it when w is an *os.File
	// on a character device (a terminal, but also /dev/null, where it does no harm). Set it
	// to override the detection.
	Terminal bool
	lastLen  int
	open     bool
}

// NewProgressPrinter returns a printer writing to w, detecting whether w is a terminal.
func NewProgressPrinter(w io.Writer) *ProgressPrinter {
	return &ProgressPrinter{w: w, Terminal: isTerminal(w)}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Observe prints p; pass it to WithObserver.
func (pp *ProgressPrinter) Observe(p Progress) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	line := FormatProgress(p)
	if !pp.Terminal {
		fmt.Fprintln(pp.w, line)
		return
	}
	pad := ""
	if n := pp.lastLen - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprint(pp.w, "\r"+line+pad)
	pp.lastLen, pp.open = len(line), true
	if p.Generation >= p.Generations {
		fmt.Fprintln(pp.w)
		pp.lastLen, pp.open = 0, false
	}
}

// Finish ends a line left open on a terminal (after an interrupted run); otherwise it does
// nothing.
func (pp *ProgressPrinter) Finish() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.open {
		fmt.Fprintln(pp.w)
		pp.lastLen, pp.open = 0, false
	}
}

// FormatProgress renders p as one line, e.g.
// "drop gen 12/128 best 0.01234 evals 1312 tokens 3.1M elapsed 1m2s eta 9m40s".
func FormatProgress(p Progress) string {
	gen := fmt.Sprintf("gen %d/%d", p.Generation, p.Generations)
	if p.Generation == 0 {
		gen = fmt.Sprintf("init  0/%d", p.Generations)
	}
	best := "-"
	if !math.IsNaN(p.Best) {
		best = fmt.Sprintf("%.6g", p.Best)
	}
	mark := ""
	if p.Replaced {
		mark = " *"
	}
	eta := "?"
	if p.ETA >= 0 {
		eta = roundDuration(p.ETA).String()
	}
	line := fmt.Sprintf("%s %s best %s%s evals %d tokens %s elapsed %s eta %s",
		p.Mode, gen, best, mark, p.Evaluations, humanCount(p.Tokens), roundDuration(p.Elapsed), eta)
	if len(p.Workers) > 0 {
		line += " " + FormatWorkers(p.Workers)
	}
	return line
}

// FormatWorkers renders worker statuses compactly, e.g. "workers 2/3 [a 4.1/s, b 3.9/s, c lost]":
// connected of known, then each worker's evaluations per second.
func FormatWorkers(ws []WorkerStatus) string {
	n := 0
	parts := make([]string, len(ws))
	for i, w := range ws {
		if w.Connected {
			n++
			parts[i] = fmt.Sprintf("%s %.3g/s", w.ID, w.Rate)
		} else {
			parts[i] = w.ID + " lost"
		}
	}
	return fmt.Sprintf("workers %d/%d [%s]", n, len(ws), strings.Join(parts, ", "))
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// JSONLogger writes one JSON object per report (log/slog's JSON handler, message
// "generation"): time, level, msg, mode, generation, generations, best (a number, or the
// string "NaN"/"+Inf" when not finite), replaced, evaluations, tokens, elapsed_s, eta_s
// (negative when unknown), and workers (a list of WorkerStatus objects) when the evaluator
// reports them.
type JSONLogger struct {
	l *slog.Logger
}

// NewJSONLogger returns a logger writing to w.
func NewJSONLogger(w io.Writer) *JSONLogger {
	return &JSONLogger{l: slog.New(slog.NewJSONHandler(w, nil))}
}

// Observe logs p; pass it to WithObserver.
func (j *JSONLogger) Observe(p Progress) {
	best := slog.Float64("best", p.Best)
	if math.IsNaN(p.Best) || math.IsInf(p.Best, 0) {
		best = slog.String("best", fmt.Sprint(p.Best))
	}
	attrs := []slog.Attr{
		slog.String("mode", p.Mode),
		slog.Int("generation", p.Generation),
		slog.Int("generations", p.Generations),
		best,
		slog.Bool("replaced", p.Replaced),
		slog.Int64("evaluations", p.Evaluations),
		slog.Int64("tokens", p.Tokens),
		slog.Float64("elapsed_s", p.Elapsed.Seconds()),
		slog.Float64("eta_s", p.ETA.Seconds()),
	}
	if p.Short > 0 {
		attrs = append(attrs, slog.Int("short", p.Short))
	}
	if p.Workers != nil {
		attrs = append(attrs, slog.Any("workers", p.Workers))
	}
	j.l.LogAttrs(context.Background(), slog.LevelInfo, "generation", attrs...)
}
