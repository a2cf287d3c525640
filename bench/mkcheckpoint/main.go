// Command mkcheckpoint writes a Hugging Face checkpoint with random weights and the exact
// architecture of a published model, for measurements at real sizes without downloading one:
// config.json with the model's values, and BF16 safetensors with its tensor names and shapes,
// sharded as Hugging Face shards it (model.safetensors, or model-0000i-of-0000n.safetensors
// with model.safetensors.index.json). There is no tokenizer. Weights are uniform with standard
// deviation 0.02 (norm weights 1), a function of the seed and the tensor name only.
//
//	go run ./bench/mkcheckpoint -model llama-3.2-1b -out /tmp/llama-1b
//	go run ./bench/mkcheckpoint -list
//
// Models: llama-3.2-1b, llama-3.1-8b, qwen2.5-7b, mistral-7b. The output folder must not exist
// or be empty; files are written atomically. Outputs are large (2.5 to 16 GB): write them
// outside the repository.
//
// Commands that read text (evopress ppl, search, db build) need a tokenizer: copy a smaller
// model's (its token ids are all within these vocabularies), e.g.
//
//	cp assets/llama-pd-11m/tokenizer*.json /tmp/llama-1b/
//	/usr/bin/time -v evopress ppl --model /tmp/llama-1b --seq-len 256 --max-seqs 4
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/evopress/evopress/internal/atomicfile"
	"github.com/evopress/evopress/internal/modelspec"
)

func main() {
	model := flag.String("model", "", "architecture: "+strings.Join(modelspec.Names(), ", "))
	out := flag.String("out", "", "output folder (must not exist, or be empty)")
	seed := flag.Uint64("seed", 0, "random seed")
	list := flag.Bool("list", false, "list the architectures (parameters, files) and exit")
	flag.Parse()
	if *list {
		for _, k := range modelspec.Names() {
			fmt.Println(modelspec.Specs[k].Describe(k))
		}
		return
	}
	s, ok := modelspec.Specs[*model]
	if !ok {
		fail(fmt.Errorf("-model %q: want one of %s", *model, strings.Join(modelspec.Names(), ", ")))
	}
	if *out == "" {
		fail(errors.New("-out is required"))
	}
	if err := write(s, *out, *seed); err != nil {
		fail(err)
	}
	fmt.Println(s.Describe(*model))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkcheckpoint:", err)
	os.Exit(1)
}

// write writes the checkpoint of s into dir.
func write(s modelspec.Spec, dir string, seed uint64) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("-out %s: not empty", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names, files := s.Shards()
	weightMap := map[string]string{}
	var total int64
	for i, f := range files {
		if err := writeShard(filepath.Join(dir, names[i]), f, seed); err != nil {
			return err
		}
		for _, t := range f {
			weightMap[t.Name] = names[i]
			total += 2 * t.Numel()
		}
	}
	if len(files) > 1 {
		idx, err := json.MarshalIndent(map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap}, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), append(idx, '\n'), 0o644); err != nil {
			return err
		}
	}
	cfg, err := s.ConfigJSON()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
}

// header returns a safetensors header for tensors laid out in name order (as the safetensors
// library writes them), padded with spaces to a multiple of 8 bytes.
func header(ts []modelspec.Tensor) ([]byte, []modelspec.Tensor, error) {
	sorted := append([]modelspec.Tensor(nil), ts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	h := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, t := range sorted {
		n := 2 * t.Numel()
		h[t.Name] = map[string]any{"dtype": "BF16", "shape": t.Shape, "data_offsets": []int64{off, off + n}}
		off += n
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, nil, err
	}
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	return b, sorted, nil
}

// writeShard writes one safetensors file, generating the tensors on all cores, a slab at a
// time.
func writeShard(path string, ts []modelspec.Tensor, seed uint64) error {
	head, sorted, err := header(ts)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, 0o644, func(f io.Writer) error {
		w := bufio.NewWriterSize(f, 8<<20)
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(head)))
		w.Write(n[:])
		w.Write(head)
		for _, t := range sorted {
			if err := writeTensor(w, t, seed); err != nil {
				return err
			}
		}
		return w.Flush()
	})
}

// slab is the number of elements generated per goroutine and step.
const slab = 1 << 22

// writeTensor writes t's BF16 values: ones for norms, else uniform on [−a, a) with a =
// 0.02·√3 (standard deviation 0.02), element i of slab k drawn from a PCG seeded by (seed,
// hash of the name, k): the same bytes whatever the number of cores.
func writeTensor(w io.Writer, t modelspec.Tensor, seed uint64) error {
	n := t.Numel()
	if t.Norm {
		buf := make([]byte, 2*n)
		for i := range n {
			binary.LittleEndian.PutUint16(buf[2*i:], 0x3f80) // 1.0
		}
		_, err := w.Write(buf)
		return err
	}
	h := fnv.New64a()
	io.WriteString(h, t.Name)
	key := h.Sum64()
	a := float32(0.02 * math.Sqrt(3))
	workers := runtime.GOMAXPROCS(0)
	bufs := make([][]byte, workers)
	for i := range bufs {
		bufs[i] = make([]byte, 2*slab)
	}
	for start := int64(0); start < n; start += int64(workers) * slab {
		var wg sync.WaitGroup
		for g := range workers {
			lo := start + int64(g)*slab
			if lo >= n {
				bufs[g] = bufs[g][:0]
				continue
			}
			hi := min(lo+slab, n)
			bufs[g] = bufs[g][:2*(hi-lo)]
			wg.Add(1)
			go func(b []byte, k uint64) {
				defer wg.Done()
				r := rand.NewPCG(seed^key, k)
				for i := 0; i < len(b); i += 2 {
					u := uint32(r.Uint64() >> 40)     // 24 random bits
					v := (float32(u)/(1<<23) - 1) * a // [−a, a)
					bits := math.Float32bits(v)       //
					bits += 0x7fff + (bits>>16)&1     // round to nearest even
					binary.LittleEndian.PutUint16(b[i:], uint16(bits>>16))
				}
			}(bufs[g], uint64(lo/slab))
		}
		wg.Wait()
		for g := range workers {
			if _, err := w.Write(bufs[g]); err != nil {
				return err
			}
			bufs[g] = bufs[g][:cap(bufs[g])]
		}
	}
	return nil
}
