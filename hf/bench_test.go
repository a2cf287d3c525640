package hf

import (
	"path/filepath"
	"testing"
)

// BenchmarkLoadDefaultModel opens llama-pd-11m and converts every BF16 tensor to float32.
func BenchmarkLoadDefaultModel(b *testing.B) {
	dir := modelDir(b, "llama-pd-11m")
	b.SetBytes(21913920)
	for b.Loop() {
		ck, err := OpenCheckpoint(dir)
		if err != nil {
			b.Fatal(err)
		}
		for _, name := range ck.Names() {
			if _, err := ck.ReadFloat32(name); err != nil {
				b.Fatal(err)
			}
		}
		ck.Close()
	}
}

// BenchmarkWriteDefaultModelBF16 writes llama-pd-11m's tensors as BF16.
func BenchmarkWriteDefaultModelBF16(b *testing.B) {
	dir := modelDir(b, "llama-pd-11m")
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer ck.Close()
	var tensors []TensorData
	for _, name := range ck.Names() {
		info, _ := ck.Info(name)
		v, _ := ck.ReadFloat32(name)
		tensors = append(tensors, TensorData{Name: name, DType: BF16, Shape: info.Shape, F32: v})
	}
	out := filepath.Join(b.TempDir(), "model.safetensors")
	b.SetBytes(21913920)
	for b.Loop() {
		if err := WriteSafetensors(out, tensors, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFirstNonFinite is the load-time finiteness check alone, over as many values as
// llama-pd-11m holds (compare with BenchmarkLoadDefaultModel, which includes it).
func BenchmarkFirstNonFinite(b *testing.B) {
	v := make([]float32, 21913920/2)
	for i := range v {
		v[i] = float32(i%1000) * 1e-3
	}
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		if firstNonFinite(v) >= 0 {
			b.Fatal("finite values reported non-finite")
		}
	}
}
