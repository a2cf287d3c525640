package export

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/model"
)

// f16Copy writes llama-pd-11m with its weights in F16 (the BF16 values rounded to F16) and its
// tokenizer into a temporary directory.
func f16Copy(t *testing.T) string {
	t.Helper()
	src := modelDir(t, "llama-pd-11m")
	dir := t.TempDir()
	ck, err := hf.OpenCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var ts []hf.TensorData
	for _, name := range ck.Names() {
		info, _ := ck.Info(name)
		v, err := ck.ReadFloat32(name, info.Shape...)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, hf.TensorData{Name: name, DType: hf.F16, Shape: info.Shape, F32: v})
	}
	if err := hf.WriteSafetensors(filepath.Join(dir, hf.SafetensorsFileName), ts, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "generation_config.json"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// created matches evopress.json's creation time, the one part of an export that differs between
// two runs.
var created = regexp.MustCompile(`"created": "[^"]*"`)

// readExport returns the files of an export (a file, or a directory's files by name).
func readExport(t *testing.T, out string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsDir() {
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return map[string][]byte{"": data}
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = created.ReplaceAll(data, nil)
	}
	return files
}

// An export from weights kept in their 16-bit dtype is byte for byte the export from the same
// weights converted to float32 (how exports loaded models before), for BF16 and F16 checkpoints,
// Hugging Face and GGUF outputs (16-bit, float32 and block types), dense or with dropped
// sub-blocks (zeroed projections) and removed blocks.
func TestExportStoredDTypeIdentical(t *testing.T) {
	for _, ck := range []struct{ name, dir string }{{"BF16", modelDir(t, "llama-pd-11m")}, {"F16", f16Copy(t)}} {
		src, err := loadSource(ck.dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		src.ck.Close()
		if w := src.dense.Blocks[0].Q.Weights(); w.DType.String() != ck.name || src.dense.EmbedWeights().DType.String() != ck.name {
			t.Fatalf("%s: the export loads q_proj as %s, the embeddings as %s", ck.name, w.DType, src.dense.EmbedWeights().DType)
		}
		for _, c := range []struct {
			name string
			o    Options
		}{
			{"hf", Options{Format: FormatHF}},
			{"hf drop, sharded", Options{Format: FormatHF, Profile: dropProfile(""), ShardBytes: 4 << 20}},
			{"gguf f16", Options{Format: FormatGGUF}},
			{"gguf bf16", Options{Format: FormatGGUF, Type: "bf16"}},
			{"gguf f32 drop", Options{Format: FormatGGUF, Type: "f32", Profile: dropProfile("")}},
			{"gguf q4_k", Options{Format: FormatGGUF, Type: "q4_k"}},
			{"gguf Q4_K_M", Options{Format: FormatGGUF, FileType: "Q4_K_M"}},
		} {
			t.Run(ck.name+" "+c.name, func(t *testing.T) {
				tmp := t.TempDir()
				out := func(kind string) string {
					if c.o.Format == FormatGGUF {
						return filepath.Join(tmp, kind+".gguf")
					}
					return filepath.Join(tmp, kind)
				}
				o := c.o
				o.ModelDir = ck.dir
				if o.Profile != nil {
					o.ProfilePath = "drop.json"
				}
				o.Out = out("stored")
				if _, err := Run(o); err != nil {
					t.Fatal(err)
				}
				old := loadOptions
				loadOptions = model.LoadOptions{}
				o.Out = out("float32")
				_, err := Run(o)
				loadOptions = old
				if err != nil {
					t.Fatal(err)
				}
				a, b := readExport(t, out("stored")), readExport(t, out("float32"))
				if len(a) != len(b) || len(a) == 0 {
					t.Fatalf("%d files from the stored weights, %d from float32", len(a), len(b))
				}
				for name, x := range a {
					if !bytes.Equal(x, b[name]) {
						t.Errorf("%q differs: %d bytes from the stored weights, %d from float32", name, len(x), len(b[name]))
					}
				}
			})
		}
	}
}

// srcRow is PermuteQK's row map: the writer's row-by-row permutation gives PermuteQK's matrix.
func TestSrcRowIsPermuteQK(t *testing.T) {
	for _, c := range []struct{ heads, hd, in int }{{1, 2, 3}, {4, 8, 5}, {3, 64, 1}} {
		rows := c.heads * c.hd
		w := make([]float32, rows*c.in)
		for i := range w {
			w[i] = float32(i)
		}
		want := PermuteQK(w, c.heads, c.in)
		for r := 0; r < rows; r++ {
			src := srcRow(r, rows, c.heads)
			if !slices.Equal(want[r*c.in:(r+1)*c.in], w[src*c.in:(src+1)*c.in]) {
				t.Fatalf("heads %d, head dim %d: row %d takes row %d, PermuteQK's differs", c.heads, c.hd, r, src)
			}
		}
	}
}
