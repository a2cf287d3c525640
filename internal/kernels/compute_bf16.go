package kernels

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Compute is the arithmetic of the products with weights (GemmW, GemmWSerial): the linear
// layers and the output head. Products without weights (Gemm: attention, Hessians) are always
// float32.
type Compute uint32

const (
	// ComputeF32 multiplies float32 values with float32 sums: results do not depend on the
	// weights' storage (BF16 and F16 convert exactly). The default.
	ComputeF32 Compute = iota
	// ComputeBF16 rounds the activations (and float32 or binary16 weights) to bfloat16, forms
	// the products exactly and sums them in float32, two products per instruction
	// (AVX512_BF16's VDPBF16PS): about twice the arithmetic per cycle of ComputeF32 at 8 bits
	// of mantissa in the operands. It changes the numbers, so it is opt-in, and
	// Implementation names it: searches record it and distributed workers must agree on it.
	ComputeBF16
)

// String returns the name ParseCompute accepts: "fp32" or "bf16".
func (c Compute) String() string {
	switch c {
	case ComputeF32:
		return "fp32"
	case ComputeBF16:
		return "bf16"
	}
	return fmt.Sprintf("Compute(%d)", uint32(c))
}

// ParseCompute parses "fp32" (or "f32", "float32") and "bf16" (or "bfloat16").
func ParseCompute(s string) (Compute, error) {
	switch s {
	case "fp32", "f32", "float32":
		return ComputeF32, nil
	case "bf16", "bfloat16":
		return ComputeBF16, nil
	}
	return 0, fmt.Errorf("unknown compute kind %q (want fp32 or bf16)", s)
}

// HasBF16Compute reports whether this build and CPU can run ComputeBF16 (AVX512_BF16).
func HasBF16Compute() bool { return hasBF16 }

// compute is the process's Compute (SetCompute).
var compute atomic.Uint32

// SetCompute selects the arithmetic of the products with weights for the whole process. Call it
// before any work starts (a command-line flag): products already running keep the kind they
// started with. ComputeBF16 needs AVX512_BF16 and reports an error naming what is missing.
func SetCompute(c Compute) error {
	switch c {
	case ComputeF32:
	case ComputeBF16:
		if !hasBF16 {
			return fmt.Errorf("bf16 compute needs a CPU with AVX512_BF16 (and an amd64 build without the noasm tag); this one has none: use fp32")
		}
	default:
		return fmt.Errorf("unknown %v", c)
	}
	compute.Store(uint32(c))
	return nil
}

// CurrentCompute returns the Compute selected by SetCompute (ComputeF32 by default).
func CurrentCompute() Compute { return Compute(compute.Load()) }

// useBF16 reports whether GemmW uses the bfloat16 path.
func useBF16() bool { return compute.Load() == uint32(ComputeBF16) && hasBF16 }

