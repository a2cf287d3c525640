package search_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/evopress/evopress/search"
)

func TestParseStages(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []search.Stage
		wantErr string
	}{
		{in: "1:2048", want: []search.Stage{{1, 2048}}},
		{in: "2:2048,1:32768", want: []search.Stage{{2, 2048}, {1, 32768}}},
		{in: " 16 : 2048 , 4:16384,1:131072 ", want: []search.Stage{{16, 2048}, {4, 16384}, {1, 131072}}},
		{in: "4:512,4:1024,1:8192", want: []search.Stage{{4, 512}, {4, 1024}, {1, 8192}}},
		{in: "", wantErr: "empty"},
		{in: "  ", wantErr: "empty"},
		{in: "2:2048", wantErr: "last stage (2:2048) must keep exactly 1"},
		{in: "2:2048,1", wantErr: "item 2 \"1\": want SURVIVORS:TOKENS"},
		{in: "2:2048,,1:10", wantErr: "item 2"},
		{in: "1:2048,2:100,1:10", wantErr: "survivors must not increase"},
		{in: "0:10,1:10", wantErr: "item 1 \"0:10\": survivors: \"0\" must be at least 1"},
		{in: "1:0", wantErr: "tokens: \"0\" must be at least 1"},
		{in: "1:-5", wantErr: "tokens: \"-5\" is not a positive integer"},
		{in: "+1:5", wantErr: "survivors: \"+1\" is not a positive integer"},
		{in: "1:1e3", wantErr: "tokens: \"1e3\" is not a positive integer"},
		{in: "1:99999999999", wantErr: "out of range"},
		{in: "a:b", wantErr: "survivors"},
		{in: "1:2:3", wantErr: "tokens"},
		{in: "1:", wantErr: "tokens: missing number"},
		{in: ":1", wantErr: "survivors: missing number"},
	} {
		got, err := search.ParseStages(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseStages(%q) error = %v, want containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseStages(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ParseStages(%q) = %v, want %v", tc.in, got, tc.want)
		}
		again, err := search.ParseStages(search.FormatStages(got))
		if err != nil || !slices.Equal(again, got) {
			t.Errorf("round trip of %q via %q: %v, %v", tc.in, search.FormatStages(got), again, err)
		}
	}
}

