package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/profile"
)

func TestRequestErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "p.json")
	drop := ModeSpec{Kind: profile.ModeDrop, Target: 0.25}
	tests := []struct {
		name  string
		run   func() error
		field string
	}{
		{"search without out", func() error { _, err := RunSearch(context.Background(), SearchRequest{Mode: drop}); return err }, "Out"},
		{"search seq-len 1", func() error {
			_, err := RunSearch(context.Background(), SearchRequest{Mode: drop, Out: out, Data: Data{SeqLen: 1}})
			return err
		}, "SeqLen"},
		{"search negative calib tokens", func() error {
			_, err := RunSearch(context.Background(), SearchRequest{Mode: drop, Out: out, Data: Data{CalibTokens: -1}})
			return err
		}, "CalibTokens"},
		{"search unknown fitness", func() error {
			_, err := RunSearch(context.Background(), SearchRequest{Mode: drop, Out: out, Fitness: "mse"})
			return err
		}, "Fitness"},
		{"search unknown mode", func() error {
			_, err := RunSearch(context.Background(), SearchRequest{Mode: ModeSpec{Kind: "prune"}, Out: out})
			return err
		}, "Mode.Kind"},
		{"search with no worker", func() error {
			_, err := RunSearch(context.Background(), SearchRequest{Mode: drop, Out: out, Data: Data{CalibTokens: 4096}, Cluster: &ClusterOptions{}})
			return err
		}, "Cluster.Workers"},
		{"baseline without method", func() error {
			_, err := RunBaseline(context.Background(), BaselineRequest{Mode: drop, Out: out})
			return err
		}, "Method"},
		{"baseline drop target 0", func() error {
			_, err := RunBaseline(context.Background(), BaselineRequest{Mode: ModeSpec{Kind: profile.ModeDrop, Target: 0.01}, Method: "shortgpt", Out: out})
			return err
		}, "Mode.Target"},
		{"quant baseline owl", func() error {
			_, err := RunBaseline(context.Background(), BaselineRequest{Mode: ModeSpec{Kind: profile.ModeQuant, Target: 3}, Method: "owl", Out: out})
			return err
		}, "Method"},
		{"perplexity max-seqs", func() error { _, err := Perplexity(context.Background(), PPLRequest{MaxSeqs: -1}); return err }, "MaxSeqs"},
		{"perplexity batch", func() error { _, err := Perplexity(context.Background(), PPLRequest{Batch: -1}); return err }, "Batch"},
		{"search negative cache", func() error {
			_, err := RunSearch(context.Background(), SearchRequest{Mode: drop, Out: out, Data: Data{CacheMB: -1}})
			return err
		}, "CacheMB"},
		{"search negative db cache", func() error {
			_, err := RunSearch(context.Background(), SearchRequest{Mode: drop, Out: out, Data: Data{DBCacheMB: -5}})
			return err
		}, "DBCacheMB"},
		{"baseline negative max profiles", func() error {
			_, err := RunBaseline(context.Background(), BaselineRequest{Mode: drop, Method: "exhaustive", MaxProfiles: -1, Out: out})
			return err
		}, "MaxProfiles"},
		{"baseline drop negative tokens", func() error {
			_, err := RunBaseline(context.Background(), BaselineRequest{Mode: drop, Method: "shortgpt", Tokens: -1, Out: out})
			return err
		}, "Tokens"},
		{"database negative batch", func() error {
			_, err := BuildDB(context.Background(), DBRequest{Build: db.BuildConfig{Out: out, Batch: -1}})
			return err
		}, "Build.Batch"},
		{"zero-shot batch 0", func() error {
			_, _, err := ZeroShot(context.Background(), ZeroShotRequest{Tasks: []string{"t.jsonl"}})
			return err
		}, "Batch"},
		{"zero-shot negative max-len", func() error {
			_, _, err := ZeroShot(context.Background(), ZeroShotRequest{Tasks: []string{"t.jsonl"}, Batch: 1, MaxLen: -1})
			return err
		}, "MaxLen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var re *RequestError
			if err := tc.run(); !errors.As(err, &re) || re.Field != tc.field {
				t.Errorf("error %v, want a RequestError for %s", err, tc.field)
			}
		})
	}
}

