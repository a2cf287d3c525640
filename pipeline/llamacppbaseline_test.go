package pipeline

import (
	"context"
	"fmt"
	"math"
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

// fileTensors round-trips the token embedding and output a few rows at a time through its
// float32 result: the values are those of encoding and decoding each whole tensor at once,
// bit for bit, whatever the rows per step (one that does not divide the vocabulary included),
// and the model's own weights are untouched.
func TestFileTensorsByRows(t *testing.T) {
	for _, c := range []struct {
		name, tokEmb, output string
		load                 func(t *testing.T) *Loaded
	}{
		{"llama-pd-11m untied", "q8_0", "q4_0", func(t *testing.T) *Loaded {
			lm, err := LoadModel("")
			if err != nil {
				t.Fatal(err)
			}
			return lm
		}},
		{"babyllama-1m tied", "q4_0", "", func(t *testing.T) *Loaded { return sharedModel(t, babyllamaDir) }},
	} {
		m := c.load(t).Model
		whole := func(name string, w []float32) []float32 {
			typ, err := ggml.ParseType(name)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ggml.Quantize(typ, w, m.Hidden, nil)
			if err != nil {
				t.Fatal(err)
			}
			out, err := ggml.Dequantize(typ, b)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		embed := append([]float32(nil), m.EmbedFloat32()...)
		wantEmbed := whole(c.tokEmb, embed)
		wantHead := wantEmbed
		if c.output != "" {
			wantHead = whole(c.output, m.HeadFloat32())
		}
		for _, rows := range []int{4096, 7, m.Vocab} {
			t.Run(fmt.Sprintf("%s/%d rows", c.name, rows), func(t *testing.T) {
				defer func(r int) { roundTripRows = r }(roundTripRows)
				roundTripRows = rows
				got, err := fileTensors(m, c.tokEmb, c.output)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range []struct {
					name      string
					got, want []float32
				}{{"embedding", got.Embed, wantEmbed}, {"head", got.Head, wantHead}} {
					if len(x.got) != len(x.want) {
						t.Fatalf("%s: %d values, want %d", x.name, len(x.got), len(x.want))
					}
					for i := range x.want {
						if math.Float32bits(x.got[i]) != math.Float32bits(x.want[i]) {
							t.Fatalf("%s[%d] = %v, the whole tensor's round trip %v", x.name, i, x.got[i], x.want[i])
						}
					}
				}
				if (c.output == "") != (&got.Head[0] == &got.Embed[0]) {
					t.Errorf("output %q: head tied to the embedding: %v", c.output, &got.Head[0] == &got.Embed[0])
				}
				for i, v := range m.EmbedFloat32() {
					if math.Float32bits(v) != math.Float32bits(embed[i]) {
						t.Fatalf("the model's embedding changed at %d", i)
					}
				}
			})
		}
	}
}
