package export

import (
	"fmt"
	"regexp"
	"sort"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/model"
)

// GPTQ checkpoint formats: "gptq" (v1, AutoGPTQ's, stores zero points minus one) and
// "gptq_v2" (GPTQModel's, stores them as they are). An export uses v1, the format every GPTQ
// loader reads, unless some zero point is 0, which v1 cannot represent (v1 loaders add one to
// the stored value after masking it to the bit-width).
const (
	gptqFormatV1 = "gptq"
	gptqFormatV2 = "gptq_v2"
)

// gptqWriter writes a quant profile's layers as GPTQ tensors.
type gptqWriter struct {
	pl        *plan
	q         map[string]*compress.Quantized // by source layer name
	groupSize int                            // columns per group; -1: one group per row
	descAct   bool
	format    string
	bits      map[string]int // written module name → bits
	dense     []string       // written module names left unquantized
}

// newGPTQWriter reads every quantized layer of the profile from the database and checks that
// GPTQ can store it.
func newGPTQWriter(pl *plan) (*gptqWriter, error) {
	if pl.db == nil || pl.quant == nil {
		return nil, optionError("Packed", "{} needs a quant profile and its level database")
	}
	man := pl.db.Manifest()
	g := -1
	if man.Quant != nil && man.Quant.GroupSize > 0 {
		g = man.Quant.GroupSize
	}
	w := &gptqWriter{pl: pl, q: map[string]*compress.Quantized{}, groupSize: g, format: gptqFormatV1, bits: map[string]int{}}
	for _, name := range sortedKeys(pl.quant) {
		bits := pl.quant[name]
		q, err := pl.db.Quantized(name, bits)
		if err != nil {
			return nil, err
		}
		if err := checkGPTQ(name, q, g); err != nil {
			return nil, err
		}
		if q.GIdx != nil {
			w.descAct = true
		}
		for _, z := range q.Zero {
			if z == 0 {
				w.format = gptqFormatV2
			}
		}
		w.q[name] = q
	}
	return w, nil
}

// checkGPTQ reports why q cannot be written in the GPTQ format with group size g (-1: per row).
func checkGPTQ(name string, q *compress.Quantized, g int) error {
	switch q.Bits {
	case 2, 3, 4, 8:
	default:
		return optionError("Packed", "layer %s is quantized to %d bits; the GPTQ format stores 2, 3, 4 or 8 bits (export without {} to write dequantized weights)", name, q.Bits)
	}
	if q.Cols%32 != 0 {
		return fmt.Errorf("export: layer %s has %d input columns; GPTQ packing needs a multiple of 32", name, q.Cols)
	}
	if (q.Rows*q.Bits)%32 != 0 {
		return fmt.Errorf("export: layer %s has %d output rows; GPTQ zero-point packing at %d bits needs rows·bits to be a multiple of 32", name, q.Rows, q.Bits)
	}
	if g > 0 && q.Cols%g != 0 {
		return fmt.Errorf("export: layer %s has %d input columns, not a multiple of the group size %d (GPTQ loaders need the group size to divide the input width)", name, q.Cols, g)
	}
	ng := 1
	if g > 0 {
		ng = q.Cols / g
	}
	if q.NumGroups() != ng {
		return fmt.Errorf("export: layer %s has %d groups per row, want %d for group size %d", name, q.NumGroups(), ng, g)
	}
	return nil
}

// layer returns the GPTQ tensors of a written layer (name) from its source layer (srcName), or
// nil when the profile leaves the layer dense.
func (w *gptqWriter) layer(srcName, name string, l *model.Linear) ([]hfTensor, error) {
	q := w.q[srcName]
	if q == nil {
		w.dense = append(w.dense, name)
		return nil, nil
	}
	if q.Rows != l.Out || q.Cols != l.In {
		return nil, fmt.Errorf("export: database layer %s is %d×%d, the model's is %d×%d", srcName, q.Rows, q.Cols, l.Out, l.In)
	}
	w.bits[name] = q.Bits
	qweight, qzeros, scales, gidx := packGPTQ(q, w.groupSize, w.format == gptqFormatV1)
	ng := q.NumGroups()
	i32 := func(suffix string, shape []int, vals []int32) hfTensor {
		raw := make([]byte, 4*len(vals))
		for i, v := range vals {
			u := uint32(v)
			raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
		}
		return hfTensor{TensorData: hf.TensorData{Name: name + suffix, DType: hf.I32, Shape: shape, Raw: raw}, bytes: int64(len(raw))}
	}
	sraw := make([]byte, 2*len(scales))
	for i, s := range scales {
		h := hf.Float32ToFloat16(s)
		sraw[2*i], sraw[2*i+1] = byte(h), byte(h>>8)
	}
	return []hfTensor{
		i32(".qweight", []int{q.Cols * q.Bits / 32, q.Rows}, qweight),
		i32(".qzeros", []int{ng, q.Rows * q.Bits / 32}, qzeros),
		{TensorData: hf.TensorData{Name: name + ".scales", DType: hf.F16, Shape: []int{ng, q.Rows}, Raw: sraw}, bytes: int64(len(sraw))},
		i32(".g_idx", []int{q.Cols}, gidx),
	}, nil
}

