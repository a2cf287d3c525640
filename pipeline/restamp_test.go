package pipeline

import (
	"errors"
	"testing"
)

// Restamp needs paths; the embedded model's stamps name no --model in their advice, a
// directory's do; both fingerprints are loaded.
func TestRestampRequestAndStamps(t *testing.T) {
	var re *RequestError
	if _, err := Restamp(RestampRequest{}); !errors.As(err, &re) || re.Field != "Paths" {
		t.Errorf("no paths: %v, want a RequestError for Paths", err)
	}
	if _, err := Restamp(RestampRequest{ModelDir: t.TempDir(), Paths: []string{"x"}}); err == nil {
		t.Error("a folder without a checkpoint was accepted as the model")
	}
	lm, err := LoadModel("")
	if err != nil {
		t.Fatal(err)
	}
	s := lm.Stamps()
	if s.Dir != "" || s.Fingerprint != lm.Fingerprint || s.Legacy != lm.LegacyFingerprint || len(s.Legacy) != 64 || s.Legacy == s.Fingerprint {
		t.Errorf("embedded model stamps %+v", s)
	}
	lm2, err := LoadModel("../assets/llama-pd-11m")
	if err != nil {
		t.Fatal(err)
	}
	if s2 := lm2.Stamps(); s2.Dir != "../assets/llama-pd-11m" || s2.Fingerprint != s.Fingerprint || s2.Legacy != s.Legacy {
		t.Errorf("directory stamps %+v, embedded %+v", s2, s)
	}
}
