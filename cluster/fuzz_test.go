package cluster

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/evopress/evopress/search"
)

// fuzzCoordinator is a coordinator without a connection, with worker "w" joined (its session
// key returned) and "v" connected, and two calls in flight: one of whole tasks (1 of one
// candidate and 2 of two: a batch of one sub-batch split into groups of candidates) and one of
// range tasks (3 and 4: three candidates on one sub-batch of 14 predicting positions each),
// every task handed to "w".
func fuzzCoordinator(t *testing.T) (*Coordinator, []byte, *call, *call) {
	opt := Options{}
	opt.defaults()
	c := &Coordinator{job: testJob(), opt: opt, workers: map[string]*workerState{}, open: map[uint64]*task{}}
	c.job.Protocol, c.job.ID = Protocol, "x"
	workerKey, err := newSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	coordKey, err := newSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := sessionKey(coordKey, publicHex(workerKey), c.job.ID, "w")
	if err != nil {
		t.Fatal(err)
	}
	c.workers["w"] = &workerState{id: "w", connected: true, pub: publicHex(workerKey), priv: coordKey, key: key}
	c.workers["v"] = &workerState{id: "v", connected: true, key: []byte("another key")}
	cands := []search.Levels{{0, 1}, {1, 0}, {1, 1}}
	whole := &call{fitness: make([]float64, 3), done: make(chan struct{})}
	ranged := &call{fitness: make([]float64, 3), done: make(chan struct{})}
	for _, x := range []struct {
		cl *call
		b  search.Batch
	}{{whole, search.Batch{Chunks: []int{1, 2}, Tokens: 16}}, {ranged, search.Batch{Chunks: []int{1, 2, 3, 4}, Tokens: 32}}} {
		tasks, err := c.split(x.cl, nil, cands, x.b)
		if err != nil {
			t.Fatal(err)
		}
		x.cl.remaining = len(tasks)
		for _, tk := range tasks {
			tk.worker, tk.holders = "w", []session{{"w", 0}}
			c.open[tk.id] = tk
		}
	}
	return c, key, whole, ranged
}

// FuzzCoordinatorMessages feeds arbitrary bytes to the coordinator's handlers as every message
// a worker sends (join requests, work requests, results, heartbeats), unsigned, signed by the
// worker they name or signed with another key: nothing may panic, and a call that completes
// holds only valid values.
func FuzzCoordinatorMessages(f *testing.F) {
	priv, _ := newSessionKey()
	hello, _ := json.Marshal(Hello{Protocol: Protocol, Worker: "n", Identity: testIdentity, Key: publicHex(priv)})
	f.Add(0, uint8(0), uint64(0), hello)
	f.Add(0, uint8(0), uint64(0), []byte(`{"protocol":"evopress-cluster/v2","worker":"w","identity":{"model_fingerprint":"model-fp","calib_sha256":"calib-sha","kernels":"test-kernels"},"key":"00"}`))
	f.Add(0, uint8(0), uint64(0), []byte(`{"probe":true}`))
	f.Add(1, uint8(1), uint64(1), []byte(`{"worker":"w"}`))
	f.Add(1, uint8(0), uint64(1), []byte(`{"worker":"nobody"}`))
	f.Add(2, uint8(1), uint64(1), []byte(`{"task":1,"worker":"w","fitness_bits":[4607182418800017408,1]}`))
	f.Add(2, uint8(1), uint64(2), []byte(`{"task":1,"worker":"w","fitness_bits":[4607182418800017408]}`))
	f.Add(2, uint8(1), uint64(3), []byte(`{"task":2,"worker":"w","fitness_bits":[4607182418800017408,4607182418800017408],"tokens":16}`))
	f.Add(2, uint8(1), uint64(1), []byte(`{"task":2,"worker":"w","fitness_bits":[9221120237041090560,0]}`))
	f.Add(2, uint8(1), uint64(1), []byte(`{"task":1,"worker":"w","error":"boom"}`))
	f.Add(2, uint8(2), uint64(1), []byte(`{"task":1,"worker":"w","error":"boom"}`))
	f.Add(2, uint8(1), uint64(1), []byte(`{"task":3,"worker":"w","partial_bits":[[0,0,0]],"count":14}`))
	f.Add(2, uint8(1), uint64(1), []byte(`{"task":4,"worker":"w","partial_bits":[[4607182418800017408,4607182418800017408,4607182418800017408]],"count":14}`))
	f.Add(2, uint8(1), uint64(1), []byte(`{"task":99,"worker":"w","fitness_bits":[1]}`))
	f.Add(2, uint8(0), uint64(0), []byte(`{"task":1,"fitness_bits":[1]}`))
	f.Add(3, uint8(1), uint64(1), []byte(`{"worker":"w","task":1}`))
	f.Add(3, uint8(2), uint64(1), []byte(`{"worker":"v","task":0}`))
	f.Fuzz(func(t *testing.T, kind int, signing uint8, seq uint64, data []byte) {
		c, key, whole, ranged := fuzzCoordinator(t)
		kinds := []string{"join", kindWork, kindResult, kindHB}
		k := kinds[((kind%4)+4)%4]
		m := &nats.Msg{Subject: "evopress.job.x." + k, Data: data}
		switch signing % 3 {
		case 1:
			sign(m, key, k, seq)
		case 2:
			other, _ := newSessionKey()
			sign(m, other.PublicKey().Bytes(), k, seq)
		}
		if k == "join" {
			m.Subject = joinSubject(DefaultSubject)
			c.onJoin(m)
		} else {
			c.onJobMessage(m)
		}
		for _, cl := range []*call{whole, ranged} {
			if cl.finished && cl.err == nil {
				for i, v := range cl.fitness {
					if math.IsNaN(v) || math.IsInf(v, 0) || v < -FitnessSlack {
						t.Fatalf("call completed with fitness %v for candidate %d", v, i)
					}
				}
			}
		}
		for _, cands := range ranged.parts {
			for _, rng := range cands {
				for _, row := range rng {
					for _, v := range row {
						if math.IsNaN(v) || math.IsInf(v, 0) || v < -FitnessSlack*14 {
							t.Fatalf("range sum %v accepted", v)
						}
					}
				}
			}
		}
		if signing%3 != 1 && c.stats.Dropped > 0 {
			t.Fatalf("a message not signed by w dropped a worker")
		}
	})
}
