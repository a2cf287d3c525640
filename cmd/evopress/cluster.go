package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/cluster"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/search"
)

// natsFlags say how to reach NATS; search and worker share them.
type natsFlags struct {
	url, subject               string
	creds, nkey                string
	tlsCA, tlsCert, tlsKey     string
	listen                     string
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
	fl.StringVar(&n.listen, "nats-listen", "", "start the embedded NATS server on HOST:PORT (or nats://USER:PASS@HOST:PORT) so that evopress worker processes can join")
	fl.IntVar(&n.workers, "workers", 1, "in-process workers (0 unless given, with --nats or --nats-listen)")
	fl.DurationVar(&n.workerTimeout, "worker-timeout", 15*time.Second, "a worker silent this long is lost and its candidates are re-sent")
	fl.DurationVar(&n.taskTimeout, "task-timeout", 0, "re-send candidates unanswered this long even from a live worker (0: never)")
}

func (n *natsFlags) connectOptions(name string) cluster.ConnectOptions {
	return cluster.ConnectOptions{URL: n.url, Name: name, Creds: n.creds, NKey: n.nkey, TLSCA: n.tlsCA, TLSCert: n.tlsCert, TLSKey: n.tlsKey}
}

// workerResources is what a worker holds (model, calibration text, database) and how it turns
// a job into an evaluator (cluster.Preparer). The search's in-process workers share one.
type workerResources struct {
	lm      *loaded
	text    string
	calib   string // source, for messages
	sha     string
	d       *db.DB
	cacheMB int

	mu       sync.Mutex
	teachers map[string]*fitness.Teacher
}

func newWorkerResources(lm *loaded, text, calibSource string, d *db.DB, cacheMB int) *workerResources {
	sum := sha256.Sum256([]byte(text))
	return &workerResources{lm: lm, text: text, calib: calibSource, sha: hex.EncodeToString(sum[:]), d: d, cacheMB: cacheMB, teachers: map[string]*fitness.Teacher{}}
}

func (r *workerResources) Identity() cluster.Identity {
	id := cluster.Identity{ModelFingerprint: r.lm.Fingerprint, CalibSHA256: r.sha, Kernels: kernels.Implementation()}
	if r.d != nil {
		id.DBFingerprint = r.d.Fingerprint()
	}
	return id
}

// teacher returns the dense model's teacher over the job's calibration pool, shared by every
// job with the same pool and top-k.
func (r *workerResources) teacher(job *cluster.Job) (*fitness.Teacher, error) {
	key := teacherKey(job)
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.teachers[key]; t != nil {
		return t, nil
	}
	pool, err := data.CalibrationPool(r.lm.Tok.Encode(r.text, false), job.SeqLen, job.CalibTokens)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.calib, err)
	}
	if len(pool) != job.PoolChunks {
		return nil, fmt.Errorf("%s: the pool has %d chunks of %d tokens here, the search's has %d", r.calib, len(pool), job.SeqLen, job.PoolChunks)
	}
	t, err := fitness.NewTeacher(r.lm.Model, pool, fitness.Options{TopK: job.TopK, CacheBytes: int64(r.cacheMB) << 20})
	if err != nil {
		return nil, err
	}
	r.teachers[key] = t
	return t, nil
}

// seedTeacher registers a teacher the search already made for the job's pool.
func (r *workerResources) seedTeacher(job *cluster.Job, t *fitness.Teacher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.teachers[teacherKey(job)] = t
}

// teacherKey identifies what a teacher depends on: the pool's shape and the top-k.
func teacherKey(job *cluster.Job) string {
	return fmt.Sprintf("%d/%d/%d", job.SeqLen, job.CalibTokens, job.TopK)
}

