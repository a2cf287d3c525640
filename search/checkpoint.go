package search

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/evopress/evopress/internal/atomicfile"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"time"
)

// CheckpointFormat identifies the checkpoint file format written by EncodeState.
const CheckpointFormat = "evopress-search-checkpoint/v1"

// maxCheckpointBytes bounds what LoadCheckpoint reads.
const maxCheckpointBytes = 64 << 20

// State is everything needed to continue a run exactly: handed to a Checkpointer after
// initialisation and after every generation, and given back to Run with WithResume.
type State struct {
	// Mode, Signature and Units identify the problem; resuming another one is refused.
	Mode      string
	Signature string
	Units     []string
	// Objective is what the fitness values mean (WithObjective); nil in checkpoints written
	// without one (and by versions before it was recorded).
	Objective Objective
	// Config echoes the run's configuration (defaults filled in).
	Config Config
	// Generation is the number of completed generations (0: initialisation done).
	Generation int
	// Parent is the current parent and ParentFitness its last fitness (NaN if never scored).
	Parent        Levels
	ParentFitness float64
	// RNG is the random stream's state (math/rand/v2 PCG MarshalBinary).
	RNG []byte
	// Evaluations and Tokens are the cumulative counters.
	Evaluations int64
	Tokens      int64
	// History holds one record per completed generation, generation 0 first.
	History []Record
	// Elapsed is the wall time spent so far, over all sessions.
	Elapsed time.Duration
}

// Checkpointer persists states. Save must not keep st (the engine reuses nothing of it, but
// callers should copy what they keep).
type Checkpointer interface {
	Save(st *State) error
}

// CheckpointerFunc adapts a function to the Checkpointer interface.
type CheckpointerFunc func(st *State) error

// Save calls f.
func (f CheckpointerFunc) Save(st *State) error { return f(st) }

// FileCheckpointer saves each state as JSON to Path, atomically: a reader (or a crash) sees
// either the previous complete checkpoint or the new one, never a partial file.
type FileCheckpointer struct {
	Path string
}

// Save writes st to c.Path atomically (see WriteFileAtomic).
func (c *FileCheckpointer) Save(st *State) error {
	if c.Path == "" {
		return errors.New("search: checkpoint path is empty")
	}
	data, err := EncodeState(st)
	if err != nil {
		return err
	}
	return WriteFileAtomic(c.Path, data, 0o644)
}

// WriteFileAtomic replaces path with data: it writes a temporary file in the same directory,
// syncs it, renames it over path and syncs the directory, so the file is either the old or the
// new content even across a crash.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := atomicfile.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("search: %w", err)
	}
	return nil
}

