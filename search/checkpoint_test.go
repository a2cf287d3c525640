package search_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
)

// sampleState runs a short search and returns its last state.
func sampleState(t testing.TB) *search.State {
	t.Helper()
	mode, err := drop.NewK(6, 2, drop.Options{Keep: []string{"model.layers.0"}})
	if err != nil {
		t.Fatal(err)
	}
	var last *search.State
	cfg := search.Config{Offspring: 4, Stages: []search.Stage{{2, 64}, {1, 128}}, Generations: 3, Seed: 1<<63 + 5, SeqLen: 64, PoolChunks: 8, InitTokens: 64}
	_, err = search.Run(context.Background(), cfg, mode, fnEval{f: linearFitness(dropCosts(6, 1), 1)},
		search.WithCheckpointer(search.CheckpointerFunc(func(st *search.State) error { last = st; return nil })))
	if err != nil {
		t.Fatal(err)
	}
	return last
}

func TestCheckpointRoundTrip(t *testing.T) {
	st := sampleState(t)
	st.History[0].Best = math.NaN()
	st.History[1].Best = math.Inf(1)
	st.History[2].Best = math.Inf(-1)
	st.Elapsed = 1234567 * time.Microsecond
	data, err := search.EncodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatal("checkpoint is not valid JSON")
	}
	got, err := search.DecodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != st.Mode || got.Signature != st.Signature || strings.Join(got.Units, ",") != strings.Join(st.Units, ",") ||
		got.Generation != st.Generation || !got.Parent.Equal(st.Parent) || !sameFloat(got.ParentFitness, st.ParentFitness) ||
		!bytes.Equal(got.RNG, st.RNG) || got.Evaluations != st.Evaluations || got.Tokens != st.Tokens ||
		got.Elapsed != st.Elapsed || got.Config.Seed != st.Config.Seed || search.FormatStages(got.Config.Stages) != search.FormatStages(st.Config.Stages) {
		t.Fatalf("round trip changed the state:\n%+v\n%+v", got, st)
	}
	for i := range st.History {
		if got.History[i] != st.History[i] && !(math.IsNaN(got.History[i].Best) && math.IsNaN(st.History[i].Best)) {
			t.Fatalf("history %d: %+v, want %+v", i, got.History[i], st.History[i])
		}
	}
	again, _ := search.EncodeState(got)
	if !bytes.Equal(again, data) {
		t.Fatal("encode(decode(x)) != x")
	}
}

func TestDecodeStateErrors(t *testing.T) {
	data, err := search.EncodeState(sampleState(t))
	if err != nil {
		t.Fatal(err)
	}
	var base map[string]any
	if err := json.Unmarshal(data, &base); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field   string
		value   any
		wantErr string
	}{
		{"format", "evopress-search-checkpoint/v0", `field "format"`},
		{"mode", "", `field "mode": missing`},
		{"units", []string{}, `field "units": missing`},
		{"generation", -1, `field "generation"`},
		{"parent", []int{1}, `field "parent": 1 levels for 12 units`},
		{"rng", "AAAA", `field "rng"`},
		{"evaluations", -3, `field "evaluations"`},
		{"tokens", -3, `field "tokens"`},
		{"elapsed_ns", -3, `field "elapsed_ns"`},
		{"history", []any{}, `field "history": 0 records for 3 generations`},
		{"config", map[string]any{"offspring": 0}, `field "config"`},
		{"parent_fitness", "fast", "parent_fitness"},
		{"generation", "one", "generation"},
	} {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		m[tc.field] = tc.value
		bad, _ := json.Marshal(m)
		if _, err := search.DecodeState(bad); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s = %v: error %v, want containing %q", tc.field, tc.value, err, tc.wantErr)
		}
	}
	for _, in := range []string{"", "{", "null", "[]", `{"format": 3}`} {
		if _, err := search.DecodeState([]byte(in)); err == nil {
			t.Errorf("DecodeState(%q) accepted", in)
		}
	}
}

func TestFileCheckpointer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "ck.json")
	if _, err := search.LoadCheckpoint(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing checkpoint: %v, want fs.ErrNotExist", err)
	}
	st := sampleState(t)
	c := &search.FileCheckpointer{Path: path}
	if err := c.Save(st); err == nil {
		t.Fatal("save into a missing directory succeeded")
	}
	if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	for g := range 3 {
		st.Generation = g
		st.History = st.History[:g+1]
		if err := c.Save(st); err != nil {
			t.Fatal(err)
		}
		got, err := search.LoadCheckpoint(path)
		if err != nil || got.Generation != g {
			t.Fatalf("after save %d: %v, %v", g, got, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries (temporary files left?)", len(entries))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("checkpoint mode %v, want 0644", fi.Mode().Perm())
	}
	if err := (&search.FileCheckpointer{}).Save(st); err == nil {
		t.Fatal("empty path accepted")
	}
	if err := os.WriteFile(path, []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := search.LoadCheckpoint(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt checkpoint: %v", err)
	}
}

func FuzzDecodeState(f *testing.F) {
	data, err := search.EncodeState(sampleState(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"format":"evopress-search-checkpoint/v1"}`))
	f.Add([]byte(`{"parent_fitness":"+Inf","history":[{"best":null}]}`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := search.DecodeState(in)
		if err != nil {
			return
		}
		if len(st.Parent) != len(st.Units) || len(st.History) != st.Generation+1 || st.Config.Validate() != nil {
			t.Fatalf("accepted an inconsistent state: %+v", st)
		}
		out, err := search.EncodeState(st)
		if err != nil {
			t.Fatalf("re-encoding an accepted state: %v", err)
		}
		if _, err := search.DecodeState(out); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
	})
}

func TestResultAndRecordJSON(t *testing.T) {
	r := search.Result{Mode: "drop", Units: []string{"a", "b"}, Profile: search.Levels{1, 0}, Fitness: math.NaN(),
		History: []search.Record{{Generation: 0, Best: math.NaN()}, {Generation: 1, Best: 0.5, Replaced: true, Evaluations: 3, Tokens: 9, Elapsed: 7}}}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"mode":"drop","units":["a","b"],"profile":[1,0],"fitness":null,"generations":0,"evaluations":0,"tokens":0,` +
		`"history":[{"generation":0,"best":null,"replaced":false,"evaluations":0,"tokens":0,"elapsed_ns":0},` +
		`{"generation":1,"best":0.5,"replaced":true,"evaluations":3,"tokens":9,"elapsed_ns":7}],"elapsed_ns":0}`
	if string(data) != want {
		t.Fatalf("got  %s\nwant %s", data, want)
	}
	var recs []search.Record
	if err := json.Unmarshal([]byte(`[{"generation":0,"best":null},{"generation":1,"best":"+Inf","elapsed_ns":5}]`), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || !math.IsNaN(recs[0].Best) || !math.IsInf(recs[1].Best, 1) || recs[1].Elapsed != 5 {
		t.Fatalf("decoded %+v", recs)
	}
}
