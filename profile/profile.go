// Package profile reads and writes compression profiles: the JSON contract of docs/design.md
// ("Profile file", format "evopress-profile/v1") and, for users of the reference implementation,
// its text configs (one "name: level" per line).
//
// A profile assigns an integer level to named units (Hugging Face module names, see package arch).
// drop: the sub-blocks model.layers.N.self_attn and model.layers.N.mlp, level 1 = dropped; sparse:
// the seven linear layers of every block, level = the database's integer level; quant: the same
// units, level = bits.
// A unit missing from Levels is left uncompressed.
package profile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/evopress/evopress/internal/atomicfile"
)

// FormatV1 is the value of the "format" field.
const FormatV1 = "evopress-profile/v1"

// The modes.
const (
	ModeDrop   = "drop"
	ModeSparse = "sparse"
	ModeQuant  = "quant"
)

// Ref identifies a model or database a profile was made for.
type Ref struct {
	Path        string `json:"path,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Profile is one compression profile (the JSON contract).
type Profile struct {
	Format string             `json:"format"`
	Mode   string             `json:"mode"`
	Target float64            `json:"target,omitempty"`
	Model  *Ref               `json:"model,omitempty"`
	DB     *Ref               `json:"db,omitempty"`
	Levels map[string]int     `json:"levels"`
	Values map[string]float64 `json:"values,omitempty"`
	// Fitness is the search's fitness of the profile (lower is better), when known.
	Fitness *float64 `json:"fitness,omitempty"`
	Method  string   `json:"method,omitempty"`
	// Search records how the profile was found (seed, generations, ...).
	Search *Record `json:"search,omitempty"`

	// File is the file the profile was read from (Read sets it; it is not part of the JSON). A
	// relative db.path is relative to its folder: see DatabaseDir.
	File string `json:"-"`
}

// DatabaseDir is the level database to apply p with: dir when it is set (the user's choice),
// else the one p records ("" when neither says). A relative db.path of a profile read from a
// file is relative to that file's folder (as Write stores it), not to the working directory, so
// a profile and its database can be moved together and used from anywhere.
func (p *Profile) DatabaseDir(dir string) string {
	if dir != "" || p.DB == nil || p.DB.Path == "" {
		return dir
	}
	if p.File != "" && !filepath.IsAbs(p.DB.Path) {
		return filepath.Join(filepath.Dir(p.File), p.DB.Path)
	}
	return p.DB.Path
}

// DatabaseError wraps err, an error opening DatabaseDir(dir), so that it says the path came from
// the profile's db.path (and how it was resolved) when dir is empty.
func (p *Profile) DatabaseError(dir string, err error) error {
	if dir != "" || p.DB == nil || p.DB.Path == "" {
		return err
	}
	if p.File == "" || filepath.IsAbs(p.DB.Path) {
		return fmt.Errorf("db.path %q: %w", p.DB.Path, err)
	}
	err = fmt.Errorf("db.path %q (relative to the profile's folder): %w", p.DB.Path, err)
	if st, serr := os.Stat(p.DB.Path); serr == nil && st.IsDir() {
		err = fmt.Errorf("%w; %s relative to the working directory exists: name it explicitly if it is this profile's database (earlier versions wrote db.path relative to the working directory)", err, p.DB.Path)
	}
	return err
}

// New returns an empty profile of the given mode.
func New(mode string) *Profile {
	return &Profile{Format: FormatV1, Mode: mode, Levels: map[string]int{}}
}

// Parse decodes and validates a JSON profile; name is used in error messages.
func Parse(data []byte, name string) (*Profile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %v", name, err)
	}
	for _, f := range []string{"format", "mode", "levels"} {
		if _, ok := raw[f]; !ok {
			return nil, fmt.Errorf("%s: missing required field %q", name, f)
		}
	}
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &p, nil
}

// Validate checks the fields every profile must get right.
func (p *Profile) Validate() error {
	if p.Format != FormatV1 {
		return fmt.Errorf("field format: %q, want %q", p.Format, FormatV1)
	}
	switch p.Mode {
	case ModeDrop, ModeSparse, ModeQuant:
	default:
		return fmt.Errorf("field mode: %q, want drop, sparse or quant", p.Mode)
	}
	if p.Levels == nil {
		return fmt.Errorf("field levels: missing")
	}
	for name, l := range p.Levels {
		if name == "" {
			return fmt.Errorf("field levels: empty unit name")
		}
		switch p.Mode {
		case ModeDrop:
			if l != 0 && l != 1 {
				return fmt.Errorf("field levels: %s = %d, a drop level is 0 (kept) or 1 (dropped)", name, l)
			}
		case ModeQuant:
			// bits (a quant database) or a ggml type id (a gguf database)
			if l < 1 || l > 63 {
				return fmt.Errorf("field levels: %s = %d, want 1..16 bits or a ggml type id 1..63", name, l)
			}
		}
	}
	if math.IsNaN(p.Target) || math.IsInf(p.Target, 0) {
		return fmt.Errorf("field target: not a finite number")
	}
	return nil
}

// Read loads a profile file: JSON, or the reference implementation's text config (one
// "name: level" per line) when the file does not start with "{"; mode is required for the latter.
// The profile records path as its File.
func Read(path, textMode string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p *Profile
	switch t := bytes.TrimSpace(data); {
	case len(t) > 0 && t[0] == '{':
		p, err = Parse(data, path)
	case textMode == "":
		return nil, fmt.Errorf("%s: not a JSON profile; a text config (name: level per line) needs its mode", path)
	default:
		p, err = ParseText(data, textMode, path)
	}
	if err != nil {
		return nil, err
	}
	p.File = path
	return p, nil
}

// ParseText reads the reference implementation's text config: one "module.name: level" per line;
// blank lines and lines starting with # are ignored.
func ParseText(data []byte, mode, name string) (*Profile, error) {
	p := New(mode)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		i := strings.LastIndexByte(s, ':')
		if i <= 0 {
			return nil, fmt.Errorf("%s:%d: want \"name: level\", got %q", name, line, s)
		}
		unit := strings.TrimSpace(s[:i])
		v, err := strconv.Atoi(strings.TrimSpace(s[i+1:]))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: level of %s: %v", name, line, unit, err)
		}
		if _, dup := p.Levels[unit]; dup {
			return nil, fmt.Errorf("%s:%d: unit %s given twice", name, line, unit)
		}
		p.Levels[unit] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// MarshalText writes the levels as the reference implementation's text config, units sorted.
func (p *Profile) MarshalText() []byte {
	var b bytes.Buffer
	for _, u := range p.Units() {
		fmt.Fprintf(&b, "%s: %d\n", u, p.Levels[u])
	}
	return b.Bytes()
}

// Units returns the profile's unit names in natural order (layer numbers compared as numbers).
func (p *Profile) Units() []string {
	us := make([]string, 0, len(p.Levels))
	for u := range p.Levels {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool { return NaturalLess(us[i], us[j]) })
	return us
}

// Write validates p and writes it as indented JSON, atomically: as Stored(path). A relative
// db.path (relative to the working directory, or to p.File's folder when p was read from a
// file) is written relative to path's folder, which is how DatabaseDir reads it back.
func (p *Profile) Write(path string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(p.Stored(path), "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(data, '\n'), 0o644)
}

// Stored is p as Write stores it in the file path, read back from it: a relative db.path is
// relative to path's folder, and File is path. p is not changed.
func (p *Profile) Stored(path string) *Profile {
	q := *p
	q.File = path
	if p.DB != nil && p.DB.Path != "" && !filepath.IsAbs(p.DB.Path) {
		ref := *p.DB
		ref.Path = relativeTo(p.DatabaseDir(""), filepath.Dir(path))
		q.DB = &ref
	}
	return &q
}

// relativeTo returns target (a path relative to the working directory) relative to the folder
// base, or absolute when it cannot be made relative (another volume).
func relativeTo(target, base string) string {
	at, err1 := filepath.Abs(target)
	ab, err2 := filepath.Abs(base)
	if err1 != nil || err2 != nil {
		return target
	}
	if rel, err := filepath.Rel(ab, at); err == nil {
		return filepath.ToSlash(rel)
	}
	return at
}

// NaturalLess orders strings with embedded numbers by value: layers.2 < layers.10.
func NaturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da > 0 && db > 0 {
			na, _ := strconv.Atoi(a[:da])
			nb, _ := strconv.Atoi(b[:db])
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitsPrefix(s string) int {
	i := 0
	for i < len(s) && i < 9 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
