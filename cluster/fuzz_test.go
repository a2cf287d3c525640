package cluster

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// FuzzCoordinatorMessages feeds arbitrary bytes to the coordinator's handlers as join
// requests, work requests, results and heartbeats: nothing may panic, and a malformed result
// never completes a call.
func FuzzCoordinatorMessages(f *testing.F) {
	f.Add(0, []byte(`{"protocol":"evopress-cluster/v1","worker":"w","identity":{"model_fingerprint":"model-fp","calib_sha256":"calib-sha","kernels":"test-kernels"}}`))
	f.Add(1, []byte(`{"worker":"w"}`))
	f.Add(2, []byte(`{"task":1,"worker":"w","fitness_bits":[4607182418800017408,1]}`))
	f.Add(2, []byte(`{"task":1,"worker":"w","error":"boom"}`))
	f.Add(3, []byte(`{"worker":"w","task":1}`))
	f.Add(2, []byte(`{"task":1,"fitness_bits":[1]}`))
	f.Fuzz(func(t *testing.T, kind int, data []byte) {
		opt := Options{}
		opt.defaults()
		c := &Coordinator{job: testJob(), opt: opt, workers: map[string]*workerState{}, open: map[uint64]*task{}}
		c.job.Protocol = Protocol
		c.workers["w"] = &workerState{id: "w", connected: true}
		cl := &call{fitness: make([]float64, 2), remaining: 1, done: make(chan struct{})}
		c.open[1] = &task{id: 1, n: 2, call: cl, worker: "w"}
		subjects := []string{"evopress.join", "evopress.job.x.work", "evopress.job.x.result", "evopress.job.x.hb"}
		m := &nats.Msg{Subject: subjects[((kind%4)+4)%4], Data: data}
		if kind%4 == 0 {
			c.onJoin(m)
		} else {
			c.onJobMessage(m)
		}
		if cl.finished && cl.err == nil && len(cl.fitness) != 2 {
			t.Fatalf("call finished with %d values", len(cl.fitness))
		}
	})
}
