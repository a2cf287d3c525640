package stamp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/internal/atomicfile"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/report"
)

// Change is one stamp Restamp rewrote (or would rewrite).
type Change struct {
	// Path is the file rewritten; for a database's own fingerprint, the database folder.
	Path string `json:"path"`
	// Field names the stamp: "model.fingerprint" and "db.fingerprint" (a manifest's or a
	// profile's fields), "fingerprint" (a database's own, which follows its manifest), or "model
	// fingerprint" and "database fingerprint" (occurrences in a run folder's file).
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// Result is what Restamp did.
type Result struct {
	Changes []Change `json:"changes"`
	// Notes say what was left as it was and why (already current, a reference to a database
	// that was not named).
	Notes []string `json:"notes,omitempty"`
}

// runFiles are the files of a run folder that may carry stamps (evopress writes them all).
var runFiles = []string{report.CheckpointFile, report.ResultFile, report.LogFile, report.MarkdownFile, report.HTMLFile}

// maxFile bounds the profiles and run files Restamp reads.
const maxFile = 256 << 20

// dbRef matches a database fingerprint in a search checkpoint's mode signature.
var dbRef = regexp.MustCompile(`db=([0-9a-f]{64})`)

// Restamp re-stamps, for model m, the level databases (folders with manifest.json), profiles
// (JSON files), search run folders and Hugging Face exports (their evopress.json) named by
// paths: every stamp that records m's legacy
// fingerprint gets m's fingerprint, and every reference to a database by the fingerprint it
// had before it was re-stamped gets its current one. Databases are handled first, so that
// profiles and run folders named in the same call see their new fingerprints; a profile's
// database is also found through its db.path. Only the 64 hexadecimal digits of each stamp
// change in a file (the rest stays byte for byte), and each file is replaced atomically.
//
// It refuses, before writing anything, a database, profile or export stamped for another model (a
// fingerprint that is neither m's nor m's legacy one): the legacy fingerprint does not cover
// the weights, so a legacy stamp of m may belong to another model with m's shapes — the user
// must know that the files belong to m before calling Restamp. With dryRun nothing is written
// and the Result says what would change.
func Restamp(m Model, paths []string, dryRun bool) (*Result, error) {
	if m.Fingerprint == "" || m.Legacy == "" {
		return nil, errors.New("stamp: Restamp: the model's fingerprint and legacy fingerprint are both needed")
	}
	if len(paths) == 0 {
		return nil, errors.New("stamp: Restamp: no database, profile or run folder to re-stamp")
	}
	r := &restamper{m: m, res: &Result{}, pairs: map[string]string{}, current: map[string]bool{}, files: map[string]*pending{}}
	var dbs, profiles, runs, exports []string
	seen := map[string]bool{}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		if seen[abs] {
			continue
		}
		seen[abs] = true
		st, err := os.Stat(p)
		switch {
		case err != nil:
			return nil, err
		case !st.IsDir():
			profiles = append(profiles, p)
		case fileExists(filepath.Join(p, db.ManifestFile)):
			dbs = append(dbs, p)
		case fileExists(filepath.Join(p, report.CheckpointFile)) || fileExists(filepath.Join(p, report.ResultFile)):
			runs = append(runs, p)
		case fileExists(filepath.Join(p, exportMetadata)):
			exports = append(exports, p)
		default:
			return nil, fmt.Errorf("%s: not a level database (no %s), a search run folder (no %s or %s), an export (no %s) or a profile file",
				p, db.ManifestFile, report.CheckpointFile, report.ResultFile, exportMetadata)
		}
	}
	for _, p := range dbs {
		r.database(p)
	}
	for _, p := range profiles {
		r.profile(p)
	}
	for _, p := range runs {
		r.run(p)
	}
	for _, p := range exports {
		r.export(p)
	}
	if len(r.refused) > 0 {
		return nil, fmt.Errorf("nothing re-stamped: %s", strings.Join(r.refused, "; "))
	}
	if dryRun {
		return r.res, nil
	}
	for _, f := range r.order {
		w := r.files[f]
		if err := atomicfile.WriteFile(f, w.data, w.perm); err != nil {
			return r.res, fmt.Errorf("re-stamping %s: %w (files listed before it were re-stamped)", f, err)
		}
	}
	return r.res, nil
}

