package db

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/compress"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
)

// DefaultCacheBytes is the level cache's budget of a freshly opened database (levels are held
// compactly: see Weights).
const DefaultCacheBytes = 512 << 20

// DB is an open level database. Its methods are safe for concurrent use.
type DB struct {
	dir    string
	man    *Manifest
	fp     string
	layers map[string]*LayerInfo
	cache  *lru

	mu       sync.Mutex
	verified map[string]bool // level files whose checksum has been checked

	bufs sync.Pool // *[]byte read buffers
}

// Open reads and validates the manifest of the database in dir and checks that every level file
// is present with the recorded size. Checksums are checked the first time a file is read (see
// Verify to check them all up front). A database whose build has not finished is an error.
func Open(dir string) (*DB, error) {
	mpath := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(mpath)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: not a level database (no %s)", dir, ManifestFile)
		}
		return nil, err
	}
	man, err := ParseManifest(data, mpath)
	if err != nil {
		return nil, err
	}
	if !man.Complete {
		return nil, fmt.Errorf("%s: field complete: the database build did not finish (%d of %d layers); run `evopress db build` with the same settings to resume it",
			mpath, len(man.Layers), man.Model.Blocks*int(arch.NumLinearKinds))
	}
	sum := sha256.Sum256(data)
	d := &DB{dir: dir, man: man, fp: hex.EncodeToString(sum[:]), layers: map[string]*LayerInfo{},
		cache: newLRU(DefaultCacheBytes), verified: map[string]bool{}}
	for i := range man.Layers {
		l := &man.Layers[i]
		d.layers[l.Name] = l
		for _, v := range l.Levels {
			st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(v.File)))
			if err != nil {
				return nil, fmt.Errorf("%s: layer %s level %d: %w", mpath, l.Name, v.Level, err)
			}
			if st.Size() != v.Bytes {
				return nil, fmt.Errorf("%s: layer %s level %d: file %s has %d bytes, the manifest says %d",
					mpath, l.Name, v.Level, v.File, st.Size(), v.Bytes)
			}
		}
	}
	return d, nil
}

// Dir returns the database's directory.
func (d *DB) Dir() string { return d.dir }

// Manifest returns the database's manifest. It is shared: do not modify it.
func (d *DB) Manifest() *Manifest { return d.man }

// Fingerprint identifies the database: the hex SHA-256 of its manifest file (which holds every
// level file's checksum). Profiles record it as db.fingerprint.
func (d *DB) Fingerprint() string { return d.fp }

// Mode returns ModeSparse, ModeQuant or ModeGGUF.
func (d *DB) Mode() string { return d.man.Mode }

// ProfileMode returns the profile mode the database serves (ProfileMode of its mode): sparse,
// or quant for quant and gguf databases.
func (d *DB) ProfileMode() string { return ProfileMode(d.man.Mode) }

// Check returns an error unless the database was built for the model with the given fingerprint.
func (d *DB) Check(modelFingerprint string) error {
	if modelFingerprint != d.man.Model.Fingerprint {
		return fmt.Errorf("database %s was built for model %s (fingerprint %.16s…), not for this model (fingerprint %.16s…)",
			d.dir, d.man.Model.Path, d.man.Model.Fingerprint, modelFingerprint)
	}
	return nil
}

// Layers returns the layer names in model order.
func (d *DB) Layers() []string {
	out := make([]string, len(d.man.Layers))
	for i, l := range d.man.Layers {
		out[i] = l.Name
	}
	return out
}

// Layer returns a layer's entry, or nil if the database has no such layer.
func (d *DB) Layer(layer string) *LayerInfo { return d.layers[layer] }

// Levels returns a copy of a layer's levels in ascending order (nil for an unknown layer).
func (d *DB) Levels(layer string) []LevelInfo {
	l := d.layers[layer]
	if l == nil {
		return nil
	}
	return append([]LevelInfo(nil), l.Levels...)
}

