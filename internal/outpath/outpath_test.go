package outpath

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRelate(t *testing.T) {
	tmp := t.TempDir()
	model := filepath.Join(tmp, "models", "m")
	if err := os.MkdirAll(model, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(model, "w.safetensors"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(tmp, "link")
	if err := os.Symlink(model, link); err != nil {
		t.Skipf("no symbolic links: %v", err)
	}
	fileLink := filepath.Join(model, "elsewhere")
	if err := os.Symlink(filepath.Join(tmp, "outside.bin"), fileLink); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, model)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		out, in string
		want    Relation
	}{
		{model, model, Same},
		{model + string(filepath.Separator), model, Same},
		{rel, model, Same},
		{filepath.Join(model, "..", "m"), model, Same},
		{link, model, Same},
		{model, link, Same},
		{filepath.Join(link, "new", "x.gguf"), model, Inside},
		{filepath.Join(model, "w.safetensors"), model, Inside},
		{fileLink, model, Inside}, // the link itself is in the model, whatever it points to
		{filepath.Join(tmp, "models"), model, Contains},
		{tmp, link, Contains},
		{filepath.Join(tmp, "models", "m2"), model, Apart},
		{filepath.Join(tmp, "export"), model, Apart},
		{filepath.Join(tmp, "models", "mm", "x"), model, Apart},
	} {
		got, err := Relate(tc.out, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Relate(%s, %s) = %v, %v; want %v", tc.out, tc.in, got, err, tc.want)
		}
	}
}
