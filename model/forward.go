package model

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/internal/kernels"
)

// Activations is the residual stream of a batch of B sequences of T tokens each:
// X is [B·T × Hidden] row-major, row b·T+t holding token t of sequence b.
type Activations struct {
	B, T int
	X    []float32
}

// Rows is the number of token rows, B·T.
func (a *Activations) Rows() int { return a.B * a.T }

// Clone returns a deep copy.
func (a *Activations) Clone() *Activations {
	return &Activations{B: a.B, T: a.T, X: append([]float32(nil), a.X...)}
}

// CopyFrom makes a hold the same values as src, reusing a's memory when it is large enough.
func (a *Activations) CopyFrom(src *Activations) {
	a.B, a.T = src.B, src.T
	if cap(a.X) < len(src.X) {
		a.X = make([]float32, len(src.X))
	}
	a.X = a.X[:len(src.X)]
	copy(a.X, src.X)
}

// Hook observes the input x [rows × cols] of a linear layer during the forward. It is called from
// the forward's goroutine, before the layer is applied; x must not be kept or modified.
type Hook func(block int, kind arch.LinearKind, x []float32, rows, cols int)

// Embedding returns the input activations for a batch of token sequences, all of the same length.
func (m *Model) Embedding(tokens [][]int) (*Activations, error) {
	if len(tokens) == 0 || len(tokens[0]) == 0 {
		return nil, fmt.Errorf("model: empty batch")
	}
	T := len(tokens[0])
	a := &Activations{B: len(tokens), T: T, X: make([]float32, len(tokens)*T*m.Hidden)}
	h := m.Hidden
	emb := m.EmbedWeights()
	for b, seq := range tokens {
		if len(seq) != T {
			return nil, fmt.Errorf("model: sequence %d has %d tokens, want %d (all sequences of a batch must have the same length)", b, len(seq), T)
		}
		for t, id := range seq {
			if id < 0 || id >= m.Vocab {
				return nil, fmt.Errorf("model: sequence %d position %d: token id %d outside the vocabulary [0, %d)", b, t, id, m.Vocab)
			}
			emb.ToFloat32(a.X[(b*T+t)*h:(b*T+t+1)*h], id*h)
		}
	}
	return a, nil
}

// workspace holds the scratch buffers of one forward call.
type workspace struct {
	xn, q, k, v, att, gate, up []float32
	scores                     [][]float32 // one T×T buffer per attention worker
	cos, sin                   []float32
	ropeT                      int
}

var workspaces sync.Pool

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

func (m *Model) workspace(rows, T int) *workspace {
	ws, _ := workspaces.Get().(*workspace)
	if ws == nil {
		ws = &workspace{}
	}
	m.size(ws, rows, T)
	return ws
}

// size grows ws's buffers to a forward of rows token rows in sequences of T tokens.
func (m *Model) size(ws *workspace, rows, T int) {
	nq, nkv := m.Heads*m.HeadDim, m.KVHeads*m.HeadDim
	ws.xn = grow(ws.xn, rows*m.Hidden)
	ws.q = grow(ws.q, rows*nq)
	ws.k = grow(ws.k, rows*nkv)
	ws.v = grow(ws.v, rows*nkv)
	ws.att = grow(ws.att, rows*nq)
	ws.gate = grow(ws.gate, rows*m.Intermediate)
	ws.up = grow(ws.up, rows*m.Intermediate)
	workers := runtime.GOMAXPROCS(0)
	for len(ws.scores) < workers {
		ws.scores = append(ws.scores, nil)
	}
	for i := range ws.scores {
		ws.scores[i] = grow(ws.scores[i], T*T)
	}
	if ws.ropeT != T || len(ws.cos) != T*m.HeadDim/2 {
		ws.cos, ws.sin = m.ropeTable(T)
		ws.ropeT = T
	}
}

// Forward runs blocks [from, to) over a in place. hook, when not nil, sees every linear layer's input.
func (m *Model) Forward(a *Activations, from, to int, hook Hook) {
	if from < 0 || to > len(m.Blocks) || from > to {
		panic(fmt.Sprintf("model: Forward blocks [%d, %d) out of range [0, %d]", from, to, len(m.Blocks)))
	}
	if from == to {
		return
	}
	ws := m.workspace(a.Rows(), a.T)
	defer workspaces.Put(ws)
	for i := from; i < to; i++ {
		m.block(i, a, ws, hook)
	}
}

// linear computes y = x·Wᵀ (+ bias), or accumulates y += x·Wᵀ (+ bias) when acc is set.
func linear(l *Linear, x []float32, rows int, y []float32, acc bool) {
	beta := float32(0)
	if acc {
		beta = 1
	}
	kernels.GemmW(false, true, rows, l.Out, l.In, 1, x, l.In, l.Weights(), l.In, beta, y, l.Out)
	if l.B != nil {
		parallelRows(rows, 64, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				kernels.Axpy(1, l.B, y[r*l.Out:(r+1)*l.Out])
			}
		})
	}
}

