package compress

import (
	"fmt"
	"math"

	"github.com/evopress/evopress/internal/kernels"
)

// GPTQOptions configures GPTQ.
//
// The zero value is NOT the reference setting (Bits 0 is invalid and
// PercDamp is used as given); start from DefaultGPTQOptions.
type GPTQOptions struct {
	// Bits is the code width, 1..8 (the reference database uses 2..6).
	Bits int
	// GroupSize is the number of consecutive input columns (in processing
	// order) sharing one scale and zero per row; 0 means one group per output
	// row over the whole input width ("per channel"). Must be ≥ 0.
	GroupSize int
	// BlockSize is the lazy-update block width; ≤ 0 selects 128. A block is
	// cut short where a group would otherwise start inside it and extend
	// past its end (see GPTQ); this changes the operation order only, not
	// the result in exact arithmetic.
	BlockSize int
	// PercDamp is the relative damping: H += PercDamp·mean(diag H)·I. Must be
	// ≥ 0; the reference uses 0.01.
	PercDamp float64
	// ActOrder processes columns by decreasing diag(H) (the reference's
	// --act-order, "desc_act"), with groups formed over consecutive
	// processed columns; the result records each column's group in GIdx.
	ActOrder bool
}

// DefaultGPTQOptions returns the EvoPress database setting for the given
// bit-width: groups of 128 columns, blocks of 128, 1% damping, no
// activation reordering.
func DefaultGPTQOptions(bits int) GPTQOptions {
	return GPTQOptions{Bits: bits, GroupSize: 128, BlockSize: 128, PercDamp: 0.01}
}

// grid is an asymmetric min–max quantization grid: value(c) = scale·(c − zero).
type grid struct {
	scale float32
	zero  float32
	maxq  int
}

// newGrid computes the grid of a group of values exactly as the reference's
// Quantizer.find_params (asymmetric, per channel): xmin = min(min x, 0),
// xmax = max(max x, 0), both zero ⇒ xmin = −1, xmax = +1,
// scale = (xmax − xmin)/maxq, zero = round(−xmin/scale); our one difference
// is that the scale is rounded up to the next binary16 value (at least
// 2^-24, at most 65504) before the zero point is computed, so that a 16-bit
// store of it is lossless while the grid still spans [xmin, xmax] (every
// value of the group is within half a step of a grid point, as with the
// exact scale). The zero point is clamped to [0, maxq].
func newGrid(x []float64, maxq int) grid {
	xmin, xmax := 0.0, 0.0
	for _, v := range x {
		xmin = min(xmin, v) // the builtins: math.Min's and math.Max's results, inline
		xmax = max(xmax, v)
	}
	if xmin == 0 && xmax == 0 {
		xmin, xmax = -1, 1
	}
	scale := ceilFloat16((xmax - xmin) / float64(maxq))
	zero := math.RoundToEven(-xmin / scale)
	zero = min(max(zero, 0), float64(maxq))
	return grid{scale: float32(scale), zero: float32(zero), maxq: maxq}
}

// code returns the grid code of x: clamp(round(x/scale) + zero, 0, maxq),
// rounding halves to even as torch.round does.
func (g grid) code(x float64) uint8 {
	c := math.RoundToEven(x/float64(g.scale)) + float64(g.zero)
	c = min(max(c, 0), float64(g.maxq))
	return uint8(c)
}

func checkBits(name string, bits, groupSize int) error {
	if bits < 1 || bits > 8 {
		return fmt.Errorf("compress: %s: bits %d outside 1..8", name, bits)
	}
	if groupSize < 0 {
		return fmt.Errorf("compress: %s: negative group size %d", name, groupSize)
	}
	return nil
}

