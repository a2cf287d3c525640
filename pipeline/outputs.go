package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/report"
	"github.com/evopress/evopress/search"
)

// FieldsError is an error about several request fields: its message names each field as the
// caller does (DescribeWith; the CLI passes its flags), by default by its Go name.
type FieldsError struct {
	// Fields are the request fields the message names, in order.
	Fields []string
	format string // the message's format, "{Field}" standing for each field's name
	args   []any
}

// fieldsError makes a FieldsError; in format (not in args), "{Field}" stands for a field's name.
func fieldsError(format string, args ...any) *FieldsError {
	e := &FieldsError{format: format, args: args}
	for rest := format; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			break
		}
		e.Fields = append(e.Fields, rest[i+1:i+j])
		rest = rest[i+j+1:]
	}
	return e
}

func (e *FieldsError) Error() string { return e.DescribeWith(nil) }

// DescribeWith is the message with each field called name(field) (nil: the Go names).
func (e *FieldsError) DescribeWith(name func(field string) string) string {
	f := e.format
	for _, field := range e.Fields {
		n := field
		if name != nil {
			n = name(field)
		}
		f = strings.Replace(f, "{"+field+"}", strings.ReplaceAll(n, "%", "%%"), 1)
	}
	return fmt.Sprintf(f, e.args...)
}

// runFiles are the files a search writes into its run folder (the report's images aside).
var runFiles = []string{report.CheckpointFile, report.LogFile, report.ResultFile, report.MarkdownFile, report.HTMLFile}

// maxOwnedBytes bounds what is read of a file to tell whether this tool wrote it.
const maxOwnedBytes = 64 << 20

// outputFile checks, before any work, that path can take a file the request writes at the end:
// not a directory or another non-file, its folder created. It reports whether the file exists.
func outputFile(field, path string) (bool, error) {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.IsDir():
		return false, invalid(field, path, "is a directory; want the file to write")
	case err == nil && !fi.Mode().IsRegular():
		return false, invalid(field, path, "is not a regular file (%v): not replaced", fi.Mode().Type())
	case err == nil:
		return true, nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, invalid(field, path, "%v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, invalid(field, path, "cannot create its folder: %v", err)
	}
	return false, nil
}

// jsonFormat returns the "format" field of the JSON object in path ("" when it is not a JSON
// object, or has none) and whether it is a JSON object with every key of keys.
func jsonFormat(path string, keys ...string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxOwnedBytes))
	if err != nil {
		return "", false
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return "", false
	}
	var format string
	json.Unmarshal(obj["format"], &format)
	for _, k := range keys {
		if _, ok := obj[k]; !ok {
			return format, false
		}
	}
	return format, true
}

// isProfile reports whether path holds an evopress profile file.
func isProfile(path string) bool {
	format, _ := jsonFormat(path)
	return format == profile.FormatV1
}

// checkProfileOuts checks a baseline's outputs before any work: the profile (Out) and the scores
// file (ScoresOut, optional) may not be directories; existing ones are replaced only with force,
// and then only when this tool wrote them.
func checkProfileOuts(out, scores string, force bool) error {
	if scores != "" && filepath.Clean(scores) == filepath.Clean(out) {
		return fieldsError("{ScoresOut} %s: the same path as {Out}", scores)
	}
	var exist []string
	for _, o := range []struct {
		field, path string
		ours        func(string) bool
		what        string
	}{
		{"Out", out, isProfile, "an evopress profile"},
		{"ScoresOut", scores, func(p string) bool { _, ok := jsonFormat(p, "method", "ranking"); return ok }, "a baseline's scores file"},
	} {
		if o.path == "" {
			continue
		}
		ok, err := outputFile(o.field, o.path)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if !o.ours(o.path) {
			return fieldsError("{"+o.field+"} %s exists and is not %s: not replaced, even with {Force}", o.path, o.what)
		}
		exist = append(exist, o.path)
	}
	switch {
	case force:
	case len(exist) == 1:
		return fieldsError("%s exists: replace it with {Force}", exist[0])
	case len(exist) > 1:
		return fieldsError("%s exist: replace them with {Force}", strings.Join(exist, " and "))
	}
	return nil
}

// checkRunOutputs checks a search's outputs before any work and creates the run folder: the
// profile file (Out) may not be a directory, the run folder (RunDir) may not be a file. An
// earlier run's outputs (the profile, and the run folder's checkpoint, result, report, non-empty
// log) are refused unless the search resumes its checkpoint, or force is set and they are
// this tool's (an evopress profile; a run folder with an evopress checkpoint). It returns
// whether a checkpoint exists.
func checkRunOutputs(out, runDir string, runDirSet, resume, force bool) (bool, error) {
	runField := "Out"
	if runDirSet {
		runField = "RunDir"
	}
	if filepath.Clean(out) == filepath.Clean(runDir) {
		return false, invalid(runField, runDir, "is the profile file too ({Out}); the run folder needs its own path")
	}
	for _, f := range runFiles {
		if filepath.Clean(out) == filepath.Join(runDir, f) {
			return false, invalid("Out", out, "is the run folder's %s", f)
		}
	}
	outExists, err := outputFile("Out", out)
	if err != nil {
		return false, err
	}
	if fi, err := os.Lstat(runDir); err == nil && !fi.IsDir() {
		return false, invalid(runField, runDir, "is not a directory; want the run folder (checkpoint, log, report)")
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, invalid(runField, runDir, "%v", err)
	}
	var found []string // the run folder's files
	ckExists := false
	for _, f := range runFiles {
		p := filepath.Join(runDir, f)
		fi, err := os.Lstat(p)
		if err != nil || (f == report.LogFile && fi.Mode().IsRegular() && fi.Size() == 0) {
			continue // a log without records holds nothing
		}
		ckExists = ckExists || f == report.CheckpointFile
		found = append(found, p)
	}
	if resume && ckExists {
		return true, nil
	}
	all := found
	if outExists {
		all = append([]string{out}, found...)
	}
	switch {
	case len(all) == 0:
	case !force:
		return false, fieldsError("an earlier run's files exist (%s): continue it with {Resume}, or start afresh replacing them with {Force}", strings.Join(all, ", "))
	case outExists && !isProfile(out):
		return false, fieldsError("{Out} %s exists and is not an evopress profile: not replaced, even with {Force}", out)
	case len(found) > 0:
		if format, _ := jsonFormat(filepath.Join(runDir, report.CheckpointFile)); format != search.CheckpointFormat {
			return false, fieldsError("{"+runField+"} %s holds %s but no evopress %s: not a search's run folder, not replaced, even with {Force}",
				runDir, strings.Join(found, ", "), report.CheckpointFile)
		}
	}
	return false, nil
}