func (m *Model) block(i int, a *Activations, ws *workspace, hook Hook) {
	b := &m.Blocks[i]
	rows, h := a.Rows(), m.Hidden
	x := a.X
	if !b.SkipAttn {
		m.rmsNorm(ws.xn, x, b.AttnNorm, rows)
		if hook != nil {
			hook(i, arch.QProj, ws.xn, rows, h)
			hook(i, arch.KProj, ws.xn, rows, h)
			hook(i, arch.VProj, ws.xn, rows, h)
		}
		linear(&b.Q, ws.xn, rows, ws.q, false)
		linear(&b.K, ws.xn, rows, ws.k, false)
		linear(&b.V, ws.xn, rows, ws.v, false)
		m.attention(a.B, a.T, ws)
		if hook != nil {
			hook(i, arch.OProj, ws.att, rows, b.O.In)
		}
		linear(&b.O, ws.att, rows, x, true)
	}
	if !b.SkipMLP {
		m.rmsNorm(ws.xn, x, b.MLPNorm, rows)
		if hook != nil {
			hook(i, arch.GateProj, ws.xn, rows, h)
			hook(i, arch.UpProj, ws.xn, rows, h)
		}
		linear(&b.Gate, ws.xn, rows, ws.gate, false)
		linear(&b.Up, ws.xn, rows, ws.up, false)
		n := b.Gate.Out
		parallelRows(rows, 16, func(lo, hi int) {
			kernels.SiLUMul(ws.gate[lo*n:hi*n], ws.up[lo*n:hi*n])
		})
		if hook != nil {
			hook(i, arch.DownProj, ws.gate, rows, n)
		}
		linear(&b.Down, ws.gate, rows, x, true)
	}
}

func (m *Model) rmsNorm(dst, x, w []float32, rows int) {
	h := m.Hidden
	parallelRows(rows, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			kernels.RMSNorm(dst[r*h:(r+1)*h], x[r*h:(r+1)*h], w, m.Eps)
		}
	})
}

// rope applies the rotary embedding (Hugging Face rotate-half layout) in place to the heads of
// rows [lo, hi) of x, whose rows hold `heads` vectors of HeadDim.
func (m *Model) rope(x []float32, heads, T, lo, hi int, cos, sin []float32) {
	d := m.HeadDim
	half := d / 2
	w := heads * d
	for r := lo; r < hi; r++ {
		t := r % T
		c, s := cos[t*half:(t+1)*half], sin[t*half:(t+1)*half]
		row := x[r*w : (r+1)*w]
		for hd := 0; hd < heads; hd++ {
			v := row[hd*d : (hd+1)*d]
			x1, x2 := v[:half], v[half:d]
			for j := 0; j < half; j++ {
				a, b := x1[j], x2[j]
				x1[j] = a*c[j] - b*s[j]
				x2[j] = b*c[j] + a*s[j]
			}
		}
	}
}

// attention computes causal grouped-query attention from ws.q, ws.k, ws.v into ws.att.
func (m *Model) attention(B, T int, ws *workspace) {
	nq, nkv, d := m.Heads*m.HeadDim, m.KVHeads*m.HeadDim, m.HeadDim
	rows := B * T
	parallelRows(rows, 32, func(lo, hi int) {
		m.rope(ws.q, m.Heads, T, lo, hi, ws.cos, ws.sin)
		m.rope(ws.k, m.KVHeads, T, lo, hi, ws.cos, ws.sin)
	})
	group := m.Heads / m.KVHeads
	scale := float32(1 / math.Sqrt(float64(d)))
	jobs := B * m.Heads
	var next atomic.Int64
	workers := min(len(ws.scores), jobs)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(s []float32) {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= jobs {
					return
				}
				b, hd := j/m.Heads, j%m.Heads
				kv := hd / group
				q := ws.q[b*T*nq+hd*d:]
				k := ws.k[b*T*nkv+kv*d:]
				v := ws.v[b*T*nkv+kv*d:]
				out := ws.att[b*T*nq+hd*d:]
				// Causal attention by row tiles: rows [r0, r1) attend to columns [0, r1) only,
				// which skips most of the masked upper triangle.
				for r0 := 0; r0 < T; r0 += attnTile {
					r1 := min(r0+attnTile, T)
					kernels.GemmSerial(false, true, r1-r0, r1, d, scale, q[r0*nq:], nq, k, nkv, 0, s, r1)
					for t := r0; t < r1; t++ {
						row := s[(t-r0)*r1 : (t-r0+1)*r1]
						mx := kernels.Max(row[:t+1])
						sum := kernels.ExpTo(row[:t+1], row[:t+1], mx)
						kernels.Scale(1/sum, row[:t+1])
						clear(row[t+1:])
					}
					kernels.GemmSerial(false, false, r1-r0, d, r1, 1, s, r1, v, nkv, 0, out[r0*nq:], nq)
				}
			}
		}(ws.scores[w])
	}
	wg.Wait()
}

// attnTile is the row tile of causal attention.
const attnTile = 64

// parallelRows splits [0, n) into contiguous ranges of at least grain rows across GOMAXPROCS
// goroutines and waits for them.
func parallelRows(n, grain int, f func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > n/grain {
		workers = n / grain
	}
	if workers <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	step := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += step {
		hi := min(lo+step, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}
