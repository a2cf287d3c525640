package imatrix

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/evopress/evopress/arch"
)

const (
	fixtureGGUF = "testdata/babyllama-1m.imatrix.gguf"
	fixtureDat  = "testdata/babyllama-1m.imatrix.dat"
)

func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeBytes(b []byte, name string) (*Matrix, Format, error) {
	return Decode(bytes.NewReader(b), int64(len(b)), name)
}

func encodeBytes(t *testing.T, m *Matrix, f Format) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, m, f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLlamaFilesByteIdentical reads the files llama-imatrix wrote and writes them back: the
// bytes are the same, in both formats, and the GGUF file written as legacy is llama-imatrix's own
// legacy file of the same run.
func TestLlamaFilesByteIdentical(t *testing.T) {
	gguf, dat := readFixture(t, fixtureGGUF), readFixture(t, fixtureDat)
	mg, fg, err := decodeBytes(gguf, fixtureGGUF)
	if err != nil || fg != FormatGGUF {
		t.Fatalf("gguf: %v, format %q", err, fg)
	}
	md, fd, err := decodeBytes(dat, fixtureDat)
	if err != nil || fd != FormatDat {
		t.Fatalf("dat: %v, format %q", err, fd)
	}
	// What llama-imatrix recorded: babyllama-1m has 5 blocks of 7 linear layers, 3 chunks of 64 tokens.
	if len(mg.Entries) != 35 || mg.ChunkCount != 3 || mg.ChunkSize != 64 || !reflect.DeepEqual(mg.Datasets, []string{"calib.txt"}) {
		t.Errorf("gguf: %d entries, chunks %d × %d, datasets %q", len(mg.Entries), mg.ChunkCount, mg.ChunkSize, mg.Datasets)
	}
	if len(md.Entries) != 35 || md.ChunkCount != 3 || md.ChunkSize != 0 || !reflect.DeepEqual(md.Datasets, []string{"calib.txt"}) {
		t.Errorf("dat: %d entries, chunks %d × %d, datasets %q", len(md.Entries), md.ChunkCount, md.ChunkSize, md.Datasets)
	}
	for _, tc := range []struct {
		name string
		m    *Matrix
		f    Format
		want []byte
	}{{"gguf", mg, FormatGGUF, gguf}, {"dat", md, FormatDat, dat}, {"gguf as dat", mg, FormatDat, dat}} {
		if got := encodeBytes(t, tc.m, tc.f); !bytes.Equal(got, tc.want) {
			t.Errorf("%s: %d bytes written differ from llama-imatrix's %d", tc.name, len(got), len(tc.want))
		}
	}
	// Both files give llama-quantize the same means (the legacy file stores them times ncall).
	for _, n := range mg.Names() {
		eg, ed := mg.Entries[n], md.Entries[n]
		if ed == nil || eg.Counts[0] != 192 || ed.Counts[0] != 3 {
			t.Fatalf("%s: counts %v and %v, want 192 tokens and 3 chunks", n, eg.Counts, ed)
		}
		a, b := eg.Mean(), ed.Mean()
		for j := range a {
			if d := math.Abs(float64(a[j] - b[j])); d > 1e-6*float64(a[j]) {
				t.Fatalf("%s column %d: mean %g from gguf, %g from dat", n, j, a[j], b[j])
			}
		}
	}
	// q, k and v read the same input, as do gate and up.
	for _, set := range [][]arch.LinearKind{{arch.QProj, arch.KProj, arch.VProj}, {arch.GateProj, arch.UpProj}} {
		for b := range 5 {
			first := mg.Linear(b, set[0])
			for _, k := range set[1:] {
				if !reflect.DeepEqual(first.Sums, mg.Linear(b, k).Sums) {
					t.Errorf("block %d: %v and %v sums differ", b, set[0], k)
				}
			}
		}
	}
}

func sampleMatrices() map[string]*Matrix {
	dense := New()
	dense.Entries["blk.0.attn_q.weight"] = &Entry{Sums: []float32{1.5, 0, 3.25}, Counts: []int64{7}}
	dense.Entries["blk.0.ffn_down.weight"] = &Entry{Sums: []float32{2, 4}, Counts: []int64{12}}
	dense.Entries["output.weight"] = &Entry{Sums: []float32{9}, Counts: []int64{3}}
	dense.Datasets, dense.ChunkCount, dense.ChunkSize = []string{"a.txt", "b/ü.txt"}, 3, 4
	experts := New() // three experts of two columns, the second never routed to
	experts.Entries["blk.1.ffn_down_exps.weight"] = &Entry{Sums: []float32{1, 2, 0, 0, 5, 6}, Counts: []int64{3, 0, 9}}
	experts.Entries["blk.1.ffn_gate_exps.weight"] = &Entry{Sums: []float32{1, 2, 3, 4}, Counts: []int64{1, 1}}
	experts.ChunkCount, experts.ChunkSize = 2, 8
	bare := New() // no datasets, unknown chunk size, one column
	bare.Entries["x"] = &Entry{Sums: []float32{0.125}, Counts: []int64{1}}
	return map[string]*Matrix{"dense": dense, "experts": experts, "bare": bare}
}

