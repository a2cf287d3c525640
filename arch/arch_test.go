package arch

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// The names are spelled out literally here: the test is an independent reference for the table.

func TestLinearKinds(t *testing.T) {
	want := []struct {
		long, short, gguf string
		sub               SubBlock
	}{
		{"self_attn.q_proj", "q_proj", "attn_q", Attention},
		{"self_attn.k_proj", "k_proj", "attn_k", Attention},
		{"self_attn.v_proj", "v_proj", "attn_v", Attention},
		{"self_attn.o_proj", "o_proj", "attn_output", Attention},
		{"mlp.gate_proj", "gate_proj", "ffn_gate", MLP},
		{"mlp.up_proj", "up_proj", "ffn_up", MLP},
		{"mlp.down_proj", "down_proj", "ffn_down", MLP},
	}
	kinds := LinearKinds()
	if len(kinds) != len(want) || int(NumLinearKinds) != len(want) {
		t.Fatalf("LinearKinds() = %v, NumLinearKinds = %d; want %d kinds", kinds, NumLinearKinds, len(want))
	}
	for i, w := range want {
		k := kinds[i]
		if k != LinearKind(i) || k.String() != w.long || k.Short() != w.short || k.GGUF() != w.gguf || k.Sub() != w.sub {
			t.Errorf("kind %d: %v %q %q %v, want %q %q %q %v", i, k, k.Short(), k.GGUF(), k.Sub(), w.long, w.short, w.gguf, w.sub)
		}
		for _, s := range []string{w.long, w.short} {
			if got, err := ParseLinearKind(s); err != nil || got != k {
				t.Errorf("ParseLinearKind(%q) = %v, %v", s, got, err)
			}
		}
	}
	for _, s := range []string{"", "lm_head", "q", "Q_PROJ", "self_attn.gate_proj", "mlp.q_proj", "self_attn", "attn_q", " q_proj", "q_proj.weight"} {
		if k, err := ParseLinearKind(s); err == nil {
			t.Errorf("ParseLinearKind(%q) = %v, want an error", s, k)
		}
	}
	if got := LinearKind(7).String(); got != "LinearKind(7)" {
		t.Errorf("LinearKind(7).String() = %q", got)
	}
	if QProj != 0 || DownProj != 6 {
		t.Error("kinds are not numbered 0..6 in Hugging Face order")
	}
}

func TestSubBlocks(t *testing.T) {
	if Attention.String() != "self_attn" || MLP.String() != "mlp" || SubBlock(2).String() != "SubBlock(2)" {
		t.Errorf("sub-block names %q %q %q", Attention, MLP, SubBlock(2))
	}
	if got := fmt.Sprint(Attention.Linear(), MLP.Linear()); got != "[self_attn.q_proj self_attn.k_proj self_attn.v_proj self_attn.o_proj] [mlp.gate_proj mlp.up_proj mlp.down_proj]" {
		t.Errorf("Linear() = %s", got)
	}
}

// allUnits lists every unit of an n-block model with its expected name, level, sub-block and kind.
type unitCase struct {
	u     Unit
	name  string
	level Level
	sub   int // -1: none
	kind  int // -1: none
}

func allUnits(blocks ...int) []unitCase {
	var out []unitCase
	subs := []string{"self_attn", "mlp"}
	kinds := []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}
	for _, b := range blocks {
		p := "model.layers." + strconv.Itoa(b)
		out = append(out, unitCase{Block(b), p, BlockLevel, -1, -1})
		for s, n := range subs {
			out = append(out, unitCase{SubUnit(b, SubBlock(s)), p + "." + n, SubBlockLevel, s, -1})
		}
		for k, n := range kinds {
			out = append(out, unitCase{LinearUnit(b, LinearKind(k)), p + "." + n, LinearLevel, k / 4, k})
		}
	}
	return out
}

