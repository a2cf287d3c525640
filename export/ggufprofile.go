package export

import (
	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/llamarecipe"
)

// useGGUFProfile makes a GGUF export of a profile over a gguf level database write what the
// profile chose: every linear layer from the database's stored blocks at its level
// (db.GGUFBlocks; Options.Encoded, when set, first), the token embedding and output tensor at
// the types the profile's record holds (unless the options give them), and general.file_type
// the llama.cpp file type the profile records (the llamacpp baseline's), else the file type of
// the type holding most of the linear layers' weights. The types then come from the profile:
// Options.Type, FileType and Imatrix are refused. Nothing for other profiles.
func useGGUFProfile(o Options, pl *plan, spec *ggufSpec) error {
	p, d := pl.prof, pl.db
	if p == nil || d == nil || d.Mode() != db.ModeGGUF {
		return nil
	}
	name := o.ProfilePath
	if name == "" {
		name = "the profile"
	}
	for _, f := range []struct{ field, val string }{{"Type", o.Type}, {"FileType", o.FileType}, {"Imatrix", o.Imatrix}} {
		if f.val != "" {
			return optionError(f.field, "{} %s: %s is a profile of gguf database %s, whose stored blocks are the linear layers: give no type, file type or importance matrix", f.val, name, d.Dir())
		}
	}
	levels := p.Levels
	given := spec.encoded
	spec.encoded = func(block int, kind arch.LinearKind) (ggml.Type, func() ([]byte, error), bool) {
		if given != nil {
			if t, data, ok := given(block, kind); ok {
				return t, data, ok
			}
		}
		unit := arch.LinearUnit(block, kind).String()
		level, ok := levels[unit]
		if !ok {
			return 0, nil, false
		}
		return ggml.Type(level), func() ([]byte, error) {
			_, b, err := d.GGUFBlocks(unit, level)
			return b, err
		}, true
	}
	if r := p.Search; r != nil {
		for _, ov := range []struct {
			field, val string
			dst        **ggml.Type
		}{{"TokenEmbeddingType", r.TokenEmbeddingType, &spec.tokEmb}, {"OutputTensorType", r.OutputTensorType, &spec.out}} {
			if *ov.dst != nil || ov.val == "" {
				continue
			}
			t, err := parseTensorType(ov.field, ov.val)
			if err != nil {
				return err
			}
			*ov.dst = &t
		}
	}
	ft, ok := llamarecipe.FileType(0), false
	if r := p.Search; r != nil && r.FileType != "" {
		if f, err := llamarecipe.ParseFileType(r.FileType); err == nil {
			ft, ok = f, true
		}
	}
	if !ok {
		weights := map[ggml.Type]int64{}
		var most ggml.Type
		for _, l := range d.Manifest().Layers {
			if lv, in := levels[l.Name]; in {
				t := ggml.Type(lv)
				weights[t] += int64(l.Numel)
				if weights[t] > weights[most] || (weights[t] == weights[most] && t < most) {
					most = t
				}
			}
		}
		ft, ok = llamarecipe.FileTypeOf(most)
	}
	if ok {
		spec.fileTypeKey = &ft
	}
	return nil
}
