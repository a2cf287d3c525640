package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/internal/kernels"
)

// ProvenanceFile is the name of the file recording an export's profile and provenance.
const ProvenanceFile = "evopress.json"

// copiedFiles are the files of a model directory copied unchanged into a Hugging Face export
// (those present).
var copiedFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
	"added_tokens.json", "vocab.json", "merges.txt", "generation_config.json", "chat_template.jinja",
	"chat_template.json", "README.md", "LICENSE",
}

// hfTensor is a tensor of a Hugging Face export with its encoded size.
type hfTensor struct {
	hf.TensorData
	bytes int64
}

// writeHF writes the Hugging Face model directory of pl into dir.
func writeHF(dir string, pl *plan, o Options, res *Result) error {
	src := pl.src
	tensors, qcfg, err := pl.hfTensors(o.Packed)
	if err != nil {
		return err
	}
	overrides := map[string]any{"num_hidden_layers": len(pl.blocks)}
	if qcfg != nil {
		overrides["quantization_config"] = qcfg
	}
	cfgBytes, err := src.cfg.MarshalWith(overrides)
	if err != nil {
		return err
	}
	if err := hf.WriteFileAtomic(filepath.Join(dir, hf.ConfigFileName), cfgBytes); err != nil {
		return err
	}
	if err := writeShards(dir, tensors, o.ShardBytes); err != nil {
		return err
	}
	for _, name := range copiedFiles {
		if err := copyFile(src, name, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	pv, err := pl.provenance(o, res)
	if err != nil {
		return err
	}
	return hf.WriteFileAtomic(filepath.Join(dir, ProvenanceFile), pv)
}

// storeDType is the dtype a tensor is written in: the source tensor's dtype when it is a float
// type the writer encodes, else F32.
func (pl *plan) storeDType(srcName string) hf.DType {
	if info, ok := pl.src.ck.Info(srcName); ok {
		switch info.DType {
		case hf.F32, hf.F16, hf.BF16:
			return info.DType
		}
	}
	return hf.F32
}

// hfTensors lists the tensors of the export in checkpoint order (embedding, blocks, norm, head).
// With packed, quantized layers become GPTQ tensors and the quantization_config is returned.
func (pl *plan) hfTensors(packed bool) ([]hfTensor, map[string]any, error) {
	m := pl.m
	var out []hfTensor
	add := func(name, srcName string, shape []int, vals []float32) {
		dt := pl.storeDType(srcName)
		out = append(out, hfTensor{
			TensorData: hf.TensorData{Name: name, DType: dt, Shape: shape, F32: vals},
			bytes:      int64(len(vals) * dt.Size()),
		})
	}
	// addWeights adds a matrix as the model holds it: 16-bit weights in their stored dtype are
	// written as they are (the bits converting them to float32 and back would give), others
	// from float32.
	addWeights := func(name, srcName string, shape []int, w kernels.Weights) {
		dt := pl.storeDType(srcName)
		if (w.DType == kernels.BF16 && dt == hf.BF16) || (w.DType == kernels.F16 && dt == hf.F16) {
			out = append(out, hfTensor{TensorData: hf.TensorData{Name: name, DType: dt, Shape: shape, Bits: w.Bits}, bytes: int64(2 * len(w.Bits))})
			return
		}
		add(name, srcName, shape, float32s(w))
	}
	var gq *gptqWriter
	if packed {
		var err error
		if gq, err = newGPTQWriter(pl); err != nil {
			return nil, nil, err
		}
	}
	addWeights(arch.Embedding().HF(), arch.Embedding().HF(), []int{m.Vocab, m.Hidden}, m.EmbedWeights())
	for i, b := range pl.blocks {
		sb := &m.Blocks[b.src]
		add(arch.Norm(i, arch.Attention).HF(), arch.Norm(b.src, arch.Attention).HF(), []int{m.Hidden}, sb.AttnNorm)
		add(arch.Norm(i, arch.MLP).HF(), arch.Norm(b.src, arch.MLP).HF(), []int{m.Hidden}, sb.MLPNorm)
		for k := range arch.NumLinearKinds {
			l := sb.Layer(k)
			w, bias := pl.layerWeights(b, k)
			srcName := arch.LinearUnit(b.src, k).String()
			name := arch.LinearUnit(i, k).String()
			if gq != nil {
				ts, err := gq.layer(srcName, name, l)
				if err != nil {
					return nil, nil, err
				}
				if ts != nil {
					out = append(out, ts...)
					if bias != nil {
						add(arch.Bias(i, k).HF(), arch.Bias(b.src, k).HF(), []int{l.Out}, bias)
					}
					continue
				}
			}
			addWeights(arch.Weight(i, k).HF(), arch.Weight(b.src, k).HF(), []int{l.Out, l.In}, w)
			if bias != nil {
				add(arch.Bias(i, k).HF(), arch.Bias(b.src, k).HF(), []int{l.Out}, bias)
			}
		}
	}
	add(arch.FinalNorm().HF(), arch.FinalNorm().HF(), []int{m.Hidden}, m.Norm)
	if !pl.src.cfg.TieWordEmbeddings {
		addWeights(arch.LMHead().HF(), arch.LMHead().HF(), []int{m.Vocab, m.Hidden}, m.HeadWeights())
	}
	if gq != nil {
		return out, gq.config(), nil
	}
	return out, nil, nil
}

// writeShards writes the tensors as model.safetensors, or as model-0000i-of-0000n.safetensors
// files of at most shardBytes each (a larger single tensor gets a file of its own) with
// model.safetensors.index.json, as transformers' save_pretrained does.
func writeShards(dir string, tensors []hfTensor, shardBytes int64) error {
	if shardBytes <= 0 {
		shardBytes = DefaultShardBytes
	}
	var shards [][]hf.TensorData
	var cur []hf.TensorData
	var curBytes, total int64
	for _, t := range tensors {
		if len(cur) > 0 && curBytes+t.bytes > shardBytes {
			shards = append(shards, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, t.TensorData)
		curBytes += t.bytes
		total += t.bytes
	}
	if len(cur) > 0 {
		shards = append(shards, cur)
	}
	meta := map[string]string{"format": "pt"}
	if len(shards) == 1 {
		return hf.WriteSafetensors(filepath.Join(dir, "model.safetensors"), shards[0], meta)
	}
	weightMap := map[string]string{}
	for i, s := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		if err := hf.WriteSafetensors(filepath.Join(dir, name), s, meta); err != nil {
			return err
		}
		for _, t := range s {
			weightMap[t.Name] = name
		}
	}
	index := map[string]any{
		"metadata":   map[string]any{"total_size": total},
		"weight_map": weightMap,
	}
	b, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return err
	}
	return hf.WriteFileAtomic(filepath.Join(dir, "model.safetensors.index.json"), append(b, '\n'))
}

// copyFile copies the source directory's file name to dst when it exists.
func copyFile(src *source, name, dst string) error {
	in, path, err := src.open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("export: %v", err)
	}
	defer in.Close()
	outF, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("export: %v", err)
	}
	if _, err := io.Copy(outF, in); err != nil {
		outF.Close()
		return fmt.Errorf("export: copying %s: %v", path, err)
	}
	if err := outF.Close(); err != nil {
		return fmt.Errorf("export: %v", err)
	}
	return nil
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
