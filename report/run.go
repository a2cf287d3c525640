package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
)

// The files of a run folder (docs/design.md, "Run folder": the run folder holds the checkpoint, the JSON log and
// the report).
const (
	ResultFile     = "result.json"
	CheckpointFile = "checkpoint.json"
	LogFile        = "log.jsonl"
)

// maxRunFileBytes bounds what LoadRun reads of one run-folder file.
const maxRunFileBytes = 64 << 20

// Run is one search (or baseline) run to report on. Only Profile or History need be set; the
// report shows what it is given.
type Run struct {
	// Name is the run's short name, used in headings and image file names (default: the mode).
	Name string
	// Dir and ProfilePath are where the run was read from (empty when built in memory).
	Dir, ProfilePath string
	// Profile is the run's final (or current) profile.
	Profile *profile.Profile
	// History holds one record per generation, generation 0 (the initialisation) first.
	History []search.Record
	// Config is the engine's configuration, when a checkpoint recorded it.
	Config *search.Config
	// Command is the exact command line that made the run, when recorded (the profile's
	// search.command field).
	Command string
	// Finished tells whether the run completed (its folder has result.json).
	Finished bool
	// HistorySource names the file the history came from.
	HistorySource string
	// Notes are extra sentences shown under the run's heading.
	Notes []string
}

// DefaultProfilePath is the profile a run folder belongs to: RUN_DIR with ".run" replaced by
// ".json" (the search command's default), or "" when dir does not end in ".run".
func DefaultProfilePath(dir string) string {
	d := filepath.Clean(dir)
	if !strings.HasSuffix(d, ".run") || d == ".run" {
		return ""
	}
	return strings.TrimSuffix(d, ".run") + ".json"
}

// LoadRun reads a run folder: its result.json (a finished run), else its checkpoint.json (a run
// in progress or interrupted), else its log.jsonl, and the profile at profilePath ("" for
// DefaultProfilePath; a missing default profile is replaced by the levels the run folder holds).
// Malformed files give errors naming the file.
func LoadRun(dir, profilePath string) (*Run, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("report: run folder: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("report: run folder %s: not a directory", dir)
	}
	r := &Run{Dir: dir}
	explicit := profilePath != ""
	if !explicit {
		profilePath = DefaultProfilePath(dir)
	}
	if profilePath != "" {
		p, err := profile.Read(profilePath, "")
		switch {
		case err == nil:
			r.Profile, r.ProfilePath = p, profilePath
		case !explicit && errors.Is(err, fs.ErrNotExist):
		default:
			return nil, fmt.Errorf("report: profile: %w", err)
		}
	}

	var mode string
	var units []string
	var levels []int
	res, err := readRunFile(dir, ResultFile, ParseResult)
	if err != nil {
		return nil, err
	}
	ck, err := loadCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	switch {
	case res != nil:
		r.Finished, r.HistorySource = true, ResultFile
		r.History = res.History
		mode, units, levels = res.Mode, res.Units, res.Profile
	case ck != nil:
		r.HistorySource = CheckpointFile
		r.History = ck.History
		mode, units, levels = ck.Mode, ck.Units, ck.Parent
		r.Notes = append(r.Notes, fmt.Sprintf("The run is not finished (no %s): this report shows its checkpoint after generation %d of %d.",
			ResultFile, ck.Generation, ck.Config.Generations))
	default:
		lg, err := readRunFile(dir, LogFile, ParseLog)
		if err != nil {
			return nil, err
		}
		if lg != nil {
			r.HistorySource = LogFile
			r.History = lg.History
			mode = lg.Mode
			r.Notes = append(r.Notes, fmt.Sprintf("The run folder has neither %s nor %s: the history comes from %s.", ResultFile, CheckpointFile, LogFile))
		}
	}
	if ck != nil {
		c := ck.Config
		r.Config = &c
	}
	if r.HistorySource == "" && r.Profile == nil {
		return nil, fmt.Errorf("report: %s: not a run folder (none of %s, %s, %s) and no profile (%s)",
			dir, ResultFile, CheckpointFile, LogFile, orNone(profilePath))
	}
	if r.Profile != nil && mode != "" && mode != r.Profile.Mode {
		return nil, fmt.Errorf("report: profile %s is a %s profile but run folder %s holds a %s run", r.ProfilePath, r.Profile.Mode, dir, mode)
	}
	if r.Profile == nil {
		if len(units) == 0 {
			return nil, fmt.Errorf("report: %s: no profile (%s) and no levels in the run folder", dir, orNone(profilePath))
		}
		p := profile.New(mode)
		for i, u := range units {
			p.Levels[u] = levels[i]
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("report: %s: levels of the run: %w", dir, err)
		}
		r.Profile = p
		r.Notes = append(r.Notes, fmt.Sprintf("No profile file (%s): the levels shown are the run's current parent; values such as actual sparsity or bits per weight are not known.", orNone(profilePath)))
	}
	r.Name = r.Profile.Mode
	r.Command = string(recordOf(r.Profile).Command)
	return r, nil
}

