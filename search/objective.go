package search

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Objective names what a run's fitness values mean, beyond the mode and the configuration: the
// model, the calibration text and pool, the fitness kind and the computation (for example
// "calib_sha256", "fitness", "kl_topk", "kernels"). The engine does not interpret it: it records
// it in every State (WithObjective) and refuses to resume a State recorded with another one,
// since fitness values of two objectives cannot be compared.
type Objective map[string]string

// ObjectiveChange is one item of an Objective that differs between a checkpoint and a run.
// Old or New is "" where that side does not record the item.
type ObjectiveChange struct {
	Item, Old, New string
}

// Changes lists the items whose values differ between o (the checkpoint's) and run (the
// run's), sorted by item; nil when they are the same.
func (o Objective) Changes(run Objective) []ObjectiveChange {
	var out []ObjectiveChange
	keys := slices.Sorted(maps.Keys(o))
	for k := range run {
		if _, ok := o[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if o[k] != run[k] {
			out = append(out, ObjectiveChange{Item: k, Old: o[k], New: run[k]})
		}
	}
	return out
}

// ObjectiveError refuses to resume a checkpoint recorded with another objective (Changes), or
// with none at all (Unrecorded: written by a version that did not record it, so that nothing
// says its fitness values mean what this run's would).
type ObjectiveError struct {
	Changes    []ObjectiveChange
	Unrecorded bool
}

func (e *ObjectiveError) Error() string {
	if e.Unrecorded {
		return "search: resume: the checkpoint records no objective (written by an older version): its calibration, fitness and computation cannot be checked"
	}
	parts := make([]string, len(e.Changes))
	for i, c := range e.Changes {
		parts[i] = fmt.Sprintf("%s %s → %s", c.Item, orUnset(c.Old), orUnset(c.New))
	}
	return "search: resume: the checkpoint was recorded with another objective: " + strings.Join(parts, "; ")
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// CheckObjective returns an *ObjectiveError when st cannot be resumed by a run with objective
// run: st records another objective, or run has one and st none. An empty run accepts only a
// state without an objective.
func (st *State) CheckObjective(run Objective) error {
	switch {
	case len(st.Objective) == 0 && len(run) == 0:
		return nil
	case len(st.Objective) == 0:
		return &ObjectiveError{Unrecorded: true}
	}
	if ch := st.Objective.Changes(run); len(ch) > 0 {
		return &ObjectiveError{Changes: ch}
	}
	return nil
}
