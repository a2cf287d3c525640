package zeroshot

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Choice is one answer option of an Item: the request (Context, Continuation) whose log-likelihood
// is scored, and the text whose length normalises acc_norm.
type Choice struct {
	// Context is the conditioning text; Continuation is scored given it. The continuation carries
	// lm-eval's target delimiter (a leading space).
	Context, Continuation string
	// Norm is the text whose length divides the log-likelihood for acc_norm: lm-eval's
	// doc_to_choice entry, i.e. the answer without the delimiter.
	Norm string
}

// Item is one multiple-choice question.
type Item struct {
	Line    int      // 1-based line of the task file it was read from
	Choices []Choice // at least two
	Gold    int      // index of the right choice
}

// Format is a task-file layout: how one JSON record becomes an Item.
type Format struct {
	// Name is the task type, as given to --task-type: arc, piqa, hellaswag, winogrande,
	// openbookqa or boolq.
	Name string
	// Fields lists the record fields the format reads (documentation and detection).
	Fields []string
	// Prompt describes the context and continuations, in lm-eval's notation.
	Prompt string
	parse  func(r record) (Item, error)
}

// Formats returns the supported task formats, in a fixed order.
func Formats() []*Format { return append([]*Format(nil), formats...) }

var formats = []*Format{
	{Name: "arc", Fields: []string{"question", "choices{text,label}", "answerKey"},
		Prompt: `"Question: {question}\nAnswer:" → " {choices.text[i]}"; gold = choices.label.index(answerKey)`,
		parse:  parseARC},
	{Name: "openbookqa", Fields: []string{"question_stem", "choices{text,label}", "answerKey"},
		Prompt: `"{question_stem}" → " {choices.text[i]}"; gold = choices.label.index(answerKey.lstrip())`,
		parse:  parseOpenBookQA},
	{Name: "piqa", Fields: []string{"goal", "sol1", "sol2", "label"},
		Prompt: `"Question: {goal}\nAnswer:" → " {sol1}", " {sol2}"; gold = label`,
		parse:  parsePIQA},
	{Name: "hellaswag", Fields: []string{"activity_label", "ctx (or ctx_a, ctx_b)", "endings", "label"},
		Prompt: `preprocess("{activity_label}: {ctx_a} {ctx_b.capitalize()}") → " " + preprocess(ending); gold = label`,
		parse:  parseHellaSwag},
	{Name: "winogrande", Fields: []string{"sentence", "option1", "option2", "answer"},
		Prompt: `partial evaluation: "{sentence up to _}{option_i}" → " {sentence after _, stripped}"; gold = answer − 1`,
		parse:  parseWinoGrande},
	{Name: "boolq", Fields: []string{"passage", "question", "label"},
		Prompt: `"{passage}\nQuestion: {question}?\nAnswer:" → " no", " yes"; gold = label`,
		parse:  parseBoolQ},
}

// FormatByName returns the format of a task type; "arc_easy" and "arc_challenge" name "arc".
func FormatByName(name string) (*Format, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "arc_easy" || n == "arc_challenge" {
		n = "arc"
	}
	for _, f := range formats {
		if f.Name == n {
			return f, nil
		}
	}
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = f.Name
	}
	return nil, fmt.Errorf("unknown task type %q (want one of %s)", name, strings.Join(names, ", "))
}

// detect picks the format of a record from its fields.
func detect(r record) *Format {
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := r.fields[k]; !ok {
				return false
			}
		}
		return true
	}
	var name string
	switch {
	case has("sentence", "option1", "option2"):
		name = "winogrande"
	case has("goal", "sol1", "sol2"):
		name = "piqa"
	case has("endings") && (has("ctx") || has("ctx_a")):
		name = "hellaswag"
	case has("question_stem", "choices"):
		name = "openbookqa"
	case has("question", "choices"):
		name = "arc"
	case has("passage", "question"):
		name = "boolq"
	default:
		return nil
	}
	f, _ := FormatByName(name)
	return f
}

// TaskName is the lm-eval task name reported for a file of the given format: the format's name,
// except that ARC files are arc_challenge or arc_easy when the file name says which.
func TaskName(f *Format, path string) string {
	if f.Name != "arc" {
		return f.Name
	}
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.Contains(base, "challenge"):
		return "arc_challenge"
	case strings.Contains(base, "easy"):
		return "arc_easy"
	}
	return "arc"
}

// Task is a parsed task file.
type Task struct {
	Name   string // lm-eval task name, e.g. arc_easy
	Format *Format
	Path   string
	Items  []Item
}

// Open reads the task file at path (JSON Lines, optionally compressed: .bz2 or .gz). format may be
// nil, and is then detected from the first record's fields. limit > 0 keeps the first limit items
// (reading stops there). Blank lines are skipped.
func Open(path string, format *Format, limit int) (*Task, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".bz2"):
		r = bzip2.NewReader(f)
	case strings.HasSuffix(path, ".gz"):
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	return Read(r, path, format, limit)
}

