package zeroshot

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sh(ctx string, gold int, choices ...string) Item {
	return Item{Line: 1, Choices: shared(ctx, choices), Gold: gold}
}

func TestReadFormats(t *testing.T) {
	tests := []struct {
		name, line, format, task string
		want                     Item
	}{
		{"arc", `{"id":"x","question":"Which is hot?","choices":{"text":["ice","fire","snow"],"label":["A","B","C"]},"answerKey":"B"}`,
			"arc", "arc_easy", sh("Question: Which is hot?\nAnswer:", 1, "ice", "fire", "snow")},
		{"arc numeric labels", `{"question":"q","choices":{"text":["a","b","c","d"],"label":["1","2","3","4"]},"answerKey":"4"}`,
			"arc", "arc_easy", sh("Question: q\nAnswer:", 3, "a", "b", "c", "d")},
		{"openbookqa", `{"id":"1","question_stem":"Predators eat","choices":{"text":["lions","humans","bunnies","grass"],"label":["A","B","C","D"]},"answerKey":" C"}`,
			"openbookqa", "openbookqa", sh("Predators eat", 2, "lions", "humans", "bunnies", "grass")},
		{"piqa", `{"goal":"dresser","sol1":"replace drawer with bobby pin ","sol2":"finish, woodgrain with  bobby pin ","label":1}`,
			"piqa", "piqa", sh("Question: dresser\nAnswer:", 1, "replace drawer with bobby pin ", "finish, woodgrain with  bobby pin ")},
		{"hellaswag ctx", `{"ind":0,"activity_label":"Roof shingle removal","ctx":"A man is sitting on a roof. he","endings":["is using wrap.","is ripping  tiles [step] off.","holds a cube.","starts pulling up roofing."],"label":3}`,
			"hellaswag", "hellaswag", sh("Roof shingle removal: A man is sitting on a roof. he", 3, "is using wrap.", "is ripping tiles off.", "holds a cube.", "starts pulling up roofing.")},
		{"hellaswag ctx_a ctx_b", `{"activity_label":"Making tea [title] Boil water","ctx_a":"A woman boils water.","ctx_b":"she POURS it","endings":[" a "," b "],"label":"0"}`,
			"hellaswag", "hellaswag", sh("Making tea. Boil water: A woman boils water. She pours it", 0, "a", "b")},
		{"winogrande", `{"qID":"q","sentence":"Sarah was a better surgeon than Maria so _ always got the easier cases.","option1":"Sarah","option2":"Maria","answer":"2"}`,
			"winogrande", "winogrande", Item{Line: 1, Gold: 1, Choices: []Choice{
				{Context: "Sarah was a better surgeon than Maria so Sarah", Continuation: " always got the easier cases.", Norm: "always got the easier cases."},
				{Context: "Sarah was a better surgeon than Maria so Maria", Continuation: " always got the easier cases.", Norm: "always got the easier cases."},
			}}},
		{"winogrande int answer", `{"sentence":"The _ broke.","option1":"cup","option2":"plate","answer":1}`,
			"winogrande", "winogrande", Item{Line: 1, Gold: 0, Choices: []Choice{
				{Context: "The cup", Continuation: " broke.", Norm: "broke."},
				{Context: "The plate", Continuation: " broke.", Norm: "broke."},
			}}},
		{"boolq int", `{"idx":0,"question":"is the sky blue","passage":"The sky is blue.","label":1}`,
			"boolq", "boolq", sh("The sky is blue.\nQuestion: is the sky blue?\nAnswer:", 1, "no", "yes")},
		{"boolq bool", `{"question":"is ice hot","passage":"Ice is cold.","label":false}`,
			"boolq", "boolq", sh("Ice is cold.\nQuestion: is ice hot?\nAnswer:", 0, "no", "yes")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Detected from the fields, and named explicitly: the same item.
			f, err := FormatByName(tc.format)
			if err != nil {
				t.Fatal(err)
			}
			for _, format := range []*Format{nil, f} {
				task, err := Read(strings.NewReader(tc.line+"\n"), "data/arc_easy_x.jsonl", format, 0)
				if err != nil {
					t.Fatal(err)
				}
				if task.Format.Name != tc.format || task.Name != tc.task {
					t.Errorf("format %s task %s, want %s %s", task.Format.Name, task.Name, tc.format, tc.task)
				}
				if len(task.Items) != 1 || !reflect.DeepEqual(task.Items[0], tc.want) {
					t.Errorf("items\n%#v\nwant\n%#v", task.Items, tc.want)
				}
			}
		})
	}
}