// GPTQ quantizes the rows×cols weight matrix W (row-major, y = x·Wᵀ) with
// the GPTQ algorithm (Frantar et al. 2023; the reference's fasterquant with
// the asymmetric per-channel min–max Quantizer), using the calibration
// Hessian H = 2XᵀX/N (cols×cols, symmetric). W and H are not modified.
//
// H is prepared as for SparseGPT (dead inputs: H_ii = 1 and W[:, i] = 0,
// which then quantizes to exactly 0; damping; U = upper Cholesky factor of
// H⁻¹). Columns are processed in order (or by decreasing diag(H) with
// ActOrder): each column is rounded to its group's grid, its scaled error
// err = (w − q)/U_cc is spread onto the later columns of the block
// (W[:, j] −= err·U_cj) and, once per block, onto all later columns
// (lazy update, one matrix product). All updates run in float64; q is the
// float32 grid value Dequantize returns, so Dequantize reproduces exactly
// the weights the error compensation assumed.
//
// Each group's grid (per row, see newGrid) is computed from the
// error-updated weights of its columns when its first column is reached,
// i.e. after every earlier column's update has been applied to all of the
// group's columns. (The reference reads the group from the lazily updated
// matrix, which is the same when groups align with blocks, as with 128/128,
// and stale otherwise; we cut a block short where a group would start
// inside it and extend past its end, so the grid always sees fully updated
// weights.) GroupSize 0 gives one grid per row, computed from W before any
// update, as the reference does.
//
// ActOrder uses the reference's plain act-order scheme with g_idx: groups
// are consecutive in the processing order, codes are stored in the
// original column order and GIdx[j] names column j's group ("static
// groups", where groups stay column ranges and are fixed before
// processing, is the alternative not implemented). With a single group GIdx
// is left nil, as it carries no information.
func GPTQ(W []float32, rows, cols int, H []float32, opt GPTQOptions) (*Quantized, error) {
	qs, err := gptqLevels("GPTQ", W, rows, cols, H, []int{opt.Bits}, opt)
	if err != nil {
		return nil, err
	}
	return qs[0], nil
}

// GPTQLevels quantizes W with GPTQ once per bit-width in bits (opt.Bits is
// ignored), preparing H (damping, the float64 Cholesky factor of its
// inverse) once for all of them: result i has the same bits as GPTQ with
// opt.Bits = bits[i]. For a wide layer the preparation is most of the work
// (an n×n float64 factorisation and inverse; n = 8192 for Llama-3.2-1B's
// down_proj), so a database's bit-widths share it.
func GPTQLevels(W []float32, rows, cols int, H []float32, bits []int, opt GPTQOptions) ([]*Quantized, error) {
	return gptqLevels("GPTQLevels", W, rows, cols, H, bits, opt)
}

func gptqLevels(name string, W []float32, rows, cols int, H []float32, bits []int, opt GPTQOptions) ([]*Quantized, error) {
	if err := checkLayer(name, W, rows, cols); err != nil {
		return nil, err
	}
	if err := checkHessian(name, H, cols); err != nil {
		return nil, err
	}
	for _, b := range bits {
		if err := checkBits(name, b, opt.GroupSize); err != nil {
			return nil, err
		}
	}
	f, err := newFactor(H, cols, opt.PercDamp, opt.ActOrder)
	if err != nil {
		return nil, fmt.Errorf("compress: %s: %w", name, err)
	}
	out := make([]*Quantized, len(bits))
	for i, b := range bits {
		out[i] = f.gptq(W, rows, cols, b, opt)
	}
	return out, nil
}

