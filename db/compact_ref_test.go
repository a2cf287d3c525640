package db

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/internal/kernels"
)

// refQuantDecode is quantLevel.Decode as it was before decodeRun: every code unpacked on its
// own, the group's scale and zero point looked up per code. The reference of TestDecodeFast.
func refQuantDecode(q *quantLevel, dst []float32, off int) {
	w := uint(q.bits)
	for len(dst) > 0 {
		r, c := off/q.cols, off%q.cols
		n := min(len(dst), q.cols-c)
		out := dst[:n]
		for i := range out {
			gr := (c + i) / q.g
			if q.gidx != nil {
				gr = int(q.gidx[c+i])
			}
			sg, zg := compress.Float16Value(q.scales[r*q.ng+gr]), unpack(q.zeros, r*q.ng+gr, w)
			out[i] = sg * (unpack(q.codes, off+i, w) - zg)
		}
		dst, off = dst[n:], off+n
	}
}

// refSparseDecode is sparseLevel.Decode as it was before the branch-free loops: the set bits of
// each mask byte visited with TrailingZeros, values read by a closure (compress.Float16Value for
// binary16).
func refSparseDecode(s *sparseLevel, dst []float32, off int) {
	if len(dst) == 0 {
		return
	}
	k := int(s.before[off>>6])
	for b := off >> 6 << 3; b < off>>3; b++ {
		k += bits.OnesCount8(s.mask[b])
	}
	k += bits.OnesCount8(s.mask[off>>3] & (1<<(off&7) - 1))
	mask, vals := s.mask, s.vals
	clear(dst)
	var value func(k int) float32
	switch s.values {
	case "f32":
		value = func(k int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(vals[4*k:])) }
	case "bf16":
		value = func(k int) float32 { return math.Float32frombits(uint32(binary.LittleEndian.Uint16(vals[2*k:])) << 16) }
	default:
		value = func(k int) float32 { return compress.Float16Value(binary.LittleEndian.Uint16(vals[2*k:])) }
	}
	end := off + len(dst)
	for e := off; e < end; {
		lo := e & 7
		hi := min(8, end-(e&^7))
		b := mask[e>>3] >> lo << lo & (1<<hi - 1)
		base := e&^7 - off
		for ; b != 0; b &= b - 1 {
			dst[base+bits.TrailingZeros8(b)] = value(k)
			k++
		}
		e = e&^7 + 8
	}
}

// randQuantLevel is a quant level of random codes, zero points and positive finite binary16
// scales (with g_idx when gidx), its packed arrays padded as newQuantLevel pads them.
func randQuantLevel(rng *rand.Rand, rows, cols, bits, g int, gidx bool) *quantLevel {
	ng := (cols + g - 1) / g
	q := &quantLevel{rows: rows, cols: cols, bits: bits, g: g, ng: ng}
	randPacked := func(n int) []byte {
		b := make([]byte, (n*bits+7)/8+1)
		for i := range n * bits {
			b[i>>3] |= byte(rng.IntN(2)) << (i & 7)
		}
		return b
	}
	q.codes, q.zeros = randPacked(rows*cols), randPacked(rows*ng)
	q.scales = make([]uint16, rows*ng)
	for i := range q.scales {
		q.scales[i] = uint16(1 + rng.IntN(0x7bff)) // (0, 65504]: subnormals and normals
	}
	if gidx {
		q.gidx = make([]int32, cols)
		for j := range q.gidx {
			q.gidx[j] = int32(rng.IntN(ng))
		}
	}
	return q
}

// randSparseLevel is a sparse level of n weights with a random mask (each bit set with
// probability density) and random value bits, built as newSparseLevel builds it.
func randSparseLevel(rng *rand.Rand, n int, density float64, values string) *sparseLevel {
	mask := make([]byte, (n+7)/8)
	set := 0
	for e := range n {
		if rng.Float64() < density {
			mask[e>>3] |= 1 << (e & 7)
			set++
		}
	}
	size := 2
	if values == "f32" {
		size = 4
	}
	vals := make([]byte, set*size)
	for i := range vals {
		vals[i] = byte(rng.Uint32())
	}
	h := &levelHeader{Rows: 1, Cols: n, Values: values, Nonzeros: int64(set)}
	s, err := newSparseLevel(h, append(mask, vals...))
	if err != nil {
		panic(err)
	}
	return s
}

