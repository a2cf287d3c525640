// Package data turns text files into token chunks: the perplexity protocols of docs/design.md
// ("The method": evaluation; raw and WikiText-2) and the calibration pool from which the search
// samples its batches.
package data

import (
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// Format names how an evaluation file is read.
type Format string

// The evaluation text formats.
const (
	// Raw tokenizes the file as it is.
	Raw Format = "raw"
	// WikiText reproduces the Hugging Face wikitext-2-raw-v1 protocol: "\n\n".join(ds["text"]).
	WikiText Format = "wikitext"
)

// ParseFormat checks a --format value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case Raw, WikiText:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown text format %q (want raw or wikitext)", s)
}

// ReadText reads a UTF-8 text file and applies the format's normalisation.
func ReadText(path string, f Format) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if err := CheckUTF8(b, path); err != nil {
		return "", err
	}
	return Normalize(string(b), f)
}

// CheckUTF8 returns an error naming name and the byte offset of the first invalid UTF-8 sequence
// of b, or nil when b is valid UTF-8. Every text the tools read goes through it (ReadText, and
// tokenize's inputs): invalid bytes are refused, never silently turned into U+FFFD.
func CheckUTF8(b []byte, name string) error {
	if utf8.Valid(b) {
		return nil
	}
	off := 0
	for off < len(b) {
		r, n := utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		off += n
	}
	return fmt.Errorf("%s: not valid UTF-8 text: byte 0x%02x at offset %d", name, b[off], off)
}

// Normalize applies a format's normalisation to text already in memory.
func Normalize(text string, f Format) (string, error) {
	switch f {
	case Raw:
		return text, nil
	case WikiText:
		return WikiTextJoin(text), nil
	}
	return "", fmt.Errorf("unknown text format %q (want raw or wikitext)", f)
}

// WikiTextJoin turns the raw wiki.test.raw file into the text the Hugging Face protocol tokenizes:
// CRLF becomes LF, the file is split into lines each keeping its "\n" (as the datasets library
// stores them), whitespace-only lines become empty strings, and the lines are joined with "\n\n".
func WikiTextJoin(raw string) string {
	raw = strings.ReplaceAll(raw, "\r\n", "\n")
	lines := strings.SplitAfter(raw, "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n\n")
}

// Chunks cuts a token stream into non-overlapping chunks of seqLen tokens, dropping the remainder;
// maxSeqs > 0 keeps only the first maxSeqs chunks. The chunks share ids' memory.
func Chunks(ids []int, seqLen, maxSeqs int) ([][]int, error) {
	if seqLen < 2 {
		return nil, fmt.Errorf("seq-len %d: must be at least 2", seqLen)
	}
	n := len(ids) / seqLen
	if maxSeqs > 0 && n > maxSeqs {
		n = maxSeqs
	}
	out := make([][]int, n)
	for i := range out {
		out[i] = ids[i*seqLen : (i+1)*seqLen : (i+1)*seqLen]
	}
	return out, nil
}

// CalibrationPool cuts the calibration token stream into chunks of seqLen tokens; calibTokens > 0
// caps the pool at the first calibTokens/seqLen chunks. It is an error for the pool to be empty.
func CalibrationPool(ids []int, seqLen, calibTokens int) ([][]int, error) {
	max := 0
	if calibTokens > 0 {
		max = calibTokens / seqLen
		if max == 0 {
			return nil, fmt.Errorf("calib-tokens %d is less than one sequence of %d tokens", calibTokens, seqLen)
		}
	}
	c, err := Chunks(ids, seqLen, max)
	if err != nil {
		return nil, err
	}
	if len(c) == 0 {
		return nil, fmt.Errorf("calibration text has %d tokens: fewer than one sequence of %d", len(ids), seqLen)
	}
	return c, nil
}
