package pipeline

import (
	"context"
	"io"
	"time"

	"github.com/evopress/evopress/eval/zeroshot"
	"github.com/evopress/evopress/internal/memcheck"
)

// ZeroShotRequest is a zero-shot evaluation of a model, optionally compressed by a profile, on
// multiple-choice task files (lm-evaluation-harness scoring).
type ZeroShotRequest struct {
	// ModelDir is the model ("" for the embedded one); ProfileFile and DBDir as in PPLRequest.
	ModelDir, ProfileFile, DBDir string
	// Tasks are JSON Lines task files; TaskType forces their format ("" detects it).
	Tasks    []string
	TaskType string
	// Limit keeps the first items of each task (0: all); Batch is requests per forward; MaxLen
	// truncates inputs from the left (0: the model's window).
	Limit, Batch, MaxLen int
	// AddBOS prefixes every request with the BOS token.
	AddBOS bool
	// Progress, when set, makes each task's progress callback.
	Progress func(task string) func(done, total int, el time.Duration)
	// Warn receives warnings about the profile (nil: discarded).
	Warn io.Writer
}

// ZeroShot evaluates every task of req in order. Every task file is read before the model is
// loaded, so that a bad file fails fast.
func ZeroShot(ctx context.Context, req ZeroShotRequest) ([]zeroshot.Result, *Loaded, error) {
	if len(req.Tasks) == 0 {
		return nil, nil, missing("Tasks", "a task file")
	}
	switch {
	case req.Limit < 0:
		return nil, nil, invalid("Limit", req.Limit, "must be ≥ 0 (0: all)")
	case req.Batch < 1:
		return nil, nil, invalid("Batch", req.Batch, "must be ≥ 1")
	case req.MaxLen < 0:
		return nil, nil, invalid("MaxLen", req.MaxLen, "must be ≥ 0 (0: the model's window)")
	}
	var format *zeroshot.Format
	if req.TaskType != "" {
		var err error
		if format, err = zeroshot.FormatByName(req.TaskType); err != nil {
			return nil, nil, err
		}
	}
	tasks := make([]*zeroshot.Task, len(req.Tasks))
	for i, path := range req.Tasks {
		t, err := zeroshot.Open(path, format, req.Limit)
		if err != nil {
			return nil, nil, err
		}
		if format != nil && (req.TaskType == "arc_easy" || req.TaskType == "arc_challenge") {
			t.Name = req.TaskType
		}
		tasks[i] = t
	}
	if err := checkMemory(nil, req.ModelDir, func(s *memcheck.Shape) *memcheck.Estimate { return zeroShotEstimate(s, req, tasks) }); err != nil {
		return nil, nil, err
	}
	lm, err := LoadModel(req.ModelDir)
	if err != nil {
		return nil, nil, err
	}
	if n := lm.Model.Config.ContextLength(); req.MaxLen > n {
		return nil, nil, invalid("MaxLen", req.MaxLen, "longer than the model's context of %d positions (%s)", n, lm.Model.Config.DescribeContext())
	}
	m, err := ApplyProfileFile(lm, req.ProfileFile, req.DBDir, req.Warn)
	if err != nil {
		return nil, nil, err
	}
	opt := zeroshot.Options{Batch: req.Batch, MaxLen: req.MaxLen}
	// The BOS token: the tokenizer's own prefix, else config.json's bos_token_id, else EOS (lm-eval's
	// prefix_token_id). It conditions requests with an empty context, and all under AddBOS.
	if prefix, _ := lm.Tokenizer.SpecialIDs(); len(prefix) > 0 {
		opt.Empty = prefix
	} else if ids := m.Config.BOSTokenID; len(ids) > 0 {
		opt.Empty = ids[:1]
	} else if ids := m.Config.EOSTokenID; len(ids) > 0 && !req.AddBOS {
		opt.Empty = ids[:1]
	}
	if req.AddBOS {
		if len(opt.Empty) == 0 {
			return nil, nil, invalid("AddBOS", true, "%s has no BOS token", lm.Name)
		}
		opt.Prefix = opt.Empty
	}
	results := make([]zeroshot.Result, 0, len(tasks))
	for _, t := range tasks {
		if req.Progress != nil {
			opt.Progress = req.Progress(t.Name)
		}
		res, _, err := zeroshot.Evaluate(ctx, m, lm.Tokenizer, t, opt)
		if err != nil {
			return nil, nil, err
		}
		results = append(results, res)
	}
	return results, lm, nil
}
