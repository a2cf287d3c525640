package cluster

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/evopress/evopress/internal/optionerr"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is an embedded NATS server (github.com/nats-io/nats-server/v2) running in this process.
type Server struct {
	ns *server.Server
}

// StartServer starts an embedded NATS server. With listen "" it accepts in-process connections
// only (Connect with InProcess); otherwise it also listens on listen, written HOST:PORT
// (PORT 0 picks a free port) or as a URL nats://[USER:PASSWORD@]HOST:PORT, whose user and
// password clients must then present (or nats://TOKEN@HOST:PORT for a token).
func StartServer(listen string) (*Server, error) {
	opts := &server.Options{NoLog: true, NoSigs: true, MaxPayload: 8 << 20}
	if listen == "" {
		opts.DontListen = true
	} else {
		host, port, user, pass, token, err := parseListen(listen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
		opts.Username, opts.Password, opts.Authorization = user, pass, token
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: NATS server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("cluster: the NATS server on %q did not start (is the port in use?)", listen)
	}
	return &Server{ns: ns}, nil
}

// parseListen splits HOST:PORT or nats://[USER:PASS@|TOKEN@]HOST:PORT.
func parseListen(listen string) (host string, port int, user, pass, token string, err error) {
	hostport := listen
	if u, perr := url.Parse(listen); perr == nil && u.Scheme != "" && u.Host != "" {
		if u.Scheme != "nats" {
			return "", 0, "", "", "", optionerr.New("", "listen address", "cluster: {} %q: scheme %q (want nats://; TLS needs a standalone nats-server)", listen, u.Scheme)
		}
		hostport = u.Host
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				user, pass = u.User.Username(), p
			} else {
				token = u.User.Username()
			}
		}
	}
	h, ps, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, "", "", "", optionerr.New("", "listen address", "cluster: {} %q: want HOST:PORT: %v", listen, err)
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, "", "", "", optionerr.New("", "listen address", "cluster: {} %q: bad port %q", listen, ps)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if h == "" {
		h = "0.0.0.0"
	}
	return h, port, user, pass, token, nil
}

// ClientURL is the URL clients on this host connect to (nats://HOST:PORT), "" for an
// in-process-only server.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// InProcess is the nats.go option that connects to this server without a socket.
func (s *Server) InProcess() nats.Option { return nats.InProcessServer(s.ns) }

// Shutdown stops the server.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// ConnectOptions says how to reach a NATS server. User and password or a token can be part of
// the URL (nats://USER:PASS@HOST:PORT, nats://TOKEN@HOST:PORT); tls:// URLs use TLS.
type ConnectOptions struct {
	// URL is one server or a comma-separated list.
	URL string
	// Name is the connection name the server shows.
	Name string
	// Creds is a NATS credentials file (JWT and NKey seed), NKey an NKey seed file.
	Creds, NKey string
	// TLSCA is a CA bundle to verify the server; TLSCert and TLSKey a client certificate.
	TLSCA, TLSCert, TLSKey string
}

// Connect connects to a NATS server, reconnecting for ever after a connection loss.
func Connect(o ConnectOptions, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond)}
	if o.Name != "" {
		opts = append(opts, nats.Name(o.Name))
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.NKey != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKey)
		if err != nil {
			return nil, optionerr.New("ConnectOptions", "NKey", "cluster: {} %s: %v", o.NKey, err)
		}
		opts = append(opts, opt)
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, optionerr.New("ConnectOptions", "TLSCert", "cluster: {} needs its key file, and a key file its certificate")
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	opts = append(opts, extra...)
	url := o.URL
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("NATS %s: %w", redact(url), err)
	}
	return nc, nil
}

// redact hides passwords and tokens in URLs for error messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.User("***")
	return u.String()
}
