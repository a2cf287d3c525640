package export

import "github.com/evopress/evopress/internal/optionerr"

// OptionError reports an unusable field of Options: Option() names the field, and Describe
// writes the message with the field called as the caller says (the CLI passes its flag).
type OptionError = optionerr.Error

// optionError makes an OptionError; in format, "{}" stands for the field's name.
func optionError(field, format string, args ...any) error {
	return optionerr.New("Options", field, "export: "+format, args...)
}