// Prepare implements cluster.Preparer: a new evaluator (each worker counts its own block
// forwards) over the shared teacher.
func (r *workerResources) Prepare(job *cluster.Job) (search.Evaluator, error) {
	if reason := job.Mismatch(r.Identity()); reason != "" {
		return nil, fmt.Errorf("this worker has %s", reason)
	}
	kind, err := fitness.ParseKind(job.Fitness)
	if err != nil {
		return nil, err
	}
	var build fitness.Builder
	switch job.Mode {
	case "drop":
		b, err := candidate.DropBuilder(r.lm.Model, job.Units)
		if err != nil {
			return nil, err
		}
		build = b
	case db.ModeSparse, db.ModeQuant:
		if r.d == nil || r.d.Mode() != job.Mode {
			return nil, fmt.Errorf("a %s search needs a %s database (--db)", job.Mode, job.Mode)
		}
		for _, u := range job.Units {
			if len(r.d.Levels(u)) == 0 {
				return nil, fmt.Errorf("database %s has no layer %s", r.d.Dir(), u)
			}
		}
		build = dbBuilder(r.d, r.lm.Model, job.Units)
	default:
		return nil, fmt.Errorf("unknown search mode %q", job.Mode)
	}
	t, err := r.teacher(job)
	if err != nil {
		return nil, err
	}
	ev, err := fitness.NewEvaluator(t, job.Units, build, kind)
	if err != nil {
		return nil, err
	}
	ev.PrefixReuse = job.PrefixReuse
	if job.SubBatch > 0 {
		ev.SubBatch = job.SubBatch
	}
	return ev, nil
}

// evaluatorCluster is a search's coordinator with the NATS server, connections and in-process
// workers behind it.
type evaluatorCluster struct {
	co      *cluster.Coordinator
	srv     *cluster.Server
	conns   []*nats.Conn
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	workers int
}

// startCluster starts the evaluation side of a search: the embedded NATS server (unless --nats
// names one), the coordinator and the in-process workers.
func startCluster(ctx context.Context, cmd *cobra.Command, n *natsFlags, job cluster.Job, res *workerResources, logger *slog.Logger) (*evaluatorCluster, error) {
	if n.url != "" && n.listen != "" {
		return nil, fmt.Errorf("--nats and --nats-listen exclude each other: connect to a server or start one")
	}
	workers := n.workers
	if !cmd.Flags().Changed("workers") && (n.url != "" || n.listen != "") {
		workers = 0
	}
	if workers < 0 {
		return nil, fmt.Errorf("--workers %d: must be ≥ 0", workers)
	}
	ec := &evaluatorCluster{workers: workers}
	ok := false
	defer func() {
		if !ok {
			ec.Close()
		}
	}()
	connect := func(name string) (*nats.Conn, error) {
		var extra []nats.Option
		if ec.srv != nil {
			extra = append(extra, ec.srv.InProcess())
		}
		nc, err := cluster.Connect(n.connectOptions(name), extra...)
		if err != nil {
			return nil, err
		}
		ec.conns = append(ec.conns, nc)
		return nc, nil
	}
	if n.url == "" {
		srv, err := cluster.StartServer(n.listen)
		if err != nil {
			return nil, err
		}
		ec.srv = srv
	}
	nc, err := connect("evopress search")
	if err != nil {
		return nil, err
	}
	co, err := cluster.NewCoordinator(nc, job, cluster.Options{Subject: n.subject, WorkerTimeout: n.workerTimeout, TaskTimeout: n.taskTimeout, Log: logger})
	if err != nil {
		return nil, err
	}
	ec.co = co
	stderr := cmd.ErrOrStderr()
	if ec.srv != nil && n.listen != "" {
		fmt.Fprintf(stderr, "NATS server listening on %s (subject %s): join with\n  evopress worker --nats %s --nats-subject %s --model MODEL --calib CALIB%s\n",
			ec.srv.ClientURL(), n.subject, ec.srv.ClientURL(), n.subject, map[bool]string{true: " --db DB", false: ""}[job.DBFingerprint != ""])
	}
	wctx, cancel := context.WithCancel(ctx)
	ec.cancel = cancel
	host, _ := os.Hostname()
	for i := range workers {
		wc, err := connect(fmt.Sprintf("evopress worker local%d", i))
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("local%d", i)
		if n.url != "" || n.listen != "" {
			id = fmt.Sprintf("%s-%d-local%d", host, os.Getpid(), i)
		}
		ec.wg.Add(1)
		go func() {
			defer ec.wg.Done()
			if err := cluster.RunWorker(wctx, wc, res, cluster.WorkerOptions{Subject: n.subject, ID: id, Log: logger}); err != nil {
				logger.Error("in-process worker stopped", "worker", id, "err", err)
			}
		}()
	}
	ok = true
	return ec, nil
}

