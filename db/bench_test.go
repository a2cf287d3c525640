package db

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/internal/kernels"
)

// benchDB builds one-block databases with llama-pd-11m's layer shapes (hidden 256, MLP 704).
func benchDB(b *testing.B, mode, method string) (*tiny, *DB) {
	b.Helper()
	tm := newModel(b, 99, hf.BF16, 256, 704, 1, 4)
	tm.calib = tm.calib[:16]
	cfg := tm.config(filepath.Join(b.TempDir(), "db"), mode, method)
	if mode == ModeQuant {
		cfg.Quant.GroupSize = 128
	} else {
		cfg.Sparse.Levels = 1
	}
	build(b, cfg)
	return tm, open(b, cfg.Out)
}

// BenchmarkDecode measures decoding one 704×256 level into a preallocated buffer (the file read
// from the page cache included).
func BenchmarkDecode(b *testing.B) {
	for _, tc := range []struct{ mode, method string }{{ModeSparse, MethodSparseGPT}, {ModeSparse, MethodMagnitude}, {ModeQuant, MethodRTN}} {
		_, d := benchDB(b, tc.mode, tc.method)
		layer := "model.layers.0.mlp.gate_proj"
		for _, v := range d.Levels(layer) {
			if tc.mode == ModeSparse && v.Level != 0 || tc.mode == ModeQuant && v.Level != 3 && v.Level != 4 {
				continue
			}
			name := fmt.Sprintf("%s/level%d", tc.method, v.Level)
			if v.Values != "" {
				name += "-" + v.Values
			}
			b.Run(name, func(b *testing.B) {
				dst := make([]float32, 704*256)
				b.SetBytes(int64(len(dst)) * 4)
				for b.Loop() {
					if err := d.Decode(layer, v.Level, dst); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkSwap measures level swaps with Apply on a one-block model with llama-pd-11m's shapes:
// "cached" applies a profile that changes one 704×256 layer with every level in the cache (a
// model clone and pointer swaps); "uncached" applies the whole block with the cache disabled
// (seven decodes and the swaps). A swap that misses the cache costs "cached" plus one Decode.
func BenchmarkSwap(b *testing.B) {
	tm, d := benchDB(b, ModeQuant, MethodGPTQ)
	levels := map[string]int{}
	for _, l := range d.Layers() {
		levels[l] = 3
	}
	for _, cached := range []bool{true, false} {
		name := "cached"
		if !cached {
			name = "uncached"
		}
		b.Run(name, func(b *testing.B) {
			if cached {
				d.SetCacheBudget(DefaultCacheBytes)
			} else {
				d.SetCacheBudget(0)
			}
			i := 0
			for b.Loop() {
				levels["model.layers.0.mlp.up_proj"] = 2 + i%2 // alternate 2 and 3 bits
				i++
				if _, err := d.Apply(tm.m, levels); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGemmLevel measures y = x·Wᵀ for 512 token rows through the 704×256 gate_proj at a
// level, W held as stored ("held": expanded as GemmW packs) against W decoded to float32
// beforehand ("f32"): the cost of expanding at pack time.
func BenchmarkGemmLevel(b *testing.B) {
	type lv struct {
		name  string
		d     *DB
		level int
	}
	var lvs []lv
	for _, tc := range []struct{ mode, method string }{{ModeSparse, MethodSparseGPT}, {ModeQuant, MethodRTN}} {
		_, d := benchDB(b, tc.mode, tc.method)
		level := 0
		if tc.mode == ModeQuant {
			level = 4
		}
		lvs = append(lvs, lv{tc.method, d, level})
	}
	tm := newModel(b, 99, hf.BF16, 256, 704, 1, 4)
	tm.calib = tm.calib[:16]
	cfg := tm.ggufConfig(filepath.Join(b.TempDir(), "db"), []string{"q4_K", "q6_K"}, ImatrixNone)
	build(b, cfg)
	g := open(b, cfg.Out)
	lvs = append(lvs, lv{"q4_K", g, int(ggml.Q4_K)}, lv{"q6_K", g, int(ggml.Q6_K)})
	const layer, m, out, in = "model.layers.0.mlp.gate_proj", 512, 704, 256
	x := make([]float32, m*in)
	for i := range x {
		x[i] = float32(i%17) - 8
	}
	y := make([]float32, m*out)
	for _, l := range lvs {
		held, err := l.d.Weights(layer, l.level)
		if err != nil {
			b.Fatal(err)
		}
		for _, form := range []string{"held", "f32"} {
			w := held
			if form == "f32" {
				w = kernels.F32Weights(held.Float32())
			}
			b.Run(l.name+"/"+form, func(b *testing.B) {
				for b.Loop() {
					kernels.GemmW(false, true, m, out, in, 1, x, in, w, in, 0, y, out)
				}
				b.ReportMetric(2*m*out*in*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkDecodeHeld measures expanding a 704×256 level held as stored (kernels.Decoder) the
// way GemmW's packing asks for it: one Decode call per 256-weight stretch of a row. SetBytes
// counts the float32 output, so MB/s compares with BenchmarkDecode and ggml's
// BenchmarkDequantize.
func BenchmarkDecodeHeld(b *testing.B) {
	type lv struct {
		name  string
		d     *DB
		level int
	}
	var lvs []lv
	_, sp := benchDB(b, ModeSparse, MethodSparseGPT)
	lvs = append(lvs, lv{"sparse-f32", sp, 0})
	tm := newModel(b, 99, hf.BF16, 256, 704, 1, 4)
	tm.calib = tm.calib[:16]
	cfg := tm.config(filepath.Join(b.TempDir(), "sbf16"), ModeSparse, MethodMagnitude)
	cfg.Sparse.Levels, cfg.Sparse.Values = 1, "bf16"
	build(b, cfg)
	lvs = append(lvs, lv{"sparse-bf16", open(b, cfg.Out), 0})
	_, q := benchDB(b, ModeQuant, MethodRTN)
	for _, bits := range []int{2, 3, 4, 5, 6} {
		lvs = append(lvs, lv{fmt.Sprintf("quant%d", bits), q, bits})
	}
	gcfg := tm.ggufConfig(filepath.Join(b.TempDir(), "gguf"), []string{"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0"}, ImatrixNone)
	build(b, gcfg)
	g := open(b, gcfg.Out)
	for _, t := range []ggml.Type{ggml.Q2_K, ggml.Q3_K, ggml.Q4_K, ggml.Q5_K, ggml.Q6_K, ggml.Q8_0} {
		lvs = append(lvs, lv{t.String(), g, int(t)})
	}
	const layer, rows, cols = "model.layers.0.mlp.gate_proj", 704, 256
	dst := make([]float32, rows*cols)
	for _, l := range lvs {
		w, err := l.d.Weights(layer, l.level)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(l.name, func(b *testing.B) {
			b.SetBytes(int64(len(dst)) * 4)
			for b.Loop() {
				for r := 0; r < rows; r++ {
					w.ToFloat32(dst[r*cols:(r+1)*cols], r*cols)
				}
			}
		})
	}
}
