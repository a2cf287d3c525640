package kernels

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Register tile of the micro-kernel and cache blocking parameters.
//
// The micro-kernel keeps an mr×nr block of C in 12 ymm registers (6 rows × 2
// vectors of 8 floats). A kcBlk×nr micro-panel of packed B (16 KB) stays in
// L1 while the kernel sweeps down an mcBlk×kcBlk block of A (≤144 KB, in L2);
// the kcBlk×ncBlk block of packed B (≤4 MB) lives in L3.
const (
	mr    = 6
	nr    = 16
	kcBlk = 256
	mcBlk = 144 // multiple of mr
	ncBlk = 4096
)

// Parallel split of Gemm: below parallelMinFlops (2·m·n·k) Gemm stays on the
// calling goroutine; otherwise C is cut into up to tilesPerProc·GOMAXPROCS
// tiles of at least minTileFlops each and, where a dimension is split, at
// least minTileEdge wide.
const (
	parallelMinFlops = 1 << 22
	minTileFlops     = 1 << 20
	tilesPerProc     = 4
	minTileEdge      = 96 // smaller tiles lose ~25% per core (edges, packing)
)

// Gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where
// op(X) is X or Xᵀ, op(A) is m×k, op(B) is k×n, C is m×n; lda/ldb/ldc are row
// strides (elements). beta==0 means C is overwritten (NaNs in C ignored).
// Work is split across GOMAXPROCS goroutines when large enough.
// Safe for concurrent use by several goroutines. C must not overlap A or B.
//
// Wrong dimensions, strides or slice lengths are programming errors and panic
// with a message naming the argument.
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("Gemm", transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	gemm(transA, transB, m, n, k, alpha, a, lda, F32Weights(b), ldb, beta, c, ldc, gemmSerial)
}

// serialFunc is a blocked single-goroutine driver: gemmSerial or gemmSerialBF16.
type serialFunc func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b Weights, ldb int, beta float32, c []float32, ldc int)

// gemm is Gemm and GemmW after their checks, with gemmSerial doing each tile's work.
func gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b Weights, ldb int, beta float32, c []float32, ldc int, gemmSerial serialFunc) {
	if gemmTrivial(m, n, k, alpha, beta, c, ldc) {
		return
	}
	flops := 2 * float64(m) * float64(n) * float64(k)
	procs := runtime.GOMAXPROCS(0)
	if procs <= 1 || flops < parallelMinFlops {
		gemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	// More tiles than goroutines, handed out dynamically, so that a goroutine
	// that is descheduled (other processes, other Gemm calls) does not hold
	// everyone up; each tile stays large enough to amortise its packing.
	tiles := int(min(float64(tilesPerProc*procs), flops/minTileFlops))
	pm, pn := splitGrid(m, n, tiles)
	if b.DType == Decoded && pm > 1 {
		// Every tile packs, and so decodes, its own columns of B for all of k: split along n
		// only where that still feeds every goroutine, so that each weight is decoded once per
		// product. The tiling does not change any element's arithmetic (the same bits).
		if _, qn := splitGrid(1, n, tiles); qn >= min(tiles, procs) {
			pm, pn = 1, qn
		}
	}
	nt := pm * pn
	if nt <= 1 {
		gemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
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
			j0, j1 := chunk(n, pn, t%pn, nr)
			if i0 >= i1 || j0 >= j1 {
				continue
			}
			var as []float32
			var bs Weights
			if transA {
				as = a[i0:]
			} else {
				as = a[i0*lda:]
			}
			if transB {
				bs = b.from(j0 * ldb)
			} else {
				bs = b.from(j0)
			}
			gemmSerial(transA, transB, i1-i0, j1-j0, k, alpha, as, lda, bs, ldb, beta, c[i0*ldc+j0:], ldc)
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

// GemmSerial is Gemm on the calling goroutine only (for callers that
// parallelise at a higher level). Safe for concurrent use.
func GemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("GemmSerial", transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if gemmTrivial(m, n, k, alpha, beta, c, ldc) {
		return
	}
	gemmSerial(transA, transB, m, n, k, alpha, a, lda, F32Weights(b), ldb, beta, c, ldc)
}

// checkGemm panics with a clear message when the arguments do not describe
// valid matrices.
func checkGemm(name string, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	checkGemmLen(name, transA, transB, m, n, k, a, lda, len(b), ldb, c, ldc)
}

// checkGemmLen is checkGemm with B given by its length.
func checkGemmLen(name string, transA, transB bool, m, n, k int, a []float32, lda int, bLen int, ldb int, c []float32, ldc int) {
	checkGemmDims(name, transA, transB, m, n, k, len(a), lda, bLen, ldb, len(c), ldc)
}

// checkGemmDims is checkGemm with every matrix given by its length (any element type).
func checkGemmDims(name string, transA, transB bool, m, n, k int, aLen, lda, bLen, ldb, cLen, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernels: %s: negative dimension m=%d n=%d k=%d", name, m, n, k))
	}
	checkMat := func(what string, length, rows, cols, ld int) {
		if ld < max(1, cols) {
			panic(fmt.Sprintf("kernels: %s: ld%s=%d < max(1, %d columns)", name, what, ld, cols))
		}
		if rows > 0 && cols > 0 && length < (rows-1)*ld+cols {
			panic(fmt.Sprintf("kernels: %s: len(%s)=%d < %d needed for %d×%d with ld=%d", name, what, length, (rows-1)*ld+cols, rows, cols, ld))
		}
	}
	if transA {
		checkMat("a", aLen, k, m, lda)
	} else {
		checkMat("a", aLen, m, k, lda)
	}
	if transB {
		checkMat("b", bLen, n, k, ldb)
	} else {
		checkMat("b", bLen, k, n, ldb)
	}
	checkMat("c", cLen, m, n, ldc)
}

// gemmTrivial handles the cases without a product (empty C, k==0, alpha==0)
// and reports whether it did.
func gemmTrivial(m, n, k int, alpha, beta float32, c []float32, ldc int) bool {
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
			scale(beta, row)
		}
	}
	return true
}

