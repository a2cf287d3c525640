package cluster

import "github.com/evopress/evopress/internal/optionerr"

// OptionError reports an unusable option (Options, ConnectOptions, StartServer's listen
// address): Option() names it, and Describe writes the message with the option called as the
// caller says (the CLI passes its flag).
type OptionError = optionerr.Error
