package kernels

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Register tile and cache blocking of Dgemm (float64).
//
// The AVX2 micro-kernel keeps a 6×8 tile of C in 12 ymm registers (6 rows × 2
// vectors of 4 doubles); the AVX-512 one a 6×16 tile in 12 zmm registers,
// reading two packed B micro-panels of 8 columns at once. A kcBlk64×8
// micro-panel of packed B is 16 KB (the AVX-512 pair 32 KB, in L1), the A
// block read by the kernel mcBlk64×kcBlk64 doubles (≤288 KB, in L2), the
// packed B block kcBlk64×ncBlk64 doubles (≤4 MB, in L3).
//
// kcBlk64 is part of the arithmetic: C is rounded after every block of k, so
// changing it changes the bits (the same on every path).
const (
	nr64    = 8
	kcBlk64 = 256
	mcBlk64 = 144 // multiple of mr
	ncBlk64 = 2048
)

// Dgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float64
// matrices, where op(X) is X or Xᵀ, op(A) is m×k, op(B) is k×n, C is m×n;
// lda/ldb/ldc are row strides (elements). beta==0 means C is overwritten (NaNs
// in C ignored). Work is split across GOMAXPROCS goroutines when large enough,
// as in Gemm. Safe for concurrent use by several goroutines. C must not overlap
// A or B.
//
// Every element of C is one fused multiply-add chain over k in increasing
// order (from 0 for each block of kcBlk64 values of k), then alpha·acc, then
// beta·C added in one fused multiply-add; the portable, AVX2 and AVX-512
// paths all compute exactly this, so the result has the same bits on every
// path and for any split across goroutines.
//
// Wrong dimensions, strides or slice lengths are programming errors and panic
// with a message naming the argument.
func Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	checkGemmDims("Dgemm", transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if dgemmTrivial(m, n, k, alpha, beta, c, ldc) {
		return
	}
	flops := 2 * float64(m) * float64(n) * float64(k)
	procs := runtime.GOMAXPROCS(0)
	if procs <= 1 || flops < parallelMinFlops {
		dgemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	tiles := int(min(float64(tilesPerProc*procs), flops/minTileFlops))
	pm, pn := splitGrid(m, n, tiles)
	nt := pm * pn
	if nt <= 1 {
		dgemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	var next atomic.Int32
	work := func() {
		for {
			t := int(next.Add(1)) - 1
			if t >= nt {
				return
			}
			i0, i1 := chunk(m, pm, t/pn, mr)
			j0, j1 := chunk(n, pn, t%pn, 2*nr64)
			if i0 >= i1 || j0 >= j1 {
				continue
			}
			var as, bs []float64
			if transA {
				as = a[i0:]
			} else {
				as = a[i0*lda:]
			}
			if transB {
				bs = b[j0*ldb:]
			} else {
				bs = b[j0:]
			}
			dgemmSerial(transA, transB, i1-i0, j1-j0, k, alpha, as, lda, bs, ldb, beta, c[i0*ldc+j0:], ldc)
		}
	}
	workers := min(procs, nt)
	var wg sync.WaitGroup
	wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work() // the calling goroutine works too
	wg.Wait()
}

// DgemmSerial is Dgemm on the calling goroutine only (for callers that
// parallelise at a higher level); the same bits as Dgemm. Safe for concurrent
// use.
func DgemmSerial(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	checkGemmDims("DgemmSerial", transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if dgemmTrivial(m, n, k, alpha, beta, c, ldc) {
		return
	}
	dgemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// dgemmTrivial handles the cases without a product (empty C, k==0, alpha==0)
// and reports whether it did.
func dgemmTrivial(m, n, k int, alpha, beta float64, c []float64, ldc int) bool {
	if m == 0 || n == 0 {
		return true
	}
	if k != 0 && alpha != 0 {
		return false
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
		} else if beta != 1 {
			for j := range row {
				row[j] *= beta
			}
		}
	}
	return true
}

// dgemmBufs holds one goroutine's float64 packing buffers.
type dgemmBufs struct {
	a, b []float64
	tmp  [mr * nr64]float64
}

var dbufPool = sync.Pool{New: func() any { return new(dgemmBufs) }}

// grow64 returns buf with length n, reallocating only when its capacity is short.
func grow64(buf []float64, n int) []float64 {
	if cap(buf) < n {
		return make([]float64, n)
	}
	return buf[:n]
}

// dBlock is aBlock for float64: micro-panel q of the A block starts at
// a[q*panel] and its element (i, p) is at offset i*rs + p*cs.
type dBlock struct {
	a             []float64
	panel, rs, cs int
	direct        bool // A read in place from the caller's slice
}

// dgemmSerial is the blocked driver of Dgemm (arguments validated, m,n,k > 0),
// in gemmSerial's loop order: columns of C in blocks of nb, k in blocks of kb
// (B block packed once), rows in blocks of mb (A read in place unless it is
// transposed with a row stride that is a multiple of 2 KB), then the
// macro-kernel over register tiles.
func dgemmSerial(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	bufs := dbufPool.Get().(*dgemmBufs)
	defer dbufPool.Put(bufs)

	kb := blockSize(k, kcBlk64, 1)
	mb := blockSize(m, mcBlk64, mr)
	nb := blockSize(n, ncBlk64, 2*nr64)
	direct := !forcePackA && (!transA || lda%256 != 0)
	if direct {
		bufs.a = grow64(bufs.a, mr*kb) // only for a partial last micro-panel
	} else {
		bufs.a = grow64(bufs.a, mb*kb)
	}
	bufs.b = grow64(bufs.b, kb*nb)

	for jc := 0; jc < n; jc += nb {
		ncur := min(nb, n-jc)
		for pc := 0; pc < k; pc += kb {
			kcur := min(kb, k-pc)
			bt := beta
			if pc > 0 {
				bt = 1
			}
			packB64(bufs.b, b, ldb, transB, pc, kcur, jc, ncur)
			for ic := 0; ic < m; ic += mb {
				mcur := min(mb, m-ic)
				var ab dBlock
				if direct {
					if transA {
						ab = dBlock{a: a[pc*lda+ic:], panel: mr, rs: 1, cs: lda, direct: true}
					} else {
						ab = dBlock{a: a[ic*lda+pc:], panel: mr * lda, rs: lda, cs: 1, direct: true}
					}
					if rem := mcur % mr; rem != 0 {
						// Pack the partial last micro-panel (zero-padded).
						packA64(bufs.a, a, lda, transA, ic+mcur-rem, rem, pc, kcur)
					}
				} else {
					packA64(bufs.a, a, lda, transA, ic, mcur, pc, kcur)
					ab = dBlock{a: bufs.a, panel: mr * kcur, rs: 1, cs: mr}
				}
				dmacroKernel(bufs, ab, mcur, ncur, kcur, alpha, bt, c[ic*ldc+jc:], ldc)
			}
		}
	}
}

// dmacroKernel multiplies an mc×kc block of A by a packed kc×nc block of B
// into C (which starts at the block's top-left corner).
func dmacroKernel(bufs *dgemmBufs, ab dBlock, mc, nc, kc int, alpha, beta float64, c []float64, ldc int) {
	bp := bufs.b
	for jr := 0; jr < nc; jr += nr64 {
		if useAVX512 && nc-jr >= 2*nr64 {
			// Two full micro-panels: 6×16 tiles with the AVX-512 kernel for
			// the full row panels, 6×8 tiles for a partial last one.
			full := mc / mr * mr
			for ir := 0; ir < full; ir += mr {
				dgemmKernel16(kc, ab.a[ir/mr*ab.panel:], ab.rs, ab.cs, bp[jr*kc:], nr64*kc, c[ir*ldc+jr:], ldc, alpha, beta)
			}
			if full < mc {
				dmacroPanel(bufs, ab, full, mc, nr64, kc, bp[jr*kc:(jr+nr64)*kc], alpha, beta, c[jr:], ldc)
				dmacroPanel(bufs, ab, full, mc, nr64, kc, bp[(jr+nr64)*kc:(jr+2*nr64)*kc], alpha, beta, c[jr+nr64:], ldc)
			}
			jr += nr64
			continue
		}
		dmacroPanel(bufs, ab, 0, mc, min(nr64, nc-jr), kc, bp[jr*kc:jr*kc+nr64*kc], alpha, beta, c[jr:], ldc)
	}
}

// dmacroPanel multiplies rows [i0, mc) of the A block by one packed kc×8
// micro-panel of B into the first nrem ≤ 8 columns of C, in 6×8 tiles. A
// partial tile is computed into a scratch tile (alpha·acc) and beta·C is added
// with the same fused multiply-add as the kernels', so its elements have the
// bits they would have in a full tile.
func dmacroPanel(bufs *dgemmBufs, ab dBlock, i0, mc, nrem, kc int, bpanel []float64, alpha, beta float64, c []float64, ldc int) {
	for ir := i0; ir < mc; ir += mr {
		mrem := min(mr, mc-ir)
		apanel, rs, cs := ab.a[ir/mr*ab.panel:], ab.rs, ab.cs
		if mrem < mr && ab.direct {
			apanel, rs, cs = bufs.a, 1, mr // packed by dgemmSerial
		}
		if mrem == mr && nrem == nr64 {
			dgemmKernel(kc, apanel, rs, cs, bpanel, c[ir*ldc:], ldc, alpha, beta)
			continue
		}
		tmp := bufs.tmp[:]
		dgemmKernel(kc, apanel, rs, cs, bpanel, tmp, nr64, alpha, 0)
		for i := 0; i < mrem; i++ {
			crow := c[(ir+i)*ldc : (ir+i)*ldc+nrem]
			trow := tmp[i*nr64 : i*nr64+nrem]
			if beta == 0 {
				copy(crow, trow)
			} else {
				for j, v := range trow {
					crow[j] = math.FMA(beta, crow[j], v)
				}
			}
		}
	}
}

// dgemmKernelGo is the portable float64 micro-kernel: the full mr×8 tile
//
//	C[i*ldc+j] = alpha·Σ_p A(i,p)·b[p*8+j] + beta·C[i*ldc+j]
//
// with A(i,p) = a[i*rs+p*cs] and b a packed kc×8 B micro-panel; beta==0
// overwrites C without reading it. The sum is a chain of math.FMA over p from
// 0 up, then alpha·acc, then math.FMA(beta, C, ·): exactly the assembly
// kernels' operations, so the same bits.
func dgemmKernelGo(kc int, a []float64, rs, cs int, b, c []float64, ldc int, alpha, beta float64) {
	b = b[:kc*nr64]
	for i := 0; i < mr; i += 2 {
		c0 := c[i*ldc : i*ldc+nr64]
		c1 := c[(i+1)*ldc : (i+1)*ldc+nr64]
		a0s := a[i*rs : i*rs+(kc-1)*cs+1]
		a1s := a[(i+1)*rs : (i+1)*rs+(kc-1)*cs+1]
		for j := 0; j < nr64; j += 4 {
			var s00, s01, s02, s03, s10, s11, s12, s13 float64
			bj := b[j:]
			for p := 0; p < kc; p++ {
				a0, a1 := a0s[p*cs], a1s[p*cs]
				bp := bj[p*nr64 : p*nr64+4 : p*nr64+4]
				b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
				s00 = math.FMA(a0, b0, s00)
				s01 = math.FMA(a0, b1, s01)
				s02 = math.FMA(a0, b2, s02)
				s03 = math.FMA(a0, b3, s03)
				s10 = math.FMA(a1, b0, s10)
				s11 = math.FMA(a1, b1, s11)
				s12 = math.FMA(a1, b2, s12)
				s13 = math.FMA(a1, b3, s13)
			}
			d0 := c0[j : j+4 : j+4]
			d1 := c1[j : j+4 : j+4]
			if beta == 0 {
				d0[0], d0[1], d0[2], d0[3] = alpha*s00, alpha*s01, alpha*s02, alpha*s03
				d1[0], d1[1], d1[2], d1[3] = alpha*s10, alpha*s11, alpha*s12, alpha*s13
			} else {
				d0[0] = math.FMA(beta, d0[0], alpha*s00)
				d0[1] = math.FMA(beta, d0[1], alpha*s01)
				d0[2] = math.FMA(beta, d0[2], alpha*s02)
				d0[3] = math.FMA(beta, d0[3], alpha*s03)
				d1[0] = math.FMA(beta, d1[0], alpha*s10)
				d1[1] = math.FMA(beta, d1[1], alpha*s11)
				d1[2] = math.FMA(beta, d1[2], alpha*s12)
				d1[3] = math.FMA(beta, d1[3], alpha*s13)
			}
		}
	}
}

// packA64 copies rows [i0, i0+mc) and columns [p0, p0+kc) of op(A) into dst
// as ceil(mc/mr) micro-panels of kc×mr values (zero-padded to mr rows).
func packA64(dst, a []float64, lda int, trans bool, i0, mc, p0, kc int) {
	if trans {
		packATrans64(dst, a, lda, i0, mc, p0, kc)
		return
	}
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		d := dst[ir*kc : ir*kc+mr*kc]
		for r := 0; r < mr; r++ {
			if r >= rows {
				for p := 0; p < kc; p++ {
					d[p*mr+r] = 0
				}
				continue
			}
			src := a[(i0+ir+r)*lda+p0 : (i0+ir+r)*lda+p0+kc]
			for p, v := range src {
				d[p*mr+r] = v
			}
		}
	}
}

// packATrans64 packs op(A) = aᵀ: element (i, p) is a[p*lda+i].
func packATrans64(dst, a []float64, lda, i0, mc, p0, kc int) {
	full := mc / mr * mr
	for p := 0; p < kc; p++ {
		src := a[(p0+p)*lda+i0 : (p0+p)*lda+i0+mc]
		for ir := 0; ir < full; ir += mr {
			o := ir*kc + p*mr
			*(*[mr]float64)(dst[o : o+mr]) = *(*[mr]float64)(src[ir : ir+mr])
		}
		if full < mc {
			o := full*kc + p*mr
			dp := dst[o : o+mr]
			n := copy(dp, src[full:])
			clear(dp[n:])
		}
	}
}

// packB64 copies rows [p0, p0+kc) and columns [j0, j0+nc) of op(B) into dst
// as ceil(nc/8) micro-panels of kc×8 values (zero-padded to 8 columns).
func packB64(dst, b []float64, ldb int, trans bool, p0, kc, j0, nc int) {
	for jr := 0; jr < nc; jr += nr64 {
		cols := min(nr64, nc-jr)
		d := dst[jr*kc : jr*kc+nr64*kc]
		if !trans {
			if cols == nr64 {
				for p := 0; p < kc; p++ {
					o := (p0+p)*ldb + j0 + jr
					*(*[nr64]float64)(d[p*nr64:]) = *(*[nr64]float64)(b[o : o+nr64])
				}
				continue
			}
			for p := 0; p < kc; p++ {
				src := b[(p0+p)*ldb+j0+jr:]
				dp := d[p*nr64 : p*nr64+nr64]
				copy(dp, src[:cols])
				clear(dp[cols:])
			}
			continue
		}
		// op(B)[p][j] = b[j*ldb+p]: 8 rows of b become the 8 columns.
		if cols == nr64 {
			packBTrans8(d, b, ldb, j0+jr, p0, kc)
			continue
		}
		for cc := 0; cc < nr64; cc++ {
			if cc >= cols {
				for p := 0; p < kc; p++ {
					d[p*nr64+cc] = 0
				}
				continue
			}
			src := b[(j0+jr+cc)*ldb+p0 : (j0+jr+cc)*ldb+p0+kc]
			for p, v := range src {
				d[p*nr64+cc] = v
			}
		}
	}
}

// packBTrans8 packs the kc×8 micro-panel of op(B) = bᵀ whose columns are rows
// j…j+7 of b (from column p0 on), reading the 8 rows in step.
func packBTrans8(d, b []float64, ldb, j, p0, kc int) {
	r0 := b[j*ldb+p0 : j*ldb+p0+kc]
	r1 := b[(j+1)*ldb+p0 : (j+1)*ldb+p0+kc]
	r2 := b[(j+2)*ldb+p0 : (j+2)*ldb+p0+kc]
	r3 := b[(j+3)*ldb+p0 : (j+3)*ldb+p0+kc]
	r4 := b[(j+4)*ldb+p0 : (j+4)*ldb+p0+kc]
	r5 := b[(j+5)*ldb+p0 : (j+5)*ldb+p0+kc]
	r6 := b[(j+6)*ldb+p0 : (j+6)*ldb+p0+kc]
	r7 := b[(j+7)*ldb+p0 : (j+7)*ldb+p0+kc]
	d = d[:kc*nr64]
	for p := range r0 {
		dp := d[p*nr64 : p*nr64+nr64 : p*nr64+nr64]
		dp[0], dp[1], dp[2], dp[3] = r0[p], r1[p], r2[p], r3[p]
		dp[4], dp[5], dp[6], dp[7] = r4[p], r5[p], r6[p], r7[p]
	}
}