func TestNoDatabase(t *testing.T) {
	out := filepath.Join(t.TempDir(), "p.json")
	for _, kind := range []string{profile.ModeSparse, profile.ModeQuant} {
		_, err := RunSearch(context.Background(), SearchRequest{Mode: ModeSpec{Kind: kind, Target: 3}, Out: out})
		if !errors.Is(err, ErrNoDatabase) {
			t.Errorf("%s search without a database: %v, want ErrNoDatabase", kind, err)
		}
	}
	lm, err := LoadModel("")
	if err != nil {
		t.Fatal(err)
	}
	p := profile.New(profile.ModeQuant)
	p.Levels["model.layers.0.mlp.up_proj"] = 3
	if _, _, err := ApplyProfile(lm, p, ""); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("quant profile without a database: %v, want ErrNoDatabase", err)
	}
}

// TestDropProfileFromMode checks the one level vector → profile conversion against the mode's
// units, and the one profile → model conversion against the skipped sub-blocks.
func TestDropProfileRoundTrip(t *testing.T) {
	lm, err := LoadModel("")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMode(lm, nil, ModeSpec{Kind: profile.ModeDrop, Target: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	levels := make([]int, len(m.Units()))
	levels[0], levels[3], levels[len(levels)-1] = 1, 1, 1 // attn 0, mlp 1, mlp 11
	p := m.Profile(levels, "hand")
	if p.Model.Fingerprint != lm.Fingerprint || p.DB != nil || p.Values != nil || len(p.Levels) != 24 {
		t.Fatalf("profile %+v", p)
	}
	cm, warns, err := ApplyProfile(lm, p, "")
	if err != nil || len(warns) != 0 {
		t.Fatalf("ApplyProfile: %v %v", warns, err)
	}
	for i, b := range cm.Blocks {
		wantAttn, wantMLP := i == 0, i == 1 || i == 11
		if b.SkipAttn != wantAttn || b.SkipMLP != wantMLP {
			t.Errorf("block %d: skip attention %v, MLP %v; want %v, %v", i, b.SkipAttn, b.SkipMLP, wantAttn, wantMLP)
		}
	}
	if lm.Model.Blocks[0].SkipAttn {
		t.Error("ApplyProfile modified the dense model")
	}
	p.Model.Fingerprint = "other"
	if _, _, err := ApplyProfile(lm, p, ""); err == nil {
		t.Error("a profile made for another model was applied")
	}
}

// TestSeqLenBeyondContext: every request that cuts text into sequences refuses one longer than
// the model's context (max_position_embeddings 1024 for the embedded model), naming both values
// and the configuration file; the context itself is accepted.
func TestSeqLenBeyondContext(t *testing.T) {
	lm, err := LoadModel("")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "p.json")
	task := filepath.Join(dir, "piqa.jsonl")
	if err := os.WriteFile(task, []byte(`{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	drop := ModeSpec{Kind: profile.ModeDrop, Target: 0.25}
	long := Data{Model: lm, SeqLen: 1025}
	tests := []struct {
		name  string
		run   func() error
		field string
	}{
		{"search", func() error {
			_, err := RunSearch(context.Background(), SearchRequest{Data: long, Mode: drop, Out: out})
			return err
		}, "SeqLen"},
		{"baseline", func() error {
			_, err := RunBaseline(context.Background(), BaselineRequest{Data: long, Mode: drop, Method: "shortgpt", Out: out})
			return err
		}, "SeqLen"},
		{"database", func() error {
			_, err := BuildDB(context.Background(), DBRequest{Data: long, Build: db.BuildConfig{Out: filepath.Join(dir, "db")}})
			return err
		}, "SeqLen"},
		{"perplexity", func() error {
			_, err := Perplexity(context.Background(), PPLRequest{Model: lm, SeqLen: 1025})
			return err
		}, "SeqLen"},
		{"calibration (workers)", func() error {
			text, err := ReadText("", defaultCalib, rawFormat)
			if err != nil {
				return err
			}
			_, err = NewCalibration(lm, text, 1025, 0)
			return err
		}, "SeqLen"},
		{"zero-shot", func() error {
			_, _, err := ZeroShot(context.Background(), ZeroShotRequest{Tasks: []string{task}, Batch: 1, MaxLen: 1025})
			return err
		}, "MaxLen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			var re *RequestError
			if !errors.As(err, &re) || re.Field != tc.field {
				t.Fatalf("error %v, want a RequestError for %s", err, tc.field)
			}
			for _, w := range []string{"1025", "context of 1024 positions", "max_position_embeddings 1024 in", "config.json"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := Perplexity(context.Background(), PPLRequest{Model: lm, SeqLen: 1024, MaxSeqs: 1, Format: rawFormat}); err != nil {
		t.Errorf("perplexity at the full context: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "db")); !os.IsNotExist(err) {
		t.Errorf("the refused database build left %s: %v", filepath.Join(dir, "db"), err)
	}
}
