package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/evopress/evopress/candidate"
	"github.com/evopress/evopress/cluster"
	"github.com/evopress/evopress/internal/kernels"
	"github.com/evopress/evopress/pipeline"
)

// dataFlags are the flags naming a command's model, calibration text and level database.
type dataFlags struct {
	model, calib, db    string
	seqLen, calibTokens int
	cacheMB, dbCacheMB  int
}

// modelFlag declares --model.
func modelFlag(fl *pflag.FlagSet, p *string, help string) {
	if help == "" {
		help = "Hugging Face model directory (default: the embedded llama-pd-11m)"
	}
	fl.StringVar(p, "model", "", help)
}

// profileFlags declares --model, --profile and --db: a model, optionally compressed by a profile.
func profileFlags(fl *pflag.FlagSet, model, prof, db *string) {
	modelFlag(fl, model, "")
	fl.StringVar(prof, "profile", "", "compression profile (JSON) to apply before evaluating")
	fl.StringVar(db, "db", "", "level database for sparse and quant profiles (default: the profile's db.path)")
}

// register declares --model, --calib, --seq-len, --calib-tokens and --cache-mb, and with a
// database kind ("sparse", "quant") --db and --db-cache-mb.
func (f *dataFlags) register(fl *pflag.FlagSet, dbKind string) {
	modelFlag(fl, &f.model, "")
	fl.StringVar(&f.calib, "calib", "", "calibration text file (default: the embedded calibration text)")
	fl.IntVar(&f.seqLen, "seq-len", pipeline.DefaultSeqLen, "tokens per calibration sequence")
	fl.IntVar(&f.calibTokens, "calib-tokens", pipeline.DefaultCalibTokens, "calibration pool: the first N tokens' chunks (0: the whole file)")
	fl.IntVar(&f.cacheMB, "cache-mb", pipeline.DefaultCacheMB, "memory for cached dense distributions (MiB)")
	atLeast(fl, 2, "seq-len")
	atLeast(fl, 0, "calib-tokens")
	atLeast(fl, 1, "cache-mb")
	if dbKind != "" {
		build := dbKind
		if dbKind == "quant" {
			build = "quant|gguf"
		}
		fl.StringVar(&f.db, "db", "", dbKind+" level database (evopress db build "+build+")")
		fl.IntVar(&f.dbCacheMB, "db-cache-mb", pipeline.DefaultDBCacheMB, "memory for cached database levels, held as stored (MiB)")
		atLeast(fl, 1, "db-cache-mb")
	}
}

// ggufFlags declares the flags of a quant search or baseline over a gguf database: the file's
// size and the types of its other tensors.
func ggufFlags(fl *pflag.FlagSet, spec *pipeline.ModeSpec) {
	fl.Var(sizeFlag{&spec.TargetSize}, "target-size", "gguf database: the whole GGUF file's size instead of --target (bytes, or 5.2MB, 300MiB…)")
	fl.StringVar(&spec.TokenEmbeddingType, "token-embedding-type", "", "gguf database: the file's token embedding type (default: "+pipeline.DefaultTokenEmbeddingType+" as llama-quantize's Q4_K_M; a tied one as the output)")
	fl.StringVar(&spec.OutputTensorType, "output-tensor-type", "", "gguf database: the file's output tensor type (default: "+pipeline.DefaultOutputTensorType+", q8_0 when rows do not fit 256-weight blocks)")
}

// computeFlag declares --compute, the arithmetic of the weight products (kernels.Compute), on the
// commands that score or evaluate models; the others always compute in float32.
func computeFlag(fl *pflag.FlagSet) {
	fl.String("compute", "fp32", "arithmetic of the products with weights: fp32, or bf16 (CPUs with AVX512_BF16: about twice the throughput, activations and weights rounded to bfloat16, so the numbers change; recorded as the kernels in profiles and checkpoints, and every cluster worker must use the same)")
}

// selectCompute applies the command's --compute (float32 for commands without it).
func selectCompute(cmd *cobra.Command) error {
	c := kernels.ComputeF32
	if fl := cmd.Flags().Lookup("compute"); fl != nil {
		var err error
		if c, err = kernels.ParseCompute(fl.Value.String()); err != nil {
			return fmt.Errorf("--compute: %w", err)
		}
	}
	if err := kernels.SetCompute(c); err != nil {
		return fmt.Errorf("--compute %v: %w", c, err)
	}
	return nil
}

