package profile

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestRecordLegacy reads a "search" object as earlier versions wrote it (a free-form map):
// known keys land in their fields, unknown ones survive a write and a read.
func TestRecordLegacy(t *testing.T) {
	in := `{"seed": 7, "generations": 14, "stages": "4:512,1:4096", "kl_topk": 0, "best_index": 0,
		"command": ["evopress", "search", "drop", "--calib", "my file.txt"],
		"owl_grid": [{"lambda": 0.02, "m": 3, "fitness": 0.5, "block_sparsity": [0.5, 0.5]}],
		"future_key": {"a": [1, 2]}, "another": "x"}`
	var r Record
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if r.Seed != 7 || r.Generations != 14 || r.Stages != "4:512,1:4096" || r.BestIndex == nil || *r.BestIndex != 0 {
		t.Errorf("known fields: %+v", r)
	}
	if r.Command != "evopress search drop --calib 'my file.txt'" {
		t.Errorf("command %q", r.Command)
	}
	if len(r.OWLGrid) != 1 || r.OWLGrid[0].M != 3 {
		t.Errorf("owl grid %+v", r.OWLGrid)
	}
	if len(r.Extra) != 2 || string(r.Extra["another"]) != `"x"` {
		t.Errorf("extra %v", r.Extra)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for k, v := range r.Extra { // written back compacted
		var c bytes.Buffer
		if err := json.Compact(&c, v); err != nil {
			t.Fatal(err)
		}
		r.Extra[k] = c.Bytes()
	}
	if !reflect.DeepEqual(r, back) {
		t.Errorf("round trip:\n%+v\n%+v", r, back)
	}
	if !strings.Contains(string(b), `"future_key":{"a":[1,2]}`) {
		t.Errorf("unknown key not written back: %s", b)
	}
	keys := map[string]string{}
	for _, f := range back.Fields() {
		keys[f.Key] = f.Value
	}
	if keys["stages"] != "4:512,1:4096" || keys["seed"] != "7" || keys["another"] != "x" {
		t.Errorf("Fields: %v", keys)
	}
}

func TestRecordRejectsBadCommand(t *testing.T) {
	var r Record
	if err := json.Unmarshal([]byte(`{"command": 3}`), &r); err == nil {
		t.Error("a numeric command was accepted")
	}
}