func TestTaskName(t *testing.T) {
	arc, _ := FormatByName("arc_challenge")
	piqa, _ := FormatByName("piqa")
	for _, tc := range []struct {
		f          *Format
		path, want string
	}{
		{arc, "x/ARC_Challenge_test.jsonl", "arc_challenge"},
		{arc, "arc_easy_test_hf.jsonl", "arc_easy"},
		{arc, "questions.jsonl", "arc"},
		{piqa, "easy.jsonl", "piqa"},
	} {
		if got := TaskName(tc.f, tc.path); got != tc.want {
			t.Errorf("TaskName(%s, %q) = %q, want %q", tc.f.Name, tc.path, got, tc.want)
		}
	}
	if _, err := FormatByName("mmlu"); err == nil || !strings.Contains(err.Error(), "winogrande") {
		t.Errorf("FormatByName(mmlu) error %v, want one listing the types", err)
	}
}

func TestReadErrors(t *testing.T) {
	good := `{"goal":"g","sol1":"a","sol2":"b","label":0}`
	tests := []struct {
		name, format, bad string
		want              []string // substrings of the error
	}{
		{"not json", "", `{"goal": "g",`, []string{"t.jsonl:3:", "not a JSON object"}},
		{"array", "", `[1,2]`, []string{"t.jsonl:3:", "not a JSON object"}},
		{"null", "", `null`, []string{"t.jsonl:3:", "not a JSON object"}},
		{"missing field", "", `{"goal":"g","sol1":"a","sol2":"b"}`, []string{"t.jsonl:3:", "piqa", `"label"`, "missing"}},
		{"wrong type", "", `{"goal":7,"sol1":"a","sol2":"b","label":0}`, []string{"t.jsonl:3:", `"goal"`, "want a string"}},
		{"label range", "", `{"goal":"g","sol1":"a","sol2":"b","label":2}`, []string{"t.jsonl:3:", `"label"`, "out of range"}},
		{"label fraction", "", `{"goal":"g","sol1":"a","sol2":"b","label":0.5}`, []string{"t.jsonl:3:", `"label"`, "want an integer"}},
		{"other task", "", `{"sentence":"a _ b","option1":"x","option2":"y","answer":"1"}`, []string{"t.jsonl:3:", `"goal"`, "missing"}},
		{"unknown fields", "arc", `{"q":1}`, []string{"t.jsonl:3:", `"question"`, "missing"}},
		{"arc bad key", "arc", `{"question":"q","choices":{"text":["a","b"],"label":["A","B"]},"answerKey":"C"}`, []string{"t.jsonl:3:", `"answerKey"`, `"C"`}},
		{"arc mismatch", "arc", `{"question":"q","choices":{"text":["a","b"],"label":["A"]},"answerKey":"A"}`, []string{"t.jsonl:3:", `"choices"`, "2 texts but 1 labels"}},
		{"arc one choice", "arc", `{"question":"q","choices":{"text":["a"],"label":["A"]},"answerKey":"A"}`, []string{"t.jsonl:3:", `"choices.text"`, "at least 2"}},
		{"arc no labels", "arc", `{"question":"q","choices":{"text":["a","b"]},"answerKey":"A"}`, []string{"t.jsonl:3:", `"choices.label"`, "missing"}},
		{"arc choices list", "arc", `{"question":"q","choices":["a","b"],"answerKey":"A"}`, []string{"t.jsonl:3:", `"choices"`}},
		{"winogrande no blank", "winogrande", `{"sentence":"no blank","option1":"x","option2":"y","answer":"1"}`, []string{"t.jsonl:3:", `"sentence"`, "no blank"}},
		{"winogrande answer", "winogrande", `{"sentence":"a _ b","option1":"x","option2":"y","answer":"3"}`, []string{"t.jsonl:3:", `"answer"`, "out of range [1, 2]"}},
		{"winogrande nothing after", "winogrande", `{"sentence":"a _ ","option1":"x","option2":"y","answer":"1"}`, []string{"t.jsonl:3:", `"sentence"`, "nothing after"}},
		{"hellaswag endings", "hellaswag", `{"activity_label":"a","ctx":"c","endings":"e","label":0}`, []string{"t.jsonl:3:", `"endings"`, "array of strings"}},
		{"hellaswag one ending", "hellaswag", `{"activity_label":"a","ctx":"c","endings":["e"],"label":0}`, []string{"t.jsonl:3:", `"endings"`, "at least 2"}},
		{"boolq label", "boolq", `{"passage":"p","question":"q","label":"maybe"}`, []string{"t.jsonl:3:", `"label"`, "want an integer"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f *Format
			if tc.format != "" {
				var err error
				if f, err = FormatByName(tc.format); err != nil {
					t.Fatal(err)
				}
			}
			lines := good + "\n\n" + tc.bad + "\n" + good + "\n"
			if tc.format != "" {
				lines = "\n\n" + tc.bad + "\n"
			}
			_, err := Read(strings.NewReader(lines), "t.jsonl", f, 0)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// Undetectable first record; empty file.
	if _, err := Read(strings.NewReader(`{"foo":1}`), "t.jsonl", nil, 0); err == nil || !strings.Contains(err.Error(), "t.jsonl:1: cannot tell the task type") || !strings.Contains(err.Error(), `"foo"`) {
		t.Errorf("undetectable: %v", err)
	}
	if _, err := Read(strings.NewReader("\n \n"), "t.jsonl", nil, 0); err == nil || !strings.Contains(err.Error(), "t.jsonl: no items") {
		t.Errorf("empty: %v", err)
	}
}

func TestReadLinesAndLimit(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 5; i++ {
		b.WriteString(`{"goal":"g","sol1":"a","sol2":"b","label":1}` + "\n\n")
	}
	for _, tc := range []struct{ limit, n int }{{0, 5}, {2, 2}, {9, 5}} {
		task, err := Read(strings.NewReader(b.String()), "p.jsonl", nil, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(task.Items) != tc.n {
			t.Fatalf("limit %d: %d items, want %d", tc.limit, len(task.Items), tc.n)
		}
		for i, it := range task.Items {
			if it.Line != 2*i+1 {
				t.Errorf("item %d on line %d, want %d", i, it.Line, 2*i+1)
			}
		}
	}
}

func TestOpenCompressed(t *testing.T) {
	dir := t.TempDir()
	plain := `{"goal":"g","sol1":"a","sol2":"b","label":1}` + "\n"
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(plain))
	w.Close()
	if err := os.WriteFile(filepath.Join(dir, "p.jsonl.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p.jsonl"), []byte(plain), 0o644); err != nil {
		t.Fatal(err)
	}
	want := sh("Question: g\nAnswer:", 1, "a", "b")
	// testdata/hellaswag_tiny.jsonl.bz2 was made with bzip2(1) from two HellaSwag-form lines.
	wantHS := []Item{
		sh("Roof shingle removal: A man is sitting on a roof. he", 3, "is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."),
		sh("Clean and jerk: A lady walks to a barbell. the lady", 1, "swings.", "stands and lifts the weight over her head."),
	}
	wantHS[1].Line = 2
	for _, tc := range []struct {
		path string
		want []Item
	}{
		{filepath.Join(dir, "p.jsonl"), []Item{want}},
		{filepath.Join(dir, "p.jsonl.gz"), []Item{want}},
		{"testdata/hellaswag_tiny.jsonl.bz2", wantHS},
	} {
		task, err := Open(tc.path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(task.Items, tc.want) {
			t.Errorf("%s: %#v\nwant %#v", tc.path, task.Items, tc.want)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing.jsonl"), nil, 0); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.jsonl.bz2"), []byte(plain), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(dir, "bad.jsonl.bz2"), nil, 0); err == nil || !strings.Contains(err.Error(), "bad.jsonl.bz2") {
		t.Errorf("not bzip2: %v", err)
	}
}

// TestSharedFiles reads the first items of every shared task file (skipped when ../shared is absent).
func TestSharedFiles(t *testing.T) {
	dir := "../../../shared/data/zeroshot"
	files := map[string]string{
		"arc_challenge_test_hf.jsonl": "arc_challenge", "arc_easy_test_hf.jsonl": "arc_easy",
		"piqa_validation.jsonl": "piqa", "winogrande_dev.jsonl": "winogrande",
		"hellaswag_val.jsonl.bz2": "hellaswag", "openbookqa_main_test.jsonl": "openbookqa",
		"boolq_validation.jsonl": "boolq",
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("%s absent", dir)
	}
	for f, name := range files {
		task, err := Open(filepath.Join(dir, f), nil, 300)
		if err != nil {
			t.Fatal(err)
		}
		if task.Name != name || len(task.Items) != 300 {
			t.Errorf("%s: task %s with %d items, want %s with 300", f, task.Name, len(task.Items), name)
		}
	}
}

func FuzzRead(f *testing.F) {
	seeds := []string{
		`{"question":"q","choices":{"text":["a","b"],"label":["A","B"]},"answerKey":"B"}`,
		`{"question_stem":"q","choices":{"text":["a","b"],"label":["A","B"]},"answerKey":" A"}`,
		`{"goal":"g","sol1":"a","sol2":"b","label":1}`,
		`{"activity_label":"x [title] y","ctx":"c","endings":["a [b] ","  c  "],"label":1}`,
		`{"activity_label":"x","ctx_a":"c","ctx_b":"ÉTÉ","endings":["a","b"],"label":"1"}`,
		`{"sentence":"a _ b _ c","option1":"x","option2":"y","answer":"2"}`,
		`{"passage":"p","question":"q","label":true}`,
		"{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\",\"label\":1}\n\n{\"goal\":1}",
		`{"question":"q","choices":{"text":null,"label":[]},"answerKey":""}`,
	}
	for _, s := range seeds {
		f.Add(s, "")
		f.Add(s, "boolq")
	}
	f.Fuzz(func(t *testing.T, data, format string) {
		var ff *Format
		if format != "" {
			var err error
			if ff, err = FormatByName(format); err != nil {
				return
			}
		}
		task, err := Read(strings.NewReader(data), "f.jsonl", ff, 0)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.jsonl") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(task.Items) == 0 || task.Format == nil || task.Name == "" {
			t.Fatalf("success without items, format or name: %+v", task)
		}
		prev := 0
		for _, it := range task.Items {
			if it.Line <= prev {
				t.Fatalf("line %d after %d", it.Line, prev)
			}
			prev = it.Line
			if len(it.Choices) < 2 || it.Gold < 0 || it.Gold >= len(it.Choices) {
				t.Fatalf("line %d: %d choices, gold %d", it.Line, len(it.Choices), it.Gold)
			}
			for _, c := range it.Choices {
				if !strings.HasPrefix(c.Continuation, " ") || c.Continuation[1:] != c.Norm && task.Format.Name != "winogrande" {
					t.Fatalf("line %d: continuation %q, norm %q", it.Line, c.Continuation, c.Norm)
				}
			}
		}
	})
}