// sizeFlag is a file size (pipeline.ParseSize).
type sizeFlag struct{ p *int64 }

func (f sizeFlag) String() string {
	if f.p == nil || *f.p == 0 {
		return ""
	}
	return strconv.FormatInt(*f.p, 10)
}
func (f sizeFlag) Set(s string) (err error) { *f.p, err = pipeline.ParseSize(s); return err }
func (f sizeFlag) Type() string             { return "size" }

// minAnnotation is the flag annotation holding the least value a count or size flag accepts.
const minAnnotation = "evopress/min"

// atLeast declares that the named integer flags may not be given below min. The libraries read
// 0 (and some, negative values) as "the default" or "all", which a user who typed the value did
// not ask for; min is 0 only where the help documents what 0 means.
func atLeast(fl *pflag.FlagSet, min int, names ...string) {
	for _, n := range names {
		if err := fl.SetAnnotation(n, minAnnotation, []string{strconv.Itoa(min)}); err != nil {
			panic(err) // a flag name typo: a programming error
		}
	}
}

// atLeastDuration is atLeast for duration flags.
func atLeastDuration(fl *pflag.FlagSet, min time.Duration, names ...string) {
	for _, n := range names {
		if err := fl.SetAnnotation(n, minAnnotation, []string{min.String()}); err != nil {
			panic(err) // a flag name typo: a programming error
		}
	}
}

// checkMinimums refuses a flag given below its minimum (atLeast, atLeastDuration), naming the
// flag.
func checkMinimums(cmd *cobra.Command) error {
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		m, ok := f.Annotations[minAnnotation]
		if !ok || err != nil {
			return
		}
		if f.Value.Type() == "duration" {
			min, _ := time.ParseDuration(m[0])
			if v, perr := time.ParseDuration(f.Value.String()); perr == nil && v < min {
				err = fmt.Errorf("--%s %s: must be at least %s", f.Name, v, min)
			}
			return
		}
		min, _ := strconv.ParseInt(m[0], 10, 64)
		if v, perr := strconv.ParseInt(f.Value.String(), 10, 64); perr == nil && v < min {
			err = fmt.Errorf("--%s %d: must be at least %d", f.Name, v, min)
		}
	})
	return err
}

func (f *dataFlags) data() pipeline.Data {
	return pipeline.Data{ModelDir: f.model, CalibFile: f.calib, SeqLen: f.seqLen, CalibTokens: f.calibTokens,
		DBDir: f.db, CacheMB: f.cacheMB, DBCacheMB: f.dbCacheMB}
}

// flagOf maps the libraries' request and option fields to this command line's flags.
var flagOf = map[string]string{
	"Out": "--out", "RunDir": "--run-dir", "SeqLen": "--seq-len", "CalibTokens": "--calib-tokens",
	"Fitness": "--fitness", "SubBatch": "--sub-batch", "Mode.Kind": "mode", "Mode.Target": "--target",
	"Mode.GroupBy": "--group-by", "Method": "--method", "Tokens": "--tokens", "Samples": "--samples",
	"WindowPositions": "--window-positions", "Cluster.Workers": "--workers", "Cluster.Listen": "--nats-listen",
	"Build.Out": "--out", "Force": "--force", "Type": "--type", "Format": "--format", "Packed": "--packed",
	"ModelDir": "--model", "DBDir": "--db", "listen address": "--nats-listen", "NKey": "--nats-nkey",
	"TLSCert": "--nats-tls-cert", "Subject": "--nats-subject", "AddBOS": "--add-bos", "Tasks": "--task",
	"Limit": "--limit", "MaxSeqs": "--max-seqs", "Batch": "--batch", "Build.Batch": "--batch", "MaxLen": "--max-len", "Chunks": "--chunks",
	"CalibFile": "--calib", "KLTopK": "--kl-topk", "Resume": "--resume", "ScoresOut": "--scores", "Cache": "--cache",
	"Mode.TargetSize": "--target-size", "Mode.TokenEmbeddingType": "--token-embedding-type",
	"Mode.OutputTensorType": "--output-tensor-type", "ImatrixFile": "--imatrix", "Build.GGUF.Types": "--types",
	"CacheMB": "--cache-mb", "DBCacheMB": "--db-cache-mb", "MaxProfiles": "--max-profiles",
	"URL": "--nats", "Listen": "--nats-listen", "Creds": "--nats-creds",
	"Protocol": "--protocol", "KLDBase": "--kld-base", "SaveKLDBase": "--save-kld-base", "DataFile": "--data", "KL": "--kl",
	"FileType": "--ftype", "Imatrix": "--imatrix", "TokenEmbeddingType": "--token-embedding-type", "OutputTensorType": "--output-tensor-type",
	"Cluster.WorkerTimeout": "--worker-timeout", "Cluster.TaskTimeout": "--task-timeout",
}

