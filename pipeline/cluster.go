package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/cluster"
	"github.com/evopress/evopress/db"
	"github.com/evopress/evopress/fitness"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/profile"
	"github.com/evopress/evopress/search"
)

// Worker is what a cluster worker holds — the model, the calibration text and (for sparse and
// quant searches) the level database — and how it turns a search's job into an evaluator. It
// implements cluster.Preparer; a search's in-process workers share one.
type Worker struct {
	lm      *Loaded
	text    *Text
	d       *db.DB
	cacheMB int

	mu       sync.Mutex
	teachers map[string]*fitness.Teacher
	files    map[[2]string]*model.Model // fileTensors of the dense model, by its two types
}

// fileTensors returns the dense model with its token embedding and output as a GGUF file of
// those types holds them, made once per pair of types and shared by every job.
func (w *Worker) fileTensors(tokEmb, output string) (*model.Model, error) {
	key := [2]string{tokEmb, output}
	w.mu.Lock()
	defer w.mu.Unlock()
	if m := w.files[key]; m != nil {
		return m, nil
	}
	m, err := fileTensors(w.lm.Model, tokEmb, output)
	if err != nil {
		return nil, fmt.Errorf("job token_embedding_type %q, output_tensor_type %q: %w", tokEmb, output, err)
	}
	if w.files == nil {
		w.files = map[[2]string]*model.Model{}
	}
	w.files[key] = m
	return m, nil
}

// NewWorker returns the worker resources over a loaded model, its calibration text and level
// database (nil for drop searches only); cacheMB bounds each teacher's dense cache.
func NewWorker(lm *Loaded, text *Text, d *db.DB, cacheMB int) *Worker {
	return &Worker{lm: lm, text: text, d: d, cacheMB: cacheMB, teachers: map[string]*fitness.Teacher{}}
}

// Identity is what a search checks before it hands the worker tasks.
func (w *Worker) Identity() cluster.Identity {
	id := cluster.Identity{ModelFingerprint: w.lm.Fingerprint, CalibSHA256: w.text.SHA256, Kernels: kernels.Implementation()}
	if w.d != nil {
		id.DBFingerprint = w.d.Fingerprint()
	}
	return id
}

// teacher returns the dense model's teacher over the job's calibration pool, shared by every
// job with the same pool and top-k.
func (w *Worker) teacher(job *cluster.Job) (*fitness.Teacher, error) {
	key := teacherKey(job)
	w.mu.Lock()
	defer w.mu.Unlock()
	if t := w.teachers[key]; t != nil {
		return t, nil
	}
	cal, err := NewCalibration(w.lm, w.text, job.SeqLen, job.CalibTokens)
	if err != nil {
		return nil, err
	}
	if len(cal.Pool) != job.PoolChunks {
		return nil, fmt.Errorf("%s: the pool has %d chunks of %d tokens here, the search's has %d", w.text.Source, len(cal.Pool), job.SeqLen, job.PoolChunks)
	}
	t, err := fitness.NewTeacher(w.lm.Model, cal.Pool, fitness.Options{TopK: job.TopK, CacheBytes: int64(w.cacheMB) << 20})
	if err != nil {
		return nil, err
	}
	w.teachers[key] = t
	return t, nil
}

// seedTeacher registers a teacher the search already made for the job's pool.
func (w *Worker) seedTeacher(job *cluster.Job, t *fitness.Teacher) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.teachers[teacherKey(job)] = t
}

// teacherKey identifies what a teacher depends on: the pool's shape and the top-k.
func teacherKey(job *cluster.Job) string {
	return fmt.Sprintf("%d/%d/%d", job.SeqLen, job.CalibTokens, job.TopK)
}