// TestDecodeFast checks the specialised decoders of quant and sparse levels against the
// per-element ones they replaced (refQuantDecode, refSparseDecode), bit for bit: every
// bit-width 2–8 with groups (dividing the row or not, of 8 and more weights), one group per row
// and g_idx; sparse levels of float32, bfloat16 and binary16 values at densities 0, 0.5, 0.9 and
// 1; each over its whole range and random ranges [off, off+len) starting and ending anywhere.
// Both with the AVX-512 decoders (where the CPU has them) and with the portable loops. Also that
// kernels.F16ToFloat32, which sparseF16 uses, equals compress.Float16Value on all 65536 binary16
// values.
func TestDecodeFast(t *testing.T) {
	for h := range 1 << 16 {
		if a, b := kernels.F16ToFloat32(uint16(h)), compress.Float16Value(uint16(h)); math.Float32bits(a) != math.Float32bits(b) {
			t.Fatalf("binary16 %#04x: F16ToFloat32 %#08x, Float16Value %#08x", h, math.Float32bits(a), math.Float32bits(b))
		}
	}
	paths := []bool{false}
	if useAVX512 {
		paths = append(paths, true)
	}
	defer func(v bool) { useAVX512 = v }(useAVX512)
	for _, avx := range paths {
		useAVX512 = avx
		t.Run(fmt.Sprintf("avx512=%v", avx), testDecodeFast)
	}
}

func testDecodeFast(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 17))
	check := func(what string, n int, dec, ref func([]float32, int)) {
		t.Helper()
		ranges := [][2]int{{0, n}}
		for range 300 {
			off := rng.IntN(n + 1)
			ranges = append(ranges, [2]int{off, off + rng.IntN(min(n-off, 600)+1)})
		}
		for _, r := range ranges {
			got, want := make([]float32, r[1]-r[0]), make([]float32, r[1]-r[0])
			for i := range got {
				got[i] = float32(math.NaN()) // every element must be written
			}
			dec(got, r[0])
			ref(want, r[0])
			if !bitsEqual(got, want) {
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s: weights [%d, %d): element %d is %v, want %v", what, r[0], r[1], r[0]+i, got[i], want[i])
					}
				}
			}
		}
	}
	type qcase struct {
		rows, cols, g int
		gidx          bool
	}
	for bits := 2; bits <= 8; bits++ {
		for _, c := range []qcase{{7, 256, 128, false}, {5, 300, 32, false}, {6, 264, 8, false}, {4, 200, 200, false}, {5, 77, 77, false}, {3, 256, 64, true}, {9, 45, 16, true}} {
			q := randQuantLevel(rng, c.rows, c.cols, bits, c.g, c.gidx)
			what := fmt.Sprintf("quant %d bits %d×%d group %d gidx %v", bits, c.rows, c.cols, c.g, c.gidx)
			check(what, q.Len(), q.Decode, func(dst []float32, off int) { refQuantDecode(q, dst, off) })
		}
	}
	for _, values := range []string{"f32", "bf16", "f16"} {
		for _, density := range []float64{0, 0.5, 0.9, 1} {
			for _, n := range []int{1, 77, 4096, 5003} {
				s := randSparseLevel(rng, n, density, values)
				what := fmt.Sprintf("sparse %s density %g n %d", values, density, n)
				check(what, n, s.Decode, func(dst []float32, off int) { refSparseDecode(s, dst, off) })
			}
		}
	}
}

// BenchmarkDecodeGIdx compares quant levels with g_idx (activation order) decoded as GemmW's
// packing asks (one Decode per 256-weight row) by the current decoder ("fast") and the previous
// one ("ref"), in one run: random 704×256 levels of 3 and 4 bits, groups of 128.
func BenchmarkDecodeGIdx(b *testing.B) {
	const rows, cols = 704, 256
	rng := rand.New(rand.NewPCG(1, 2))
	dst := make([]float32, rows*cols)
	for _, bits := range []int{3, 4} {
		q := randQuantLevel(rng, rows, cols, bits, 128, true)
		for _, impl := range []string{"ref", "fast"} {
			b.Run(fmt.Sprintf("bits%d/%s", bits, impl), func(b *testing.B) {
				b.SetBytes(int64(len(dst)) * 4)
				for b.Loop() {
					for r := 0; r < rows; r++ {
						if impl == "ref" {
							refQuantDecode(q, dst[r*cols:(r+1)*cols], r*cols)
						} else {
							q.Decode(dst[r*cols:(r+1)*cols], r*cols)
						}
					}
				}
			})
		}
	}
}