// restamper is one Restamp call's state.
type restamper struct {
	m   Model
	res *Result
	// pairs maps a database's fingerprint before re-stamping to the one after; current holds
	// the databases' fingerprints after it.
	pairs   map[string]string
	current map[string]bool
	refused []string
	files   map[string]*pending
	order   []string
}

// pending is a file's new content.
type pending struct {
	data []byte
	perm fs.FileMode
}

func (r *restamper) note(format string, args ...any) {
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
}

func (r *restamper) refuse(format string, args ...any) {
	r.refused = append(r.refused, fmt.Sprintf(format, args...))
}

func (r *restamper) write(path string, data []byte) {
	perm := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		perm = st.Mode().Perm()
	}
	if _, ok := r.files[path]; !ok {
		r.order = append(r.order, path)
	}
	r.files[path] = &pending{data: data, perm: perm}
}

// readLimited reads a file of at most maxFile bytes.
func readLimited(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > maxFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFile)
	}
	return os.ReadFile(path)
}

// learn records the database whose manifest is data (stamped with m's fingerprint).
func (r *restamper) learn(manifest []byte) {
	cur := sha256Hex(manifest)
	r.current[cur] = true
	if prev := previousDBFingerprint(manifest, r.m); prev != "" {
		r.pairs[prev] = cur
	}
}

// database re-stamps the manifest of the database in dir.
func (r *restamper) database(dir string) {
	mpath := filepath.Join(dir, db.ManifestFile)
	data, err := readLimited(mpath)
	if err != nil {
		r.refuse("%v", err)
		return
	}
	man, err := db.ParseManifest(data, mpath)
	if err != nil {
		r.refuse("%v", err)
		return
	}
	switch rec := man.Model.Fingerprint; rec {
	case r.m.Fingerprint:
		r.learn(data)
		r.note("%s: already stamped with the model's fingerprint", dir)
	case r.m.Legacy:
		out, err := replaceOnce(data, rec, r.m.Fingerprint, mpath)
		if err != nil {
			r.refuse("%v", err)
			return
		}
		after, err := db.ParseManifest(out, mpath)
		if err == nil {
			after.Model.Fingerprint = rec
			if !reflect.DeepEqual(after, man) {
				err = fmt.Errorf("%s: re-stamping would change more than field model.fingerprint", mpath)
			}
		}
		if err != nil {
			r.refuse("%v", err)
			return
		}
		r.write(mpath, out)
		r.learn(out)
		r.res.Changes = append(r.res.Changes,
			Change{Path: mpath, Field: "model.fingerprint", Old: rec, New: r.m.Fingerprint},
			Change{Path: dir, Field: "fingerprint", Old: sha256Hex(data), New: sha256Hex(out)})
	default:
		r.refuse("%s: field model.fingerprint %.16s… is neither the model's fingerprint (%.16s…) nor its legacy one (%.16s…): "+
			"the database was built for another model", mpath, rec, r.m.Fingerprint, r.m.Legacy)
	}
}

// replaceOnce replaces the only occurrence of old in data by new (both fingerprints).
func replaceOnce(data []byte, old, new, name string) ([]byte, error) {
	if n := bytes.Count(data, []byte(old)); n != 1 {
		return nil, fmt.Errorf("%s: fingerprint %.16s… occurs %d times, want once", name, old, n)
	}
	return bytes.Replace(data, []byte(old), []byte(new), 1), nil
}

