package candidate

import (
	"strings"
	"testing"

	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/search"
)

func TestDropUnit(t *testing.T) {
	tests := []struct {
		in         string
		block      int
		attn       bool
		wantErrSub string
	}{
		{"model.layers.0.self_attn", 0, true, ""},
		{"model.layers.11.mlp", 11, false, ""},
		{"model.layers.12.mlp", 0, false, "outside"},
		{"model.layers.3.self_attn.q_proj", 0, false, "want model.layers.N"},
		{"lm_head", 0, false, "want model.layers.N"},
		{"model.layers.-1.mlp", 0, false, "want model.layers.N"},
		{"model.layers.+1.mlp", 0, false, "want model.layers.N"},
		{"model.layers.01.mlp", 0, false, "want model.layers.N"},
		{"model.layers.1.mlp junk", 0, false, "want model.layers.N"},
		{"model.layers. 1.mlp", 0, false, "want model.layers.N"},
		{"model.layers.1", 0, false, "want model.layers.N"},
	}
	for _, tc := range tests {
		b, attn, err := DropUnit(tc.in, 12)
		if tc.wantErrSub != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
				t.Errorf("DropUnit(%q): error %v, want %q", tc.in, err, tc.wantErrSub)
			}
			continue
		}
		if err != nil || b != tc.block || attn != tc.attn {
			t.Errorf("DropUnit(%q) = %d, %v, %v", tc.in, b, attn, err)
		}
	}
}

func TestApplyDropAndBuilderAgree(t *testing.T) {
	m := &model.Model{Blocks: make([]model.Block, 3)}
	levels := map[string]int{"model.layers.1.self_attn": 1, "model.layers.2.mlp": 1, "model.layers.0.mlp": 0}
	c, err := ApplyDrop(m, levels)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Blocks[1].SkipAttn || !c.Blocks[2].SkipMLP || c.Blocks[0].SkipMLP || c.Blocks[1].SkipMLP {
		t.Errorf("skips %+v", c.Blocks)
	}
	for i := range m.Blocks {
		if m.Blocks[i].SkipAttn || m.Blocks[i].SkipMLP {
			t.Fatal("ApplyDrop changed the original model")
		}
	}
	units := []string{"model.layers.0.self_attn", "model.layers.0.mlp", "model.layers.1.self_attn", "model.layers.1.mlp", "model.layers.2.self_attn", "model.layers.2.mlp"}
	build, err := DropBuilder(m, units)
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(search.Levels{0, 0, 1, 0, 0, 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Blocks {
		if b.Blocks[i].SkipAttn != c.Blocks[i].SkipAttn || b.Blocks[i].SkipMLP != c.Blocks[i].SkipMLP {
			t.Errorf("block %d: builder and ApplyDrop disagree", i)
		}
	}
	if _, err := build(search.Levels{0}); err == nil {
		t.Error("short profile accepted")
	}
	if _, err := ApplyDrop(m, map[string]int{"model.layers.0.mlp": 2}); err == nil {
		t.Error("level 2 accepted")
	}
}
