package profile_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/evopress/evopress/profile"
)

// Parse reads a JSON profile (format evopress-profile/v1) and validates it.
func ExampleParse() {
	p, err := profile.Parse([]byte(`{
  "format": "evopress-profile/v1",
  "mode": "drop",
  "levels": {"model.layers.10.mlp": 1, "model.layers.2.self_attn": 1, "model.layers.2.mlp": 0}
}`), "example.json")
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Mode)
	for _, u := range p.Units() { // natural order: layer 2 before layer 10
		fmt.Println(u, p.Levels[u])
	}
	// Output:
	// drop
	// model.layers.2.mlp 0
	// model.layers.2.self_attn 1
	// model.layers.10.mlp 1
}

// Read loads a profile file: JSON, or the reference implementation's text config ("name:
// level" per line), whose mode the caller gives.
func ExampleRead() {
	dir, err := os.MkdirTemp("", "profile-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	p := profile.New(profile.ModeQuant)
	p.Levels["model.layers.0.self_attn.q_proj"] = 3
	p.Levels["model.layers.0.mlp.down_proj"] = 4
	jsonPath := filepath.Join(dir, "profile.json")
	if err := p.Write(jsonPath); err != nil {
		panic(err)
	}
	textPath := filepath.Join(dir, "profile.txt")
	if err := os.WriteFile(textPath, p.MarshalText(), 0o644); err != nil {
		panic(err)
	}

	fromJSON, err := profile.Read(jsonPath, "")
	if err != nil {
		panic(err)
	}
	fromText, err := profile.Read(textPath, profile.ModeQuant)
	if err != nil {
		panic(err)
	}
	fmt.Print(string(fromJSON.MarshalText()))
	fmt.Println(fromText.Mode, len(fromText.Levels), fromText.Levels["model.layers.0.self_attn.q_proj"])
	// Output:
	// model.layers.0.mlp.down_proj: 4
	// model.layers.0.self_attn.q_proj: 3
	// quant 2 3
}