func TestRoundTrip(t *testing.T) {
	for name, m := range sampleMatrices() {
		t.Run(name+"/gguf", func(t *testing.T) {
			got, f, err := decodeBytes(encodeBytes(t, m, FormatGGUF), "x.gguf")
			if err != nil || f != FormatGGUF {
				t.Fatalf("%v %q", err, f)
			}
			if want := m; !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
		t.Run(name+"/dat", func(t *testing.T) {
			got, f, err := decodeBytes(encodeBytes(t, m, FormatDat), "x.dat")
			if err != nil || f != FormatDat {
				t.Fatalf("%v %q", err, f)
			}
			if got.ChunkCount != m.ChunkCount || got.ChunkSize != 0 {
				t.Errorf("chunks %d × %d", got.ChunkCount, got.ChunkSize)
			}
			if len(m.Datasets) > 0 && !reflect.DeepEqual(got.Datasets, m.Datasets[len(m.Datasets)-1:]) {
				t.Errorf("datasets %q, want the last of %q", got.Datasets, m.Datasets)
			}
			for n, e := range m.Entries {
				g := got.Entries[n]
				if g == nil || len(g.Counts) != 1 {
					t.Fatalf("%s: %+v", n, g)
				}
				// The legacy format has one count for all experts: its mean is the rows' mean, 1
				// for a row without data (llama-imatrix's convention).
				want := e.Mean()
				for j, v := range g.Mean() {
					if math.Abs(float64(v-want[j])) > 1e-6*math.Abs(float64(want[j])) {
						t.Errorf("%s column %d: mean %g, want %g", n, j, v, want[j])
					}
				}
			}
		})
	}
}

func TestMeanAsLlamaQuantize(t *testing.T) {
	e := &Entry{Sums: []float32{3, 6, 0, 0, 1, 2}, Counts: []int64{3, 0, 4}}
	if got, want := e.Mean(), []float32{1, 2, 1, 1, 0.25, 0.5}; !reflect.DeepEqual(got, want) {
		t.Errorf("Mean = %v, want %v", got, want)
	}
	if e.Cols() != 2 {
		t.Errorf("Cols = %d", e.Cols())
	}
}

func TestTensorNames(t *testing.T) {
	for _, tc := range []struct {
		gguf, hf string
	}{
		{"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"},
		{"blk.11.attn_output.weight", "model.layers.11.self_attn.o_proj.weight"},
		{"blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight"},
		{"output.weight", "lm_head.weight"},
		{"blk.03.ffn_up.weight", ""}, {"blk.-1.ffn_up.weight", ""}, {"blk.+1.ffn_up.weight", ""},
		{"blk.1.ffn_up.bias", ""}, {"blk.1.attn_norm.weight", ""}, {"token_embd.weight", ""},
		{"blk..attn_q.weight", ""}, {"blk.1", ""}, {"", ""}, {"blk.99999999999999999999.attn_q.weight", ""},
	} {
		tn, ok := Tensor(tc.gguf)
		if ok != (tc.hf != "") || (ok && (tn.HF() != tc.hf || tn.GGUF() != tc.gguf)) {
			t.Errorf("Tensor(%q) = %v, %v; want %q", tc.gguf, tn, ok, tc.hf)
		}
		if ok {
			m, e := New(), &Entry{Sums: []float32{1}, Counts: []int64{1}}
			m.Entries[tc.gguf] = e
			if m.Get(tn) != e {
				t.Errorf("Get(%s) does not find the entry %q", tn, tc.gguf)
			}
		}
	}
}

// TestReadErrors: damaged files fail with an error that names the file and the field and wraps
// ErrFormat.
func TestReadErrors(t *testing.T) {
	gguf := readFixture(t, fixtureGGUF)
	dat := readFixture(t, fixtureDat)
	le := binary.LittleEndian
	patch := func(b []byte, off int, v uint32) []byte {
		c := bytes.Clone(b)
		le.PutUint32(c[off:], v)
		return c
	}
	// The type field of the tensor info of blk.0.attn_k.weight.counts (the second tensor), after
	// its name, dimension count and one dimension; and general.type's value "imatrix", followed
	// by the next key's length.
	countsInfo := bytes.Index(gguf, []byte("blk.0.attn_k.weight.counts"))
	typeOff := countsInfo + len("blk.0.attn_k.weight.counts") + 4 + 8
	typeKey := bytes.Index(gguf, []byte("imatrix\x10"))
	negSum := bytes.Clone(gguf)
	le.PutUint32(negSum[len(negSum)-32-4*128:], math.Float32bits(-1)) // the last entry's (ffn_up's) first sum
	for _, tc := range []struct {
		name, field string
		data        []byte
	}{
		{"empty", "entry count", nil},
		{"gguf truncated header", "version", gguf[:6]},
		{"gguf truncated metadata", "imatrix.datasets", patch(gguf[:90], 8, 0)},
		{"gguf truncated data", "run past the end", gguf[:len(gguf)-40]},
		{"gguf version 1", "version", patch(gguf, 4, 1)},
		{"gguf big-endian", "version", patch(gguf, 4, 3<<24)},
		{"gguf tensor count", "tensor count", patch(gguf, 8, 1<<30)},
		{"gguf metadata count", "metadata count", patch(gguf, 16, 1<<30)},
		{"gguf not F32", "want F32", patch(gguf, typeOff, 1)},
		{"gguf not an imatrix", "general.type", append(append(bytes.Clone(gguf[:typeKey]), "model!!\x10"...), gguf[typeKey+8:]...)},
		{"gguf negative sum", "sum", negSum},
		{"dat negative entry count", "entry count", patch(dat, 0, 1<<31)},
		{"dat huge entry count", "entry count", patch(dat, 0, 1<<30)},
		{"dat name length", "entry 1 name", patch(dat, 4, 1<<30)},
		{"dat value count", "values", patch(dat, 4+4+19+4, 1<<30)},
		{"dat ncall", "ncall", patch(dat, 4+4+19, 0)},
		{"dat truncated values", "values", patch(dat[:100], 0, 1)},
		{"dat truncated trailer", "dataset name", dat[:len(dat)-3]},
		{"dat trailing bytes", "end of file", append(bytes.Clone(dat), 0)},
		{"text file", "entry count", []byte("blk.0.attn_q.weight 1 2 3\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeBytes(tc.data, "bad.imatrix")
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "bad.imatrix") || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q: want ErrFormat naming the file and %q", err, tc.field)
			}
		})
	}
}

