// Package pipeline is evopress as a library: from a declarative request (model, calibration
// text, level database, mode and target, search settings, run folder) it builds the parts — the
// loaded model, the calibration pool, the dense teacher, the evaluator and the search mode — and
// runs a search (RunSearch), a baseline (RunBaseline) or the demo (RunDemo), writing the
// profile, the run folder (checkpoint, log.jsonl, result.json) and the report. Files stamped by
// older versions with the legacy model fingerprint are refused with advice, and re-stamped by
// Restamp.
//
// The command-line tool is a thin layer over this package: it parses flags into requests and
// prints outcomes, so every command, the demo and the cluster's workers run the same code.
// Invalid requests are reported as *RequestError naming the request field; the CLI maps fields
// to its flags. docs/design.md in the repository describes the data flow and the contracts.
package pipeline