// splitGrid chooses a pm×pn grid of tiles of C (pm·pn ≤ tiles, as many as
// possible) whose tiles are at least minTileEdge rows and columns (unless
// that dimension is not split) and minimises the tile's perimeter
// m/pm + n/pn (its packing and memory traffic per flop).
func splitGrid(m, n, tiles int) (pm, pn int) {
	best := -1.0
	for p := tiles; p >= 2 && best < 0; p-- {
		for i := 1; i <= p; i++ {
			if p%i != 0 {
				continue
			}
			j := p / i
			if (i > 1 && m < i*minTileEdge) || (j > 1 && n < j*minTileEdge) {
				continue
			}
			cost := float64(m)/float64(i) + float64(n)/float64(j)
			if best < 0 || cost < best {
				best, pm, pn = cost, i, j
			}
		}
	}
	if best < 0 {
		return 1, 1
	}
	return pm, pn
}

// chunk returns the t-th of p nearly equal ranges of [0, total), with inner
// boundaries rounded to multiples of align.
func chunk(total, p, t, align int) (lo, hi int) {
	units := (total + align - 1) / align
	lo = min(total, units*t/p*align)
	hi = min(total, units*(t+1)/p*align)
	return lo, hi
}

// forcePackA makes gemmSerial pack A in every case (a test hook, so that
// both ways of reading A are exercised).
var forcePackA bool

// gemmBufs holds one goroutine's packing buffers.
type gemmBufs struct {
	a, b []float32
	tmp  [mr * nr]float32
}

var bufPool = sync.Pool{New: func() any { return new(gemmBufs) }}

// grow returns buf with length n, reallocating only when its capacity is short.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

// blockSize splits total into ceil(total/limit) nearly equal blocks and
// returns the block size rounded up to a multiple of align (≤ limit when
// limit is a multiple of align).
func blockSize(total, limit, align int) int {
	nb := (total + limit - 1) / limit
	s := (total + nb - 1) / nb
	return (s + align - 1) / align * align
}

// aBlock describes an mc×kc block of op(A) as the micro-kernel reads it:
// micro-panel q (rows q·mr …) starts at a[q*panel], and its element (i, p)
// is at offset i*rs + p*cs.
type aBlock struct {
	a             []float32
	panel, rs, cs int
	direct        bool // A read in place from the caller's slice
}