func orNone(s string) string {
	if s == "" {
		return "none given"
	}
	return s
}

// readRunFile reads and parses dir/name; a missing file gives (nil, nil).
func readRunFile[T any](dir, name string, parse func([]byte, string) (*T, error)) (*T, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRunFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("report: %s: %w", path, err)
	}
	if len(data) > maxRunFileBytes {
		return nil, fmt.Errorf("report: %s: larger than %d bytes", path, maxRunFileBytes)
	}
	v, err := parse(data, path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return v, nil
}

func loadCheckpoint(dir string) (*search.State, error) {
	path := filepath.Join(dir, CheckpointFile)
	st, err := search.LoadCheckpoint(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return st, nil
}

// RunResult is the content of a run folder's result.json (search.Result's JSON form).
type RunResult struct {
	Mode        string
	Units       []string
	Profile     []int
	Fitness     float64
	Generations int
	Evaluations int64
	Tokens      int64
	History     []search.Record
	Elapsed     time.Duration
}

// ParseResult decodes and checks a result.json (search.Result's JSON form); name is used in
// error messages.
func ParseResult(data []byte, name string) (*RunResult, error) {
	var f struct {
		Mode        *string         `json:"mode"`
		Units       []string        `json:"units"`
		Profile     []int           `json:"profile"`
		Fitness     json.RawMessage `json:"fitness"`
		Generations int             `json:"generations"`
		Evaluations int64           `json:"evaluations"`
		Tokens      int64           `json:"tokens"`
		History     []search.Record `json:"history"`
		ElapsedNS   int64           `json:"elapsed_ns"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%s: field %q: "+format, append([]any{name, field}, args...)...)
	}
	if f.Mode == nil || *f.Mode == "" {
		return nil, bad("mode", "missing")
	}
	if len(f.Units) == 0 {
		return nil, bad("units", "missing")
	}
	if len(f.Profile) != len(f.Units) {
		return nil, bad("profile", "%d levels for %d units", len(f.Profile), len(f.Units))
	}
	for i, u := range f.Units {
		if u == "" {
			return nil, bad("units", "unit %d has an empty name", i)
		}
	}
	fit, err := parseFloatField(f.Fitness)
	if err != nil {
		return nil, bad("fitness", "%v", err)
	}
	if f.Generations < 0 || f.Evaluations < 0 || f.Tokens < 0 || f.ElapsedNS < 0 {
		return nil, fmt.Errorf("%s: a negative counter (generations, evaluations, tokens or elapsed_ns)", name)
	}
	if err := checkHistory(f.History); err != nil {
		return nil, bad("history", "%v", err)
	}
	return &RunResult{Mode: *f.Mode, Units: f.Units, Profile: f.Profile, Fitness: fit, Generations: f.Generations,
		Evaluations: f.Evaluations, Tokens: f.Tokens, History: f.History, Elapsed: time.Duration(f.ElapsedNS)}, nil
}

// checkHistory checks that records are in generation order with non-negative counters.
func checkHistory(h []search.Record) error {
	for i, r := range h {
		if r.Generation < 0 || r.Evaluations < 0 || r.Tokens < 0 || r.Elapsed < 0 {
			return fmt.Errorf("record %d has a negative field", i)
		}
		if i > 0 && r.Generation <= h[i-1].Generation {
			return fmt.Errorf("record %d (generation %d) does not follow generation %d", i, r.Generation, h[i-1].Generation)
		}
	}
	return nil
}

// parseFloatField reads a number, null (NaN), absent (NaN), or one of the strings "NaN", "+Inf",
// "Inf", "-Inf".
func parseFloatField(raw json.RawMessage) (float64, error) {
	s := string(bytes.TrimSpace(raw))
	switch s {
	case "", "null":
		return math.NaN(), nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, err
		}
		switch str {
		case "NaN":
			return math.NaN(), nil
		case "+Inf", "Inf":
			return math.Inf(1), nil
		case "-Inf":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("%q is not a number", str)
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, fmt.Errorf("%s is not a number", s)
	}
	return v, nil
}

// RunLog is what a run folder's log.jsonl tells: the mode and one record per generation (the
// last line for a generation wins, as a resumed run logs the generations after its checkpoint
// again).
type RunLog struct {
	Mode        string
	Generations int
	History     []search.Record
}

// ParseLog decodes a log.jsonl written by search.JSONLogger: one JSON object per line; lines
// whose msg is not "generation" and blank lines are skipped. name is used in error messages.
func ParseLog(data []byte, name string) (*RunLog, error) {
	type line struct {
		Msg         string          `json:"msg"`
		Mode        string          `json:"mode"`
		Generation  *int            `json:"generation"`
		Generations int             `json:"generations"`
		Best        json.RawMessage `json:"best"`
		Replaced    bool            `json:"replaced"`
		Evaluations int64           `json:"evaluations"`
		Tokens      int64           `json:"tokens"`
		ElapsedS    float64         `json:"elapsed_s"`
	}
	out := &RunLog{}
	byGen := map[int]search.Record{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		s := bytes.TrimSpace(sc.Bytes())
		if len(s) == 0 {
			continue
		}
		var l line
		if err := json.Unmarshal(s, &l); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		if l.Msg != "generation" {
			continue
		}
		if l.Generation == nil {
			return nil, fmt.Errorf("%s:%d: missing field \"generation\"", name, n)
		}
		best, err := parseFloatField(l.Best)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: field \"best\": %v", name, n, err)
		}
		if *l.Generation < 0 || l.Evaluations < 0 || l.Tokens < 0 || l.ElapsedS < 0 || math.IsNaN(l.ElapsedS) || l.ElapsedS > 1e12 {
			return nil, fmt.Errorf("%s:%d: a negative or impossible counter", name, n)
		}
		if out.Mode != "" && l.Mode != "" && l.Mode != out.Mode {
			return nil, fmt.Errorf("%s:%d: mode %q, but earlier lines say %q", name, n, l.Mode, out.Mode)
		}
		if l.Mode != "" {
			out.Mode = l.Mode
		}
		out.Generations = max(out.Generations, l.Generations)
		byGen[*l.Generation] = search.Record{Generation: *l.Generation, Best: best, Replaced: l.Replaced,
			Evaluations: l.Evaluations, Tokens: l.Tokens, Elapsed: time.Duration(l.ElapsedS * float64(time.Second))}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %v", name, n+1, err)
	}
	if len(byGen) == 0 {
		return nil, fmt.Errorf("%s: no generation records", name)
	}
	for _, r := range byGen {
		out.History = append(out.History, r)
	}
	sort.Slice(out.History, func(i, j int) bool { return out.History[i].Generation < out.History[j].Generation })
	return out, nil
}

// recordOf returns a profile's search record (an empty one when it has none).
func recordOf(p *profile.Profile) *profile.Record {
	if p == nil || p.Search == nil {
		return &profile.Record{}
	}
	return p.Search
}

// recordedSeed is the recorded seed, "" when the profile records no search.
func recordedSeed(p *profile.Profile) string {
	if p == nil || p.Search == nil {
		return ""
	}
	return strconv.FormatUint(p.Search.Seed, 10)
}

// recordedTopK is the recorded KL top-k when a fitness kind is recorded ("" otherwise).
func recordedTopK(rec *profile.Record) string {
	if rec.Fitness == "" {
		return ""
	}
	return strconv.Itoa(rec.KLTopK)
}

// itoaPos formats a positive count; "" for 0 (not recorded).
func itoaPos(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}
