// Package search is the mode-agnostic evolutionary engine of EvoPress (docs/design.md, "The method"):
// a (1+λ) evolution strategy with level-switch mutation and multi-step selection. One loop
// serves every mode; a Mode (search/drop, search/sparse, search/quant) supplies the units,
// the legal profiles and the level switch, and an Evaluator scores candidates (the KL
// divergence of each candidate model to the dense model on calibration chunks).
//
// # The loop
//
// Initialisation: Mode.Initial proposes profiles. One profile becomes the parent unscored; with
// several, duplicates are dropped and the rest are scored on one batch of Config.InitTokens
// tokens (Batch.Stage 0, Batch.Generation 0, parent nil) and the best becomes the parent.
//
// Each generation g = 1..G:
//
//  1. Offspring: λ = Config.Offspring distinct profiles, none equal to the parent. Each starts
//     as a copy of the parent and gets r = min(U{1..3}, U{1..3}) calls of Mode.Mutate
//     (r = 1, 2, 3 with probability 5/9, 3/9, 1/9); it is kept only if Mode.Legal and
//     Mode.AcceptOffspring accept it and it is new. After Config.MaxAttempts attempts without λ
//     offspring, the generation goes on with those it has (Record.Short counts the missing
//     ones): near the edge of the budget, e.g. with most units at their lowest legal level, the
//     parent's neighbourhood can be smaller than λ. With none, the parent stays unscored.
//  2. Selection, for each stage s of Config.Stages: a fresh batch of max(1, Tokens/SeqLen)
//     chunks is drawn without repetition from the Config.PoolChunks calibration chunks; every
//     remaining candidate is scored on that same batch with one Evaluator.Evaluate call, and
//     the Survivors lowest are kept. At the last stage only, the parent joins the candidates
//     (elitism); it is placed first.
//  3. The single survivor of the last stage becomes the parent, with its fitness.
//
// Ranking is a stable sort by fitness (NaN counts as +Inf): among equal fitness values the
// lower candidate index wins. Offspring keep the order they were made in, and at the last
// stage the parent is candidate 0, so the parent wins every tie and is only replaced by a
// strictly better offspring.
//
// # Determinism
//
// All randomness (initial profiles, mutations, r, batches) comes from one math/rand/v2 PCG
// stream seeded with Config.Seed, drawn on the search goroutine in a fixed order. Evaluators
// get no random source and their results do not feed the stream, so the same seed and a
// deterministic evaluator give the same run whatever GOMAXPROCS or the evaluator's internal
// parallelism.
//
// # Checkpoints and resumption
//
// After initialisation and after every generation the engine hands a State (parent, fitness,
// generation, the PCG state, counters, history, the configuration, the mode's name, units and
// signature, and the Objective given with WithObjective) to the Checkpointer given with WithCheckpointer; FileCheckpointer writes it as JSON
// atomically and LoadCheckpoint reads it back. Run with WithResume(state) continues the run (a
// state of another objective, mode or configuration is refused); the
// state is only ever taken between generations, so a run interrupted in generation g (context
// cancelled, e.g. Ctrl-C) and resumed from the checkpoint of generation g−1 ends with exactly
// the profile of an uninterrupted run. A resumed run may ask for more generations.
//
// # Progress
//
// Observers (WithObserver) receive a Progress after every checkpoint; ProgressPrinter prints a
// human line (rewritten in place on a terminal) and JSONLogger one JSON object per line.
//
// # Settings
//
// Each mode package has Defaults (the reference's λ, stages and generations); ResolveSettings
// applies a preset ("paper" = the defaults, "fast" = λ 16 and stages "4:512,1:8192") and then
// the flags a user set explicitly.
package search
