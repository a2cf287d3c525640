package report

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/evopress/evopress/search"
)

func FuzzParseResult(f *testing.F) {
	h := synthHistory(3, 0.5, 0.1, 1)
	good, _ := json.Marshal(search.Result{Mode: "drop", Units: []string{"a", "b"}, Profile: search.Levels{0, 1}, Fitness: math.NaN(), History: h})
	f.Add(good)
	f.Add([]byte(`{"mode":"quant","units":["x"],"profile":[3],"fitness":"+Inf","history":[]}`))
	f.Add([]byte(`{"mode":"drop","units":["x"],"profile":[0],"fitness":"bad"}`))
	f.Add([]byte(`{"mode":"drop","units":["x"],"profile":[0],"history":[{"generation":0,"best":null},{"generation":0}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseResult(data, "result.json")
		if err != nil {
			return
		}
		if r.Mode == "" || len(r.Units) == 0 || len(r.Units) != len(r.Profile) {
			t.Fatalf("accepted an inconsistent result: %+v", r)
		}
		if err := checkHistory(r.History); err != nil {
			t.Fatalf("accepted a bad history: %v", err)
		}
	})
}

func FuzzParseLog(f *testing.F) {
	f.Add([]byte(`{"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"generation","mode":"drop","generation":0,"generations":3,"best":0.5,"replaced":false,"evaluations":64,"tokens":131072,"elapsed_s":1.5,"eta_s":-1}
{"msg":"generation","mode":"drop","generation":1,"generations":3,"best":"NaN","replaced":true,"evaluations":80,"tokens":140000,"elapsed_s":2,"eta_s":3}
`))
	f.Add([]byte("\n\n{\"msg\":\"other\"}\n"))
	f.Add([]byte(`{"msg":"generation","generation":-1}`))
	f.Add([]byte(`{"msg":"generation","generation":2,"best":"+Inf"}` + "\n" + `{"msg":"generation","generation":2,"best":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLog(data, "log.jsonl")
		if err != nil {
			return
		}
		if len(l.History) == 0 {
			t.Fatal("accepted a log without records")
		}
		if err := checkHistory(l.History); err != nil {
			t.Fatalf("history out of order: %v", err)
		}
	})
}
