package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/evopress/evopress/pipeline"
)

type zeroshotOptions struct {
	model, profile, db string
	tasks              []string
	taskType           string
	limit, batch       int
	maxLen             int
	addBOS             bool
	json               bool
}

// newEvalCmd is `evopress eval`, the parent of the evaluation commands (zeroshot).
func newEvalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate a model (optionally compressed by a profile) on downstream tasks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newEvalZeroshotCmd())
	return cmd
}

func newEvalZeroshotCmd() *cobra.Command {
	var o zeroshotOptions
	cmd := &cobra.Command{
		Use:   "zeroshot --task FILE.jsonl [--task FILE2.jsonl ...]",
		Short: "Zero-shot multiple-choice accuracy (lm-evaluation-harness scoring)",
		Long: `zeroshot scores every choice of every item by the log-likelihood of its continuation given the
context, as EleutherAI's lm-evaluation-harness does, and reports acc (argmax of the raw sum) and
acc_norm (sum divided by the answer's length in characters), with standard errors.

Task files are JSON Lines, optionally compressed (.bz2, .gz). The task type is detected from the
fields of the first record, or given with --task-type:
  arc         question, choices{text,label}, answerKey   (ARC-Easy / ARC-Challenge)
  openbookqa  question_stem, choices{text,label}, answerKey
  piqa        goal, sol1, sol2, label
  hellaswag   activity_label, ctx (or ctx_a, ctx_b), endings, label
  winogrande  sentence (with "_"), option1, option2, answer   (partial evaluation)
  boolq       passage, question, label
No BOS token is added (lm-eval's default for Llama models; --add-bos adds it); inputs longer than
--max-len (default: the model's max_position_embeddings) are truncated from the left.

--task may be repeated. With --json, one task prints one JSON object
{"task", "n", "acc", "acc_norm", "acc_stderr", "acc_norm_stderr", ...}; several tasks print a JSON
array of such objects, in the order given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runZeroshot(cmd, o)
		},
	}
	f := cmd.Flags()
	profileFlags(f, &o.model, &o.profile, &o.db)
	f.StringArrayVar(&o.tasks, "task", nil, "task file (JSON Lines, .bz2/.gz allowed); repeatable")
	f.StringVar(&o.taskType, "task-type", "", "arc|arc_easy|arc_challenge|openbookqa|piqa|hellaswag|winogrande|boolq (default: from the fields)")
	f.IntVar(&o.limit, "limit", 0, "evaluate only the first N items of each task (0: all)")
	f.IntVar(&o.batch, "batch", 16, "sequences per forward batch")
	f.IntVar(&o.maxLen, "max-len", 0, "longest input in tokens; longer ones are cut from the left (default: max_position_embeddings)")
	atLeast(f, 0, "limit", "max-len")
	atLeast(f, 1, "batch")
	f.BoolVar(&o.addBOS, "add-bos", false, "put the tokenizer's BOS token before every request")
	f.BoolVar(&o.json, "json", false, "print JSON (one object, or an array for several tasks)")
	computeFlag(f)
	return cmd
}

func runZeroshot(cmd *cobra.Command, o zeroshotOptions) error {
	if len(o.tasks) == 0 {
		return fmt.Errorf("eval zeroshot: no --task file given")
	}
	req := pipeline.ZeroShotRequest{ModelDir: o.model, ProfileFile: o.profile, DBDir: o.db, Tasks: o.tasks, TaskType: o.taskType,
		Limit: o.limit, Batch: o.batch, MaxLen: o.maxLen, AddBOS: o.addBOS, Warn: cmd.ErrOrStderr()}
	if isTerminal(os.Stderr) {
		req.Progress = func(task string) func(done, total int, el time.Duration) {
			return progressLine(os.Stderr, task, "requests")
		}
	}
	results, lm, err := pipeline.ZeroShot(cmd.Context(), req)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if o.json {
		if len(results) == 1 {
			return printJSON(w, results[0])
		}
		return printJSON(w, results)
	}
	fmt.Fprintf(w, "model %s", lm.Name)
	if o.profile != "" {
		fmt.Fprintf(w, " with profile %s", o.profile)
	}
	fmt.Fprintf(w, "; zero-shot, lm-eval scoring, BOS %v\n\n", o.addBOS)
	fmt.Fprintf(w, "%-14s %6s  %-17s  %-17s  %8s  %s\n", "task", "n", "acc", "acc_norm", "time", "file")
	for _, r := range results {
		fmt.Fprintf(w, "%-14s %6d  %.4f ± %.4f   %.4f ± %.4f   %7.1fs  %s\n",
			r.Task, r.N, r.Acc, r.AccStderr, r.AccNorm, r.AccNormStderr, r.Seconds, r.File)
		if r.Truncated > 0 {
			fmt.Fprintf(w, "%-14s %d requests truncated from the left to fit the window", "", r.Truncated)
			if r.Partial > 0 {
				fmt.Fprintf(w, ", %d of them with only the continuation's last tokens scored", r.Partial)
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}