// cliError says which flag a library error is about.
func cliError(cmd *cobra.Command, err error) error {
	var opt interface {
		Option() string
		Describe(name string) string
	}
	var fields interface { // errors naming several fields (pipeline.FieldsError, ObjectiveError)
		DescribeWith(name func(field string) string) string
	}
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fields):
		return errors.New(fields.DescribeWith(func(f string) string {
			if flag, ok := flagOf[f]; ok {
				return flag
			}
			return f
		}))
	case errors.As(err, &opt):
		if flag, ok := flagOf[opt.Option()]; ok {
			return errors.New(opt.Describe(flag))
		}
		return err
	case errors.Is(err, cluster.ErrNoCredentials):
		return fmt.Errorf("--nats-listen %s accepts connections from other hosts and has no credentials: give nats://USER:PASS@HOST:PORT or nats://TOKEN@HOST:PORT, --nats-nkey SEED_FILE, or --nats-tls-cert and --nats-tls-key with --nats-tls-ca (client certificates); or --insecure to let anyone who reaches it join",
			cmd.Flags().Lookup("nats-listen").Value)
	case errors.Is(err, pipeline.ErrNoDatabase), errors.Is(err, candidate.ErrNoDatabase):
		kind := "sparse|quant"
		if n := cmd.Name(); n == "sparse" || n == "quant" {
			kind = n
		}
		return fmt.Errorf("--db is required: the level database (build one with `evopress db build %s`)", kind)
	}
	var ie *pipeline.InterruptedError
	if errors.As(err, &ie) {
		fmt.Fprintf(cmd.ErrOrStderr(), "interrupted: resume with the same command and --resume (checkpoint %s)\n", ie.Checkpoint)
	}
	return err
}

// wrapErrors makes every command below root report library errors in terms of its flags.
func wrapErrors(root *cobra.Command) {
	for _, c := range root.Commands() {
		wrapErrors(c)
	}
	if run := root.RunE; run != nil {
		root.RunE = func(cmd *cobra.Command, args []string) error {
			if err := checkMinimums(cmd); err != nil {
				return err
			}
			if err := selectCompute(cmd); err != nil {
				return cliError(cmd, err)
			}
			defer kernels.SetCompute(kernels.ComputeF32) // commands run in-process (tests) start from the default
			return cliError(cmd, run(cmd, args))
		}
	}
}

// commandLine reconstructs the command as typed: its path and the flags that were set.
func commandLine(cmd *cobra.Command) string {
	parts := []string{cmd.CommandPath()}
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		v := fl.Value.String()
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			v = strings.Join(sv.GetSlice(), ",")
		}
		if fl.Value.Type() == "bool" {
			parts = append(parts, "--"+fl.Name)
			if v != "true" {
				parts[len(parts)-1] += "=" + v
			}
			return
		}
		if v == "" || strings.ContainsAny(v, " \t'\"$") {
			v = "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
		}
		parts = append(parts, "--"+fl.Name, v)
	})
	return strings.Join(parts, " ")
}

// progressLine returns a progress callback that rewrites one terminal line on w:
// "label: done/total unit, elapsed, ETA".
func progressLine(w io.Writer, label, unit string) func(done, total int, el time.Duration) {
	return func(done, total int, el time.Duration) {
		eta := time.Duration(float64(el) / float64(done) * float64(total-done))
		fmt.Fprintf(w, "\r%s: %d/%d %s, %s elapsed, ETA %s   ", label, done, total, unit, el.Round(time.Second), eta.Round(time.Second))
		if done == total {
			fmt.Fprintln(w)
		}
	}
}