func TestUnitRoundTrip(t *testing.T) {
	seen := map[Unit]string{}
	for _, tc := range allUnits(0, 1, 9, 10, 31, 123, MaxBlocks-1) {
		if got := tc.u.String(); got != tc.name {
			t.Errorf("String() = %q, want %q", got, tc.name)
		}
		u, err := ParseUnit(tc.name)
		if err != nil || u != tc.u {
			t.Errorf("ParseUnit(%q) = %v, %v, want %v", tc.name, u, err, tc.u)
		}
		if prev, dup := seen[u]; dup {
			t.Errorf("%q and %q are the same Unit", prev, tc.name)
		}
		seen[u] = tc.name
		if u.Level() != tc.level {
			t.Errorf("%s: level %v, want %v", tc.name, u.Level(), tc.level)
		}
		if s, ok := u.Sub(); ok != (tc.sub >= 0) || (ok && int(s) != tc.sub) {
			t.Errorf("%s: Sub() = %v, %v", tc.name, s, ok)
		}
		if k, ok := u.Linear(); ok != (tc.kind >= 0) || (ok && int(k) != tc.kind) {
			t.Errorf("%s: Linear() = %v, %v", tc.name, k, ok)
		}
		b, k, err := ParseLinear(tc.name)
		if (err == nil) != (tc.kind >= 0) || (err == nil && (b != u.Block() || int(k) != tc.kind)) {
			t.Errorf("ParseLinear(%q) = %d, %v, %v", tc.name, b, k, err)
		}
		if u.Block() != tc.u.Block() {
			t.Errorf("%s: block %d", tc.name, u.Block())
		}
	}
	if (Unit{}) != Block(0) {
		t.Error("the zero Unit is not block 0")
	}
}

// rejected is every name some parser of unit names rejected before package arch (drop's
// blockIndex, fitness.UnitBlock, candidate.DropUnit, db.ParseLayerName, report's splitUnit) that
// is not a canonical unit name, plus junk around valid names.
var rejected = []string{
	"", "lm_head", "model.embed_tokens", "model.norm", "model", "model.layers", "model.layers.",
	"model.layers..mlp", "model.layers.x", "model.layers.x.mlp", "model.layers.-1", "model.layers.-1.mlp",
	"model.layers.+1", "model.layers.+1.mlp", "model.layers.01", "model.layers.00.mlp", "model.layers.0x1.mlp",
	"model.layers.1_0.mlp", "model.layers.1e3.mlp", "model.layers. 1.mlp", "model.layers.1 .mlp",
	" model.layers.1.mlp", "model.layers.1.mlp ", "model.layers.1.mlp\n", "model.layers.1.mlp junk",
	"model.layers.1.mlp.", "model.layers.1.", "model.layers.1..mlp", "model.layers.1.MLP", "Model.layers.1.mlp",
	"model.layers.1.attn", "model.layers.1.q_proj", "model.layers.1.down_proj", "model.layers.1.self_attn.",
	"model.layers.1.self_attn.foo_proj", "model.layers.1.mlp.q_proj", "model.layers.1.self_attn.gate_proj",
	"model.layers.1.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.bias", "model.layers.1.input_layernorm",
	"model.layers.1.self_attn.q_proj.", "model.layers.1.self_attn.q_proj.x",
	"model.layers.1048576", "model.layers.1048576.mlp", "model.layers.99999999999999999999.mlp",
	"model.layers.9223372036854775808.mlp", "model.layers.１.mlp", "model.layers.٣.mlp",
	"model.decoder.layers.1.mlp", "transformer.h.layers.0.attn.c_attn", "layers.1.mlp", "model.model.layers.1.mlp",
	"xmodel.layers.1.mlp", "model.layers.1\x00.mlp", "model.layers.1.mlp\x00",
}

func TestParseUnitRejects(t *testing.T) {
	for _, s := range rejected {
		if u, err := ParseUnit(s); err == nil {
			t.Errorf("ParseUnit(%q) = %v, want an error", s, u)
		} else if !strings.Contains(err.Error(), "not a unit name") {
			t.Errorf("ParseUnit(%q): error %v", s, err)
		}
		if b, k, err := ParseLinear(s); err == nil {
			t.Errorf("ParseLinear(%q) = %d, %v, want an error", s, b, k)
		}
	}
	for _, s := range []string{"model.layers.3", "model.layers.3.self_attn", "model.layers.3.mlp"} {
		if _, _, err := ParseLinear(s); err == nil || !strings.Contains(err.Error(), "not a linear layer") {
			t.Errorf("ParseLinear(%q): error %v, want not a linear layer", s, err)
		}
	}
}

