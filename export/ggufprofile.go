package export

import (
	"github.com/evopress/evopress/arch"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/ggml"
	"github.com/evopress/evopress/llamarecipe"
)

// useGGUFProfile makes a GGUF export of a profile over a gguf level database write what the
// profile chose: every linear layer from the database's stored blocks at its level
// (db.GGUFBlocks; Options.Encoded, when set, first). Without Options.Type and FileType, the token
// embedding and output tensor are written at the types the profile's record holds (unless
// TokenEmbeddingType or OutputTensorType give them) and general.file_type is the llama.cpp file
// type the profile records (the llamacpp baseline's), else the file type of the type holding
// most of the linear layers' weights; with either, they follow it as without a profile.
// Nothing for other profiles.
func useGGUFProfile(o Options, pl *plan, spec *ggufSpec) error {
	p, d := pl.prof, pl.db
	if p == nil || d == nil || d.Mode() != db.ModeGGUF {
		return nil
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
	if o.Type != "" || o.FileType != "" {
		return nil
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
