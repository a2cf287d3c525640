package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evopress/evopress/search"
)

// testSeed is an NKey user seed (made with nkeys.CreateUser for these tests only).
const testSeed = "SUAJVAE5USM6BFMV6JZVTPTTDEJCEE5SEP6R7YM2K3UQY47T4HCZSEZHME"

func seedFile(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "worker.nk")
	if err := os.WriteFile(f, []byte(testSeed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// outsideAddr is an address of this machine that is not a loopback one ("" if it has none).
func outsideAddr() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// A listener other hosts can reach needs credentials or an explicit Insecure; loopback
// listeners need nothing; conflicting or incomplete options are refused by name.
func TestListenNeedsCredentials(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, caFile, _ := writeCert(t, dir, "ca", true, nil, nil)
	_, _, certFile, keyFile := writeCert(t, dir, "server", false, ca, caKey)
	seed := seedFile(t)
	outside := outsideAddr()
	if outside == "" {
		outside = "192.0.2.1" // TEST-NET-1: the option check does not bind
	}
	cases := []struct {
		name string
		o    ServerOptions
		want string // "" (accepted), "credentials" (ErrNoCredentials) or a part of the message
	}{
		{"in-process only", ServerOptions{}, ""},
		{"loopback", ServerOptions{Listen: "127.0.0.1:0"}, ""},
		{"localhost", ServerOptions{Listen: "localhost:0"}, ""},
		{"IPv6 loopback", ServerOptions{Listen: "[::1]:0"}, ""},
		{"all interfaces", ServerOptions{Listen: "0.0.0.0:0"}, "credentials"},
		{"no host", ServerOptions{Listen: ":4222"}, "credentials"},
		{"this host's address", ServerOptions{Listen: outside + ":0"}, "credentials"},
		{"a host name", ServerOptions{Listen: "search-host:0"}, "credentials"},
		{"TLS without client certificates", ServerOptions{Listen: "0.0.0.0:0", TLSCert: certFile, TLSKey: keyFile}, "credentials"},
		{"insecure", ServerOptions{Listen: "0.0.0.0:0", Insecure: true}, ""},
		{"user and password", ServerOptions{Listen: "nats://evo:pw@0.0.0.0:0"}, ""},
		{"token", ServerOptions{Listen: "nats://s3cret@0.0.0.0:0"}, ""},
		{"nkey", ServerOptions{Listen: "0.0.0.0:0", NKey: seed}, ""},
		{"client certificates", ServerOptions{Listen: "0.0.0.0:0", TLSCert: certFile, TLSKey: keyFile, TLSCA: caFile}, ""},
		{"user and nkey", ServerOptions{Listen: "nats://evo:pw@0.0.0.0:0", NKey: seed}, "not several"},
		{"empty password", ServerOptions{Listen: "nats://evo:@0.0.0.0:0"}, "empty user or password"},
		{"CA without a certificate", ServerOptions{Listen: "0.0.0.0:0", TLSCA: caFile}, "ServerOptions.TLSCert"},
		{"certificate without its key", ServerOptions{Listen: "0.0.0.0:0", TLSCert: certFile, TLSCA: caFile}, "ServerOptions.TLSCert"},
		{"missing seed file", ServerOptions{Listen: "0.0.0.0:0", NKey: filepath.Join(dir, "none.nk")}, "ServerOptions.NKey"},
		{"credentials without a listener", ServerOptions{NKey: seed}, "ServerOptions.Listen"},
		{"TLS scheme", ServerOptions{Listen: "tls://0.0.0.0:0"}, "scheme"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.o.Check()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == "credentials" && !errors.Is(err, ErrNoCredentials):
				t.Fatalf("err %v, want ErrNoCredentials", err)
			case c.want == "credentials" && !strings.Contains(err.Error(), "Insecure"):
				t.Fatalf("err %v does not say how to opt out", err)
			case c.want != "" && c.want != "credentials" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err %v, want %q", err, c.want)
			}
			if c.want == "credentials" {
				if srv, err := StartServer(c.o); err == nil {
					srv.Shutdown()
					t.Fatal("StartServer listened without credentials")
				}
			}
		})
	}
}

