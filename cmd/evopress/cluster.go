package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/evopress/evopress/cluster"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/pipeline"
)

// natsFlags say how to reach NATS; search and worker share them.
type natsFlags struct {
	url, subject               string
	creds, nkey                string
	tlsCA, tlsCert, tlsKey     string
	listen                     string
	insecure                   bool
	wait                       time.Duration
	workers                    int
	workerTimeout, taskTimeout time.Duration
}

func (n *natsFlags) registerConn(cmd *cobra.Command, urlHelp string) {
	fl := cmd.Flags()
	fl.StringVar(&n.url, "nats", "", urlHelp)
	fl.StringVar(&n.subject, "nats-subject", cluster.DefaultSubject, "subject prefix shared by a search and its workers (one search per prefix and server)")
	fl.StringVar(&n.creds, "nats-creds", "", "NATS credentials file (JWT + NKey seed)")
	fl.StringVar(&n.nkey, "nats-nkey", "", "NATS NKey seed file")
	fl.StringVar(&n.tlsCA, "nats-tls-ca", "", "CA bundle that signed the NATS server's certificate (with a tls:// URL)")
	fl.StringVar(&n.tlsCert, "nats-tls-cert", "", "client certificate for NATS TLS (with --nats-tls-key)")
	fl.StringVar(&n.tlsKey, "nats-tls-key", "", "client key for NATS TLS")
}

func (n *natsFlags) registerSearch(cmd *cobra.Command) {
	n.registerConn(cmd, "score candidates on the workers of this NATS server (nats://[USER:PASS@]HOST:PORT, tls://…, comma-separated list); started with evopress worker")
	fl := cmd.Flags()
	fl.StringVar(&n.listen, "nats-listen", "", "start the embedded NATS server on HOST:PORT so that evopress worker processes can join; beyond loopback it needs credentials: nats://USER:PASS@HOST:PORT, nats://TOKEN@HOST:PORT, --nats-nkey, or --nats-tls-cert/--nats-tls-key with --nats-tls-ca")
	fl.BoolVar(&n.insecure, "insecure", false, "let --nats-listen on an address other hosts reach go without credentials: anyone who reaches it may join")
	fl.Lookup("nats-nkey").Usage += " (with --nats-listen: the seed workers must hold)"
	fl.Lookup("nats-tls-ca").Usage += " (with --nats-listen: the CA that must sign the workers' client certificates)"
	fl.Lookup("nats-tls-cert").Usage += " (with --nats-listen: the server's certificate, with --nats-tls-key)"
	fl.IntVar(&n.workers, "workers", 1, "in-process workers (0 unless given, with --nats or --nats-listen)")
	fl.DurationVar(&n.workerTimeout, "worker-timeout", 15*time.Second, "a worker silent this long is lost and its candidates are re-sent (workers report every second: at least 2s)")
	fl.DurationVar(&n.taskTimeout, "task-timeout", 0, "re-send candidates unanswered this long even from a live worker (0: never)")
	atLeastDuration(fl, 2*time.Second, "worker-timeout")
	atLeastDuration(fl, 0, "task-timeout")
}

func (n *natsFlags) connectOptions(name string) cluster.ConnectOptions {
	return cluster.ConnectOptions{URL: n.url, Name: name, Creds: n.creds, NKey: n.nkey, TLSCA: n.tlsCA, TLSCert: n.tlsCert, TLSKey: n.tlsKey}
}

// cluster returns a search's evaluation options; cluster events are logged on w.
func (n *natsFlags) cluster(cmd *cobra.Command, w io.Writer, logJSON bool) (*pipeline.ClusterOptions, error) {
	workers := n.workers
	if !cmd.Flags().Changed("workers") && (n.url != "" || n.listen != "") {
		workers = 0
	}
	level := slog.LevelWarn // a search on this machine only: nothing to say unless it goes wrong
	if n.url != "" || n.listen != "" {
		level = slog.LevelInfo
	}
	return &pipeline.ClusterOptions{URL: n.url, Listen: n.listen, Connect: n.connectOptions(""), Insecure: n.insecure, Subject: n.subject,
		Workers: workers, WorkerTimeout: n.workerTimeout, TaskTimeout: n.taskTimeout, Log: clusterLogger(w, logJSON, level)}, nil
}

func newWorkerCmd() *cobra.Command {
	var n natsFlags
	var req pipeline.WorkerRequest
	var id string
	var once, logJSON, verbose bool
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Score candidates for searches running elsewhere (through NATS)",
		Long: `worker loads a model, the calibration text and (for sparse and quant searches) the level
database once, joins the search that serves --nats-subject on the NATS server --nats, and scores the
candidates it is sent until it is interrupted. Start searches with --nats URL (a NATS server of
your own) or --nats-listen HOST:PORT (the search starts an embedded server). A worker whose model,
database, calibration text or kernel implementation differs from the search's is refused and
exits with the reason, and so does one the search drops (an invalid or failed result); a worker
waits for the next search when one ends (--once: exits, with status 1 when the server went away
before the search said it ended), and exits when no NATS server answers at --nats within
--connect-timeout.
Results do not depend on the workers: a search gives the same profile for a seed with any number.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			logger := clusterLogger(cmd.ErrOrStderr(), logJSON, level)
			host, _ := os.Hostname()
			if n.url == "" {
				n.url = nats.DefaultURL
			}
			// A worker may start before the search's server: it keeps trying for --connect-timeout.
			co := n.connectOptions(fmt.Sprintf("evopress worker %s-%d", host, os.Getpid()))
			co.Wait = n.wait
			if err := co.Check(); err != nil {
				return err
			}
			w, err := pipeline.NewWorkerFor(req)
			if err != nil {
				return err
			}
			nc, err := cluster.ConnectContext(cmd.Context(), co)
			if err != nil {
				return err
			}
			defer nc.Close()
			logger.Info("worker ready", "model", w.Model().Name, "calib", w.Calib().Source, "db", req.DBDir, "kernels", kernels.Implementation(), "nats", cluster.RedactURL(n.url))
			return cluster.RunWorker(cmd.Context(), nc, w, cluster.WorkerOptions{Subject: n.subject, ID: id, Once: once, Log: logger})
		},
	}
	n.registerConn(cmd, "NATS server of the search (nats://[USER:PASS@]HOST:PORT, tls://…, comma-separated list; default nats://127.0.0.1:4222)")
	fl := cmd.Flags()
	modelFlag(fl, &req.ModelDir, "")
	fl.StringVar(&req.CalibFile, "calib", "", "calibration text file, the search's (default: the embedded calibration text)")
	fl.StringVar(&req.DBDir, "db", "", "level database, the search's (sparse and quant searches)")
	fl.StringVar(&id, "id", "", "worker name, unique among a search's workers (default HOST-PID)")
	fl.DurationVar(&n.wait, "connect-timeout", 30*time.Second, "how long to keep trying to reach the NATS server at start (0: one attempt)")
	fl.IntVar(&req.CacheMB, "cache-mb", pipeline.DefaultCacheMB, "memory for cached dense distributions (MiB)")
	fl.IntVar(&req.DBCacheMB, "db-cache-mb", pipeline.DefaultDBCacheMB, "memory for cached database levels, held as stored (MiB)")
	atLeast(fl, 1, "cache-mb", "db-cache-mb")
	atLeastDuration(fl, 0, "connect-timeout")
	fl.BoolVar(&once, "once", false, "exit when the first search joined ends")
	fl.BoolVar(&logJSON, "log-json", false, "log as JSON lines")
	fl.BoolVar(&verbose, "verbose", false, "log every task")
	computeFlag(fl)
	return cmd
}
