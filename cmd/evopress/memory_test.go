package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/internal/memcheck"
)

// A command refused for memory names its flags as what to lower (and the variable as the way
// around the check), before it reads the model's weights or writes anything.
func TestMemoryRefusalNamesFlags(t *testing.T) {
	model := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		data, err := assets.ReadFile(assets.ModelDir + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(model, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	t.Setenv(memcheck.EnvLimit, "1MiB")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"ppl", "--model", model}, []string{"ppl needs an estimated", "(lowered by --batch)", "Lower --batch,"}},
		{[]string{"search", "drop", "--model", model, "--target", "0.25", "--out", filepath.Join(out, "s.json")},
			[]string{"search drop needs", "--sub-batch", "--cache-mb", "--kl-topk"}},
		{[]string{"db", "build", "quant", "--model", model, "--out", filepath.Join(out, "db")},
			[]string{"db build quant needs", "--calib-tokens", "--batch"}},
		{[]string{"export", "--model", model, "--format", "gguf", "--out", filepath.Join(out, "m.gguf")},
			[]string{"export needs", "weights", "Use a machine with more memory"}},
	} {
		_, err := run(t, c.args...)
		if err == nil {
			t.Errorf("%v: no error under %s=1MiB", c.args, memcheck.EnvLimit)
			continue
		}
		msg := err.Error()
		for _, w := range append(c.want, "1.00 MiB available ("+memcheck.EnvLimit+"=1MiB)", memcheck.EnvLimit+"=off") {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: the error lacks %q:\n%s", c.args, w, msg)
			}
		}
		if strings.Contains(msg, "SubBatch") || strings.Contains(msg, "CacheMB") || strings.Contains(msg, "Build.Batch") {
			t.Errorf("%v: the error names request fields, not flags:\n%s", c.args, msg)
		}
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("refused commands wrote %d entries in %s", len(ents), out)
	}
}
