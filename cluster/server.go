package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/evopress/evopress/internal/optionerr"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is an embedded NATS server (github.com/nats-io/nats-server/v2) running in this process.
type Server struct {
	ns   *server.Server
	tls  bool
	need Requires
	auth []nats.Option // the credentials in-process clients present
}

// Requires says what clients of a server must present.
type Requires struct {
	// UserPassword, Token or NKey: the credentials; TLS: tls:// URLs (and the CA that signed the
	// server's certificate); ClientCert: a certificate signed by the server's CA.
	UserPassword, Token, NKey, TLS, ClientCert bool
}

// Requires says what clients must present to connect over the network.
func (s *Server) Requires() Requires { return s.need }

// ServerOptions configure an embedded NATS server.
type ServerOptions struct {
	// Listen is "" for in-process connections only, or the address to listen on as well:
	// HOST:PORT (PORT 0 picks a free port), or a URL nats://USER:PASSWORD@HOST:PORT or
	// nats://TOKEN@HOST:PORT whose user and password or token clients must present.
	Listen string
	// NKey is an NKey seed file (as nk or nsc write them): clients must prove they hold it
	// (workers pass the same file as ConnectOptions.NKey).
	NKey string
	// TLSCert and TLSKey are the server's certificate and key: clients connect with tls://
	// URLs. TLSCA is a CA bundle: clients must present a certificate it signed (workers pass
	// theirs as ConnectOptions.TLSCert and TLSKey); it needs TLSCert.
	TLSCert, TLSKey, TLSCA string
	// Insecure lets a listener that other hosts can reach go without credentials: anyone who
	// reaches it may join the search.
	Insecure bool
}

// ErrNoCredentials is wrapped by StartServer's error when asked to listen where other hosts
// can reach it without credentials and without ServerOptions.Insecure.
var ErrNoCredentials = errors.New("a listener other hosts can reach needs credentials")

// StartServer starts an embedded NATS server. Listening on an address other than a loopback
// one (127.0.0.0/8, ::1, localhost) needs credentials — a user and password or a token in the
// address, an NKey, or TLS client certificates — unless o.Insecure is set.
func StartServer(o ServerOptions) (*Server, error) {
	opts, s, err := o.build()
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: NATS server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("cluster: the NATS server on %q did not start (is the port in use?)", redact(o.Listen))
	}
	s.ns = ns
	return s, nil
}

// Check returns the error StartServer would return for o before starting anything: a bad
// address, missing credentials, unreadable key or certificate files.
func (o ServerOptions) Check() error {
	_, _, err := o.build()
	return err
}

// build turns o into the server's options and the Server's record of its credentials.
func (o ServerOptions) build() (*server.Options, *Server, error) {
	opts := &server.Options{NoLog: true, NoSigs: true, MaxPayload: 8 << 20}
	s := &Server{}
	if o.Listen == "" {
		if o.NKey != "" || o.TLSCert != "" || o.TLSKey != "" || o.TLSCA != "" {
			return nil, nil, optionerr.New("ServerOptions", "Listen", "cluster: credentials and TLS files need a {} address")
		}
		opts.DontListen = true
	} else {
		host, port, user, pass, token, err := parseListen(o.Listen)
		if err != nil {
			return nil, nil, err
		}
		opts.Host, opts.Port = host, port
		opts.Username, opts.Password, opts.Authorization = user, pass, token
		methods := 0
		if user != "" {
			methods++
			s.auth = append(s.auth, nats.UserInfo(user, pass))
		}
		if token != "" {
			methods++
			s.auth = append(s.auth, nats.Token(token))
		}
		if o.NKey != "" {
			methods++
			opt, err := nats.NkeyOptionFromSeed(o.NKey)
			if err != nil {
				return nil, nil, optionerr.New("ServerOptions", "NKey", "cluster: {} %s: %v", o.NKey, err)
			}
			var no nats.Options // the option sets the public key the server is to allow
			if err := opt(&no); err != nil {
				return nil, nil, optionerr.New("ServerOptions", "NKey", "cluster: {} %s: %v", o.NKey, err)
			}
			opts.Nkeys = []*server.NkeyUser{{Nkey: no.Nkey}}
			s.auth = append(s.auth, opt)
		}
		if methods > 1 {
			return nil, nil, optionerr.New("ServerOptions", "Listen", "cluster: {} %q: one of a user and password, a token or an NKey, not several", redact(o.Listen))
		}
		if (o.TLSCert == "") != (o.TLSKey == "") {
			return nil, nil, optionerr.New("ServerOptions", "TLSCert", "cluster: {} needs its key file, and a key file its certificate")
		}
		if o.TLSCA != "" && o.TLSCert == "" {
			return nil, nil, optionerr.New("ServerOptions", "TLSCert", "cluster: verifying client certificates (a CA) needs the server's own certificate and key ({})")
		}
		if o.TLSCert != "" {
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: o.TLSCert, KeyFile: o.TLSKey, CaFile: o.TLSCA, Verify: o.TLSCA != ""})
			if err != nil {
				return nil, nil, optionerr.New("ServerOptions", "TLSCert", "cluster: {} %s: %v", o.TLSCert, err)
			}
			opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = tc, true, o.TLSCA != "", 5
			s.tls = true
		}
		s.need = Requires{UserPassword: user != "", Token: token != "", NKey: o.NKey != "", TLS: s.tls, ClientCert: o.TLSCA != ""}
		if methods == 0 && o.TLSCA == "" && !o.Insecure && !loopback(host) {
			return nil, nil, fmt.Errorf("cluster: listen address %q: %w: a user and password or a token in it (nats://USER:PASS@HOST:PORT, nats://TOKEN@HOST:PORT), an NKey (ServerOptions.NKey), or TLS client certificates (TLSCert, TLSKey, TLSCA); or ServerOptions.Insecure to let any client that reaches it join", o.Listen, ErrNoCredentials)
		}
	}
	return opts, s, nil
}