// LoadCheckpoint reads a checkpoint written by FileCheckpointer. A missing file gives an error
// satisfying errors.Is(err, fs.ErrNotExist).
func LoadCheckpoint(path string) (*State, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("search: checkpoint: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCheckpointBytes+1))
	if err != nil {
		return nil, fmt.Errorf("search: checkpoint %s: %w", path, err)
	}
	if len(data) > maxCheckpointBytes {
		return nil, fmt.Errorf("search: checkpoint %s: larger than %d bytes", path, maxCheckpointBytes)
	}
	st, err := DecodeState(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return st, nil
}

// jsonFloat is a float64 that JSON can carry when not finite: NaN as null, ±Inf as the strings
// "+Inf" and "-Inf".
type jsonFloat float64

// MarshalJSON writes f as a number, null (NaN), "+Inf" or "-Inf".
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte("null"), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON reads what MarshalJSON writes (and "Inf").
func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	switch s := string(bytes.TrimSpace(b)); s {
	case "null":
		*f = jsonFloat(math.NaN())
		return nil
	case `"+Inf"`, `"Inf"`:
		*f = jsonFloat(math.Inf(1))
		return nil
	case `"-Inf"`:
		*f = jsonFloat(math.Inf(-1))
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		// An UnmarshalTypeError gets the field's name from encoding/json.
		return &json.UnmarshalTypeError{Value: "value " + string(b) + " (want a number, null, \"+Inf\" or \"-Inf\")",
			Type: reflect.TypeFor[float64]()}
	}
	*f = jsonFloat(v)
	return nil
}

type recordFile struct {
	Generation  int       `json:"generation"`
	Best        jsonFloat `json:"best"`
	Replaced    bool      `json:"replaced"`
	Evaluations int64     `json:"evaluations"`
	Tokens      int64     `json:"tokens"`
	ElapsedNS   int64     `json:"elapsed_ns"`
	Short       int       `json:"short,omitempty"`
}

type stateFile struct {
	Format        string       `json:"format"`
	Mode          string       `json:"mode"`
	Signature     string       `json:"signature,omitempty"`
	Units         []string     `json:"units"`
	Objective     Objective    `json:"objective,omitempty"`
	Config        Config       `json:"config"`
	Generation    int          `json:"generation"`
	Parent        []int        `json:"parent"`
	ParentFitness jsonFloat    `json:"parent_fitness"`
	RNG           []byte       `json:"rng"`
	Evaluations   int64        `json:"evaluations"`
	Tokens        int64        `json:"tokens"`
	ElapsedNS     int64        `json:"elapsed_ns"`
	History       []recordFile `json:"history"`
}

// EncodeState returns the checkpoint file content for st (indented JSON, format
// CheckpointFormat).
func EncodeState(st *State) ([]byte, error) {
	if st == nil {
		return nil, errors.New("search: checkpoint: state is nil")
	}
	f := stateFile{
		Format: CheckpointFormat, Mode: st.Mode, Signature: st.Signature, Units: st.Units,
		Objective: st.Objective, Config: st.Config, Generation: st.Generation, Parent: st.Parent,
		ParentFitness: jsonFloat(st.ParentFitness), RNG: st.RNG, Evaluations: st.Evaluations,
		Tokens: st.Tokens, ElapsedNS: int64(st.Elapsed),
	}
	f.History = make([]recordFile, len(st.History))
	for i, r := range st.History {
		f.History[i] = recordFile{Generation: r.Generation, Best: jsonFloat(r.Best), Replaced: r.Replaced,
			Evaluations: r.Evaluations, Tokens: r.Tokens, ElapsedNS: int64(r.Elapsed)}
	}
	data, err := json.MarshalIndent(&f, "", " ")
	if err != nil {
		return nil, fmt.Errorf("search: checkpoint: %w", err)
	}
	return append(data, '\n'), nil
}

// DecodeState parses and checks checkpoint file content. It checks the file's own consistency
// (format, field ranges, lengths, the random state); Run checks it against the mode and
// configuration when resuming.
func DecodeState(data []byte) (*State, error) {
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("search: checkpoint: %w", err)
	}
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("search: checkpoint: field %q: "+format, append([]any{field}, args...)...)
	}
	if f.Format != CheckpointFormat {
		return nil, bad("format", "%q, want %q", f.Format, CheckpointFormat)
	}
	if f.Mode == "" {
		return nil, bad("mode", "missing")
	}
	if len(f.Units) == 0 {
		return nil, bad("units", "missing")
	}
	if err := f.Config.Validate(); err != nil {
		return nil, bad("config", "%v", err)
	}
	if f.Generation < 0 {
		return nil, bad("generation", "%d is negative", f.Generation)
	}
	if len(f.Parent) != len(f.Units) {
		return nil, bad("parent", "%d levels for %d units", len(f.Parent), len(f.Units))
	}
	if err := new(rand.PCG).UnmarshalBinary(f.RNG); err != nil {
		return nil, bad("rng", "%v", err)
	}
	if f.Evaluations < 0 {
		return nil, bad("evaluations", "%d is negative", f.Evaluations)
	}
	if f.Tokens < 0 {
		return nil, bad("tokens", "%d is negative", f.Tokens)
	}
	if f.ElapsedNS < 0 {
		return nil, bad("elapsed_ns", "%d is negative", f.ElapsedNS)
	}
	if len(f.History) != f.Generation+1 {
		return nil, bad("history", "%d records for %d generations (want one per generation, generation 0 included)", len(f.History), f.Generation)
	}
	st := &State{
		Mode: f.Mode, Signature: f.Signature, Units: f.Units, Objective: f.Objective, Config: f.Config.withDefaults(),
		Generation: f.Generation, Parent: Levels(f.Parent), ParentFitness: float64(f.ParentFitness),
		RNG: f.RNG, Evaluations: f.Evaluations, Tokens: f.Tokens, Elapsed: time.Duration(f.ElapsedNS),
		History: make([]Record, len(f.History)),
	}
	for i, r := range f.History {
		if r.Generation != i {
			return nil, bad("history", "record %d is for generation %d", i, r.Generation)
		}
		if r.Evaluations < 0 || r.Tokens < 0 || r.ElapsedNS < 0 {
			return nil, bad("history", "record %d has a negative counter", i)
		}
		st.History[i] = Record{Generation: r.Generation, Best: float64(r.Best), Replaced: r.Replaced,
			Evaluations: r.Evaluations, Tokens: r.Tokens, Elapsed: time.Duration(r.ElapsedNS)}
	}
	return st, nil
}
