package pipeline

import (
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/evopress/evopress/cluster"
)

// TestJoinHint: a search listening on every interface with a token prints a worker command
// with this machine's host name (not 0.0.0.0), the real port, and the token as a placeholder.
func TestJoinHint(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Skipf("no host name: %v", err)
	}
	srv, err := cluster.StartServer(cluster.ServerOptions{Listen: "nats://s3cret@0.0.0.0:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	hint := joinHint(srv, "evopress", cluster.Job{DBFingerprint: "x"})
	want := "evopress worker --nats nats://TOKEN@" + host + ":" + u.Port() + " --nats-subject evopress"
	if !strings.HasPrefix(hint, want) || strings.Contains(hint, "s3cret") || strings.Contains(hint, "0.0.0.0") || !strings.HasSuffix(hint, " --db DB") {
		t.Errorf("join hint %q, want it to start with %q, hide the token and name --db", hint, want)
	}
}
