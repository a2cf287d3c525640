package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/evopress/evopress/export"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/gguf"
	"github.com/evopress/evopress/profile"
)

// TestLlamacppBaselineTied runs the llamacpp baseline for Q4_K_M over a gguf database of
// babyllama-1m (tied embeddings, 128- and 352-weight rows: only 32-weight block types): every
// tensor of the profile's export has the type export --ftype Q4_K_M gives it (llama.cpp's rules),
// the token embedding stores the output's type, and both files are the profile's estimated size.
func TestLlamacppBaselineTied(t *testing.T) {
	lm := sharedModel(t, babyllamaDir)
	tmp := t.TempDir()
	d := buildGGUF(t, lm, filepath.Join(tmp, "db"), []string{"q4_k", "q6_k"}, 512)
	out, err := RunBaseline(context.Background(), BaselineRequest{Data: Data{Model: lm, DBDir: d.Dir(), SeqLen: 128, CalibTokens: 2048},
		Mode: ModeSpec{Kind: profile.ModeQuant}, Method: "llamacpp", FileType: "Q4_K_M", Tokens: 256, Out: filepath.Join(tmp, "p.json")})
	if err != nil {
		t.Fatal(err)
	}
	rec := out.Profile.Search
	if rec.FileType != "Q4_K_M" || rec.TokenEmbeddingType != "q8_0" || rec.OutputTensorType != "" || rec.FileBytes == 0 {
		t.Fatalf("record: %+v", rec)
	}
	write := func(name string, o export.Options) *gguf.File {
		t.Helper()
		o.ModelDir, o.Format, o.Out = babyllamaDir, export.FormatGGUF, filepath.Join(tmp, name)
		if _, err := export.Run(o); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(o.Out); err != nil || st.Size() != rec.FileBytes {
			t.Errorf("%s: %v bytes (%v), the profile's estimate %d", name, st.Size(), err, rec.FileBytes)
		}
		f, err := gguf.Open(o.Out)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	rules := write("ftype.gguf", export.Options{FileType: "Q4_K_M"})
	mixed := write("mixed.gguf", export.Options{Profile: out.Profile, ProfilePath: filepath.Join(tmp, "p.json"), DBDir: d.Dir()})
	kinds := map[ggml.Type]int{}
	for _, ti := range rules.Tensors {
		got, ok := mixed.Tensor(ti.Name)
		if !ok || got.Type != ti.Type {
			t.Errorf("%s: %v, llama.cpp's rules %s", ti.Name, got, ti.Type)
		}
		kinds[ti.Type]++
	}
	if kinds[ggml.Q5_0] == 0 || kinds[ggml.Q8_0] == 0 {
		t.Errorf("Q4_K_M on 32-weight blocks: %v", kinds)
	}
}
