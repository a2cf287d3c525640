package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/report"
	"github.com/evopress/evopress/search"
)

// write writes files (path → content; a content of "/" makes a directory).
func write(t *testing.T, files map[string]string) {
	t.Helper()
	for p, c := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if c == "/" {
			err = os.MkdirAll(p, 0o755)
		} else {
			err = os.WriteFile(p, []byte(c), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestOutputsCheckedFirst checks that unusable or existing outputs are refused before any work:
// the requests name a model that does not exist, so that any later check would report it
// instead.
func TestOutputsCheckedFirst(t *testing.T) {
	tmp := t.TempDir()
	prof := `{"format": "evopress-profile/v1", "mode": "drop", "levels": {}}`
	ck := `{"format": "` + search.CheckpointFormat + `"}`
	write(t, map[string]string{
		filepath.Join(tmp, "dir.json"):                         "/",
		filepath.Join(tmp, "afile"):                            "x",
		filepath.Join(tmp, "old.json"):                         prof,
		filepath.Join(tmp, "old.run", "checkpoint.json"):       ck,
		filepath.Join(tmp, "notes.json"):                       "my notes",
		filepath.Join(tmp, "user", "report.md"):                "my report",
		filepath.Join(tmp, "emptylog.run", "log.jsonl"):        "",
		filepath.Join(tmp, "scores.json"):                      `{"method": "random", "ranking": []}`,
		filepath.Join(tmp, "onlyrun.run", "checkpoint.json"):   ck,
		filepath.Join(tmp, "onlyrun.run", "result.json"):       "{}",
		filepath.Join(tmp, "notarun.run", "result.json"):       "{}",
		filepath.Join(tmp, "notarun.run", "checkpoint.json"):   "{}",
		filepath.Join(tmp, "prof-other.json"):                  `{"format": "other"}`,
		filepath.Join(tmp, "resume-foreign.run", "report.md"):  "mine",
		filepath.Join(tmp, "resume-foreign.json"):              prof,
		filepath.Join(tmp, "resumable.run", "checkpoint.json"): ck,
		filepath.Join(tmp, "png.json"):                         prof,
		filepath.Join(tmp, "png.run", "checkpoint.json"):       ck,
		filepath.Join(tmp, "png.run", "drop-profile.png"):      "my picture",
	})
	noModel := Data{ModelDir: filepath.Join(tmp, "no-model")}
	drop := ModeSpec{Kind: profile.ModeDrop, Target: 0.25}
	search := func(out, runDir string, resume, force bool) func() error {
		return func() error {
			_, err := RunSearch(context.Background(), SearchRequest{Data: noModel, Mode: drop, Out: out, RunDir: runDir, Resume: resume, Force: force})
			return err
		}
	}
	baseline := func(out, scores string, force bool) func() error {
		return func() error {
			_, err := RunBaseline(context.Background(), BaselineRequest{Data: noModel, Mode: drop, Method: "shortgpt", Out: out, ScoresOut: scores, Force: force})
			return err
		}
	}
	p := func(name string) string { return filepath.Join(tmp, name) }
	for _, tc := range []struct {
		name   string
		run    func() error
		fields []string // the request fields the error names
		want   []string // and what it says
	}{
		{"search into a directory", search(p("dir.json"), "", false, true), []string{"Out"}, []string{"dir.json", "is a directory"}},
		{"search under a file", search(p("afile/p.json"), "", false, false), []string{"Out"}, []string{"afile"}},
		{"run folder is a file", search(p("p.json"), p("afile"), false, false), []string{"RunDir"}, []string{"afile", "not a directory"}},
		{"run folder is the profile", search(p("x.json"), p("x.json"), false, false), []string{"RunDir", "Out"}, []string{"x.json"}},
		{"profile in the run folder", search(p("r/checkpoint.json"), p("r"), false, false), []string{"Out"}, []string{"checkpoint.json"}},
		{"earlier run", search(p("old.json"), "", false, false), []string{"Resume", "Force"}, []string{"old.json", "checkpoint.json", "earlier run"}},
		{"earlier run folder only", search(p("onlyrun.json"), "", false, false), []string{"Resume", "Force"}, []string{"result.json"}},
		{"not a profile", search(p("notes.json"), "", false, true), []string{"Out", "Force"}, []string{"notes.json", "not an evopress profile"}},
		{"not a profile, resume", search(p("notes.json"), "", true, false), []string{"Resume", "Force"}, []string{"notes.json"}},
		{"a user's folder as run folder", search(p("u.json"), p("user"), false, true), []string{"RunDir", "Force"}, []string{"report.md", "not a search's run folder"}},
		{"a run folder without an evopress checkpoint", search(p("notarun.json"), "", false, true), []string{"Out", "Force"}, []string{"notarun.run", "no evopress checkpoint.json"}},
		{"resume over a foreign report", search(p("resume-foreign.json"), "", true, true), []string{"Out", "Force"}, []string{"report.md"}},
		{"baseline into a directory", baseline(p("dir.json"), "", true), []string{"Out"}, []string{"is a directory"}},
		{"baseline over a profile", baseline(p("old.json"), "", false), []string{"Force"}, []string{"old.json exists"}},
		{"baseline over notes", baseline(p("notes.json"), "", true), []string{"Out", "Force"}, []string{"notes.json", "not an evopress profile"}},
		{"baseline over another format", baseline(p("prof-other.json"), "", true), []string{"Out", "Force"}, []string{"not an evopress profile"}},
		{"baseline scores over a profile", baseline(p("new.json"), p("old.json"), true), []string{"ScoresOut", "Force"}, []string{"old.json", "scores file"}},
		{"baseline scores over scores", baseline(p("new.json"), p("scores.json"), false), []string{"Force"}, []string{"scores.json exists"}},
		{"baseline scores are the profile", baseline(p("new.json"), p("new.json"), true), []string{"ScoresOut", "Out"}, []string{"new.json"}},
		{"demo cache is a file", func() error {
			_, err := RunDemo(context.Background(), DemoRequest{Out: p("demo"), Cache: p("afile")})
			return err
		}, []string{"Cache"}, []string{"afile"}},
		{"database into a folder of notes", func() error {
			_, err := BuildDB(context.Background(), DBRequest{Data: noModel, Build: db.BuildConfig{Out: p("user"), Force: true}})
			return err
		}, nil, []string{"user", "report.md", "holds no level database"}},
		{"database into a file", func() error {
			_, err := BuildDB(context.Background(), DBRequest{Data: noModel, Build: db.BuildConfig{Out: p("afile")}})
			return err
		}, nil, []string{"afile", "not a directory"}},
		{"a foreign image in the run folder", search(p("png.json"), "", false, true), []string{"Out"}, []string{"drop-profile.png", "not a report file evopress wrote"}},
		{"demo into a file", func() error { _, err := RunDemo(context.Background(), DemoRequest{Out: p("afile")}); return err }, []string{"Out"}, []string{"afile"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			var fields []string
			var re *RequestError
			var fe *FieldsError
			var oe *report.OutputError
			switch {
			case errors.As(err, &re):
				fields = []string{re.Field}
				if strings.Contains(re.Reason, "{Out}") {
					fields = append(fields, "Out")
				}
			case errors.As(err, &fe):
				fields = fe.Fields
			case errors.As(err, &oe):
				fields = []string{"Out"}
			}
			if !slices.Equal(fields, tc.fields) {
				t.Errorf("error %v names %v, want %v", err, fields, tc.fields)
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not say %q", err, w)
				}
			}
		})
	}
	// Nothing was changed.
	if b, _ := os.ReadFile(p("notes.json")); string(b) != "my notes" {
		t.Error("notes.json changed")
	}
	if b, _ := os.ReadFile(p("user/report.md")); string(b) != "my report" {
		t.Error("report.md changed")
	}
	// What may be written gets past the checks: to the missing model.
	for name, run := range map[string]func() error{
		"a new profile":               search(p("new.json"), "", false, false),
		"an empty log":                search(p("emptylog.json"), "", false, false),
		"resume a checkpoint":         search(p("resumable.json"), "", true, false),
		"force over an earlier run":   search(p("old.json"), "", false, true),
		"force over a run folder":     search(p("onlyrun.json"), "", false, true),
		"resume without a checkpoint": search(p("new2.json"), "", true, false),
		"baseline with force":         baseline(p("old.json"), p("scores.json"), true),
	} {
		if err := run(); err == nil || !strings.Contains(err.Error(), "no-model") {
			t.Errorf("%s: %v, want the missing model", name, err)
		}
	}
}

// TestResumeRefusesAnotherObjective runs a short search, then resumes it with each item of the
// objective changed: each is refused naming the item with its old and new values, and the
// checkpoint is left as it was. The unchanged objective resumes, and the profile records it.
func TestResumeRefusesAnotherObjective(t *testing.T) {
	tmp := t.TempDir()
	calib := filepath.Join(tmp, "calib.txt")
	body, err := os.ReadFile("../assets/pd-english/calib.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(calib, body, 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(tmp, "other.txt")
	if err := os.WriteFile(other, append([]byte("Another beginning. "), body...), 0o644); err != nil {
		t.Fatal(err)
	}
	lm, err := LoadModel("")
	if err != nil {
		t.Fatal(err)
	}
	gens, offspring, init := 1, 4, 64
	base := SearchRequest{Data: Data{Model: lm, CalibFile: calib, SeqLen: 64, CalibTokens: 4096},
		Mode: ModeSpec{Kind: profile.ModeDrop, Target: 0.25}, Preset: search.PresetFast, Seed: 5,
		Settings: search.Overrides{Generations: &gens, Offspring: &offspring, InitTokens: &init,
			Stages: []search.Stage{{Survivors: 2, Tokens: 64}, {Survivors: 1, Tokens: 128}}},
		Out: filepath.Join(tmp, "p.json")}
	if _, err := RunSearch(context.Background(), base); err != nil {
		t.Fatal(err)
	}
	ckPath := filepath.Join(tmp, "p.run", "checkpoint.json")
	ck, err := os.ReadFile(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := search.DecodeState(ck)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		item     string
		change   func(r *SearchRequest)
		old, new string
	}{
		{"calib_sha256", func(r *SearchRequest) { r.CalibFile = other }, st.Objective["calib_sha256"], ""},
		{"fitness", func(r *SearchRequest) { r.Fitness = "ppl" }, "kl", "ppl"},
		{"kl_topk", func(r *SearchRequest) { r.KLTopK = 5 }, "0", "5"},
		{"calib_tokens", func(r *SearchRequest) { r.CalibTokens = 4100 }, "4096", "4100"},
		{"seq_len", func(r *SearchRequest) { r.SeqLen = 32 }, "64", "32"},
		{"sub_batch", func(r *SearchRequest) { r.SubBatch = 8 }, "16", "8"},
	} {
		t.Run(tc.item, func(t *testing.T) {
			req := base
			req.Resume = true
			tc.change(&req)
			_, err := RunSearch(context.Background(), req)
			var oe *ObjectiveError
			if !errors.As(err, &oe) {
				t.Fatalf("resume with another %s: %v, want an ObjectiveError", tc.item, err)
			}
			var got *search.ObjectiveChange
			for i := range oe.Changes {
				if oe.Changes[i].Item == tc.item {
					got = &oe.Changes[i]
				}
			}
			if got == nil || got.Old != tc.old || (tc.new != "" && got.New != tc.new) || got.New == got.Old || oe.Checkpoint != ckPath {
				t.Errorf("changes %+v (checkpoint %s), want %s %s → %s", oe.Changes, oe.Checkpoint, tc.item, tc.old, tc.new)
			}
			msg := err.Error()
			if !strings.Contains(msg, ckPath) || !strings.Contains(msg, got.Old) || !strings.Contains(msg, got.New) {
				t.Errorf("message %q does not name the checkpoint and both values", msg)
			}
			if now, _ := os.ReadFile(ckPath); !bytes.Equal(now, ck) {
				t.Error("the refused resume changed the checkpoint")
			}
		})
	}

	// A checkpoint without an objective (an older version's) is refused as unverifiable.
	var raw map[string]any
	if err := json.Unmarshal(ck, &raw); err != nil {
		t.Fatal(err)
	}
	delete(raw, "objective")
	old, _ := json.Marshal(raw)
	if err := os.WriteFile(ckPath, old, 0o644); err != nil {
		t.Fatal(err)
	}
	req := base
	req.Resume = true
	_, err = RunSearch(context.Background(), req)
	var oe *ObjectiveError
	if !errors.As(err, &oe) || !oe.Unrecorded || !strings.Contains(err.Error(), "older version") {
		t.Errorf("resume of a checkpoint without objective: %v", err)
	}
	// A checkpoint whose objective lacks an item (this version's format before sub_batch was
	// recorded) is refused naming the item.
	delete(st.Objective, "sub_batch")
	raw["objective"] = st.Objective
	noSub, _ := json.Marshal(raw)
	if err := os.WriteFile(ckPath, noSub, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = RunSearch(context.Background(), req); !errors.As(err, &oe) || oe.Unrecorded ||
		!strings.Contains(err.Error(), "SubBatch (sequences per forward) (not recorded) → 16") {
		t.Errorf("resume of a checkpoint without sub_batch: %v", err)
	}
	if err := os.WriteFile(ckPath, ck, 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err = search.DecodeState(ck); err != nil {
		t.Fatal(err)
	}

	// The same objective resumes (for one more generation), and the profile records it.
	gens2 := 2
	req.Settings.Generations = &gens2
	res, err := RunSearch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	rec := res.Profile.Search
	if res.Resumed != 1 || rec.CalibSHA256 != st.Objective["calib_sha256"] || rec.CalibTokens != 4096 || rec.Kernels == "" ||
		rec.Fitness != "kl" || rec.SeqLen != 64 || rec.CalibChunks != 64 {
		t.Errorf("resumed %d, record %+v", res.Resumed, rec)
	}
	st2, err := search.LoadCheckpoint(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Objective.Changes(st2.Objective)) != 0 || st2.Generation != 2 {
		t.Errorf("the resumed checkpoint's objective %v, want %v", st2.Objective, st.Objective)
	}
}

// TestRunFolderLocked: while a search runs, a second search into its run folder — a resume, or
// a fresh start with Force — is refused naming the folder and the process, and changes nothing
// there; once it has ended, the resume goes on.
func TestRunFolderLocked(t *testing.T) {
	lm, err := LoadModel("")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	gens, offspring, init := 2, 4, 64
	base := SearchRequest{Data: Data{Model: lm, SeqLen: 64, CalibTokens: 4096},
		Mode: ModeSpec{Kind: profile.ModeDrop, Target: 0.25}, Preset: search.PresetFast, Seed: 5,
		Settings: search.Overrides{Generations: &gens, Offspring: &offspring, InitTokens: &init,
			Stages: []search.Stage{{Survivors: 2, Tokens: 64}, {Survivors: 1, Tokens: 128}}},
		Out: filepath.Join(tmp, "p.json")}
	runDir := filepath.Join(tmp, "p.run")

	// The first search stops in its first generation's progress report until released.
	first := base
	started, release := make(chan struct{}), make(chan struct{})
	var once bool
	first.Observer = func(search.Progress) {
		if !once {
			once = true
			close(started)
			<-release
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := RunSearch(context.Background(), first)
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the first search ended early: %v", err)
	}
	before := snapshotDir(t, runDir)
	for _, tc := range []struct {
		name          string
		resume, force bool
	}{{"resume", true, false}, {"force", false, true}} {
		req := base
		req.Resume, req.Force = tc.resume, tc.force
		_, err := RunSearch(context.Background(), req)
		var busy *RunBusyError
		if !errors.As(err, &busy) || busy.RunDir != runDir || busy.PID != os.Getpid() ||
			!strings.Contains(err.Error(), "run folder "+runDir+" is in use by another process (pid ") {
			t.Errorf("%s while a search runs: %v, want a RunBusyError naming %s and pid %d", tc.name, err, runDir, os.Getpid())
		}
		if now := snapshotDir(t, runDir); !maps.Equal(now, before) {
			t.Errorf("%s while a search runs changed the run folder: %v, was %v", tc.name, now, before)
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	gens = 3
	resume := base
	resume.Resume = true
	res, err := RunSearch(context.Background(), resume)
	if err != nil || res.Resumed != 2 {
		t.Fatalf("resume after the search ended: %v (resumed from %v)", err, res)
	}
	if res.Profile.File != resume.Out {
		t.Errorf("the outcome's profile is not the file's (File %q, want %q)", res.Profile.File, resume.Out)
	}
}

// snapshotDir maps each file of dir to its size and modification time.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
	}
	return m
}