// Prepare implements cluster.Preparer: a new evaluator (each worker counts its own block
// forwards) over the shared teacher.
func (w *Worker) Prepare(job *cluster.Job) (search.Evaluator, error) {
	if reason := job.Mismatch(w.Identity()); reason != "" {
		return nil, fmt.Errorf("this worker has %s", reason)
	}
	kind, err := fitness.ParseKind(job.Fitness)
	if err != nil {
		return nil, err
	}
	var build fitness.Builder
	switch job.Mode {
	case profile.ModeDrop:
		if build, err = candidate.DropBuilder(w.lm.Model, job.Units); err != nil {
			return nil, err
		}
	case profile.ModeSparse, profile.ModeQuant:
		if w.d == nil || w.d.ProfileMode() != job.Mode {
			return nil, fmt.Errorf("a %s search needs a %s level database: this worker has none of that kind", job.Mode, job.Mode)
		}
		for _, u := range job.Units {
			if len(w.d.Levels(u)) == 0 {
				return nil, fmt.Errorf("database %s has no layer %s", w.d.Dir(), u)
			}
		}
		base := w.lm.Model
		if job.TokenEmbeddingType != "" {
			if w.d.Mode() != db.ModeGGUF {
				return nil, fmt.Errorf("a search with a %s token embedding needs a GGUF level database: this worker's %s is not one", job.TokenEmbeddingType, w.d.Dir())
			}
			if base, err = w.fileTensors(job.TokenEmbeddingType, job.OutputTensorType); err != nil {
				return nil, err
			}
		}
		build = dbBuilder(w.d, base, job.Units)
	default:
		return nil, fmt.Errorf("unknown search mode %q", job.Mode)
	}
	t, err := w.teacher(job)
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

// ClusterOptions say where a search's candidates are scored: by workers joined through NATS.
type ClusterOptions struct {
	// URL is a NATS server of the user's; empty: an embedded server is started.
	URL string
	// Listen makes the embedded server listen on HOST:PORT (or nats://USER:PASS@HOST:PORT,
	// nats://TOKEN@HOST:PORT) so that worker processes elsewhere can join; empty: in-process
	// connections only. An address other hosts can reach needs credentials (see
	// cluster.StartServer): a user and password or a token in it, Connect.NKey, or TLS client
	// certificates, unless Insecure.
	Listen string
	// Connect holds the credentials and TLS files for URL. With Listen they configure the
	// embedded server instead: NKey is the seed file clients must prove they hold, TLSCert and
	// TLSKey the server's certificate, and TLSCA the CA that must have signed the clients'
	// certificates (cluster.ServerOptions); Creds needs a server of the user's.
	Connect cluster.ConnectOptions
	// Insecure lets a Listen address that other hosts can reach go without credentials.
	Insecure bool
	// Subject is the subject prefix shared by the search and its workers.
	Subject string
	// Workers is the number of in-process workers.
	Workers int
	// WorkerTimeout and TaskTimeout: see cluster.Options (0: 15 s and never; negative durations
	// are refused).
	WorkerTimeout, TaskTimeout time.Duration
	// Log receives cluster events (nil: discarded).
	Log *slog.Logger
}

// DefaultCluster is what a search uses when its request has no ClusterOptions: an embedded
// in-process server and one in-process worker.
func DefaultCluster() *ClusterOptions {
	return &ClusterOptions{Subject: cluster.DefaultSubject, Workers: 1, WorkerTimeout: 15 * time.Second}
}

// evaluation is a search's coordinator with the NATS server, connections and in-process
// workers behind it.
type evaluation struct {
	co     *cluster.Coordinator
	srv    *cluster.Server
	conns  []*nats.Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// check refuses options no search can run with; RunSearch calls it before anything is
// loaded or written.
func (o *ClusterOptions) check() error {
	if o.URL != "" && o.Listen != "" {
		return invalid("Cluster.Listen", o.Listen, "a search connects to a NATS server (URL) or starts one, not both")
	}
	if o.Workers < 0 {
		return invalid("Cluster.Workers", o.Workers, "must be ≥ 0")
	}
	if o.WorkerTimeout < 0 {
		return invalid("Cluster.WorkerTimeout", o.WorkerTimeout, "must be > 0 (0: the default, 15s)")
	}
	if o.TaskTimeout < 0 {
		return invalid("Cluster.TaskTimeout", o.TaskTimeout, "must be ≥ 0 (0: never)")
	}
	if o.Workers == 0 && o.URL == "" && o.Listen == "" {
		return invalid("Cluster.Workers", 0, "no worker could ever join: in-process connections only (give a listen address or a server URL, or at least one worker)")
	}
	if o.Listen != "" && o.Connect.Creds != "" {
		return invalid("Creds", o.Connect.Creds, "a credentials file (JWT) needs a NATS server of your own (URL); the embedded server takes a user and password or a token in its listen address, an NKey seed, or TLS client certificates")
	}
	if o.URL == "" {
		return o.serverOptions().Check()
	}
	co := o.Connect
	co.URL = o.URL
	return co.Check()
}

func (o *ClusterOptions) serverOptions() cluster.ServerOptions {
	c := o.Connect
	return cluster.ServerOptions{Listen: o.Listen, NKey: c.NKey, TLSCert: c.TLSCert, TLSKey: c.TLSKey, TLSCA: c.TLSCA, Insecure: o.Insecure}
}

// startEvaluation starts the evaluation side of a search: the embedded NATS server (unless
// o.URL names one), the coordinator and the in-process workers; messages go to logw.
func startEvaluation(ctx context.Context, o *ClusterOptions, job cluster.Job, w *Worker, logw io.Writer) (*evaluation, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	logger := o.Log
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	subject := o.Subject
	if subject == "" {
		subject = cluster.DefaultSubject
	}
	ev := &evaluation{}
	ok := false
	defer func() {
		if !ok {
			ev.Close()
		}
	}()
	connect := func(name string) (*nats.Conn, error) {
		var nc *nats.Conn
		var err error
		if ev.srv != nil {
			nc, err = cluster.Connect(cluster.ConnectOptions{Name: name}, ev.srv.InProcess())
		} else {
			co := o.Connect
			co.URL, co.Name = o.URL, name
			nc, err = cluster.Connect(co)
		}
		if err != nil {
			return nil, err
		}
		ev.conns = append(ev.conns, nc)
		return nc, nil
	}
	if o.URL == "" {
		srv, err := cluster.StartServer(o.serverOptions())
		if err != nil {
			return nil, err
		}
		ev.srv = srv
	}
	nc, err := connect("evopress search")
	if err != nil {
		return nil, err
	}
	co, err := cluster.NewCoordinator(nc, job, cluster.Options{Subject: subject, WorkerTimeout: o.WorkerTimeout, TaskTimeout: o.TaskTimeout, Log: logger})
	if err != nil {
		return nil, err
	}
	ev.co = co
	if ev.srv != nil && o.Listen != "" {
		fmt.Fprintf(logw, "NATS server listening on %s (subject %s): join with\n  %s\n", ev.srv.ClientURL(), subject, joinHint(ev.srv, subject, job))
	}
	wctx, cancel := context.WithCancel(ctx)
	ev.cancel = cancel
	host, _ := os.Hostname()
	for i := range o.Workers {
		wc, err := connect(fmt.Sprintf("evopress worker local%d", i))
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("local%d", i)
		if o.URL != "" || o.Listen != "" {
			id = fmt.Sprintf("%s-%d-local%d", host, os.Getpid(), i)
		}
		ev.wg.Add(1)
		go func() {
			defer ev.wg.Done()
			if err := cluster.RunWorker(wctx, wc, w, cluster.WorkerOptions{Subject: subject, ID: id, Log: logger}); err != nil {
				logger.Error("in-process worker stopped", "worker", id, "err", err)
			}
		}()
	}
	ok = true
	return ev, nil
}

// joinHint is the worker command line that joins a search on srv (at an address a worker can
// use: cluster.Server.JoinURL), credentials as placeholders.
func joinHint(srv *cluster.Server, subject string, job cluster.Job) string {
	need := srv.Requires()
	url := srv.JoinURL()
	scheme, rest, _ := strings.Cut(url, "://")
	switch {
	case need.UserPassword:
		url = scheme + "://USER:PASSWORD@" + rest
	case need.Token:
		url = scheme + "://TOKEN@" + rest
	}
	hint := "evopress worker --nats " + url + " --nats-subject " + subject
	if need.NKey {
		hint += " --nats-nkey SEED_FILE"
	}
	if need.TLS {
		hint += " --nats-tls-ca SERVER_CA"
	}
	if need.ClientCert {
		hint += " --nats-tls-cert CERT --nats-tls-key KEY"
	}
	hint += " --model MODEL --calib CALIB"
	if job.DBFingerprint != "" {
		hint += " --db DB"
	}
	return hint
}

// Close stops the in-process workers, the coordinator and the server.
func (ev *evaluation) Close() {
	if ev.cancel != nil {
		ev.cancel()
	}
	ev.wg.Wait()
	if ev.co != nil {
		ev.co.Close()
	}
	for _, c := range ev.conns {
		c.Close()
	}
	if ev.srv != nil {
		ev.srv.Shutdown()
	}
}

// WorkerRequest describes a standalone worker process (evopress worker).
type WorkerRequest struct {
	// ModelDir is the model ("" for the embedded one), CalibFile the search's calibration text
	// ("" for the embedded one), DBDir its level database (sparse and quant searches).
	ModelDir, CalibFile, DBDir string
	// CacheMB bounds the dense-distribution cache, DBCacheMB the level cache (MiB; 0:
	// the defaults, negative sizes are refused).
	CacheMB, DBCacheMB int
}

// NewWorkerFor loads what a WorkerRequest names.
func NewWorkerFor(req WorkerRequest) (*Worker, error) {
	dt := Data{CacheMB: req.CacheMB, DBCacheMB: req.DBCacheMB}
	if err := dt.defaults(); err != nil {
		return nil, err
	}
	req.CacheMB, req.DBCacheMB = dt.CacheMB, dt.DBCacheMB
	lm, err := LoadModel(req.ModelDir)
	if err != nil {
		return nil, err
	}
	text, err := ReadText(req.CalibFile, defaultCalib, rawFormat)
	if err != nil {
		return nil, err
	}
	var d *db.DB
	if req.DBDir != "" {
		if d, err = OpenDB(req.DBDir, lm, req.DBCacheMB, ""); err != nil {
			return nil, err
		}
	}
	return NewWorker(lm, text, d, req.CacheMB), nil
}

// Model is the worker's loaded model.
func (w *Worker) Model() *Loaded { return w.lm }

// Calib is the worker's calibration text.
func (w *Worker) Calib() *Text { return w.text }
