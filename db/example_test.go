package db_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/model"
)

// Open reads a level database: here a small one built first with round-to-nearest
// quantisation (4 and 8 bits) of the linear layers of the embedded model's first two blocks.
func ExampleOpen() {
	m, fp, err := model.LoadFS(assets.FS(), assets.ModelDir)
	if err != nil {
		panic(err)
	}
	m.Blocks = m.Blocks[:2] // a smaller database, quicker to build
	out, err := os.MkdirTemp("", "db-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(out)

	calib := [][]int{{1, 450, 1014, 338, 263}, {1, 306, 1016, 2355, 2889}} // any token ids
	q := db.DefaultQuantParams()
	q.Bits = []int{4, 8}
	_, err = db.Build(context.Background(), db.BuildConfig{
		Out: out, Model: m, ModelInfo: db.ModelInfo{Path: assets.ModelName, Fingerprint: fp},
		Calib:       calib,
		Calibration: db.CalibInfo{Source: "example", SHA256: strings.Repeat("0", 64)},
		Mode:        db.ModeQuant, Method: db.MethodRTN, Quant: q,
	})
	if err != nil {
		panic(err)
	}

	d, err := db.Open(out)
	if err != nil {
		panic(err)
	}
	if err := d.Check(fp); err != nil { // built for this model
		panic(err)
	}
	layers := d.Layers()
	fmt.Println(d.Mode(), len(layers), "layers")
	fmt.Println(layers[0])
	for _, l := range d.Levels(layers[0]) {
		fmt.Println("level", l.Level)
	}
	w, err := d.Weights(layers[0], 4)
	if err != nil {
		panic(err)
	}
	fmt.Println(w.Len(), "weights at 4 bits")
	// Output:
	// quant 14 layers
	// model.layers.0.self_attn.q_proj
	// level 4
	// level 8
	// 65536 weights at 4 bits
}
