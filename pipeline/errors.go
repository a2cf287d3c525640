package pipeline

import (
	"errors"
	"fmt"
)

// RequestError reports an invalid field of a request. Field is the Go name of the request
// field (for example "SeqLen" or "Mode.Target"), so that callers can name their own input (the
// CLI names its flag).
type RequestError struct {
	Field   string
	Value   any // the offending value (nil when Missing)
	Missing bool
	Reason  string
}

func (e *RequestError) Error() string { return e.Describe(e.Field) }

// Option is the request field the error is about.
func (e *RequestError) Option() string { return e.Field }

// Describe is the error's text with the field called name (the CLI passes its flag).
func (e *RequestError) Describe(name string) string {
	if e.Missing {
		return fmt.Sprintf("%s is required (%s)", name, e.Reason)
	}
	return fmt.Sprintf("%s %v: %s", name, e.Value, e.Reason)
}

func invalid(field string, value any, format string, args ...any) error {
	return &RequestError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}

func missing(field, format string, args ...any) error {
	return &RequestError{Field: field, Missing: true, Reason: fmt.Sprintf(format, args...)}
}

// ErrNoDatabase is returned when a sparse or quant request names no level database.
var ErrNoDatabase = errors.New("a level database is required")

// InterruptedError reports a search stopped by its context; it can be resumed from Checkpoint.
type InterruptedError struct {
	Checkpoint string
	Err        error
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("search interrupted (checkpoint %s): %v", e.Checkpoint, e.Err)
}

func (e *InterruptedError) Unwrap() error { return e.Err }