// joinOver starts a coordinator on srv (in process, with the server's credentials) and a
// worker over TCP with o; it returns the worker's connection error, or the value it scored.
func joinOver(t *testing.T, srv *Server, o ConnectOptions) (float64, error) {
	t.Helper()
	cc, err := Connect(ConnectOptions{}, srv.InProcess())
	if err != nil {
		t.Fatalf("in-process connection with the server's credentials: %v", err)
	}
	defer cc.Close()
	co, err := NewCoordinator(cc, testJob(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	wc, err := Connect(o)
	if err != nil {
		return 0, err
	}
	defer wc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go RunWorker(ctx, wc, &preparer{id: testIdentity}, WorkerOptions{ID: "remote"})
	batch := search.Batch{Chunks: []int{3}, Tokens: 8}
	ectx, ecancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ecancel()
	got, err := co.Evaluate(ectx, nil, []search.Levels{{1, 0}}, batch)
	if err != nil {
		t.Fatalf("an authenticated worker could not score: %v", err)
	}
	return got[0], nil
}

// On an address of this machine other hosts can reach, a server with credentials refuses a
// client without them (it cannot even connect, so it never sees the job), and a worker with
// them joins and scores. With client certificates the same holds on loopback.
func TestUnauthenticatedJoinRefused(t *testing.T) {
	host := outsideAddr()
	if host == "" {
		t.Log("no address other than loopback: the credential checks run on 127.0.0.1")
		host = "127.0.0.1"
	}
	dir := t.TempDir()
	ca, caKey, caFile, _ := writeCert(t, dir, "ca", true, nil, nil)
	_, _, certFile, keyFile := writeCert(t, dir, "server", false, ca, caKey)
	_, _, clientCert, clientKey := writeCert(t, dir, "client", false, ca, caKey)
	seed := seedFile(t)
	want := fakeFitness(search.Levels{1, 0}, search.Batch{Chunks: []int{3}, Tokens: 8})
	cases := []struct {
		name       string
		srv        ServerOptions
		anon, good func(url string) ConnectOptions
	}{
		{"token", ServerOptions{Listen: "nats://s3cret@" + host + ":0"},
			func(u string) ConnectOptions { return ConnectOptions{URL: u} },
			func(u string) ConnectOptions {
				return ConnectOptions{URL: strings.Replace(u, "nats://", "nats://s3cret@", 1)}
			}},
		{"user and password", ServerOptions{Listen: "nats://evo:pw@" + host + ":0"},
			func(u string) ConnectOptions {
				return ConnectOptions{URL: strings.Replace(u, "nats://", "nats://evo:wrong@", 1)}
			},
			func(u string) ConnectOptions {
				return ConnectOptions{URL: strings.Replace(u, "nats://", "nats://evo:pw@", 1)}
			}},
		{"nkey", ServerOptions{Listen: host + ":0", NKey: seed},
			func(u string) ConnectOptions { return ConnectOptions{URL: u} },
			func(u string) ConnectOptions { return ConnectOptions{URL: u, NKey: seed} }},
		{"client certificates", ServerOptions{Listen: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile, TLSCA: caFile},
			func(u string) ConnectOptions { return ConnectOptions{URL: u, TLSCA: caFile} },
			func(u string) ConnectOptions {
				return ConnectOptions{URL: u, TLSCA: caFile, TLSCert: clientCert, TLSKey: clientKey}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, err := StartServer(c.srv)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown()
			u := srv.ClientURL()
			if c.srv.TLSCert != "" && !strings.HasPrefix(u, "tls://") {
				t.Fatalf("client URL %s of a TLS server", u)
			}
			if _, err := joinOver(t, srv, c.anon(u)); err == nil {
				t.Fatal("a client without the credentials joined")
			}
			got, err := joinOver(t, srv, c.good(u))
			if err != nil {
				t.Fatalf("a worker with the credentials: %v", err)
			}
			if got != want {
				t.Fatalf("scored %v, want %v", got, want)
			}
		})
	}
}

// Connect refuses URLs other than nats:// and tls:// by option; with nothing listening it gives
// up after Wait naming the URL; it waits for a server that starts late; and it does not wait
// when the server refuses the credentials.
func TestConnect(t *testing.T) {
	for _, u := range []string{"http://h:4222", "ws://h:4222", "h:4222", "nats://a:1,http://b:2", "nats://"} {
		_, err := Connect(ConnectOptions{URL: u})
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Option() != "URL" || !strings.Contains(err.Error(), "want nats://HOST:PORT or tls://HOST:PORT") {
			t.Errorf("%q: err %v, want an error naming ConnectOptions.URL", u, err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	start := time.Now()
	_, err = Connect(ConnectOptions{URL: url, Wait: 300 * time.Millisecond})
	if d := time.Since(start); err == nil || !strings.Contains(err.Error(), "cannot connect to NATS at "+url) || d < 300*time.Millisecond || d > 10*time.Second {
		t.Fatalf("nothing listening: err %v after %v, want the URL after 300ms", err, d)
	}

	// A server that starts while the worker waits.
	done := make(chan error, 1)
	go func() {
		nc, err := Connect(ConnectOptions{URL: url, Wait: 20 * time.Second})
		if err == nil {
			nc.Close()
		}
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	srv, err := StartServer(ServerOptions{Listen: fmt.Sprintf("nats://evo:pw@127.0.0.1:%d", port)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	// It reaches the server, which refuses it without the password: at once, not after Wait.
	select {
	case err := <-done:
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Fatalf("err %v, want the server's refusal", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Connect kept waiting after the server refused it")
	}
	nc, err := Connect(ConnectOptions{URL: fmt.Sprintf("nats://evo:pw@127.0.0.1:%d", port), Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"nats://127.0.0.1:4222":                    "nats://127.0.0.1:4222",
		"nats://s3cret@h:1":                        "nats://***@h:1",
		"nats://evo:pw@h:1,tls://tok@g:2":          "nats://***@h:1,tls://***@g:2",
		"nats://evo:p%zz@h:1":                      "***@h:1",
		"nats://127.0.0.1:4222,nats://evo:pw@h:1 ": "nats://127.0.0.1:4222,nats://***@h:1",
	}
	for in, want := range cases {
		got := RedactURL(in)
		if got != want || strings.Contains(got, "s3cret") || strings.Contains(got, "pw") || strings.Contains(got, "tok") {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
