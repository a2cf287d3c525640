package search

import (
	"fmt"
	"strconv"
	"strings"
)

// Stage is one step of multi-step selection: every remaining candidate is scored on a fresh batch
// of Tokens calibration tokens, and the Survivors lowest-fitness candidates go on.
type Stage struct {
	Survivors int `json:"survivors"`
	Tokens    int `json:"tokens"`
}

// String formats s as "SURVIVORS:TOKENS".
func (s Stage) String() string { return strconv.Itoa(s.Survivors) + ":" + strconv.Itoa(s.Tokens) }

// FormatStages formats stages the way ParseStages reads them, e.g. "2:2048,1:32768".
func FormatStages(stages []Stage) string {
	parts := make([]string, len(stages))
	for i, s := range stages {
		parts[i] = s.String()
	}
	return strings.Join(parts, ",")
}

// ParseStages reads a selection schedule "S1:T1,S2:T2,..." (survivors:tokens per stage, e.g.
// "2:2048,1:32768"). Spaces around items and numbers are ignored. Survivors and tokens must be
// positive integers, survivors must not increase from one stage to the next, and the last stage
// must keep exactly 1 survivor (it picks the next parent).
func ParseStages(s string) ([]Stage, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("stages: empty; want SURVIVORS:TOKENS[,SURVIVORS:TOKENS...], e.g. \"2:2048,1:32768\"")
	}
	items := strings.Split(s, ",")
	stages := make([]Stage, 0, len(items))
	for i, item := range items {
		surv, tok, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("stages: item %d %q: want SURVIVORS:TOKENS", i+1, strings.TrimSpace(item))
		}
		sv, err := parsePositive(surv)
		if err != nil {
			return nil, fmt.Errorf("stages: item %d %q: survivors: %v", i+1, strings.TrimSpace(item), err)
		}
		tv, err := parsePositive(tok)
		if err != nil {
			return nil, fmt.Errorf("stages: item %d %q: tokens: %v", i+1, strings.TrimSpace(item), err)
		}
		stages = append(stages, Stage{Survivors: sv, Tokens: tv})
	}
	if err := ValidateStages(stages); err != nil {
		return nil, err
	}
	return stages, nil
}

func parsePositive(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("missing number")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a positive integer", s)
		}
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	if v <= 0 {
		return 0, fmt.Errorf("%q must be at least 1", s)
	}
	return int(v), nil
}

// ValidateStages checks a schedule built in code: at least one stage, positive survivors and
// tokens, survivors non-increasing, and exactly 1 survivor at the last stage.
func ValidateStages(stages []Stage) error {
	if len(stages) == 0 {
		return fmt.Errorf("stages: none given; want at least one SURVIVORS:TOKENS stage")
	}
	for i, st := range stages {
		if st.Survivors < 1 {
			return fmt.Errorf("stages: stage %d (%s): survivors must be at least 1", i+1, st)
		}
		if st.Tokens < 1 {
			return fmt.Errorf("stages: stage %d (%s): tokens must be at least 1", i+1, st)
		}
		if i > 0 && st.Survivors > stages[i-1].Survivors {
			return fmt.Errorf("stages: stage %d (%s) keeps more survivors than stage %d (%s); survivors must not increase",
				i+1, st, i, stages[i-1])
		}
	}
	if last := stages[len(stages)-1]; last.Survivors != 1 {
		return fmt.Errorf("stages: last stage (%s) must keep exactly 1 survivor, the next parent", last)
	}
	return nil
}