// level finds a layer's level.
func (d *DB) level(layer string, level int) (*LayerInfo, *LevelInfo, error) {
	l := d.layers[layer]
	if l == nil {
		return nil, nil, fmt.Errorf("database %s has no layer %q", d.dir, layer)
	}
	i := sort.Search(len(l.Levels), func(i int) bool { return l.Levels[i].Level >= level })
	if i == len(l.Levels) || l.Levels[i].Level != level {
		return nil, nil, fmt.Errorf("database %s: layer %s has no level %d (levels %d..%d)", d.dir, layer, level, l.Levels[0].Level, l.Levels[len(l.Levels)-1].Level)
	}
	return l, &l.Levels[i], nil
}

// read reads a level file into a pooled buffer (release it with d.release), checking its size and,
// the first time, its checksum, then parses it and checks the header against the manifest.
func (d *DB) read(l *LayerInfo, v *LevelInfo) (*levelHeader, []byte, *[]byte, error) {
	path := filepath.Join(d.dir, filepath.FromSlash(v.File))
	fail := func(err error) (*levelHeader, []byte, *[]byte, error) {
		return nil, nil, nil, fmt.Errorf("%s (layer %s level %d): %w", path, l.Name, v.Level, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	bp, _ := d.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	if int64(cap(*bp)) < v.Bytes+1 {
		*bp = make([]byte, v.Bytes+1)
	}
	buf := (*bp)[:v.Bytes+1]
	n, err := io.ReadFull(f, buf)
	if err != io.ErrUnexpectedEOF && err != nil {
		d.bufs.Put(bp)
		return fail(err)
	}
	if int64(n) != v.Bytes {
		d.bufs.Put(bp)
		return fail(fmt.Errorf("file has changed size (manifest: %d bytes)", v.Bytes))
	}
	buf = buf[:n]
	d.mu.Lock()
	ok := d.verified[v.File]
	d.mu.Unlock()
	if !ok {
		sum := sha256.Sum256(buf)
		if got := hex.EncodeToString(sum[:]); got != v.SHA256 {
			d.bufs.Put(bp)
			return fail(fmt.Errorf("checksum mismatch: SHA-256 %s, the manifest says %s (the file is corrupt or was replaced)", got, v.SHA256))
		}
		d.mu.Lock()
		d.verified[v.File] = true
		d.mu.Unlock()
	}
	h, payload, err := parseLevel(buf)
	if err == nil {
		err = checkHeader(h, l, v, d.man.Mode)
	}
	if err != nil {
		d.bufs.Put(bp)
		return fail(err)
	}
	return h, payload, bp, nil
}

func (d *DB) release(bp *[]byte) {
	if bp != nil {
		d.bufs.Put(bp)
	}
}

// checkHeader checks that a level file's header is the level the manifest describes.
func checkHeader(h *levelHeader, l *LayerInfo, v *LevelInfo, mode string) error {
	if h.Layer != l.Name || h.Level != v.Level || h.Kind != mode || h.Rows != l.Rows || h.Cols != l.Cols {
		return fmt.Errorf("header describes %s level %d (%s, %d×%d), the manifest expects %s level %d (%s, %d×%d)",
			h.Layer, h.Level, h.Kind, h.Rows, h.Cols, l.Name, v.Level, mode, l.Rows, l.Cols)
	}
	if mode == ModeSparse && (h.Values != v.Values || int64(h.Rows)*int64(h.Cols)-h.Nonzeros != v.Zeros) {
		return fmt.Errorf("header holds %d non-zeros as %s, the manifest expects %d zeros as %s", h.Nonzeros, h.Values, v.Zeros, v.Values)
	}
	if mode == ModeQuant && h.Bits != v.Level {
		return fmt.Errorf("header holds %d-bit codes for level %d", h.Bits, v.Level)
	}
	return nil
}

// Decode writes the dense weights (Rows×Cols, row-major) of a layer's level into dst, which must
// have exactly that length. It reads and decodes the level file; nothing else is allocated
// beyond the per-group scales of a quant level.
func (d *DB) Decode(layer string, level int, dst []float32) error {
	l, v, err := d.level(layer, level)
	if err != nil {
		return err
	}
	if int64(len(dst)) != l.Numel {
		return fmt.Errorf("database %s: Decode %s level %d: len(dst) = %d, want %d×%d = %d", d.dir, layer, level, len(dst), l.Rows, l.Cols, l.Numel)
	}
	h, payload, bp, err := d.read(l, v)
	if err != nil {
		return err
	}
	defer d.release(bp)
	if err = decodePayload(h, payload, dst); err != nil {
		return fmt.Errorf("%s (layer %s level %d): %w", filepath.Join(d.dir, v.File), layer, level, err)
	}
	return nil
}

// decodePayload writes the dense weights of a level's payload into dst.
func decodePayload(h *levelHeader, payload []byte, dst []float32) error {
	switch h.Kind {
	case ModeSparse:
		return decodeSparse(h, payload, dst)
	case ModeGGUF:
		return ggml.DequantizeTo(dst, ggml.Type(h.Level), payload)
	}
	return decodeQuant(h, payload, dst)
}

// GGUFBlocks returns a gguf level of a layer as it goes into a GGUF file: its ggml type (the
// level) and its blocks, rows × type.RowBytes(cols) bytes, rows in the model's (Hugging Face)
// order — a GGUF writer permutes the rows of q_proj and k_proj for llama.cpp's rotary layout
// as it does for float weights (whole rows of RowBytes bytes: blocks never straddle rows). The
// file's checksum is checked the first time it is read; the slice is the caller's.
func (d *DB) GGUFBlocks(layer string, level int) (ggml.Type, []byte, error) {
	if d.man.Mode != ModeGGUF {
		return 0, nil, fmt.Errorf("database %s is a %s database, not a gguf one", d.dir, d.man.Mode)
	}
	l, v, err := d.level(layer, level)
	if err != nil {
		return 0, nil, err
	}
	_, payload, bp, err := d.read(l, v)
	if err != nil {
		return 0, nil, err
	}
	defer d.release(bp)
	return ggml.Type(level), bytes.Clone(payload), nil
}

// Weights returns a layer's level as the matrix multiply takes it: held compactly, as its file
// stores it (ggml blocks, codes and scales, a bitmask and values), and expanded to float32 a
// panel at a time as kernels.GemmW packs it — values exactly Decode's. It comes from the cache
// when the cache holds it (read and cached otherwise); it is shared with the cache and with
// every model it is applied to. Its Float32 method decodes it whole.
func (d *DB) Weights(layer string, level int) (kernels.Weights, error) {
	k := cacheKey{layer, level}
	if w, ok := d.cache.get(k); ok {
		return w, nil
	}
	l, v, err := d.level(layer, level)
	if err != nil {
		return kernels.Weights{}, err
	}
	h, payload, bp, err := d.read(l, v)
	if err != nil {
		return kernels.Weights{}, err
	}
	defer d.release(bp)
	c, err := newCompact(h, payload)
	if err != nil {
		return kernels.Weights{}, fmt.Errorf("%s (layer %s level %d): %w", filepath.Join(d.dir, v.File), layer, level, err)
	}
	return d.cache.put(k, kernels.DecodedWeights(c), c.Bytes()), nil
}

// SetCacheBudget sets the level cache's budget in bytes of levels held compactly (0 disables
// caching), evicting least recently used levels as needed.
func (d *DB) SetCacheBudget(bytes int64) { d.cache.setBudget(max(bytes, 0)) }

// CacheStats reports the level cache's state.
func (d *DB) CacheStats() CacheStats { return d.cache.stats() }

// Quantized returns a quant level as codes, scales and zero points (for packed exports).
func (d *DB) Quantized(layer string, bits int) (*compress.Quantized, error) {
	if d.man.Mode != ModeQuant {
		return nil, fmt.Errorf("database %s is a %s database, not a quant one", d.dir, d.man.Mode)
	}
	l, v, err := d.level(layer, bits)
	if err != nil {
		return nil, err
	}
	h, payload, bp, err := d.read(l, v)
	if err != nil {
		return nil, err
	}
	defer d.release(bp)
	q, err := decodeQuantized(h, payload)
	if err != nil {
		return nil, fmt.Errorf("%s (layer %s level %d): %w", filepath.Join(d.dir, v.File), layer, bits, err)
	}
	return q, nil
}

// Verify checks every level file's checksum and decodes it, checking that a sparse level holds
// exactly the manifest's number of zeros and that a quant level's values lie on their grid.
func (d *DB) Verify() error {
	for _, l := range d.man.Layers {
		buf := make([]float32, l.Numel)
		for _, v := range l.Levels {
			d.mu.Lock()
			delete(d.verified, v.File)
			d.mu.Unlock()
			if err := d.Decode(l.Name, v.Level, buf); err != nil {
				return err
			}
			switch d.man.Mode {
			case ModeSparse, ModeGGUF:
				var zeros int64
				for _, x := range buf {
					if math.Float32bits(x) == 0 {
						zeros++
					}
					if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
						return fmt.Errorf("database %s: layer %s level %d decodes to %v", d.dir, l.Name, v.Level, x)
					}
				}
				if zeros != v.Zeros {
					return fmt.Errorf("database %s: layer %s level %d decodes to %d zeros, the manifest says %d", d.dir, l.Name, v.Level, zeros, v.Zeros)
				}
			default:
				if _, err := d.Quantized(l.Name, v.Level); err != nil {
					return err
				}
			}
		}
	}
	return d.verifyImatrix()
}

// verifyImatrix checks a gguf database's computed importance matrix file against its checksum.
func (d *DB) verifyImatrix() error {
	g := d.man.GGUF
	if g == nil || g.Imatrix.Source != ImatrixCalibration {
		return nil
	}
	p := filepath.Join(d.dir, ImatrixFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("database %s: %w", d.dir, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != g.Imatrix.SHA256 {
		return fmt.Errorf("%s: checksum mismatch: SHA-256 %s, the manifest (field gguf.imatrix.sha256) says %s", p, got, g.Imatrix.SHA256)
	}
	return nil
}

// Apply returns m.Clone() with the weights of the named layers replaced by the given levels,
// held compactly (Linear.Stored = Weights: expanded as the matrix multiply packs them, read
// through the cache and shared with it). Layers absent from levels
// keep m's weights. An unknown layer, a level the database does not hold, or a layer whose shape
// differs from the model's is an error. Apply does not check the model's identity: see Check.
func (d *DB) Apply(m *model.Model, levels map[string]int) (*model.Model, error) {
	if m == nil {
		return nil, fmt.Errorf("db: Apply: nil model")
	}
	names := make([]string, 0, len(levels))
	for name := range levels {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic error reporting
	c := m.Clone()
	for _, name := range names {
		l := d.layers[name]
		if l == nil {
			return nil, fmt.Errorf("database %s has no layer %q", d.dir, name)
		}
		if l.Block >= len(c.Blocks) {
			return nil, fmt.Errorf("database %s: layer %s: the model has %d blocks", d.dir, name, len(c.Blocks))
		}
		kind, _ := arch.ParseLinearKind(l.Kind)
		lin := c.Blocks[l.Block].Layer(kind)
		if lin.Out != l.Rows || lin.In != l.Cols {
			return nil, fmt.Errorf("database %s: layer %s is %d×%d, the model's is %d×%d", d.dir, name, l.Rows, l.Cols, lin.Out, lin.In)
		}
		w, err := d.Weights(name, levels[name])
		if err != nil {
			return nil, err
		}
		lin.W, lin.Stored = nil, w
	}
	return c, nil
}

// ApplyProfile applies a sparse or quant profile (levels = database levels, bits, or a gguf
// database's ggml type ids) to m through
// the database d, after checking that the profile's mode is the database's, that the database
// was built for the model (modelFingerprint: the fingerprint model.Load returned), that the
// profile's model and database fingerprints, when it records them, are these, and, for sparse
// databases, that the profile's target is the one the database serves. The warnings say what
// could not be checked or what the profile leaves dense; the caller prints them.
func ApplyProfile(m *model.Model, modelFingerprint string, p *profile.Profile, d *DB) (*model.Model, []string, error) {
	if p == nil || d == nil {
		return nil, nil, fmt.Errorf("db: ApplyProfile: nil profile or database")
	}
	if p.Mode != d.ProfileMode() {
		return nil, nil, fmt.Errorf("profile mode %q does not match database %s (a %s database)", p.Mode, d.dir, d.man.Mode)
	}
	if err := d.Check(modelFingerprint); err != nil {
		return nil, nil, err
	}
	var warn []string
	if p.Model != nil && p.Model.Fingerprint != "" {
		if p.Model.Fingerprint != modelFingerprint {
			return nil, nil, fmt.Errorf("profile field model.fingerprint: %.16s…, the model's is %.16s… (the profile was made for another model)", p.Model.Fingerprint, modelFingerprint)
		}
	} else {
		warn = append(warn, "the profile records no model fingerprint: it cannot be checked against the model")
	}
	if p.DB != nil && p.DB.Fingerprint != "" && p.DB.Fingerprint != d.fp {
		return nil, nil, fmt.Errorf("profile field db.fingerprint: %.16s…, database %s is %.16s… (the profile was made with another database)", p.DB.Fingerprint, d.dir, d.fp)
	}
	if d.man.Mode == ModeSparse && p.Target != 0 && math.Abs(p.Target-d.man.Sparse.Target) > 1e-9 {
		return nil, nil, fmt.Errorf("profile field target: sparsity %v, but database %s serves target %v (build a database for this target)", p.Target, d.dir, d.man.Sparse.Target)
	}
	if missing := len(d.man.Layers) - countCovered(p.Levels, d.layers); missing > 0 {
		warn = append(warn, fmt.Sprintf("the profile leaves %d of %d layers dense", missing, len(d.man.Layers)))
	}
	c, err := d.Apply(m, p.Levels)
	if err != nil {
		return nil, nil, err
	}
	return c, warn, nil
}

func countCovered(levels map[string]int, layers map[string]*LayerInfo) int {
	n := 0
	for name := range levels {
		if layers[name] != nil {
			n++
		}
	}
	return n
}

// UniformProfile returns the uniform profile of the database: every layer at level 0 (the target
// sparsity) for a sparse database, which takes level = 0; every layer at level bits for a quant
// database; every layer at ggml type level (a ggml.Type) for a gguf database, or at the type
// llama-quantize writes instead where its rows do not fit that type's blocks (ggml.Fallback).
// values holds each layer's actual sparsity (sparse) or bits per weight including the
// scale/zero overhead (quant, gguf); target is the sparsity, the bit-width (codes only), or the
// mean bits per weight (gguf: bytes·8/weights).
func UniformProfile(d *DB, level int) (*profile.Profile, error) {
	if d == nil {
		return nil, fmt.Errorf("db: UniformProfile: nil database")
	}
	if d.man.Mode == ModeSparse && level != 0 {
		return nil, fmt.Errorf("database %s: a uniform sparse profile is level 0 (sparsity %v); level %d is not uniform", d.dir, d.man.Sparse.Target, level)
	}
	p := profile.New(d.ProfileMode())
	p.Method = "uniform"
	p.Model = &profile.Ref{Path: d.man.Model.Path, Fingerprint: d.man.Model.Fingerprint}
	p.DB = &profile.Ref{Path: d.dir, Fingerprint: d.fp}
	p.Values = map[string]float64{}
	if d.man.Mode == ModeSparse {
		p.Target = d.man.Sparse.Target
	} else {
		p.Target = float64(level)
	}
	var bits, weights float64
	for _, l := range d.man.Layers {
		lv := level
		if d.man.Mode == ModeGGUF {
			t, err := ggml.Fallback(ggml.Type(level), l.Cols)
			if level < 0 || err != nil {
				return nil, fmt.Errorf("database %s: level %d is not a ggml type for layer %s", d.dir, level, l.Name)
			}
			lv = int(t)
		}
		_, v, err := d.level(l.Name, lv)
		if err != nil {
			return nil, err
		}
		p.Levels[l.Name] = lv
		if d.man.Mode == ModeSparse {
			p.Values[l.Name] = v.Sparsity
		} else {
			p.Values[l.Name] = v.Bits
		}
		bits += v.Bits * float64(l.Numel)
		weights += float64(l.Numel)
	}
	if d.man.Mode == ModeGGUF {
		p.Target = bits / weights
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// ReadManifest reads and parses the manifest of the database in dir (without Open's checks of
// the level files).
func ReadManifest(dir string) (*Manifest, error) {
	p := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return ParseManifest(data, p)
}
