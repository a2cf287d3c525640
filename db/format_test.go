package db

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/hf"
)

// TestSparseRoundTrip packs sparse levels with values of each storable type (and the awkward
// ones: −0, subnormals, huge values) and checks the value type chosen and a bit-exact decode.
func TestSparseRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 7, 13 // 91 weights: a partial last mask byte
	gen := map[string]func() float32{
		"f32": func() float32 { return float32(rng.NormFloat64()) },
		"bf16": func() float32 {
			return math.Float32frombits(math.Float32bits(float32(rng.NormFloat64()*1e20)) &^ 0xffff)
		},
		"f16": func() float32 { return float32(rng.IntN(2048)-1024) / 256 },
	}
	for want, g := range gen {
		for _, density := range []float64{0, 0.3, 1} {
			W := make([]float32, rows*cols)
			for i := range W {
				if rng.Float64() < density {
					W[i] = g()
				}
			}
			if density > 0 {
				W[3] = float32(math.Copysign(0, -1)) // −0 is stored, not pruned
				if want == "f32" {
					W[5] = math.Float32frombits(1) // smallest subnormal
				}
			}
			data, nnz, dtype := encodeSparse("model.layers.0.mlp.up_proj", -2, rows, cols, W)
			h, payload, err := parseLevel(data)
			if err != nil {
				t.Fatal(err)
			}
			zeros := int64(0)
			for _, v := range W {
				if math.Float32bits(v) == 0 {
					zeros++
				}
			}
			if int64(len(W))-nnz != zeros || h.Nonzeros != nnz {
				t.Errorf("%s density %v: %d non-zeros recorded for %d zeros", want, density, nnz, zeros)
			}
			if density > 0 && dtype != want {
				t.Errorf("values chosen %s, want %s", dtype, want)
			}
			got := make([]float32, len(W))
			for i := range got {
				got[i] = 42 // decode must overwrite everything
			}
			if err := decodeSparse(h, payload, got); err != nil {
				t.Fatal(err)
			}
			if !bitsEqual(got, W) {
				t.Errorf("%s density %v: round trip not bit-exact", want, density)
			}
		}
	}
}

// TestQuantRoundTrip packs GPTQ and RTN levels of every width, with and without g_idx, and checks
// codes, scales, zeros and g_idx come back exactly and the fast decode equals Dequantize.
func TestQuantRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 9, 70
	W := make([]float32, rows*cols)
	for i := range W {
		W[i] = float32(rng.NormFloat64() * 0.05)
	}
	X := make([]float32, 200*cols)
	for i := range X {
		X[i] = float32(rng.NormFloat64() * (1 + float64(i%cols)/10))
	}
	h, _ := compress.NewHessian(cols)
	h.Add(X, 200)
	for bits := 1; bits <= 8; bits++ {
		for _, tc := range []struct {
			group int
			act   bool
		}{{0, false}, {32, false}, {32, true}, {128, true}} {
			var q *compress.Quantized
			var err error
			if tc.act {
				q, err = compress.GPTQ(W, rows, cols, h.H, compress.GPTQOptions{Bits: bits, GroupSize: tc.group, PercDamp: 0.01, ActOrder: true})
			} else {
				q, err = compress.RTN(W, rows, cols, bits, tc.group)
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := encodeQuant("model.layers.0.mlp.down_proj", q)
			if err != nil {
				t.Fatal(err)
			}
			hd, payload, err := parseLevel(data)
			if err != nil {
				t.Fatal(err)
			}
			back, err := decodeQuantized(hd, payload)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(back.Codes, q.Codes) || !slices.Equal(back.Scale, q.Scale) || !slices.Equal(back.Zero, q.Zero) ||
				!slices.Equal(back.GIdx, q.GIdx) || back.GroupSize != q.GroupSize || back.Bits != bits {
				t.Errorf("%d bits group %d act %v: round trip differs", bits, tc.group, tc.act)
			}
			want := make([]float32, rows*cols)
			q.Dequantize(want)
			got := make([]float32, rows*cols)
			if err := decodeQuant(hd, payload, got); err != nil {
				t.Fatal(err)
			}
			if !bitsEqual(got, want) {
				t.Errorf("%d bits group %d act %v: fast decode differs from Dequantize", bits, tc.group, tc.act)
			}
			// Storage: the payload is exactly the BitsPerWeight convention, rounded up to bytes per section.
			n := rows * cols
			g := rows * q.NumGroups()
			wantLen := compress.PackedCodesLen(n, bits) + 2*g + compress.PackedCodesLen(g, bits) + 4*len(q.GIdx)
			if len(payload) != wantLen {
				t.Errorf("%d bits: payload %d bytes, want %d", bits, len(payload), wantLen)
			}
			if bpw := q.BitsPerWeight(); math.Abs(float64(8*len(payload))/float64(n)-bpw) > 24.0/float64(n) {
				t.Errorf("%d bits: payload is %v bits per weight, convention %v", bits, float64(8*len(payload))/float64(n), bpw)
			}
		}
	}
}

