package ggml_test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/evopress/evopress/export"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/gguf"
	"github.com/evopress/evopress/internal/llamacpptest"
	"github.com/evopress/evopress/profile"
)

// pureTypes are the types checked against llama-quantize --pure, with llama-quantize's name for
// the file type whose base tensor type each is.
var pureTypes = []struct {
	typ   ggml.Type
	ftype string
}{
	{ggml.Q4_0, "Q4_0"}, {ggml.Q4_1, "Q4_1"}, {ggml.Q5_0, "Q5_0"}, {ggml.Q5_1, "Q5_1"},
	{ggml.Q8_0, "Q8_0"}, {ggml.Q2_K, "Q2_K"}, {ggml.Q3_K, "Q3_K"}, {ggml.Q4_K, "Q4_K"},
	{ggml.Q5_K, "Q5_K"}, {ggml.Q6_K, "Q6_K"}, {ggml.IQ4_NL, "IQ4_NL"}, {ggml.IQ4_XS, "IQ4_XS"},
}

// f32Export exports llama-pd-11m to an F32 GGUF file with evopress's exporter and returns its
// path (skipping when the model is absent).
func f32Export(t testing.TB, dir string) string {
	t.Helper()
	model := filepath.Join("..", "..", "shared", "models", "llama-pd-11m")
	if _, err := os.Stat(filepath.Join(model, "config.json")); err != nil {
		t.Skipf("llama-pd-11m not found at %s", model)
	}
	out := filepath.Join(dir, "f32.gguf")
	dense := profile.New(profile.ModeDrop) // nothing dropped: the dense model
	for i := range 12 {
		dense.Levels[fmt.Sprintf("model.layers.%d.self_attn", i)] = 0
		dense.Levels[fmt.Sprintf("model.layers.%d.mlp", i)] = 0
	}
	if _, err := export.Run(export.Options{ModelDir: model, Profile: dense, Format: export.FormatGGUF, Type: "f32", Out: out}); err != nil {
		t.Fatal(err)
	}
	return out
}

func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

// readImatrix reads a llama-imatrix GGUF file as llama-quantize's load_imatrix does: per
// tensor, in_sum2 / round(counts) (1 where the count is zero), single-expert tensors only.
func readImatrix(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	im := map[string][]float32{}
	for i := range f.Tensors {
		ts := &f.Tensors[i]
		name, ok := strings.CutSuffix(ts.Name, ".in_sum2")
		if !ok {
			continue
		}
		ct, ok := f.Tensor(name + ".counts")
		if !ok {
			t.Fatalf("%s: %s has no counts", path, name)
		}
		sums, err := f.ReadFloat32(ts)
		if err != nil {
			t.Fatal(err)
		}
		counts, err := f.ReadFloat32(ct)
		if err != nil {
			t.Fatal(err)
		}
		if len(counts) != 1 {
			t.Fatalf("%s: %s has %d experts", path, name, len(counts))
		}
		c := float32(math.Round(float64(counts[0])))
		for j := range sums {
			if c > 0 {
				sums[j] /= c
			} else {
				sums[j] = 1
			}
		}
		im[name] = sums
	}
	return im
}

