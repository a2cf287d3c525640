// Package assets embeds the default model and text, so that a fresh clone runs the demo with
// nothing else: llama-pd-11m (CC0, trained for this project on public-domain English) and the
// public-domain calibration and evaluation text it was not evaluated on.
package assets

import (
	"embed"
	"io/fs"
)

//go:embed llama-pd-11m/config.json llama-pd-11m/generation_config.json llama-pd-11m/model.safetensors llama-pd-11m/tokenizer.json llama-pd-11m/tokenizer_config.json pd-english/calib.txt pd-english/eval.txt
var files embed.FS

// Paths inside FS.
const (
	ModelDir  = "llama-pd-11m"
	CalibText = "pd-english/calib.txt"
	EvalText  = "pd-english/eval.txt"
	// ModelName is how the embedded model is named in outputs.
	ModelName = "embedded:llama-pd-11m"
)

// FS returns the embedded files.
func FS() fs.FS { return files }

// ReadFile returns an embedded file's contents.
func ReadFile(name string) ([]byte, error) { return files.ReadFile(name) }
