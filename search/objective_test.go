package search_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/evopress/evopress/search"
	"github.com/evopress/evopress/search/drop"
)

// TestResumeRefusesAnotherObjective checks that states carry the run's objective through the
// checkpoint file, and that a resume under another objective (or a state without one) is
// refused with every changed item.
func TestResumeRefusesAnotherObjective(t *testing.T) {
	mode, err := drop.NewK(6, 2, drop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := search.Config{Offspring: 4, Stages: []search.Stage{{2, 64}, {1, 128}}, Generations: 2, Seed: 9, SeqLen: 64, PoolChunks: 8, InitTokens: 64}
	obj := search.Objective{"calib_sha256": "aa", "fitness": "kl", "kl_topk": "0"}
	var last *search.State
	eval := fnEval{f: linearFitness(dropCosts(6, 1), 1)}
	if _, err := search.Run(context.Background(), cfg, mode, eval, search.WithObjective(obj),
		search.WithCheckpointer(search.CheckpointerFunc(func(st *search.State) error { last = st; return nil }))); err != nil {
		t.Fatal(err)
	}
	data, err := search.EncodeState(last)
	if err != nil {
		t.Fatal(err)
	}
	st, err := search.DecodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.Objective, obj) {
		t.Fatalf("objective after a round trip %v, want %v", st.Objective, obj)
	}
	cfg.Generations = 3
	for _, tc := range []struct {
		name       string
		run        search.Objective
		changes    []search.ObjectiveChange
		unrecorded bool
		stateObj   search.Objective
	}{
		{"another fitness and top-k", search.Objective{"calib_sha256": "aa", "fitness": "ppl", "kl_topk": "5"},
			[]search.ObjectiveChange{{"fitness", "kl", "ppl"}, {"kl_topk", "0", "5"}}, false, obj},
		{"an item more", search.Objective{"calib_sha256": "aa", "fitness": "kl", "kl_topk": "0", "kernels": "avx2"},
			[]search.ObjectiveChange{{"kernels", "", "avx2"}}, false, obj},
		{"no objective in the run", nil,
			[]search.ObjectiveChange{{"calib_sha256", "aa", ""}, {"fitness", "kl", ""}, {"kl_topk", "0", ""}}, false, obj},
		{"no objective in the state", obj, nil, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := *st
			s.Objective = tc.stateObj
			_, err := search.Run(context.Background(), cfg, mode, eval, search.WithObjective(tc.run), search.WithResume(&s))
			var oe *search.ObjectiveError
			if !errors.As(err, &oe) || oe.Unrecorded != tc.unrecorded || !reflect.DeepEqual(oe.Changes, tc.changes) {
				t.Errorf("err = %v, want changes %v (unrecorded %v)", err, tc.changes, tc.unrecorded)
			}
		})
	}
	if _, err := search.Run(context.Background(), cfg, mode, eval, search.WithObjective(obj), search.WithResume(st)); err != nil {
		t.Errorf("the same objective: %v", err)
	}
	s := *st
	s.Objective = nil
	if _, err := search.Run(context.Background(), cfg, mode, eval, search.WithResume(&s)); err != nil {
		t.Errorf("no objective on either side: %v", err)
	}
}