// profile re-stamps a profile file.
func (r *restamper) profile(path string) {
	data, err := readLimited(path)
	if err != nil {
		r.refuse("%v", err)
		return
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		r.note("%s: not a JSON profile: it records no fingerprints", path)
		return
	}
	p, err := profile.Parse(data, path)
	if err != nil {
		r.refuse("%v", err)
		return
	}
	var changes []Change
	want := *p
	out := data
	if p.Model == nil || p.Model.Fingerprint == "" {
		r.note("%s: records no model fingerprint", path)
	} else {
		switch rec := p.Model.Fingerprint; rec {
		case r.m.Fingerprint:
		case r.m.Legacy:
			if out, err = replaceOnce(out, rec, r.m.Fingerprint, path); err != nil {
				r.refuse("%v", err)
				return
			}
			ref := *p.Model
			ref.Fingerprint = r.m.Fingerprint
			want.Model = &ref
			changes = append(changes, Change{Path: path, Field: "model.fingerprint", Old: rec, New: r.m.Fingerprint})
		default:
			r.refuse("%s: field model.fingerprint %.16s… is neither the model's fingerprint (%.16s…) nor its legacy one (%.16s…): "+
				"the profile was made for another model", path, rec, r.m.Fingerprint, r.m.Legacy)
			return
		}
	}
	if p.DB != nil && p.DB.Fingerprint != "" {
		rec := p.DB.Fingerprint
		newFP, ok := r.pairs[rec]
		if !ok && !r.current[rec] {
			newFP, ok = r.resolve(p.DB.Path, path, rec)
		}
		switch {
		case ok:
			if out, err = replaceOnce(out, rec, newFP, path); err != nil {
				r.refuse("%v", err)
				return
			}
			ref := *p.DB
			ref.Fingerprint = newFP
			want.DB = &ref
			changes = append(changes, Change{Path: path, Field: "db.fingerprint", Old: rec, New: newFP})
		case !r.current[rec]:
			r.note("%s: field db.fingerprint %.16s… left as it is: it is not a fingerprint of the database at db.path %q, "+
				"before or after re-stamping, nor of a database named in the same command", path, rec, p.DB.Path)
		}
	}
	if len(changes) == 0 {
		r.note("%s: nothing to re-stamp", path)
		return
	}
	after, err := profile.Parse(out, path)
	if err != nil || !reflect.DeepEqual(*after, want) {
		r.refuse("%s: re-stamping would change more than its fingerprint fields (%v)", path, err)
		return
	}
	r.write(path, out)
	r.res.Changes = append(r.res.Changes, changes...)
}

// resolve looks for the database a profile at path names by dbPath (as given, then relative to
// the profile's folder) and returns its current fingerprint when rec is the one it had before
// it was re-stamped.
func (r *restamper) resolve(dbPath, path, rec string) (string, bool) {
	if dbPath == "" {
		return "", false
	}
	cands := []string{dbPath}
	if !filepath.IsAbs(dbPath) {
		cands = append(cands, filepath.Join(filepath.Dir(path), dbPath))
	}
	for _, dir := range cands {
		data, err := readLimited(filepath.Join(dir, db.ManifestFile))
		if err != nil {
			continue
		}
		if previousDBFingerprint(data, r.m) == rec {
			r.learn(data)
			return sha256Hex(data), true
		}
		if sha256Hex(data) == rec && bytes.Contains(data, []byte(r.m.Legacy)) {
			r.note("%s: its database %s is stamped by an older evopress too: re-stamp it in the same command to update field db.fingerprint", path, dir)
			r.current[rec] = true // the reference is right as long as the database is not re-stamped
			return "", false
		}
	}
	return "", false
}