// TestParseLevelErrors checks damaged level files are errors, not panics or wrong decodes.
func TestParseLevelErrors(t *testing.T) {
	W := []float32{1, 0, 2, 0, 0, 3, 0, 0, 4}
	data, _, _ := encodeSparse("model.layers.0.mlp.up_proj", 0, 3, 3, W)
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXXXXXXX"), data[8:]...),
		"truncated": data[:len(data)-1],
		"longer":    append(slices.Clone(data), 0),
		"hlen":      append(append(slices.Clone(data[:8]), 0xff, 0xff, 0xff, 0x7f), data[12:]...),
	} {
		if _, _, err := parseLevel(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	h, p, _ := parseLevel(data)
	p = slices.Clone(p)
	p[0] ^= 0x80 // a mask bit more than the non-zeros
	if err := decodeSparse(h, p, make([]float32, 9)); err == nil {
		t.Error("bitmask with the wrong count accepted")
	}
	p[0] ^= 0x80
	p[1] |= 0x80 // padding bit of the 9-entry mask
	p[0] &^= 1
	if err := decodeSparse(h, p, make([]float32, 9)); err == nil {
		t.Error("padding bit accepted")
	}
}

func validManifest(t testing.TB) []byte {
	t.Helper()
	tm := newTiny(t, 11, hf.F32)
	cfg := tm.config(filepath.Join(t.TempDir(), "db"), ModeSparse, MethodMagnitude)
	cfg.Sparse.Levels = 1
	res := build(t, cfg)
	data, err := res.Manifest.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestManifestValidation(t *testing.T) {
	good := validManifest(t)
	m, err := ParseManifest(good, "m.json")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m.Marshal()
	if !bytes.Equal(again, good) {
		t.Error("manifest does not round-trip byte for byte")
	}
	for _, tc := range []struct{ old, new, want string }{
		{`"format": "evopress-db/v1"`, `"format": "evopress-db/v9"`, "format"},
		{`"method": "magnitude"`, `"method": "gptq"`, "method"},
		{`"target": 0.5`, `"target": 1.5`, "sparse.target"},
		{`"weights_diff": `, `"weights_diff": -`, "weights_diff"},
		{`"fingerprint": "`, `"fingerprint": "`, ""},
		{`"file": "levels/`, `"file": "../`, "file"},
		{`"file": "levels/`, `"file": "/abs/`, "file"},
		{`"name": "model.layers.0.self_attn.q_proj"`, `"name": "model.layers.0.self_attn.x_proj"`, "name"},
		{`"name": "model.layers.0.self_attn.q_proj"`, `"name": "model.layers.1.self_attn.q_proj"`, "block"},
		{`"rows": 64`, `"rows": 65`, "numel"},
		{`"level": 0`, `"level": 5`, "level"},
		{`"sha256": "`, `"sha256": "zz`, "sha256"},
		{`"complete": true`, `"complete": true, "extra": 1`, "unknown field"},
		{`"seq_len": 32`, `"seq_len": 0`, "calibration"},
		{`"values": "bf16"`, `"values": "f64"`, "values"},
		{`"values": "f32"`, `"values": "f64"`, "values"},
		{`"sequential": false`, `"sequential": false, "sequential_level": 2`, "sequential_level"},
		{`"zeros": `, `"zeros": -`, "zeros"},
	} {
		bad := strings.Replace(string(good), tc.old, tc.new, 1)
		if bad == string(good) {
			if tc.want != "" {
				t.Errorf("%q not found in the manifest", tc.old)
			}
			continue
		}
		_, err := ParseManifest([]byte(bad), "m.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "m.json") {
			t.Errorf("%s → %s: error %v, want one naming m.json and %q", tc.old, tc.new, err, tc.want)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add(validManifest(f))
	f.Add([]byte(`{"format":"evopress-db/v1","mode":"quant"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data, "fuzz.json")
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip unchanged.
		out, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseManifest(out, "again.json")
		if err != nil {
			t.Fatalf("re-parse of a valid manifest: %v", err)
		}
		a, _ := json.Marshal(m)
		b, _ := json.Marshal(m2)
		if !bytes.Equal(a, b) {
			t.Fatal("round trip changed the manifest")
		}
		for _, l := range m.Layers {
			for _, v := range l.Levels {
				if strings.Contains(v.File, "..") || strings.HasPrefix(v.File, "/") {
					t.Fatalf("unsafe file %q accepted", v.File)
				}
			}
		}
	})
}

func FuzzLevelFile(f *testing.F) {
	W := []float32{1, 0, 2, 0, 0, 3, 0, 0, 4, 5}
	s, _, _ := encodeSparse("model.layers.0.mlp.up_proj", 0, 2, 5, W)
	f.Add(s)
	q, _ := compress.RTN(W, 2, 5, 3, 2)
	qd, _ := encodeQuant("model.layers.0.mlp.up_proj", q)
	f.Add(qd)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, p, err := parseLevel(data)
		if err != nil {
			return
		}
		if h.Rows*h.Cols > 1<<16 {
			return
		}
		dst := make([]float32, h.Rows*h.Cols)
		if h.Kind == ModeSparse {
			decodeSparse(h, p, dst)
		} else {
			decodeQuant(h, p, dst)
			decodeQuantized(h, p)
		}
	})
}