// gemmSerial is the blocked driver (arguments already validated, m,n,k > 0).
//
// Loop order (BLIS): columns of C in blocks of nb, k in blocks of kb (B
// block packed once), rows in blocks of mb (A block packed when transposed,
// read in place otherwise), then the macro-kernel over register tiles.
func gemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b Weights, ldb int, beta float32, c []float32, ldc int) {
	bufs := bufPool.Get().(*gemmBufs)
	defer bufPool.Put(bufs)

	kb := blockSize(k, kcBlk, 1)
	mb := blockSize(m, mcBlk, mr)
	nb := blockSize(n, ncBlk, nr)
	// A is read in place (no packing) unless it is transposed with a row
	// stride that is a multiple of 2 KB: then the kc rows one micro-panel walks
	// map to too few cache sets (measured: 64 vs 100 GFLOP/s at lda=1024).
	direct := !forcePackA && (!transA || lda%512 != 0)
	if direct {
		bufs.a = grow(bufs.a, mr*kb) // only for a partial last micro-panel
	} else {
		bufs.a = grow(bufs.a, mb*kb)
	}
	bufs.b = grow(bufs.b, kb*nb)

	for jc := 0; jc < n; jc += nb {
		ncur := min(nb, n-jc)
		for pc := 0; pc < k; pc += kb {
			kcur := min(kb, k-pc)
			bt := beta
			if pc > 0 {
				bt = 1
			}
			packB(bufs.b, b, ldb, transB, pc, kcur, jc, ncur)
			for ic := 0; ic < m; ic += mb {
				mcur := min(mb, m-ic)
				var ab aBlock
				if direct {
					if transA {
						ab = aBlock{a: a[pc*lda+ic:], panel: mr, rs: 1, cs: lda, direct: true}
					} else {
						ab = aBlock{a: a[ic*lda+pc:], panel: mr * lda, rs: lda, cs: 1, direct: true}
					}
					if rem := mcur % mr; rem != 0 {
						// Pack the partial last micro-panel (zero-padded).
						packA(bufs.a, a, lda, transA, ic+mcur-rem, rem, pc, kcur)
					}
				} else {
					packA(bufs.a, a, lda, transA, ic, mcur, pc, kcur)
					ab = aBlock{a: bufs.a, panel: mr * kcur, rs: 1, cs: mr}
				}
				macroKernel(bufs, ab, mcur, ncur, kcur, alpha, bt, c[ic*ldc+jc:], ldc)
			}
		}
	}
}

// macroKernel multiplies an mc×kc block of A by a packed kc×nc block of B
// into C (which starts at the block's top-left corner).
func macroKernel(bufs *gemmBufs, ab aBlock, mc, nc, kc int, alpha, beta float32, c []float32, ldc int) {
	bp := bufs.b
	for jr := 0; jr < nc; jr += nr {
		if useAVX512 && nc-jr >= 2*nr {
			// Two full micro-panels: 6×32 tiles with the AVX-512 kernel for
			// the full row panels, 6×16 tiles for a partial last one.
			full := mc / mr * mr
			for ir := 0; ir < full; ir += mr {
				gemmKernel32(kc, ab.a[ir/mr*ab.panel:], ab.rs, ab.cs, bp[jr*kc:], nr*kc, c[ir*ldc+jr:], ldc, alpha, beta)
			}
			if full < mc {
				macroPanel(bufs, ab, full, mc, nr, kc, bp[jr*kc:(jr+nr)*kc], alpha, beta, c[jr:], ldc)
				macroPanel(bufs, ab, full, mc, nr, kc, bp[(jr+nr)*kc:(jr+2*nr)*kc], alpha, beta, c[jr+nr:], ldc)
			}
			jr += nr
			continue
		}
		macroPanel(bufs, ab, 0, mc, min(nr, nc-jr), kc, bp[jr*kc:jr*kc+nr*kc], alpha, beta, c[jr:], ldc)
	}
}

// macroPanel multiplies rows [i0, mc) of the A block by one packed kc×nr
// micro-panel of B into the first nrem ≤ nr columns of C, in 6×16 tiles.
func macroPanel(bufs *gemmBufs, ab aBlock, i0, mc, nrem, kc int, bpanel []float32, alpha, beta float32, c []float32, ldc int) {
	for ir := i0; ir < mc; ir += mr {
		mrem := min(mr, mc-ir)
		apanel, rs, cs := ab.a[ir/mr*ab.panel:], ab.rs, ab.cs
		if mrem < mr && ab.direct {
			apanel, rs, cs = bufs.a, 1, mr // packed by gemmSerial
		}
		if mrem == mr && nrem == nr {
			gemmKernel(kc, apanel, rs, cs, bpanel, c[ir*ldc:], ldc, alpha, beta)
			continue
		}
		tmp := bufs.tmp[:]
		gemmKernel(kc, apanel, rs, cs, bpanel, tmp, nr, alpha, 0)
		for i := 0; i < mrem; i++ {
			crow := c[(ir+i)*ldc : (ir+i)*ldc+nrem]
			trow := tmp[i*nr : i*nr+nrem]
			if beta == 0 {
				copy(crow, trow)
			} else {
				for j, v := range trow {
					crow[j] = v + beta*crow[j]
				}
			}
		}
	}
}

