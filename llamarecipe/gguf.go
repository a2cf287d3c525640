package llamarecipe

import (
	"fmt"

	"github.com/evopress/evopress/gguf"
)

// FromGGUF reads what the rules need of a GGUF model file, as llama-quantize would read it as
// its input: the Model from the metadata (general.architecture, "{arch}.block_count",
// "{arch}.attention.head_count" and "…head_count_kv" — the first block's when they are
// per-block arrays — and "{arch}.expert_count") and every tensor's name, dimensions and type.
func FromGGUF(f *gguf.File) (Model, []Tensor, error) {
	var m Model
	a, ok := f.Lookup("general.architecture")
	arch, isStr := a.(string)
	if !ok || !isStr || arch == "" {
		return m, nil, fmt.Errorf("llamarecipe: no general.architecture string in the GGUF file")
	}
	m.Arch = arch
	num := func(key string, required bool) (int, error) {
		v, ok := f.Lookup(arch + "." + key)
		if !ok {
			if required {
				return 0, fmt.Errorf("llamarecipe: no %s.%s in the GGUF file", arch, key)
			}
			return 0, nil
		}
		n, ok := firstInt(v)
		if !ok {
			return 0, fmt.Errorf("llamarecipe: %s.%s is a %T, not an integer", arch, key, v)
		}
		return n, nil
	}
	var err error
	if m.Layers, err = num("block_count", true); err != nil {
		return m, nil, err
	}
	if m.Heads, err = num("attention.head_count", false); err != nil {
		return m, nil, err
	}
	if m.KVHeads, err = num("attention.head_count_kv", false); err != nil {
		return m, nil, err
	}
	if m.Experts, err = num("expert_count", false); err != nil {
		return m, nil, err
	}
	m.Is70B = Is70B(m.Arch, m.Layers, m.Heads, m.KVHeads, m.Experts)
	ts := make([]Tensor, len(f.Tensors))
	for i, t := range f.Tensors {
		ts[i] = Tensor{Name: t.Name, Type: t.Type, Dims: make([]int, len(t.Dims))}
		for j, d := range t.Dims {
			ts[i].Dims[j] = int(d)
		}
	}
	return m, ts, nil
}

// firstInt is an integer metadata value, or the first element of an integer array.
func firstInt(v any) (int, bool) {
	switch x := v.(type) {
	case uint8:
		return int(x), true
	case int8:
		return int(x), true
	case uint16:
		return int(x), true
	case int16:
		return int(x), true
	case uint32:
		return int(x), true
	case int32:
		return int(x), true
	case uint64:
		return int(x), true
	case int64:
		return int(x), true
	case []uint32:
		if len(x) > 0 {
			return int(x[0]), true
		}
	case []int32:
		if len(x) > 0 {
			return int(x[0]), true
		}
	}
	return 0, false
}
