package imatrix

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// decodeDat reads the legacy format as common_imatrix_load_legacy does: Sums are the stored
// values ((sum/count)·ncall) and the entry's one count is ncall, so Sums/Counts is the mean. The
// trailer (chunk count and dataset name) is optional; ChunkSize is 0 (the format does not record
// it).
func decodeDat(r *reader) (*Matrix, error) {
	n, err := r.i32("entry count")
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, r.errf("entry count", "%d: no data (not an importance matrix?)", n)
	}
	if int64(n) > r.left()/16 { // an entry takes at least 16 bytes
		return nil, r.errf("entry count", "%d entries cannot fit in %d bytes (not an importance matrix?)", n, r.left())
	}
	m := New()
	for i := range int(n) {
		field := fmt.Sprintf("entry %d", i+1)
		l, err := r.i32(field + " name length")
		if err != nil {
			return nil, err
		}
		if l < 1 {
			return nil, r.errf(field+" name length", "%d, want ≥ 1", l)
		}
		b, err := r.bytes(int64(l), field+" name")
		if err != nil {
			return nil, err
		}
		name := string(b)
		field = "entry " + name
		if m.Entries[name] != nil {
			return nil, r.errf(field, "duplicate entry")
		}
		ncall, err := r.i32(field + " ncall")
		if err != nil {
			return nil, err
		}
		if ncall < 1 {
			return nil, r.errf(field+" ncall", "%d, want ≥ 1 (the chunks the values cover)", ncall)
		}
		nval, err := r.i32(field + " value count")
		if err != nil {
			return nil, err
		}
		if nval < 1 {
			return nil, r.errf(field+" value count", "%d, want ≥ 1", nval)
		}
		vals, err := r.floats(int64(nval), field+" values")
		if err != nil {
			return nil, err
		}
		m.Entries[name] = &Entry{Sums: vals, Counts: []int64{int64(ncall)}}
	}
	if r.left() > 0 {
		c, err := r.i32("chunk count")
		if err != nil {
			return nil, err
		}
		if c < 0 {
			return nil, r.errf("chunk count", "%d, want ≥ 0", c)
		}
		m.ChunkCount = int(c)
		l, err := r.i32("dataset name length")
		if err != nil {
			return nil, err
		}
		if l < 0 {
			return nil, r.errf("dataset name length", "%d, want ≥ 0", l)
		}
		if l > 0 {
			b, err := r.bytes(int64(l), "dataset name")
			if err != nil {
				return nil, err
			}
			m.Datasets = []string{string(b)}
		}
		if r.left() > 0 {
			return nil, r.errf("end of file", "%d bytes after the dataset name", r.left())
		}
	}
	return m, nil
}

// encodeDat writes m as llama-imatrix's save_imatrix_legacy does: entries whose counts are all 0
// are left out; per entry ncall = ⌈max count / ChunkSize⌉ (the largest count itself when ChunkSize
// is 0, as for a matrix read from a legacy file) and the values (sum/count)·ncall in float32 (1·ncall
// where a count is 0); then the chunk count and the last dataset name.
func encodeDat(w *bufio.Writer, m *Matrix) error {
	var names []string
	for _, n := range m.Names() {
		if slices.Max(m.Entries[n].Counts) > 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("imatrix: no entry has data (every count is 0): the legacy format cannot hold it")
	}
	if len(names) > math.MaxInt32 || m.ChunkCount > math.MaxInt32 {
		return fmt.Errorf("imatrix: %d entries, chunk count %d: too many for the legacy format", len(names), m.ChunkCount)
	}
	le := binary.LittleEndian
	var b []byte
	i32 := func(v int) { b = le.AppendUint32(b, uint32(int32(v))) }
	i32(len(names))
	for _, n := range names {
		e := m.Entries[n]
		if len(n) > math.MaxInt32 || len(e.Sums) > math.MaxInt32 {
			return fmt.Errorf("imatrix: entry %s is too large for the legacy format", n)
		}
		i32(len(n))
		b = append(b, n...)
		maxc := slices.Max(e.Counts)
		ncall := maxc
		if cs := int64(m.ChunkSize); cs > 0 {
			ncall = (maxc + cs - 1) / cs
		}
		if ncall > math.MaxInt32 {
			return fmt.Errorf("imatrix: entry %s: %d calls do not fit the legacy format's int32", n, ncall)
		}
		i32(int(ncall))
		i32(len(e.Sums))
		cols, fn := e.Cols(), float32(ncall)
		for i, v := range e.Sums {
			c := float32(e.Counts[i/cols])
			if c == 0 {
				v, c = 1, 1
			}
			b = le.AppendUint32(b, math.Float32bits((v/c)*fn))
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		b = b[:0]
	}
	i32(m.ChunkCount)
	ds := ""
	if len(m.Datasets) > 0 {
		ds = m.Datasets[len(m.Datasets)-1]
	}
	if len(ds) > math.MaxInt32 {
		return fmt.Errorf("imatrix: dataset name too long for the legacy format")
	}
	i32(len(ds))
	b = append(b, ds...)
	_, err := w.Write(b)
	return err
}