// run re-stamps the files of a search run folder.
func (r *restamper) run(dir string) {
	type repl struct{ old, new, field string }
	repls := []repl{{r.m.Legacy, r.m.Fingerprint, "model fingerprint"}}
	olds := make([]string, 0, len(r.pairs))
	for old := range r.pairs {
		olds = append(olds, old)
	}
	sort.Strings(olds)
	for _, old := range olds {
		repls = append(repls, repl{old, r.pairs[old], "database fingerprint"})
	}
	changed := false
	for _, name := range runFiles {
		path := filepath.Join(dir, name)
		data, err := readLimited(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			r.refuse("%v", err)
			return
		}
		out := data
		for _, rp := range repls {
			if n := bytes.Count(out, []byte(rp.old)); n > 0 {
				out = bytes.ReplaceAll(out, []byte(rp.old), []byte(rp.new))
				r.res.Changes = append(r.res.Changes, Change{Path: path, Field: rp.field, Old: rp.old, New: rp.new})
			}
		}
		if name == report.CheckpointFile {
			for _, m := range dbRef.FindAllSubmatch(out, -1) {
				if fp := string(m[1]); !r.current[fp] {
					r.note("%s: names database fingerprint %.16s…, which is not that of a database named in the same command "+
						"(or referred to by a profile named in it): left as it is; if it is the old fingerprint of a re-stamped database, name the database too", path, fp)
				}
			}
		}
		if !bytes.Equal(out, data) {
			r.write(path, out)
			changed = true
		}
	}
	if !changed {
		r.note("%s: nothing to re-stamp", dir)
	}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// The metadata file of a Hugging Face export and its format: export.ProvenanceFile and
// export.ExportFormat (package export imports package stamp, so it cannot provide them;
// export's TestRestampOldExport fails if they disagree).
const (
	exportMetadata = "evopress.json"
	exportFormat   = "evopress-export/v1"
)

// export re-stamps the metadata of the Hugging Face export in dir, written by an evopress whose
// fingerprints did not cover the weights (newer ones record source_model.legacy_fingerprint
// next to the current fingerprint, and are current).
func (r *restamper) export(dir string) {
	path := filepath.Join(dir, exportMetadata)
	data, err := readLimited(path)
	if err != nil {
		r.refuse("%v", err)
		return
	}
	var pv struct {
		Format string `json:"format"`
		Source struct {
			Fingerprint       string `json:"fingerprint"`
			LegacyFingerprint string `json:"legacy_fingerprint"`
		} `json:"source_model"`
	}
	if err := json.Unmarshal(data, &pv); err != nil || pv.Format != exportFormat {
		r.refuse("%s: not the metadata of an evopress export (format %s)", path, exportFormat)
		return
	}
	switch rec := pv.Source.Fingerprint; {
	case pv.Source.LegacyFingerprint != "" || rec == r.m.Fingerprint:
		r.note("%s: already stamped with the model's fingerprint", dir)
		return
	case rec != r.m.Legacy:
		r.refuse("%s: field source_model.fingerprint %.16s… is neither the model's fingerprint (%.16s…) nor its legacy one (%.16s…): "+
			"the export was made from another model", path, rec, r.m.Fingerprint, r.m.Legacy)
		return
	}
	repl := map[string]string{r.m.Legacy: r.m.Fingerprint}
	for old, cur := range r.pairs {
		repl[old] = cur
	}
	out := data
	olds := make([]string, 0, len(repl))
	for old := range repl {
		olds = append(olds, old)
	}
	sort.Strings(olds)
	var changes []Change
	for _, old := range olds {
		if bytes.Contains(out, []byte(old)) {
			out = bytes.ReplaceAll(out, []byte(old), []byte(repl[old]))
			field := "database fingerprint"
			if old == r.m.Legacy {
				field = "model fingerprint"
			}
			changes = append(changes, Change{Path: path, Field: field, Old: old, New: repl[old]})
		}
	}
	// Only fingerprint values may change: the JSON read back equals the old one with them
	// replaced.
	var before, after any
	if json.Unmarshal(data, &before) != nil || json.Unmarshal(out, &after) != nil || !reflect.DeepEqual(replaceStrings(before, repl), after) {
		r.refuse("%s: re-stamping would change more than its fingerprint values", path)
		return
	}
	for _, m := range regexp.MustCompile(`"fingerprint": "([0-9a-f]{64})"`).FindAllSubmatch(out, -1) {
		if fp := string(m[1]); fp != r.m.Fingerprint && !r.current[fp] {
			r.note("%s: names database fingerprint %.16s…, which is not that of a database named in the same command: left as it is; "+
				"if it is the old fingerprint of a re-stamped database, name the database too", path, fp)
		}
	}
	r.write(path, out)
	r.res.Changes = append(r.res.Changes, changes...)
}

// replaceStrings returns v (decoded JSON) with every string value that is a key of repl
// replaced by its value.
func replaceStrings(v any, repl map[string]string) any {
	switch x := v.(type) {
	case string:
		if n, ok := repl[x]; ok {
			return n
		}
	case map[string]any:
		for k, e := range x {
			x[k] = replaceStrings(e, repl)
		}
	case []any:
		for i, e := range x {
			x[i] = replaceStrings(e, repl)
		}
	}
	return v
}