// packA copies rows [i0, i0+mc) and columns [p0, p0+kc) of op(A) into dst as
// ceil(mc/mr) micro-panels of kc×mr values (zero-padded to mr rows).
func packA(dst, a []float32, lda int, trans bool, i0, mc, p0, kc int) {
	if trans {
		packATrans(dst, a, lda, i0, mc, p0, kc)
		return
	}
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		d := dst[ir*kc : ir*kc+mr*kc]
		if rows == mr {
			packRows6(d, a, lda, i0+ir, p0, kc)
			continue
		}
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

// packATrans packs op(A) = aᵀ: element (i, p) is a[p*lda+i], so each step p
// reads one contiguous stretch of a row of a and scatters it, mr values at a
// time, over the micro-panels.
func packATrans(dst, a []float32, lda, i0, mc, p0, kc int) {
	full := mc / mr * mr
	for p := 0; p < kc; p++ {
		src := a[(p0+p)*lda+i0 : (p0+p)*lda+i0+mc]
		for ir := 0; ir < full; ir += mr {
			o := ir*kc + p*mr
			dp := dst[o : o+mr : o+mr]
			s := src[ir : ir+mr : ir+mr]
			dp[0], dp[1], dp[2], dp[3], dp[4], dp[5] = s[0], s[1], s[2], s[3], s[4], s[5]
		}
		if full < mc {
			o := full*kc + p*mr
			dp := dst[o : o+mr]
			n := copy(dp, src[full:])
			clear(dp[n:])
		}
	}
}

// packRows6 interleaves 6 full rows of a (starting at row i, column p0).
func packRows6(d, a []float32, lda, i, p0, kc int) {
	r0 := a[i*lda+p0 : i*lda+p0+kc]
	r1 := a[(i+1)*lda+p0 : (i+1)*lda+p0+kc]
	r2 := a[(i+2)*lda+p0 : (i+2)*lda+p0+kc]
	r3 := a[(i+3)*lda+p0 : (i+3)*lda+p0+kc]
	r4 := a[(i+4)*lda+p0 : (i+4)*lda+p0+kc]
	r5 := a[(i+5)*lda+p0 : (i+5)*lda+p0+kc]
	d = d[:kc*mr]
	for p := range r0 {
		dp := d[p*mr : p*mr+mr : p*mr+mr]
		dp[0] = r0[p]
		dp[1] = r1[p]
		dp[2] = r2[p]
		dp[3] = r3[p]
		dp[4] = r4[p]
		dp[5] = r5[p]
	}
}

// packB copies rows [p0, p0+kc) and columns [j0, j0+nc) of op(B) into dst as
// ceil(nc/nr) micro-panels of kc×nr values (zero-padded to nr columns),
// converting 16-bit and Decoded elements to float32.
func packB(dst []float32, bw Weights, ldb int, trans bool, p0, kc, j0, nc int) {
	switch bw.DType {
	case BF16, F16:
		packB16(dst, bw, ldb, trans, p0, kc, j0, nc)
		return
	case Decoded:
		packBDecoded(dst, bw, ldb, trans, p0, kc, j0, nc)
		return
	}
	b := bw.F32
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		d := dst[jr*kc : jr*kc+nr*kc]
		if !trans {
			if cols == nr {
				for p := 0; p < kc; p++ {
					o := (p0+p)*ldb + j0 + jr
					*(*[nr]float32)(d[p*nr:]) = *(*[nr]float32)(b[o : o+nr])
				}
				continue
			}
			for p := 0; p < kc; p++ {
				src := b[(p0+p)*ldb+j0+jr:]
				dp := d[p*nr : p*nr+nr]
				copy(dp, src[:cols])
				clear(dp[cols:])
			}
			continue
		}
		// op(B)[p][j] = b[j*ldb+p]: gather one column of op(B) at a time.
		if cols == nr && packBTrans16(d, b, ldb, j0+jr, p0, kc) {
			continue
		}
		for cc := 0; cc < nr; cc++ {
			if cc >= cols {
				for p := 0; p < kc; p++ {
					d[p*nr+cc] = 0
				}
				continue
			}
			src := b[(j0+jr+cc)*ldb+p0 : (j0+jr+cc)*ldb+p0+kc]
			for p, v := range src {
				d[p*nr+cc] = v
			}
		}
	}
}