// packGPTQ packs q in the GPTQ layout: qweight [Cols·bits/32 × Rows] (codes packed along the
// input dimension), qzeros [groups × Rows·bits/32] (zero points, minus one when v1, packed along
// the output dimension), scales [groups × Rows] and g_idx [Cols]. Packing is a little-endian bit
// stream: value k of a packed run occupies bits k·bits … k·bits+bits−1 of the run's 32-bit words
// (this is AutoGPTQ's layout for 2, 4 and 8 bits and its 3-bit layout of 32 values in 3 words).
func packGPTQ(q *compress.Quantized, groupSize int, v1 bool) (qweight, qzeros []int32, scales []float32, gidx []int32) {
	rows, cols, bits := q.Rows, q.Cols, q.Bits
	ng := q.NumGroups()
	mask := uint32(1)<<bits - 1
	qweight = make([]int32, cols*bits/32*rows)
	col := make([]uint32, cols)
	packed := make([]uint32, cols*bits/32)
	for r := 0; r < rows; r++ {
		for j := 0; j < cols; j++ {
			col[j] = uint32(q.Codes[r*cols+j])
		}
		packBits(col, bits, packed)
		for i, v := range packed {
			qweight[i*rows+r] = int32(v)
		}
	}
	zrow := make([]uint32, rows)
	zpacked := make([]uint32, rows*bits/32)
	qzeros = make([]int32, ng*len(zpacked))
	scales = make([]float32, ng*rows)
	for g := 0; g < ng; g++ {
		for r := 0; r < rows; r++ {
			z := uint32(q.Zero[r*ng+g])
			if v1 {
				z = (z - 1) & mask
			}
			zrow[r] = z
			scales[g*rows+r] = q.Scale[r*ng+g]
		}
		packBits(zrow, bits, zpacked)
		for i, v := range zpacked {
			qzeros[g*len(zpacked)+i] = int32(v)
		}
	}
	gidx = make([]int32, cols)
	for j := range gidx {
		switch {
		case q.GIdx != nil:
			gidx[j] = q.GIdx[j]
		case groupSize > 0:
			gidx[j] = int32(j / groupSize)
		}
	}
	return qweight, qzeros, scales, gidx
}

// packBits packs values of the given width into dst as a little-endian bit stream of 32-bit
// words; len(vals)·bits must equal 32·len(dst).
func packBits(vals []uint32, bits int, dst []uint32) {
	clear(dst)
	for k, v := range vals {
		bit := k * bits
		w, off := bit/32, bit%32
		dst[w] |= v << off
		if off+bits > 32 {
			dst[w+1] |= v >> (32 - off)
		}
	}
}

// config returns the quantization_config: the most common bit-width as "bits", GPTQModel
// "dynamic" overrides for modules at other widths, and negative overrides for modules the
// profile leaves dense.
func (w *gptqWriter) config() map[string]any {
	count := map[int]int{}
	for _, b := range w.bits {
		count[b]++
	}
	base, best := 4, -1
	for _, b := range []int{2, 3, 4, 8} {
		if count[b] > best {
			base, best = b, count[b]
		}
	}
	dynamic := map[string]any{}
	for _, name := range sortedKeys(w.bits) {
		if b := w.bits[name]; b != base {
			dynamic["+:"+regexp.QuoteMeta(name)+"$"] = map[string]any{"bits": b}
		}
	}
	dense := append([]string(nil), w.dense...)
	sort.Strings(dense)
	for _, name := range dense {
		dynamic["-:"+regexp.QuoteMeta(name)+"$"] = map[string]any{}
	}
	cfg := map[string]any{
		"quant_method":      "gptq",
		"bits":              base,
		"group_size":        w.groupSize,
		"desc_act":          w.descAct,
		"sym":               false,
		"true_sequential":   true,
		"damp_percent":      0.01,
		"checkpoint_format": w.format,
		"modules_in_block_to_quantize": [][]string{
			{arch.KProj.String(), arch.VProj.String(), arch.QProj.String()},
			{arch.OProj.String()}, {arch.UpProj.String(), arch.GateProj.String()}, {arch.DownProj.String()},
		},
	}
	if man := w.pl.db.Manifest(); man.Quant != nil && man.Quant.PercDamp > 0 {
		cfg["damp_percent"] = man.Quant.PercDamp
	}
	if len(dynamic) > 0 {
		cfg["dynamic"] = dynamic
	}
	return cfg
}