// gptq runs GPTQ at one bit-width on the prepared factor; see GPTQ.
func (f *factor) gptq(W []float32, rows, cols, bits int, opt GPTQOptions) *Quantized {
	g := opt.GroupSize
	if g == 0 || g > cols {
		g = cols
	}
	bs := opt.BlockSize
	if bs <= 0 {
		bs = 128
	}
	maxq := 1<<bits - 1
	ng := (cols + g - 1) / g
	q := &Quantized{
		Rows: rows, Cols: cols, Bits: bits, GroupSize: opt.GroupSize,
		Codes: make([]uint8, rows*cols),
		Scale: make([]float32, rows*ng),
		Zero:  make([]float32, rows*ng),
	}
	if ng == 1 {
		q.GroupSize = 0
	}
	perm := f.perm
	if perm == nil {
		perm = make([]int, cols)
		for i := range perm {
			perm[i] = i
		}
	}

	// Working copy in processing order, dead inputs zeroed.
	w := f.weights(rows * cols)
	for r := 0; r < rows; r++ {
		for k, c := range perm {
			if f.dead[c] {
				w[r*cols+k] = 0
			} else {
				w[r*cols+k] = float64(W[r*cols+c])
			}
		}
	}

	u := f.u
	ebuf := make([]float64, rows*min(bs, cols))
	for i1 := 0; i1 < cols; {
		i2 := min(i1+bs, cols)
		for c := (i1/g + 1) * g; c < i2; c += g {
			if min(c+g, cols) > i2 {
				i2 = c
				break
			}
		}
		nb := i2 - i1
		e := ebuf[:rows*nb]
		parallelRows(rows, func(r0, r1 int) {
			for r := r0; r < r1; r++ {
				row := w[r*cols : (r+1)*cols]
				er := e[r*nb : (r+1)*nb]
				codes := q.Codes[r*cols : (r+1)*cols]
				var gr grid
				if i1%g != 0 {
					gi := r*ng + i1/g
					gr = grid{scale: q.Scale[gi], zero: q.Zero[gi], maxq: maxq}
				}
				for i := i1; i < i2; i++ {
					if i%g == 0 {
						gr = newGrid(row[i:min(i+g, cols)], maxq)
						q.Scale[r*ng+i/g] = gr.scale
						q.Zero[r*ng+i/g] = gr.zero
					}
					x := row[i]
					c := gr.code(x)
					codes[perm[i]] = c
					ev := (x - float64(dequant(c, gr.scale, gr.zero))) / u[i*cols+i]
					er[i-i1] = ev
					if ev == 0 {
						continue
					}
					kernels.SubMul64(row[i+1:i2], ev, u[i*cols+i+1:i*cols+i2])
				}
			}
		})
		f.lazyUpdate(w, rows, e, i1, i2)
		i1 = i2
	}
	if f.perm != nil && ng > 1 {
		q.GIdx = make([]int32, cols)
		for k, c := range f.perm {
			q.GIdx[c] = int32(k / g)
		}
	}
	return q
}

// RTN quantizes W by round-to-nearest on the same per-(row, group) grid as
// GPTQ (asymmetric min–max of the original weights, binary16 scale, see
// GPTQ), without error compensation. groupSize 0 means one group per row.
func RTN(W []float32, rows, cols int, bits, groupSize int) (*Quantized, error) {
	if err := checkLayer("RTN", W, rows, cols); err != nil {
		return nil, err
	}
	if err := checkBits("RTN", bits, groupSize); err != nil {
		return nil, err
	}
	g := groupSize
	if g == 0 || g > cols {
		g = cols
	}
	maxq := 1<<bits - 1
	ng := (cols + g - 1) / g
	q := &Quantized{
		Rows: rows, Cols: cols, Bits: bits, GroupSize: groupSize,
		Codes: make([]uint8, rows*cols),
		Scale: make([]float32, rows*ng),
		Zero:  make([]float32, rows*ng),
	}
	if ng == 1 {
		q.GroupSize = 0
	}
	buf := make([]float64, g)
	for r := 0; r < rows; r++ {
		for gi := 0; gi < ng; gi++ {
			c0, c1 := gi*g, min(gi*g+g, cols)
			x := buf[:c1-c0]
			for j := range x {
				x[j] = float64(W[r*cols+c0+j])
			}
			gr := newGrid(x, maxq)
			q.Scale[r*ng+gi] = gr.scale
			q.Zero[r*ng+gi] = gr.zero
			for j, v := range x {
				q.Codes[r*cols+c0+j] = gr.code(v)
			}
		}
	}
	return q, nil
}