// Close stops the in-process workers, the coordinator and the server.
func (ec *evaluatorCluster) Close() {
	if ec.cancel != nil {
		ec.cancel()
	}
	ec.wg.Wait()
	if ec.co != nil {
		ec.co.Close()
	}
	for _, c := range ec.conns {
		c.Close()
	}
	if ec.srv != nil {
		ec.srv.Shutdown()
	}
}

// clusterLogger logs cluster events on w: JSON lines with --log-json, else text.
func clusterLogger(w io.Writer, jsonLines bool, level slog.Level) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if jsonLines {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func newWorkerCmd() *cobra.Command {
	var n natsFlags
	var modelDir, calib, dbDir, id string
	var cacheMB, dbCacheMB int
	var once, logJSON, verbose bool
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Score candidates for searches running elsewhere (through NATS)",
		Long: `worker loads a model, the calibration text and (for sparse and quant searches) the level
database once, joins the search that serves --nats-subject on the NATS server --nats, and scores the
candidates it is sent until it is interrupted. Start searches with --nats URL (a NATS server of
your own) or --nats-listen HOST:PORT (the search starts an embedded server). A worker whose model,
database, calibration text or kernel implementation differs from the search's is refused and
exits with the reason; a worker waits for the next search when one ends (--once: exits).
Results do not depend on the workers: a search gives the same profile for a seed with any number.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			logger := clusterLogger(cmd.ErrOrStderr(), logJSON, level)
			lm, err := loadModel(modelDir)
			if err != nil {
				return err
			}
			text, source, err := readText(calib, assets.CalibText, data.Raw)
			if err != nil {
				return err
			}
			var d *db.DB
			if dbDir != "" {
				if d, err = db.Open(dbDir); err != nil {
					return err
				}
				if err := d.Check(lm.Fingerprint); err != nil {
					return err
				}
				d.SetCacheBudget(int64(dbCacheMB) << 20)
			}
			res := newWorkerResources(lm, text, source, d, cacheMB)
			host, _ := os.Hostname()
			if n.url == "" {
				n.url = nats.DefaultURL
			}
			// A worker may start before the search's server: it keeps trying to connect.
			nc, err := cluster.Connect(n.connectOptions(fmt.Sprintf("evopress worker %s-%d", host, os.Getpid())), nats.RetryOnFailedConnect(true))
			if err != nil {
				return err
			}
			defer nc.Close()
			logger.Info("worker ready", "model", lm.Name, "calib", source, "db", dbDir, "kernels", kernels.Implementation(), "nats", n.url)
			return cluster.RunWorker(cmd.Context(), nc, res, cluster.WorkerOptions{Subject: n.subject, ID: id, Once: once, Log: logger})
		},
	}
	n.registerConn(cmd, "NATS server of the search (nats://[USER:PASS@]HOST:PORT, tls://…, comma-separated list; default nats://127.0.0.1:4222)")
	fl := cmd.Flags()
	fl.StringVar(&modelDir, "model", "", "Hugging Face model directory (default: the embedded llama-pd-11m)")
	fl.StringVar(&calib, "calib", "", "calibration text file, the search's (default: the embedded calibration text)")
	fl.StringVar(&dbDir, "db", "", "level database, the search's (sparse and quant searches)")
	fl.StringVar(&id, "id", "", "worker name, unique among a search's workers (default HOST-PID)")
	fl.IntVar(&cacheMB, "cache-mb", 2048, "memory for cached dense distributions (MiB)")
	fl.IntVar(&dbCacheMB, "db-cache-mb", 1024, "memory for decoded database levels (MiB)")
	fl.BoolVar(&once, "once", false, "exit when the first search joined ends")
	fl.BoolVar(&logJSON, "log-json", false, "log as JSON lines")
	fl.BoolVar(&verbose, "verbose", false, "log every task")
	return cmd
}