func TestConstructorsPanic(t *testing.T) {
	for name, f := range map[string]func(){
		"Block(-1)":                  func() { Block(-1) },
		"Block(MaxBlocks)":           func() { Block(MaxBlocks) },
		"SubUnit(0, 2)":              func() { SubUnit(0, 2) },
		"SubUnit(-1, MLP)":           func() { SubUnit(-1, MLP) },
		"LinearUnit(0, 7)":           func() { LinearUnit(0, 7) },
		"LinearUnit(0, -1)":          func() { LinearUnit(0, -1) },
		"Weight(-1, QProj)":          func() { Weight(-1, QProj) },
		"Bias(0, NumLinearKinds)":    func() { Bias(0, NumLinearKinds) },
		"Norm(0, NumSubBlocks)":      func() { Norm(0, NumSubBlocks) },
		"LinearKind(9).Sub()":        func() { LinearKind(9).Sub() },
		"Norm(MaxBlocks, Attention)": func() { Norm(MaxBlocks, Attention) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestSplitLayers(t *testing.T) {
	for _, tc := range []struct {
		in, prefix string
		block      int
		rest       string
		ok         bool
	}{
		{"model.layers.3.mlp.up_proj", "model.layers.", 3, "mlp.up_proj", true},
		{"model.layers.0.self_attn", "model.layers.", 0, "self_attn", true},
		{"model.layers.1000000.self_attn", "model.layers.", 1000000, "self_attn", true},
		{"transformer.h.layers.12.attn.c_attn", "transformer.h.layers.", 12, "attn.c_attn", true},
		{"model.decoder.layers.3.fc1", "model.decoder.layers.", 3, "fc1", true},
		{"model.layers.3", "", 0, "", false},
		{"model.layers.3.", "", 0, "", false},
		{"model.layers.x.mlp", "", 0, "", false},
		{"model.layers.-1.mlp", "", 0, "", false},
		{"model.layers.+1.mlp", "", 0, "", false},
		{"model.layers.01.mlp", "", 0, "", false},
		{"model.layers.1048576.mlp", "", 0, "", false},
		{"model.layers..mlp", "", 0, "", false},
		{"lm_head", "", 0, "", false},
		{"layers", "", 0, "", false},
	} {
		prefix, b, rest, ok := SplitLayers(tc.in)
		if prefix != tc.prefix || b != tc.block || rest != tc.rest || ok != tc.ok {
			t.Errorf("SplitLayers(%q) = %q, %d, %q, %v", tc.in, prefix, b, rest, ok)
		}
	}
}

// TestTensors checks the Hugging Face and GGUF names of every tensor of a 2-block model.
func TestTensors(t *testing.T) {
	type pair struct{ hf, gguf string }
	var want []pair
	var got []Tensor
	add := func(tn Tensor, hf, gguf string) { got, want = append(got, tn), append(want, pair{hf, gguf}) }
	add(Embedding(), "model.embed_tokens.weight", "token_embd.weight")
	for b := range 2 {
		hp, gp := fmt.Sprintf("model.layers.%d.", b), fmt.Sprintf("blk.%d.", b)
		add(Norm(b, Attention), hp+"input_layernorm.weight", gp+"attn_norm.weight")
		add(Norm(b, MLP), hp+"post_attention_layernorm.weight", gp+"ffn_norm.weight")
		for _, kn := range []struct {
			k        LinearKind
			hf, gguf string
		}{
			{QProj, "self_attn.q_proj", "attn_q"}, {KProj, "self_attn.k_proj", "attn_k"},
			{VProj, "self_attn.v_proj", "attn_v"}, {OProj, "self_attn.o_proj", "attn_output"},
			{GateProj, "mlp.gate_proj", "ffn_gate"}, {UpProj, "mlp.up_proj", "ffn_up"},
			{DownProj, "mlp.down_proj", "ffn_down"},
		} {
			add(Weight(b, kn.k), hp+kn.hf+".weight", gp+kn.gguf+".weight")
			add(Bias(b, kn.k), hp+kn.hf+".bias", gp+kn.gguf+".bias")
		}
	}
	add(FinalNorm(), "model.norm.weight", "output_norm.weight")
	add(LMHead(), "lm_head.weight", "output.weight")
	hfSeen, ggufSeen := map[string]bool{}, map[string]bool{}
	for i, tn := range got {
		w := want[i]
		if tn.HF() != w.hf || tn.String() != w.hf || tn.GGUF() != w.gguf {
			t.Errorf("tensor %d: %q / %q, want %q / %q", i, tn.HF(), tn.GGUF(), w.hf, w.gguf)
		}
		if hfSeen[w.hf] || ggufSeen[w.gguf] {
			t.Errorf("duplicate name %q / %q", w.hf, w.gguf)
		}
		hfSeen[w.hf], ggufSeen[w.gguf] = true, true
		p, err := ParseTensor(w.hf)
		if err != nil || p != tn {
			t.Errorf("ParseTensor(%q) = %v, %v", w.hf, p, err)
		}
		b, ok := tn.Block()
		if wantOK := strings.HasPrefix(w.hf, "model.layers."); ok != wantOK || (ok && !strings.HasPrefix(w.hf, fmt.Sprintf("model.layers.%d.", b))) {
			t.Errorf("%s: Block() = %d, %v", w.hf, b, ok)
		}
	}
	if GGUFRopeFreqs != "rope_freqs.weight" {
		t.Errorf("GGUFRopeFreqs = %q", GGUFRopeFreqs)
	}
	for _, s := range []string{
		"", "lm_head", "lm_head.bias", "model.norm.bias", "model.embed_tokens.bias", "model.layers.0",
		"model.layers.0.weight", "model.layers.0.mlp.weight", "model.layers.0.self_attn.weight",
		"model.layers.0.input_layernorm.bias", "model.layers.0.input_layernorm", "model.layers.01.input_layernorm.weight",
		"model.layers.x.post_attention_layernorm.weight", "model.layers.0.mlp.up_proj", "model.layers.0.mlp.up_proj.scales",
		"model.layers.0.mlp.up_proj.weight ", "model.layers.0.q_proj.weight", "token_embd.weight", "blk.0.attn_q.weight",
		"model.layers.0.mlp.input_layernorm.weight",
	} {
		if tn, err := ParseTensor(s); err == nil {
			t.Errorf("ParseTensor(%q) = %v, want an error", s, tn)
		}
	}
}

func TestLevelString(t *testing.T) {
	if BlockLevel.String() != "block" || SubBlockLevel.String() != "sub-block" || LinearLevel.String() != "linear layer" || Level(3).String() != "Level(3)" {
		t.Error("level names")
	}
}

// FuzzParseUnit checks that parsing never panics and that whatever parses prints back to itself.
func FuzzParseUnit(f *testing.F) {
	for _, tc := range allUnits(0, 7, 1000000) {
		f.Add(tc.name)
		f.Add(tc.name + ".weight")
	}
	for _, s := range rejected {
		f.Add(s)
	}
	f.Add("model.layers.0.input_layernorm.weight")
	f.Add("model.embed_tokens.weight")
	f.Fuzz(func(t *testing.T, s string) {
		if u, err := ParseUnit(s); err == nil {
			if u.String() != s {
				t.Errorf("ParseUnit(%q).String() = %q", s, u.String())
			}
			if b := u.Block(); b < 0 || b >= MaxBlocks {
				t.Errorf("ParseUnit(%q): block %d", s, b)
			}
		}
		if b, k, err := ParseLinear(s); err == nil && LinearUnit(b, k).String() != s {
			t.Errorf("ParseLinear(%q) = %d, %v", s, b, k)
		}
		if tn, err := ParseTensor(s); err == nil && tn.HF() != s {
			t.Errorf("ParseTensor(%q).HF() = %q", s, tn.HF())
		} else if err == nil {
			_ = tn.GGUF()
		}
		if prefix, b, rest, ok := SplitLayers(s); ok {
			if prefix+strconv.Itoa(b)+"."+rest != s || !strings.HasSuffix(prefix, "layers.") || rest == "" {
				t.Errorf("SplitLayers(%q) = %q, %d, %q", s, prefix, b, rest)
			}
		}
	})
}
