package data

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
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

// TestCheckUTF8 names the input and the byte offset of the first invalid sequence; ReadText
// refuses such a file the same way.
func TestCheckUTF8(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for valid
	}{
		{"", ""},
		{"héllo, 世界 \uFFFD", ""},
		{"\xff", "byte 0xff at offset 0"},
		{"ab\xc3", "byte 0xc3 at offset 2"},            // truncated sequence at the end
		{"é\xe4\xb8x", "byte 0xe4 at offset 2"},        // truncated in the middle
		{"ok \xed\xa0\x80", "byte 0xed at offset 3"},   // an encoded surrogate
		{"\xc0\xaf overlong", "byte 0xc0 at offset 0"}, // overlong "/"
	}
	for _, tc := range tests {
		err := CheckUTF8([]byte(tc.in), "in.txt")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.want != "" && (err == nil || err.Error() != "in.txt: not valid UTF-8 text: "+tc.want):
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
	path := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(path, []byte("line one\nline \xfe two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadText(path, Raw); err == nil || !strings.Contains(err.Error(), path+": not valid UTF-8 text: byte 0xfe at offset 14") {
		t.Errorf("ReadText: %v", err)
	}
}