func FuzzParseStages(f *testing.F) {
	for _, s := range []string{"2:2048,1:32768", "8:2048,2:16384,1:65536", "1:1", "", ":", "1:2,", "3:1,2:1,1:1", " 1 : 9 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := search.ParseStages(s)
		if err != nil {
			if st != nil {
				t.Fatalf("ParseStages(%q) returned stages with an error", s)
			}
			return
		}
		if verr := search.ValidateStages(st); verr != nil {
			t.Fatalf("ParseStages(%q) = %v accepted but invalid: %v", s, st, verr)
		}
		again, err := search.ParseStages(search.FormatStages(st))
		if err != nil || !slices.Equal(again, st) {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}

func TestResolveSettings(t *testing.T) {
	def := search.Settings{Offspring: 32, Stages: []search.Stage{{2, 2048}, {1, 32768}}, Generations: 128, InitTokens: 2048}
	ip := func(v int) *int { return &v }
	for _, tc := range []struct {
		name    string
		preset  string
		o       search.Overrides
		want    search.Settings
		wantErr string
	}{
		{name: "default is paper", want: def},
		{name: "paper", preset: "paper", want: def},
		{name: "fast", preset: "fast", want: search.Settings{Offspring: 16, Stages: []search.Stage{{4, 512}, {1, 8192}}, Generations: 128, InitTokens: 2048}},
		{name: "fast with overrides", preset: "fast", o: search.Overrides{Offspring: ip(8), Generations: ip(3), InitTokens: ip(100)},
			want: search.Settings{Offspring: 8, Stages: []search.Stage{{4, 512}, {1, 8192}}, Generations: 3, InitTokens: 100}},
		{name: "stages override", preset: "paper", o: search.Overrides{Stages: []search.Stage{{1, 10}}},
			want: search.Settings{Offspring: 32, Stages: []search.Stage{{1, 10}}, Generations: 128, InitTokens: 2048}},
		{name: "unknown preset", preset: "slow", wantErr: `preset "slow"`},
		{name: "offspring below survivors", o: search.Overrides{Offspring: ip(1)}, wantErr: "keeps 2 survivors but a generation has only 1 offspring"},
		{name: "negative generations", o: search.Overrides{Generations: ip(-1)}, wantErr: "generations = -1"},
		{name: "zero offspring", o: search.Overrides{Offspring: ip(0)}, wantErr: "offspring = 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := search.ResolveSettings(tc.preset, def, tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Offspring != tc.want.Offspring || got.Generations != tc.want.Generations ||
				got.InitTokens != tc.want.InitTokens || !slices.Equal(got.Stages, tc.want.Stages) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if def.Stages[0] != (search.Stage{2, 2048}) {
		t.Fatal("ResolveSettings modified the defaults")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := search.Config{Offspring: 4, Stages: []search.Stage{{2, 256}, {1, 1024}}, Generations: 3, SeqLen: 128, PoolChunks: 8}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		mod     func(*search.Config)
		wantErr string
	}{
		{"offspring", func(c *search.Config) { c.Offspring = 0 }, "offspring = 0"},
		{"generations", func(c *search.Config) { c.Generations = -2 }, "generations = -2"},
		{"seq len", func(c *search.Config) { c.SeqLen = 0 }, "seq len = 0"},
		{"pool", func(c *search.Config) { c.PoolChunks = 0 }, "pool chunks = 0"},
		{"stages", func(c *search.Config) { c.Stages = nil }, "stages: none given"},
		{"pool too small", func(c *search.Config) { c.Stages = []search.Stage{{1, 2048}} }, "stage 1 (1:2048) needs 16 chunks of 128 tokens but the calibration pool holds only 8"},
		{"init negative", func(c *search.Config) { c.InitTokens = -1 }, "init tokens = -1"},
		{"attempts", func(c *search.Config) { c.MaxAttempts = -1 }, "max attempts = -1"},
		{"survivors", func(c *search.Config) { c.Offspring = 1 }, "keeps 2 survivors"},
	} {
		c := ok
		c.Stages = slices.Clone(ok.Stages)
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error = %v, want containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestGroupByAndNames(t *testing.T) {
	for in, want := range map[string]search.GroupBy{"": search.GroupDefault, "default": search.GroupDefault,
		"none": search.GroupNone, "Size": search.GroupSize, " kind ": search.GroupKind} {
		got, err := search.ParseGroupBy(in)
		if err != nil || got != want {
			t.Errorf("ParseGroupBy(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	if _, err := search.ParseGroupBy("name"); err == nil {
		t.Error("ParseGroupBy(\"name\") accepted")
	}
	names := search.LinearUnitNames(2)
	want := []string{
		"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
		"model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj",
		"model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj",
		"model.layers.1.self_attn.v_proj", "model.layers.1.self_attn.o_proj", "model.layers.1.mlp.gate_proj",
		"model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj",
	}
	if !slices.Equal(names, want) {
		t.Errorf("LinearUnitNames(2) = %v", names)
	}
	if search.LinearUnitNames(0) != nil {
		t.Error("LinearUnitNames(0) not nil")
	}
	if k := search.UnitKind("model.layers.3.mlp.down_proj"); k != "down_proj" {
		t.Errorf("UnitKind = %q", k)
	}
}

func TestLevelsMap(t *testing.T) {
	units := []string{"a", "b", "c"}
	m, err := search.LevelsMap(units, search.Levels{1, 0, 2})
	if err != nil || m["a"] != 1 || m["b"] != 0 || m["c"] != 2 || len(m) != 3 {
		t.Fatalf("LevelsMap = %v, %v", m, err)
	}
	p, err := search.ProfileFromLevels(units, m)
	if err != nil || !p.Equal(search.Levels{1, 0, 2}) {
		t.Fatalf("ProfileFromLevels = %v, %v", p, err)
	}
	if _, err := search.LevelsMap(units, search.Levels{1}); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, err := search.LevelsMap([]string{"a", "a"}, search.Levels{1, 2}); err == nil {
		t.Error("duplicate unit accepted")
	}
	if _, err := search.ProfileFromLevels(units, map[string]int{"a": 1, "b": 2}); err == nil || !strings.Contains(err.Error(), `"c" missing`) {
		t.Errorf("missing unit: %v", err)
	}
	if _, err := search.ProfileFromLevels(units, map[string]int{"a": 1, "b": 2, "c": 3, "d": 4}); err == nil || !strings.Contains(err.Error(), `unknown unit "d"`) {
		t.Errorf("unknown unit: %v", err)
	}
}
