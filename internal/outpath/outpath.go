// Package outpath says how an output path lies relative to an input path — the same file or
// folder, inside it, containing it, or apart — so that a command never writes into, over or
// around what it reads (an export into its source model, a --force that would remove it).
// Paths are compared absolute with symbolic links resolved, and, where they exist, by identity
// (os.SameFile), which also catches bind mounts and other spellings of one folder.
package outpath

import (
	"os"
	"path/filepath"
	"strings"
)

// Relation is how an output path lies relative to an input path.
type Relation int

// The relations of an output to an input.
const (
	Apart    Relation = iota // neither contains the other
	Same                     // the same file or folder
	Inside                   // the output is inside the input folder
	Contains                 // the output is a folder containing the input
)

func (r Relation) String() string {
	switch r {
	case Same:
		return "is"
	case Inside:
		return "is inside"
	case Contains:
		return "contains"
	}
	return "is apart from"
}

// Relate returns how out lies relative to in. Either may not exist yet. out is taken both as
// the path written (a symbolic link there is replaced, not followed) and as what it points to;
// the closer relation of the two is returned.
func Relate(out, in string) (Relation, error) {
	i, err := resolve(in)
	if err != nil {
		return Apart, err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return Apart, err
	}
	parent, err := resolve(filepath.Dir(abs))
	if err != nil {
		return Apart, err
	}
	full, err := resolve(abs)
	if err != nil {
		return Apart, err
	}
	r := relate(filepath.Join(parent, filepath.Base(abs)), i)
	if r == Apart {
		r = relate(full, i)
	}
	return r, nil
}

// relate compares two resolved absolute paths.
func relate(o, i string) Relation {
	switch {
	case o == i:
		return Same
	case within(o, i):
		return Inside
	case within(i, o):
		return Contains
	}
	// Other names of one folder: compare identities along both ancestries.
	if ii, err := os.Stat(i); err == nil {
		for a, first := o, true; ; a, first = filepath.Dir(a), false {
			if ai, err := os.Stat(a); err == nil && os.SameFile(ai, ii) {
				if first {
					return Same
				}
				return Inside
			}
			if filepath.Dir(a) == a {
				break
			}
		}
	}
	if oi, err := os.Stat(o); err == nil && oi.IsDir() {
		for a := filepath.Dir(i); ; a = filepath.Dir(a) {
			if ai, err := os.Stat(a); err == nil && os.SameFile(ai, oi) {
				return Contains
			}
			if filepath.Dir(a) == a {
				break
			}
		}
	}
	return Apart
}

// resolve returns p absolute, with the symbolic links of its longest existing prefix resolved.
func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether path a is strictly inside folder b (both clean and absolute).
func within(a, b string) bool {
	rel, err := filepath.Rel(b, a)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
