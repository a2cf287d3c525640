package export

import (
	"github.com/evopress/evopress/internal/memcheck"
	"github.com/evopress/evopress/profile"
)

// estimate is the memory an export holds at its peak: the model's weights as loaded (16-bit
// weights kept), the profile's levels (held as stored), and the buffers a tensor is converted and encoded
// in.
func estimate(s *memcheck.Shape, o Options) *memcheck.Estimate {
	e := &memcheck.Estimate{Command: "export"}
	e.Weights(s)
	e.Runtime()
	e.Profile(s, o.Profile)
	if o.Format == FormatGGUF {
		// One chunk of rows in float32 and encoded (at most 4 bytes per value).
		e.Add("conversion buffers", 8*encodeChunk, nil, "one chunk of rows converted to float32 and encoded")
	} else if o.Profile != nil && o.Profile.Mode == profile.ModeDrop {
		e.Add("conversion buffers", 4*s.MaxLinear, nil, "zeroed output projections of dropped sub-blocks")
	}
	return e
}

// checkMemory refuses an export that will not fit in memory (memcheck.CheckAvailable); a model
// whose shape cannot be read is left to the load to report.
func checkMemory(o Options) error {
	s, err := memcheck.ModelShape(o.ModelDir)
	if err != nil {
		return nil
	}
	return memcheck.CheckAvailable(estimate(s, o))
}
