// Package stamp deals with the model fingerprints recorded in level databases, profiles and
// search run folders ("stamps") by versions of evopress whose fingerprint did not cover the
// weights (hf.LegacyFingerprintVersion). Such a stamp cannot tell the model from another with
// the same config.json and tensor shapes but other weights, so it is refused with a message
// that says so (Model.CheckDB, Model.CheckProfile), and Restamp rewrites it with the current
// fingerprint once the user has confirmed that the files belong to the model.
//
// A database's own fingerprint is the SHA-256 of its manifest, which holds the model
// fingerprint: re-stamping a database changes it. Restamp replaces only the 64 hexadecimal
// digits of the model fingerprint in the manifest, so the fingerprint a re-stamped database had
// before is the SHA-256 of its manifest with the current model fingerprint replaced by the
// legacy one (PreviousDBFingerprint); profiles and run folders that refer to the database by
// that value are re-stamped too, and refused with advice until they are.
package stamp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/profile"
)

// Model identifies the model that stamps are checked against or rewritten for.
type Model struct {
	// Dir is the model directory as the user named it ("" for the embedded default model); it
	// is only used in the advice to run `evopress restamp`.
	Dir string
	// Fingerprint is the model's fingerprint (hf.Checkpoint.Fingerprint) and Legacy its legacy
	// fingerprint (hf.Checkpoint.LegacyFingerprint).
	Fingerprint, Legacy string
}

// LegacyError reports a stamp written by an older evopress for this model: a database or
// profile recording the model's legacy fingerprint (Field "model.fingerprint"), a profile
// recording the fingerprint its database had before it was re-stamped (Field
// "db.fingerprint"), or a run folder's checkpoint recording either (Field "model fingerprint",
// "database fingerprint").
type LegacyError struct {
	// Path is the database folder or the profile file ("" when the caller did not say).
	Path string
	// Field is the stamp's field; Recorded its value; Current the value it should have.
	Field, Recorded, Current string
	// Command is the `evopress restamp` command line that re-stamps it.
	Command string
	msg     string
}

func (e *LegacyError) Error() string { return e.msg }