// maxLine bounds one JSON line (BoolQ passages are a few kilobytes).
const maxLine = 64 << 20

// Read parses a task in JSON Lines form from r; name (the file name) prefixes errors and picks the
// ARC variant's task name. See Open for format and limit.
func Read(r io.Reader, name string, format *Format, limit int) (*Task, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	t := &Task{Path: name, Format: format}
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		rec, err := parseRecord(b)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if t.Format == nil {
			if t.Format = detect(rec); t.Format == nil {
				return nil, fmt.Errorf("%s:%d: cannot tell the task type from the fields %s; name the task type", name, line, rec.keys())
			}
		}
		it, err := t.Format.parse(rec)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", name, line, t.Format.Name, err)
		}
		it.Line = line
		t.Items = append(t.Items, it)
		if limit > 0 && len(t.Items) >= limit {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if len(t.Items) == 0 {
		return nil, fmt.Errorf("%s: no items", name)
	}
	t.Name = TaskName(t.Format, name)
	return t, nil
}

// record is one JSON object of a task file.
type record struct{ fields map[string]json.RawMessage }

func parseRecord(b []byte) (record, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return record{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if m == nil {
		return record{}, fmt.Errorf("not a JSON object: null")
	}
	return record{fields: m}, nil
}

func (r record) keys() string {
	ks := make([]string, 0, len(r.fields))
	for k := range r.fields {
		ks = append(ks, strconv.Quote(k))
	}
	sort.Strings(ks)
	return "{" + strings.Join(ks, ", ") + "}"
}

func (r record) has(key string) bool { _, ok := r.fields[key]; return ok }

func (r record) raw(key string) (json.RawMessage, error) {
	v, ok := r.fields[key]
	if !ok {
		return nil, fmt.Errorf("field %q: missing", key)
	}
	return v, nil
}

func (r record) str(key string) (string, error) {
	v, err := r.raw(key)
	if err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("field %q: want a string, got %s", key, short(v))
	}
	return s, nil
}

func (r record) strs(key string) ([]string, error) {
	v, err := r.raw(key)
	if err != nil {
		return nil, err
	}
	var s []string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("field %q: want an array of strings, got %s", key, short(v))
	}
	return s, nil
}

// integer reads an integer field written as a JSON number, a numeric string ("1") or a boolean
// (false = 0, true = 1, as BoolQ's labels).
func (r record) integer(key string) (int, error) {
	v, err := r.raw(key)
	if err != nil {
		return 0, err
	}
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return 0, fmt.Errorf("field %q: %w", key, err)
	}
	switch x := x.(type) {
	case float64:
		if x == float64(int(x)) && x >= -1<<31 && x < 1<<31 {
			return int(x), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, nil
		}
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("field %q: want an integer, got %s", key, short(v))
}

