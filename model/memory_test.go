package model

import (
	"fmt"
	"testing"
)

// ActivationBytes counts exactly what Embedding and a workspace grown from nothing allocate, at
// several batch shapes (the memory estimates rest on it).
func TestActivationBytesMatchesWorkspace(t *testing.T) {
	m := embedded(t)
	for _, c := range []struct{ B, T int }{{1, 2}, {2, 17}, {4, 64}} {
		t.Run(fmt.Sprintf("B%d_T%d", c.B, c.T), func(t *testing.T) {
			ws := &workspace{}
			m.size(ws, c.B*c.T, c.T)
			tokens := make([][]int, c.B)
			for b := range tokens {
				tokens[b] = make([]int, c.T)
			}
			a, err := m.Embedding(tokens)
			if err != nil {
				t.Fatal(err)
			}
			got, want := ActivationBytes(m.Config, c.B, c.T), ws.bytes()+4*int64(cap(a.X))
			if got != want {
				t.Errorf("ActivationBytes = %d, allocated %d (workspace %d, residual stream %d)", got, want, ws.bytes(), 4*cap(a.X))
			}
		})
	}
}