// bf16Round rounds a float32 to bfloat16 bits the way VCVTNE2PS2BF16 does: to nearest even,
// NaNs quieted, subnormal inputs treated as zero (keeping their sign).
func bf16Round(f float32) uint16 {
	b := math.Float32bits(f)
	switch {
	case b&0x7fffffff > 0x7f800000:
		return uint16(b>>16) | 0x40
	case b&0x7f800000 == 0:
		return uint16(b>>16) & 0x8000
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// roundBF16Go rounds len(dst) values of src to bfloat16.
func roundBF16Go(dst []uint16, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = bf16Round(v)
	}
}

// roundBF16 rounds len(dst) values of src to bfloat16 (vector code where available).
func roundBF16(dst []uint16, src []float32) {
	n := len(dst) &^ 31
	if n > 0 && hasBF16 {
		cvtBF16(dst[:n], src[:n])
	} else {
		n = 0
	}
	roundBF16Go(dst[n:], src[n:len(dst)])
}

// The bfloat16 Gemm keeps the FP32 path's register tile of 6 rows but always 32 columns (two
// 16-column micro-panels), and counts k in pairs: A is converted block by block into rows of
// bfloat16 (k2 = ceil(kc/2) pairs per row, a zero after an odd kc, rows zero-padded to a
// multiple of mr), B into micro-panels of k2 rows of 16 pairs (column j's pair (B(2q, j),
// B(2q+1, j)) at q*32 + 2j), padded with zero panels to a multiple of 32 columns. Edge tiles
// are computed into a 6×32 scratch tile and copied out.
const nrBF16 = 2 * nr

// bf16Bufs holds one goroutine's packing buffers of the bfloat16 Gemm.
type bf16Bufs struct {
	a, b []uint16
	tmp  [mr * nrBF16]float32
}

var bf16Pool = sync.Pool{New: func() any { return new(bf16Bufs) }}

func growU16(buf []uint16, n int) []uint16 {
	if cap(buf) < n {
		return make([]uint16, n)
	}
	return buf[:n]
}

// gemmSerialBF16 is gemmSerial for ComputeBF16 (arguments validated, m,n,k > 0).
func gemmSerialBF16(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b Weights, ldb int, beta float32, c []float32, ldc int) {
	bufs := bf16Pool.Get().(*bf16Bufs)
	defer bf16Pool.Put(bufs)
	kb := blockSize(k, kcBlk, 2)
	mb := blockSize(m, mcBlk, mr)
	nb := blockSize(n, ncBlk, nrBF16)
	k2max := kb / 2
	bufs.a = growU16(bufs.a, mb*2*k2max)
	bufs.b = growU16(bufs.b, nb*2*k2max)
	for jc := 0; jc < n; jc += nb {
		ncur := min(nb, n-jc)
		for pc := 0; pc < k; pc += kb {
			kcur := min(kb, k-pc)
			k2 := (kcur + 1) / 2
			bt := beta
			if pc > 0 {
				bt = 1
			}
			packBBF16(bufs.b, b, ldb, transB, pc, kcur, jc, ncur)
			for ic := 0; ic < m; ic += mb {
				mcur := min(mb, m-ic)
				packABF16(bufs.a, a, lda, transA, ic, mcur, pc, kcur)
				for jr := 0; jr < ncur; jr += nrBF16 {
					nrem := min(nrBF16, ncur-jr)
					bp := bufs.b[jr*2*k2:]
					for ir := 0; ir < mcur; ir += mr {
						mrem := min(mr, mcur-ir)
						ap := bufs.a[ir*2*k2:]
						ct := c[(ic+ir)*ldc+jc+jr:]
						if mrem == mr && nrem == nrBF16 {
							sbgemmKernel(k2, ap, 2*k2, bp, nr*2*k2, ct, ldc, alpha, bt)
							continue
						}
						tmp := bufs.tmp[:]
						sbgemmKernel(k2, ap, 2*k2, bp, nr*2*k2, tmp, nrBF16, alpha, 0)
						for i := 0; i < mrem; i++ {
							crow := ct[i*ldc : i*ldc+nrem]
							trow := tmp[i*nrBF16 : i*nrBF16+nrem]
							if bt == 0 {
								copy(crow, trow)
							} else {
								for j, v := range trow {
									crow[j] = v + bt*crow[j]
								}
							}
						}
					}
				}
			}
		}
	}
}

// packABF16 rounds rows [i0, i0+mc) and columns [p0, p0+kc) of op(A) to bfloat16 into dst:
// row i at i*2*k2, a zero after an odd kc, zero rows up to a multiple of mr.
func packABF16(dst []uint16, a []float32, lda int, trans bool, i0, mc, p0, kc int) {
	k2 := (kc + 1) / 2
	rows := (mc + mr - 1) / mr * mr
	for i := 0; i < rows; i++ {
		d := dst[i*2*k2 : (i+1)*2*k2]
		if i >= mc {
			clear(d)
			continue
		}
		if trans {
			for p := 0; p < kc; p++ {
				d[p] = bf16Round(a[(p0+p)*lda+i0+i])
			}
		} else {
			roundBF16(d[:kc], a[(i0+i)*lda+p0:(i0+i)*lda+p0+kc])
		}
		if kc%2 == 1 {
			d[kc] = 0
		}
	}
}

// packBBF16 packs columns [j0, j0+nc) and rows [p0, p0+kc) of op(B) as bfloat16 pairs into
// micro-panels of 16 columns (see nrBF16), zero panels up to a multiple of 32 columns. BF16
// weights are copied (exact); F32 and F16 ones are rounded; Decoded ones are decoded to float32
// 32 columns at a time (decodeBlock) and those rounded, as F32 ones are.
func packBBF16(dst []uint16, b Weights, ldb int, trans bool, p0, kc, j0, nc int) {
	k2 := (kc + 1) / 2
	panels := (nc + nrBF16 - 1) / nrBF16 * 2
	if b.DType == Decoded {
		sc := decodePool.Get().(*[]float32)
		defer decodePool.Put(sc)
		*sc = grow(*sc, nrBF16*kc)
		s := *sc
		for t := 0; t < panels; t += 2 { // cols > 0: t*nr < nc for even t < panels
			cols := min(nrBF16, nc-t*nr)
			ld := decodeBlock(s, b, ldb, trans, p0, kc, j0+t*nr, cols)
			packBBF16(dst[t*nr*2*k2:(t+2)*nr*2*k2], F32Weights(s), ld, trans, 0, kc, 0, cols)
		}
		return
	}
	for t := 0; t < panels; t++ {
		d := dst[t*nr*2*k2 : (t+1)*nr*2*k2]
		cols := min(nr, nc-t*nr)
		if cols <= 0 {
			clear(d)
			continue
		}
		j := j0 + t*nr
		if trans && cols == nr {
			if b.DType == BF16 && ldb%2 == 0 && packBTrans16BF16Pairs(d, b.Bits, ldb, j, p0, kc) {
				continue
			}
			if b.DType != BF16 && packBTrans16Rounded(d, b, ldb, j, p0, kc) {
				continue
			}
		}
		for cc := 0; cc < nr; cc++ {
			for p := 0; p < 2*k2; p++ {
				var v uint16
				if cc < cols && p < kc {
					v = bf16Elem(b, ldb, trans, p0+p, j+cc)
				}
				d[(p/2)*2*nr+2*cc+p%2] = v
			}
		}
	}
}

// packBTrans16Rounded packs the micro-panel of 16 columns of op(B) = bᵀ for float32 or binary16
// weights: each of the 16 rows of b is rounded to bfloat16 into a scratch matrix (binary16 through
// float32, both exact steps but the last), which packBTrans16BF16Pairs then transposes. It reports
// false where the vector kernels are not available.
func packBTrans16Rounded(d []uint16, b Weights, ldb, j, p0, kc int) bool {
	if !useAsm || !hasBF16 {
		return false
	}
	k2 := (kc + 1) / 2
	sc := scratchPool.Get().(*roundScratch)
	defer scratchPool.Put(sc)
	sc.bits = growU16(sc.bits, nr*2*k2)
	if b.DType == F16 {
		sc.f32 = grow(sc.f32, kc)
	}
	for c := 0; c < nr; c++ {
		o := (j+c)*ldb + p0
		row := sc.bits[c*2*k2 : (c+1)*2*k2]
		if b.DType == F16 {
			convertF16(sc.f32, b.Bits[o:o+kc])
			roundBF16(row[:kc], sc.f32)
		} else {
			roundBF16(row[:kc], b.F32[o:o+kc])
		}
		if kc%2 == 1 {
			row[kc] = 0
		}
	}
	return packBTrans16BF16Pairs(d, sc.bits, 2*k2, 0, 0, 2*k2)
}

// roundScratch is packBTrans16Rounded's scratch space.
type roundScratch struct {
	bits []uint16
	f32  []float32
}

var scratchPool = sync.Pool{New: func() any { return new(roundScratch) }}

// bf16Elem returns element (p, j) of op(B) as bfloat16 bits.
func bf16Elem(b Weights, ldb int, trans bool, p, j int) uint16 {
	o := p*ldb + j
	if trans {
		o = j*ldb + p
	}
	switch b.DType {
	case BF16:
		return b.Bits[o]
	case F16:
		return bf16Round(F16ToFloat32(b.Bits[o]))
	}
	return bf16Round(b.F32[o])
}

// packBTrans16BF16Pairs packs the micro-panel of 16 columns of op(B) = bᵀ (rows j…j+15 of the
// bfloat16 matrix b, ldb even) with the float32 transposition kernel, each pair of bfloat16
// values moving as one 32-bit element; the pairs of a last odd k are completed in Go. It
// reports false where that kernel is not available.
func packBTrans16BF16Pairs(d []uint16, bits []uint16, ldb, j, p0, kc int) bool {
	if !useAsm {
		return false
	}
	k2 := (kc + 1) / 2
	full := kc / 2  // complete pairs
	q8 := full &^ 7 // pairs the kernel moves
	d32 := unsafe.Slice((*float32)(unsafe.Pointer(&d[0])), nr*k2)
	if q8 > 0 {
		_ = bits[(j+nr-1)*ldb+p0+2*q8-1]
		packBT16AVX(&d32[0], (*float32)(unsafe.Pointer(&bits[j*ldb+p0])), ldb/2, q8)
	}
	for c := 0; c < nr; c++ {
		row := bits[(j+c)*ldb+p0 : (j+c)*ldb+p0+kc]
		for p := 2 * q8; p < 2*k2; p++ {
			var v uint16
			if p < kc {
				v = row[p]
			}
			d[(p/2)*2*nr+2*c+p%2] = v
		}
	}
	return true
}