// short quotes a JSON value for an error message, cut to a readable length.
func short(v json.RawMessage) string {
	s := string(v)
	if len(s) > 40 {
		s = s[:40]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}

// labelled reads ARC/OpenBookQA's choices{text,label} and the gold label's index.
func labelled(r record, answer string) ([]string, int, error) {
	v, err := r.raw("choices")
	if err != nil {
		return nil, 0, err
	}
	var c struct {
		Text  *[]string `json:"text"`
		Label *[]string `json:"label"`
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return nil, 0, fmt.Errorf("field %q: want {\"text\": [strings], \"label\": [strings]}, got %s", "choices", short(v))
	}
	switch {
	case c.Text == nil:
		return nil, 0, fmt.Errorf("field %q: missing", "choices.text")
	case c.Label == nil:
		return nil, 0, fmt.Errorf("field %q: missing", "choices.label")
	case len(*c.Text) != len(*c.Label):
		return nil, 0, fmt.Errorf("field %q: %d texts but %d labels", "choices", len(*c.Text), len(*c.Label))
	case len(*c.Text) < 2:
		return nil, 0, fmt.Errorf("field %q: %d choices, want at least 2", "choices.text", len(*c.Text))
	}
	for i, l := range *c.Label {
		if l == answer {
			return *c.Text, i, nil
		}
	}
	return nil, 0, fmt.Errorf("field %q: %q is none of the labels %q", "answerKey", answer, *c.Label)
}

// shared builds the choices of a task whose choices share one context: continuations " {choice}".
func shared(context string, choices []string) []Choice {
	out := make([]Choice, len(choices))
	for i, c := range choices {
		out[i] = Choice{Context: context, Continuation: " " + c, Norm: c}
	}
	return out
}

func parseARC(r record) (Item, error) {
	q, err := r.str("question")
	if err != nil {
		return Item{}, err
	}
	key, err := r.str("answerKey")
	if err != nil {
		return Item{}, err
	}
	texts, gold, err := labelled(r, key)
	if err != nil {
		return Item{}, err
	}
	return Item{Choices: shared("Question: "+q+"\nAnswer:", texts), Gold: gold}, nil
}

func parseOpenBookQA(r record) (Item, error) {
	q, err := r.str("question_stem")
	if err != nil {
		return Item{}, err
	}
	key, err := r.str("answerKey")
	if err != nil {
		return Item{}, err
	}
	texts, gold, err := labelled(r, strings.TrimLeftFunc(key, unicode.IsSpace))
	if err != nil {
		return Item{}, err
	}
	return Item{Choices: shared(q, texts), Gold: gold}, nil
}

// gold checks a 0-based label against the number of choices.
func gold(r record, key string, offset, n int) (int, error) {
	g, err := r.integer(key)
	if err != nil {
		return 0, err
	}
	g -= offset
	if g < 0 || g >= n {
		return 0, fmt.Errorf("field %q: %d out of range [%d, %d]", key, g+offset, offset, n-1+offset)
	}
	return g, nil
}

func parsePIQA(r record) (Item, error) {
	goal, err := r.str("goal")
	if err != nil {
		return Item{}, err
	}
	sols := make([]string, 2)
	for i, k := range []string{"sol1", "sol2"} {
		if sols[i], err = r.str(k); err != nil {
			return Item{}, err
		}
	}
	g, err := gold(r, "label", 0, 2)
	if err != nil {
		return Item{}, err
	}
	return Item{Choices: shared("Question: "+goal+"\nAnswer:", sols), Gold: g}, nil
}

var bracketed = regexp.MustCompile(`\[.*?\]`)

// hellaswagPreprocess is lm-eval's hellaswag utils.preprocess: strip, " [title]" → ". ", drop
// bracketed WikiHow artefacts, one pass of "  " → " ".
func hellaswagPreprocess(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, " [title]", ". ")
	s = bracketed.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "  ", " ")
}

// pyCapitalize is Python's str.capitalize: the first character in title case, the rest lower case.
func pyCapitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToTitle(r)) + strings.ToLower(s[n:])
}

func parseHellaSwag(r record) (Item, error) {
	label, err := r.str("activity_label")
	if err != nil {
		return Item{}, err
	}
	var ctx string
	if r.has("ctx_a") && r.has("ctx_b") {
		a, err := r.str("ctx_a")
		if err != nil {
			return Item{}, err
		}
		b, err := r.str("ctx_b")
		if err != nil {
			return Item{}, err
		}
		ctx = a + " " + pyCapitalize(b)
	} else if ctx, err = r.str("ctx"); err != nil {
		return Item{}, err
	}
	endings, err := r.strs("endings")
	if err != nil {
		return Item{}, err
	}
	if len(endings) < 2 {
		return Item{}, fmt.Errorf("field %q: %d endings, want at least 2", "endings", len(endings))
	}
	for i := range endings {
		endings[i] = hellaswagPreprocess(endings[i])
	}
	g, err := gold(r, "label", 0, len(endings))
	if err != nil {
		return Item{}, err
	}
	return Item{Choices: shared(hellaswagPreprocess(label+": "+ctx), endings), Gold: g}, nil
}

func parseWinoGrande(r record) (Item, error) {
	s, err := r.str("sentence")
	if err != nil {
		return Item{}, err
	}
	blank := strings.IndexByte(s, '_')
	if blank < 0 {
		return Item{}, fmt.Errorf("field %q: no blank \"_\" in %q", "sentence", s)
	}
	target := strings.TrimSpace(s[blank+1:])
	if target == "" {
		return Item{}, fmt.Errorf("field %q: nothing after the blank to score in %q", "sentence", s)
	}
	var ch []Choice
	for _, k := range []string{"option1", "option2"} {
		o, err := r.str(k)
		if err != nil {
			return Item{}, err
		}
		// Partial evaluation: the option is part of the context, the shared suffix is scored.
		ch = append(ch, Choice{Context: s[:blank] + o, Continuation: " " + target, Norm: target})
	}
	g, err := gold(r, "answer", 1, 2)
	if err != nil {
		return Item{}, err
	}
	return Item{Choices: ch, Gold: g}, nil
}

func parseBoolQ(r record) (Item, error) {
	p, err := r.str("passage")
	if err != nil {
		return Item{}, err
	}
	q, err := r.str("question")
	if err != nil {
		return Item{}, err
	}
	g, err := gold(r, "label", 0, 2)
	if err != nil {
		return Item{}, err
	}
	return Item{Choices: shared(p+"\nQuestion: "+q+"?\nAnswer:", []string{"no", "yes"}), Gold: g}, nil
}
