package data

import (
	"reflect"
	"testing"
)

func TestWikiTextJoin(t *testing.T) {
	tests := []struct{ in, want string }{
		{" = A = \r\n \r\n B \r\n", " = A = \n\n\n\n\n B \n"},
		{"x\n", "x\n"},
		{"x\ny", "x\n\n\ny"},
		{" \n", ""},
		{"", ""},
		{"a\n \nb\n", "a\n\n\n\n\nb\n"},
	}
	for _, tc := range tests {
		if got := WikiTextJoin(tc.in); got != tc.want {
			t.Errorf("WikiTextJoin(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestChunks(t *testing.T) {
	ids := []int{0, 1, 2, 3, 4, 5, 6}
	tests := []struct {
		seqLen, max int
		want        [][]int
	}{
		{3, 0, [][]int{{0, 1, 2}, {3, 4, 5}}},
		{3, 1, [][]int{{0, 1, 2}}},
		{7, 0, [][]int{{0, 1, 2, 3, 4, 5, 6}}},
		{8, 0, [][]int{}},
	}
	for _, tc := range tests {
		got, err := Chunks(ids, tc.seqLen, tc.max)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Chunks(seq %d, max %d) = %v, want %v", tc.seqLen, tc.max, got, tc.want)
		}
	}
	if _, err := Chunks(ids, 1, 0); err == nil {
		t.Error("seq-len 1 accepted")
	}
	got, _ := Chunks(ids, 3, 0)
	got[0] = append(got[0], 99) // capacity is capped: must not overwrite ids[3]
	if ids[3] != 3 {
		t.Error("appending to a chunk overwrote the next chunk")
	}
}

func TestCalibrationPool(t *testing.T) {
	ids := make([]int, 100)
	p, err := CalibrationPool(ids, 10, 35)
	if err != nil || len(p) != 3 {
		t.Fatalf("pool of %d chunks, err %v; want 3", len(p), err)
	}
	if _, err := CalibrationPool(ids, 10, 5); err == nil {
		t.Error("calib-tokens below one sequence accepted")
	}
	if _, err := CalibrationPool(ids[:5], 10, 0); err == nil {
		t.Error("empty pool accepted")
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"raw", "wikitext"} {
		if _, err := ParseFormat(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseFormat("c4"); err == nil {
		t.Error("unknown format accepted")
	}
}