// restampCommand returns the command line that re-stamps paths for m.
func (m Model) restampCommand(paths ...string) string {
	args := []string{"evopress", "restamp"}
	if m.Dir != "" {
		args = append(args, "--model", shellQuote(m.Dir))
	}
	for _, p := range paths {
		args = append(args, shellQuote(p))
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=+,@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// legacyNote explains the legacy fingerprint in messages.
const legacyNote = "the fingerprint older versions of evopress gave this model, which covers config.json and the tensor names, dtypes and shapes but not the weights"

// CheckDB returns a *LegacyError when database d records m's legacy fingerprint (and nil
// otherwise: other mismatches are for db.DB.Check to report).
func (m Model) CheckDB(d *db.DB) error {
	rec := d.Manifest().Model.Fingerprint
	if m.Legacy == "" || rec != m.Legacy || rec == m.Fingerprint {
		return nil
	}
	cmd := m.restampCommand(d.Dir())
	return &LegacyError{Path: d.Dir(), Field: "model.fingerprint", Recorded: rec, Current: m.Fingerprint, Command: cmd,
		msg: fmt.Sprintf("database %s: %s field model.fingerprint is %.16s…, %s; the model's fingerprint is now %.16s…. "+
			"If the database was built from these very weights, re-stamp it (and the profiles and run folders made with it): %s",
			d.Dir(), db.ManifestFile, rec, legacyNote, m.Fingerprint, cmd)}
}

// CheckProfile returns a *LegacyError when profile p (read from path, "" if unknown) records
// m's legacy fingerprint, or the fingerprint database d (nil for drop profiles) had before it
// was re-stamped; nil otherwise (other mismatches are for candidate.FromProfile to report).
// The message does not name path (callers prefix it); the advice does.
func (m Model) CheckProfile(p *profile.Profile, path string, d *db.DB) error {
	name := path
	if name == "" {
		name = "PROFILE"
	}
	if p.Model != nil && m.Legacy != "" && p.Model.Fingerprint == m.Legacy && m.Legacy != m.Fingerprint {
		paths := []string{name}
		if d != nil {
			paths = []string{d.Dir(), name}
		}
		cmd := m.restampCommand(paths...)
		return &LegacyError{Path: path, Field: "model.fingerprint", Recorded: p.Model.Fingerprint, Current: m.Fingerprint, Command: cmd,
			msg: fmt.Sprintf("profile field model.fingerprint is %.16s…, %s; the model's fingerprint is now %.16s…. "+
				"If the profile was made for these very weights, re-stamp it: %s", p.Model.Fingerprint, legacyNote, m.Fingerprint, cmd)}
	}
	if d != nil && p.DB != nil && p.DB.Fingerprint != "" && p.DB.Fingerprint != d.Fingerprint() {
		if prev, err := PreviousDBFingerprint(d.Dir(), m); err == nil && prev == p.DB.Fingerprint {
			cmd := m.restampCommand(d.Dir(), name)
			return &LegacyError{Path: path, Field: "db.fingerprint", Recorded: p.DB.Fingerprint, Current: d.Fingerprint(), Command: cmd,
				msg: fmt.Sprintf("profile field db.fingerprint is %.16s…, the fingerprint database %s had before `evopress restamp` re-stamped it "+
					"(it is now %.16s…); re-stamp the profile too: %s", p.DB.Fingerprint, d.Dir(), d.Fingerprint(), cmd)}
		}
	}
	return nil
}

// CheckRun returns a *LegacyError when the checkpoint of the search run folder dir records, in
// recorded (its mode signature and objective values), m's legacy fingerprint or the fingerprint
// the database in dbDir ("" for drop searches) had before it was re-stamped; nil otherwise
// (other mismatches are for the search's resume checks to report).
func (m Model) CheckRun(dir string, recorded []string, dbDir string) error {
	holds := func(fp string) bool {
		for _, r := range recorded {
			if fp != "" && strings.Contains(r, fp) {
				return true
			}
		}
		return false
	}
	if m.Legacy != "" && m.Legacy != m.Fingerprint && holds(m.Legacy) {
		paths := []string{dir}
		if dbDir != "" {
			paths = []string{dbDir, dir}
		}
		cmd := m.restampCommand(paths...)
		return &LegacyError{Path: dir, Field: "model fingerprint", Recorded: m.Legacy, Current: m.Fingerprint, Command: cmd,
			msg: fmt.Sprintf("run folder %s: its checkpoint records the model fingerprint %.16s…, %s; the model's fingerprint is now %.16s…. "+
				"If the run was made with these very weights, re-stamp it: %s", dir, m.Legacy, legacyNote, m.Fingerprint, cmd)}
	}
	if dbDir == "" {
		return nil
	}
	manifest, err := os.ReadFile(filepath.Join(dbDir, db.ManifestFile))
	if err != nil {
		return nil // the database's own checks report it
	}
	if prev := previousDBFingerprint(manifest, m); prev != "" && holds(prev) {
		cmd := m.restampCommand(dbDir, dir)
		return &LegacyError{Path: dir, Field: "database fingerprint", Recorded: prev, Current: sha256Hex(manifest), Command: cmd,
			msg: fmt.Sprintf("run folder %s: its checkpoint records database fingerprint %.16s…, the fingerprint database %s had before `evopress restamp` re-stamped it "+
				"(it is now %.16s…); re-stamp the run folder too: %s", dir, prev, dbDir, sha256Hex(manifest), cmd)}
	}
	return nil
}

// PreviousDBFingerprint returns the fingerprint the database in dir had before Restamp
// re-stamped it for m: the SHA-256 of its manifest with m's fingerprint replaced by m's legacy
// one ("" when the manifest does not record m's fingerprint).
func PreviousDBFingerprint(dir string, m Model) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, db.ManifestFile))
	if err != nil {
		return "", err
	}
	return previousDBFingerprint(data, m), nil
}

func previousDBFingerprint(manifest []byte, m Model) string {
	if m.Fingerprint == "" || m.Legacy == "" || !bytes.Contains(manifest, []byte(m.Fingerprint)) {
		return ""
	}
	return sha256Hex(bytes.ReplaceAll(manifest, []byte(m.Fingerprint), []byte(m.Legacy)))
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