// loopback reports whether host names a loopback interface only.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseListen splits HOST:PORT or nats://[USER:PASS@|TOKEN@]HOST:PORT.
func parseListen(listen string) (host string, port int, user, pass, token string, err error) {
	hostport := listen
	if u, perr := url.Parse(listen); perr == nil && u.Scheme != "" && u.Host != "" {
		if u.Scheme != "nats" {
			return "", 0, "", "", "", optionerr.New("", "listen address", "cluster: {} %q: scheme %q (want nats://; for TLS give the server's certificate files)", redact(listen), u.Scheme)
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
		return "", 0, "", "", "", optionerr.New("", "listen address", "cluster: {} %q: want HOST:PORT: %v", redact(listen), err)
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, "", "", "", optionerr.New("", "listen address", "cluster: {} %q: bad port %q", redact(listen), ps)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if h == "" {
		h = "0.0.0.0"
	}
	if (user != "" && pass == "") || (user == "" && pass != "") {
		return "", 0, "", "", "", optionerr.New("", "listen address", "cluster: {} %q: an empty user or password", redact(listen))
	}
	return h, port, user, pass, token, nil
}

// ClientURL is the URL clients on this host connect to (nats://HOST:PORT, or tls://HOST:PORT
// with TLS), without credentials; "" for an in-process-only server.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	u := s.ns.ClientURL()
	if s.tls {
		u = strings.Replace(u, "nats://", "tls://", 1)
	}
	return u
}

// InProcess is the nats.go option that connects to this server without a socket, with the
// server's credentials.
func (s *Server) InProcess() nats.Option {
	return func(o *nats.Options) error {
		for _, opt := range append([]nats.Option{nats.InProcessServer(s.ns)}, s.auth...) {
			if err := opt(o); err != nil {
				return err
			}
		}
		return nil
	}
}

// Shutdown stops the server.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// ConnectOptions says how to reach a NATS server. User and password or a token can be part of
// the URL (nats://USER:PASS@HOST:PORT, nats://TOKEN@HOST:PORT); tls:// URLs use TLS.
type ConnectOptions struct {
	// URL is one server or a comma-separated list, each nats://HOST:PORT or tls://HOST:PORT.
	URL string
	// Name is the connection name the server shows.
	Name string
	// Creds is a NATS credentials file (JWT and NKey seed), NKey an NKey seed file.
	Creds, NKey string
	// TLSCA is a CA bundle to verify the server; TLSCert and TLSKey a client certificate.
	TLSCA, TLSCert, TLSKey string
	// Wait is how long Connect keeps trying while nothing accepts the connection (a worker
	// started before its search); 0: one attempt. A refusal (credentials, TLS) ends it at once.
	Wait time.Duration
}

// Connect connects to a NATS server (see ConnectContext).
func Connect(o ConnectOptions, extra ...nats.Option) (*nats.Conn, error) {
	return ConnectContext(context.Background(), o, extra...)
}

// ConnectContext connects to a NATS server, trying for up to o.Wait while none answers, and
// once connected reconnects for ever after a connection loss.
func ConnectContext(ctx context.Context, o ConnectOptions, extra ...nats.Option) (*nats.Conn, error) {
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
	if err := o.Check(); err != nil {
		return nil, err
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	opts = append(opts, extra...)
	url := o.URL
	if url == "" {
		url = nats.DefaultURL
	}
	start := time.Now()
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			return nc, nil
		}
		waited := time.Since(start)
		if !errors.Is(err, nats.ErrNoServers) || waited >= o.Wait || ctx.Err() != nil {
			if errors.Is(err, nats.ErrNoServers) {
				return nil, fmt.Errorf("cluster: cannot connect to NATS at %s (tried for %s): nothing accepts connections there: %w", redact(url), waited.Round(time.Second), err)
			}
			return nil, fmt.Errorf("cluster: NATS at %s: %w", redact(url), err)
		}
		sleep(ctx, min(250*time.Millisecond, o.Wait-waited))
	}
}

// Check returns the errors of o that Connect would report before dialling: a URL other than
// nats:// or tls://, a certificate without its key.
func (o ConnectOptions) Check() error {
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return optionerr.New("ConnectOptions", "TLSCert", "cluster: {} needs its key file, and a key file its certificate")
	}
	if o.URL == "" {
		return nil
	}
	return checkURLs(o.URL)
}

// checkURLs refuses server URLs other than nats:// and tls:// ones.
func checkURLs(list string) error {
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
			return optionerr.New("ConnectOptions", "URL", "cluster: {} %q: want nats://HOST:PORT or tls://HOST:PORT (credentials as USER:PASS@ or TOKEN@; several comma-separated)", redact(s))
		}
	}
	return nil
}

// RedactURL hides the passwords and tokens in a server URL (or a comma-separated list of
// them), for messages and logs.
func RedactURL(s string) string { return redact(s) }

// redact hides passwords and tokens in URLs (or comma-separated lists of them) for messages.
func redact(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err == nil && u.User != nil {
			u.User = nil
			parts[i] = strings.Replace(u.String(), "://", "://***@", 1)
		} else if err != nil && strings.Contains(p, "@") {
			parts[i] = "***@" + p[strings.LastIndexByte(p, '@')+1:]
		}
	}
	return strings.Join(parts, ",")
}
