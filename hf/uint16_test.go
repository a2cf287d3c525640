package hf

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// TestReadUint16 reads 16-bit tensors as stored and refuses other dtypes and wrong shapes.
func TestReadUint16(t *testing.T) {
	dir := t.TempDir()
	vals := []float32{0, -1.5, 3.25, 1e-6, 65504, -0.0078125}
	tensors := []TensorData{
		{Name: "b", DType: BF16, Shape: []int{2, 3}, F32: vals},
		{Name: "h", DType: F16, Shape: []int{2, 3}, F32: vals},
		{Name: "f", DType: F32, Shape: []int{6}, F32: vals},
	}
	if err := WriteSafetensors(filepath.Join(dir, SafetensorsFileName), tensors, nil); err != nil {
		t.Fatal(err)
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for _, read := range []struct {
		name string
		fn   func(string, ...int) ([]uint16, DType, error)
	}{{"ReadUint16", ck.ReadUint16}, {"MapUint16", ck.MapUint16}} {
		t.Run(read.name, func(t *testing.T) { testRead16(t, read.fn, vals) })
	}
}

func testRead16(t *testing.T, read func(string, ...int) ([]uint16, DType, error), vals []float32) {
	for _, tc := range []struct {
		name    string
		shape   []int
		dt      DType
		convert func(float32) uint16
		err     string
	}{
		{"b", []int{2, 3}, BF16, Float32ToBFloat16, ""},
		{"h", nil, F16, Float32ToFloat16, ""},
		{"f", nil, "", nil, "tensor f: dtype F32 is not a 16-bit float (BF16 or F16)"},
		{"b", []int{3, 2}, "", nil, "tensor b: shape [2 3], want [3 2]"},
		{"x", nil, "", nil, `no tensor "x"`},
	} {
		bits, dt, err := read(tc.name, tc.shape...)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || dt != tc.dt || len(bits) != len(vals) {
			t.Fatalf("%s: %v %v %d values", tc.name, err, dt, len(bits))
		}
		for i, v := range vals {
			if bits[i] != tc.convert(v) {
				t.Errorf("%s[%d] = %#04x, want %#04x", tc.name, i, bits[i], tc.convert(v))
			}
		}
	}
}

// TestFirstNonFinite16 finds the first infinity or NaN at every kind of position: in a block
// scanned by words, in an unaligned tail, and none at all (largest finite values, subnormals).
func TestFirstNonFinite16(t *testing.T) {
	for _, dt := range []DType{BF16, F16} {
		conv := Float32ToBFloat16
		if dt == F16 {
			conv = Float32ToFloat16
		}
		for _, tc := range []struct {
			n, at int // at < 0: none
			v     float32
		}{
			{4100, -1, 0}, {4100, 0, float32(math.Inf(1))}, {4100, 1023, float32(math.NaN())},
			{4100, 1024, float32(math.Inf(-1))}, {4100, 4099, float32(math.NaN())}, {7, 6, float32(math.Inf(1))},
		} {
			v := make([]uint16, tc.n)
			for i := range v {
				v[i] = conv([]float32{65504, -65504, 1e-7, 0, -3}[i%5]) // finite, BF16 and F16 alike
			}
			if tc.at >= 0 {
				v[tc.at] = conv(tc.v)
				if tc.at+1 < tc.n {
					v[tc.n-1] = conv(float32(math.NaN())) // a later one is not the first
				}
			}
			if got := firstNonFinite16(v, dt); got != tc.at {
				t.Errorf("%s n=%d: first non-finite at %d, want %d", dt, tc.n, got, tc.at)
			}
		}
	}
}

// TestMapUint16 maps 16-bit tensors instead of copying them where the operating system allows:
// the bits lie in a mapping of the safetensors file (Linux: /proc/self/maps names it), stay
// valid after Close, equal ReadUint16's, and a NaN in the file is refused as ReadUint16 refuses it.
func TestMapUint16(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the mapping is checked through /proc/self/maps")
	}
	dir := t.TempDir()
	vals := make([]float32, 4096)
	for i := range vals {
		vals[i] = float32(i%97) - 48.5
	}
	nan := slices.Clone(vals)
	nan[3001] = float32(math.NaN())
	file := filepath.Join(dir, SafetensorsFileName)
	if err := WriteSafetensors(file, []TensorData{
		{Name: "w", DType: BF16, Shape: []int{64, 64}, F32: vals},
		{Name: "nan", DType: F16, Shape: []int{4096}, F32: nan},
	}, nil); err != nil {
		t.Fatal(err)
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := ck.ReadUint16("w", 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	got, dt, err := ck.MapUint16("w", 64, 64)
	if err != nil || dt != BF16 {
		t.Fatalf("MapUint16: %v, %v", dt, err)
	}
	if _, _, err := ck.MapUint16("nan"); err == nil || !strings.Contains(err.Error(), "tensor nan") || !strings.Contains(err.Error(), "3001") {
		t.Errorf("a NaN in a mapped tensor: error %v, want one naming the tensor and element 3001", err)
	}
	if err := ck.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatal("mapped bits differ from the bits read")
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	addr := uint64(uintptr(unsafe.Pointer(&got[0])))
	abs, _ := filepath.Abs(file)
	for _, line := range strings.Split(string(maps), "\n") {
		var lo, hi uint64
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err != nil || addr < lo || addr >= hi {
			continue
		}
		if !strings.HasSuffix(line, abs) {
			t.Errorf("the bits lie in %q, not in a mapping of %s", line, abs)
		}
		return
	}
	t.Errorf("address %#x of the bits is in no mapping", addr)
}