// TestLlamaQuantizePure: for every type, each weight tensor of llama-quantize --pure's output
// (with and without an importance matrix from llama-imatrix) has the type Fallback gives and
// exactly the bytes Quantize gives on the F32 values of evopress's own export of llama-pd-11m.
func TestLlamaQuantizePure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs llama.cpp's tools (-short)")
	}
	bin := llamacpptest.Bin(t)
	dir := t.TempDir()
	src := f32Export(t, dir)
	in, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()

	calib := filepath.Join("..", "..", "shared", "data", "pd-english", "calib.txt")
	imPath := filepath.Join(dir, "imatrix.gguf")
	var imatrix map[string][]float32
	if _, err := os.Stat(calib); err == nil {
		run(t, filepath.Join(bin, "llama-imatrix"), "-m", src, "-f", calib, "-o", imPath, "-c", "128", "--chunks", "16", "-t", "2", "--no-ppl")
		imatrix = readImatrix(t, imPath)
	} else {
		t.Logf("no calibration text at %s: checking without an importance matrix only", calib)
	}

	for _, withIm := range []bool{false, true} {
		if withIm && imatrix == nil {
			continue
		}
		for _, pt := range pureTypes {
			name := pt.ftype
			if withIm {
				name += "+imatrix"
			}
			t.Run(name, func(t *testing.T) {
				out := filepath.Join(dir, name+".gguf")
				args := []string{"--pure"}
				if withIm {
					args = append(args, "--imatrix", imPath)
				}
				run(t, filepath.Join(bin, "llama-quantize"), append(args, src, out, pt.ftype, "2")...)
				q, err := gguf.Open(out)
				if err != nil {
					t.Fatal(err)
				}
				defer q.Close()
				checked, imUsed := 0, 0
				for i := range q.Tensors {
					qt := &q.Tensors[i]
					st, ok := in.Tensor(qt.Name)
					if !ok {
						t.Fatalf("%s: tensor %s not in the input", out, qt.Name)
					}
					if len(qt.Dims) != 2 {
						if qt.Type != ggml.F32 {
							t.Errorf("%s: %s is %s, the input's %s", out, qt.Name, qt.Type, st.Type)
						}
						continue
					}
					cols := int(qt.Dims[0])
					want, err := ggml.Fallback(pt.typ, cols)
					if err != nil {
						t.Fatal(err)
					}
					if qt.Type != want {
						t.Errorf("%s: %s (%d columns) is %s, Fallback gives %s", out, qt.Name, cols, qt.Type, want)
						continue
					}
					vals, err := in.ReadFloat32(st)
					if err != nil {
						t.Fatal(err)
					}
					var im []float32
					if withIm {
						im = imatrix[qt.Name]
						if im != nil {
							imUsed++
						}
					}
					got, err := ggml.Quantize(qt.Type, vals, cols, im)
					if err != nil {
						t.Fatal(err)
					}
					ref, err := q.ReadTensor(qt)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, ref) {
						t.Errorf("%s: %s as %s (importance vector: %v): %s", out, qt.Name, qt.Type, im != nil, diffAt(qt.Type, got, ref))
					}
					checked++
				}
				if checked < 12*7 {
					t.Fatalf("only %d weight tensors checked", checked)
				}
				if withIm && imUsed < 12*7 {
					t.Fatalf("only %d tensors had an importance vector", imUsed)
				}
			})
		}
	}
}

func diffAt(typ ggml.Type, got, want []byte) string {
	n := 0
	first := -1
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if first < 0 {
		return fmt.Sprintf("lengths %d and %d", len(got), len(want))
	}
	return fmt.Sprintf("%d bytes differ, the first in block %d (byte %d of %d)", n, first/typ.BlockBytes(), first%typ.BlockBytes(), typ.BlockBytes())
}

// BenchmarkLlamaPD11M compares quantization speeds on the same tensors: every weight matrix of
// llama-pd-11m (11M weights, 43.9 MB of float32), as Quantize encodes them on GOMAXPROCS
// goroutines ("go/TYPE") and as llama-quantize --pure does with as many threads
// ("llama-quantize/TYPE", its own "quantize time", which includes reading and writing the
// 44 MB files). MB/s is of float32 input.
//
//	go test -run XXX -bench LlamaPD11M -cpu 2 -benchtime 3x ./ggml/
func BenchmarkLlamaPD11M(b *testing.B) {
	bin := llamacpptest.Bin(b)
	dir := b.TempDir()
	src := f32Export(b, dir)
	in, err := gguf.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	type mat struct {
		vals []float32
		cols int
	}
	var mats []mat
	var total int64
	for i := range in.Tensors {
		t := &in.Tensors[i]
		if len(t.Dims) != 2 {
			continue
		}
		v, err := in.ReadFloat32(t)
		if err != nil {
			b.Fatal(err)
		}
		mats = append(mats, mat{v, int(t.Dims[0])})
		total += 4 * int64(len(v))
	}
	for _, pt := range pureTypes {
		b.Run("go/"+pt.ftype, func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				for _, m := range mats {
					typ, err := ggml.Fallback(pt.typ, m.cols)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := ggml.Quantize(typ, m.vals, m.cols, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
	threads := fmt.Sprint(runtime.GOMAXPROCS(0))
	for _, pt := range pureTypes {
		b.Run("llama-quantize/"+pt.ftype, func(b *testing.B) {
			var ms float64
			for b.Loop() {
				out := run(b, filepath.Join(bin, "llama-quantize"), "--pure", src, filepath.Join(dir, "q.gguf"), pt.ftype, threads)
				i := bytes.Index(out, []byte("quantize time ="))
				if i < 0 {
					b.Fatalf("no quantize time in llama-quantize's output:\n%s", out)
				}
				var v float64
				if _, err := fmt.Sscanf(string(out[i+len("quantize time ="):]), "%f", &v); err != nil {
					b.Fatal(err)
				}
				ms += v
			}
			b.ReportMetric(float64(total)*float64(b.N)/(ms/1000)/1e6, "MB/s")
		})
	}
}
