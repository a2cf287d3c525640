package pipeline

import (
	"errors"
	"fmt"
)

// RequestError reports an invalid field of a request. Field is the Go name of the request
// field (for example "SeqLen" or "Mode.Target"), so that callers can name their own input (the
// CLI names its flag).
type RequestError struct {
	Field  string
	Value  any // the offending value; nil when the field is missing
	Reason string
}

func (e *RequestError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("%s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("%s %v: %s", e.Field, e.Value, e.Reason)
}

func invalid(field string, value any, format string, args ...any) error {
	return &RequestError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}

func missing(field, format string, args ...any) error {
	return &RequestError{Field: field, Reason: fmt.Sprintf(format, args...)}
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
