// Package optionerr is the error of an unusable option (a field of a package's options struct):
// its message names the option as the library knows it ("Options.Force"), and Describe names it
// as the caller does, so that the CLI can say which flag is wrong while the libraries never name
// flags. Packages export it under their own name (export.OptionError, cluster.OptionError).
package optionerr

import (
	"fmt"
	"strings"
)

// Error reports an unusable option.
type Error struct {
	// Field is the option's field name, e.g. "Force".
	Field  string
	prefix string // "Options." for the default message
	text   string // the message, "{}" standing for the option's name
}

// New makes an Error for the field of the options struct named prefix (e.g. "Options"; "" for
// a plain argument); in format, "{}" stands for the option's name.
func New(prefix, field, format string, args ...any) *Error {
	return &Error{Field: field, prefix: prefix, text: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.prefix == "" {
		return e.Describe(e.Field)
	}
	return e.Describe(e.prefix + "." + e.Field)
}

// Option is the field the error is about.
func (e *Error) Option() string { return e.Field }

// Describe is the message with the option called name.
func (e *Error) Describe(name string) string { return strings.ReplaceAll(e.text, "{}", name) }