// TestReadBoundedAllocation: sizes written in a file are checked against its length before
// anything is allocated for them.
func TestReadBoundedAllocation(t *testing.T) {
	le := binary.LittleEndian
	var dat []byte
	dat = le.AppendUint32(dat, 1)
	dat = le.AppendUint32(dat, 1)
	dat = append(dat, 'x')
	dat = le.AppendUint32(dat, 1)
	dat = le.AppendUint32(dat, math.MaxInt32) // 8 GiB of values claimed
	gguf := []byte("GGUF")
	gguf = le.AppendUint32(gguf, 3)
	gguf = le.AppendUint64(gguf, 0)
	gguf = le.AppendUint64(gguf, 1)
	gguf = le.AppendUint64(gguf, 1)
	gguf = append(gguf, 'k')
	gguf = le.AppendUint32(gguf, gString)
	gguf = le.AppendUint64(gguf, 1<<40) // a 1 TiB string claimed
	// 200 entries whose sums all point at the same 64 KiB: reading each would allocate 12.8 MB.
	overlap := []byte("GGUF")
	overlap = le.AppendUint32(overlap, 3)
	overlap = le.AppendUint64(overlap, 400)
	overlap = le.AppendUint64(overlap, 0)
	for i := range 200 {
		for _, suffix := range []string{".in_sum2", ".counts"} {
			name := fmt.Sprintf("e%03d%s", i, suffix)
			overlap = le.AppendUint64(overlap, uint64(len(name)))
			overlap = append(overlap, name...)
			overlap = le.AppendUint32(overlap, 1)
			overlap = le.AppendUint64(overlap, 1<<14)
			overlap = le.AppendUint32(overlap, 0)
			overlap = le.AppendUint64(overlap, 0)
		}
	}
	for len(overlap)%32 != 0 {
		overlap = append(overlap, 0)
	}
	overlap = append(overlap, make([]byte, 1<<16)...)
	for name, b := range map[string][]byte{"dat": dat, "gguf": gguf, "overlapping gguf": overlap} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := decodeBytes(b, name)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20+2*uint64(len(b)) {
			t.Errorf("%s: allocated %d bytes for a %d-byte file", name, d, len(b))
		}
	}
}

func TestCheckAndEncodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    *Entry
		want string
	}{
		{"no counts", &Entry{Sums: []float32{1}}, "no counts"},
		{"ragged", &Entry{Sums: []float32{1, 2, 3}, Counts: []int64{1, 1}}, "whole number of rows"},
		{"negative count", &Entry{Sums: []float32{1}, Counts: []int64{-1}}, "count 0 is -1"},
		{"NaN", &Entry{Sums: []float32{float32(math.NaN())}, Counts: []int64{1}}, "sum 0"},
		{"negative", &Entry{Sums: []float32{-1}, Counts: []int64{1}}, "sum 0"},
	} {
		m := New()
		m.Entries["blk.0.attn_q.weight"] = tc.e
		for _, f := range []Format{FormatGGUF, FormatDat} {
			if err := Encode(&bytes.Buffer{}, m, f); err == nil || !strings.Contains(err.Error(), "blk.0.attn_q.weight") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s %s: error %v, want one naming the entry and %q", tc.name, f, err, tc.want)
			}
		}
	}
	long := New()
	long.Entries[strings.Repeat("a", 56)] = &Entry{Sums: []float32{1}, Counts: []int64{1}}
	if err := Encode(&bytes.Buffer{}, long, FormatGGUF); err == nil || !strings.Contains(err.Error(), "longer than GGUF") {
		t.Errorf("long name: %v", err)
	}
	empty := New()
	empty.Entries["a"] = &Entry{Sums: []float32{0}, Counts: []int64{0}}
	if err := Encode(&bytes.Buffer{}, empty, FormatDat); err == nil {
		t.Error("a legacy file without data was written")
	}
	if err := Encode(&bytes.Buffer{}, empty, "npy"); err == nil {
		t.Error("unknown format accepted")
	}
}

// TestWriteAtomic: Write replaces a file in one step and leaves it untouched when it fails.
func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := New()
	bad.Entries["x"] = &Entry{Sums: []float32{-1}, Counts: []int64{1}}
	if err := Write(path, bad, FormatGGUF); err == nil {
		t.Fatal("invalid matrix written")
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("failed write changed the file: %q", b)
	}
	m := sampleMatrices()["dense"]
	if err := Write(path, m, FormatGGUF); err != nil {
		t.Fatal(err)
	}
	got, f, err := Read(path)
	if err != nil || f != FormatGGUF || !reflect.DeepEqual(got, m) {
		t.Errorf("read back %v %q %v", got, f, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	if _, _, err := Read(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("reading a directory: %v", err)
	}
}

func TestFormatNames(t *testing.T) {
	for in, want := range map[string]Format{"x.dat": FormatDat, "x.DAT": FormatDat, "x.gguf": FormatGGUF, "imatrix": FormatGGUF} {
		if got := FormatForPath(in); got != want {
			t.Errorf("FormatForPath(%q) = %q", in, got)
		}
	}
	if f, err := ParseFormat("GGUF"); err != nil || f != FormatGGUF {
		t.Errorf("ParseFormat(GGUF) = %q, %v", f, err)
	}
	if _, err := ParseFormat("bin"); err == nil {
		t.Error("ParseFormat(bin) accepted")
	}
}

// FuzzDecode: any input either fails with ErrFormat or decodes to a valid matrix that survives a
// GGUF round trip unchanged.
func FuzzDecode(f *testing.F) {
	f.Add(readFixture2(f, fixtureGGUF))
	f.Add(readFixture2(f, fixtureDat))
	for _, m := range sampleMatrices() {
		for _, fm := range []Format{FormatGGUF, FormatDat} {
			var b bytes.Buffer
			if err := Encode(&b, m, fm); err != nil {
				f.Fatal(err)
			}
			f.Add(b.Bytes())
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _, err := decodeBytes(data, "fuzz")
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		var b bytes.Buffer
		if err := Encode(&b, m, FormatGGUF); err != nil {
			if strings.Contains(err.Error(), "longer than GGUF") {
				return // a legacy name GGUF cannot hold
			}
			t.Fatalf("decoded matrix does not encode: %v", err)
		}
		back, _, err := decodeBytes(b.Bytes(), "fuzz round trip")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range m.Entries { // GGUF stores counts as float32, exact up to 2²⁴
			for j, c := range e.Counts {
				e.Counts[j] = int64(float32(c))
			}
		}
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip changed the matrix")
		}
	})
}

func readFixture2(f *testing.F, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
