package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/evopress/evopress/assets"
	"github.com/evopress/evopress/data"
	"github.com/evopress/evopress/model"
	"github.com/evopress/evopress/tokenizer"
)

// Loaded is a model with its tokenizer and identity.
type Loaded struct {
	Model     *model.Model
	Tokenizer *tokenizer.Tokenizer
	// Name is the model directory, or the embedded model's name.
	Name string
	// Fingerprint identifies the model, weights included (model.Identity); LegacyFingerprint is
	// the one older versions recorded, without the weights: a database, profile or run stamped
	// with it is refused with advice to re-stamp it (Restamp).
	Fingerprint       string
	LegacyFingerprint string
	LoadTime          time.Duration
	// embedded is set for the embedded default model.
	embedded bool
}

// LoadModel loads the Hugging Face model directory dir, or the embedded default model when dir
// is empty, BF16 and F16 weights kept in their dtype (model.LoadOptions.KeepDType) and mapped
// from the checkpoint files (model.LoadOptions.Mmap; NoMmapEnv turns it off). The weights
// are hashed for the fingerprint while they are read
// (model.LoadIdentified): every command that loads a model records or checks it, and after the
// first load of a checkpoint file its digests come from the user cache.
func LoadModel(dir string) (*Loaded, error) {
	start := time.Now()
	if dir == "" {
		m, id, err := model.LoadIdentifiedFSWith(assets.FS(), assets.ModelDir, loadOptions())
		if err != nil {
			return nil, fmt.Errorf("embedded model: %w", err)
		}
		tj, err := fs.ReadFile(assets.FS(), assets.ModelDir+"/tokenizer.json")
		if err != nil {
			return nil, err
		}
		tc, _ := fs.ReadFile(assets.FS(), assets.ModelDir+"/tokenizer_config.json")
		tok, err := tokenizer.Parse(tj, tc, assets.ModelName+"/tokenizer.json")
		if err != nil {
			return nil, err
		}
		return &Loaded{Model: m, Tokenizer: tok, Name: assets.ModelName, Fingerprint: id.Fingerprint,
			LegacyFingerprint: id.LegacyFingerprint, LoadTime: time.Since(start), embedded: true}, nil
	}
	m, id, err := model.LoadIdentifiedWith(dir, loadOptions())
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > m.Vocab {
		return nil, fmt.Errorf("%s: tokenizer has %d tokens but config.json vocab_size is %d", dir, tok.VocabSize(), m.Vocab)
	}
	return &Loaded{Model: m, Tokenizer: tok, Name: dir, Fingerprint: id.Fingerprint, LegacyFingerprint: id.LegacyFingerprint,
		LoadTime: time.Since(start)}, nil
}

// NoMmapEnv names the environment variable that, set to anything but "" or "0", makes LoadModel
// read the weights into memory instead of mapping the checkpoint files (llama.cpp's --no-mmap):
// for checkpoints on a file system that may change under the process or that maps slowly.
const NoMmapEnv = "EVOPRESS_NO_MMAP"

// loadOptions is how LoadModel holds weights: BF16 and F16 weights stay in their dtype (half the
// memory of float32), converted exactly inside the matrix multiplies, so results are unchanged;
// they are read-only views of the memory-mapped files unless NoMmapEnv says otherwise.
func loadOptions() model.LoadOptions {
	v := os.Getenv(NoMmapEnv)
	return model.LoadOptions{KeepDType: true, Mmap: v == "" || v == "0"}
}

// loadOr returns lm when it is set (a model the caller already loaded), else the model in dir.
func loadOr(lm *Loaded, dir string) (*Loaded, error) {
	if lm != nil {
		return lm, nil
	}
	return LoadModel(dir)
}

// Text is a text file's content with its provenance.
type Text struct {
	Body string
	// Source names the file: its cleaned path, or "embedded:NAME".
	Source string
	// SHA256 is the hex SHA-256 of Body (after format normalisation).
	SHA256 string
}

// ReadText reads the text file path in format f; an empty path reads the embedded file
// embedded (assets.CalibText or assets.EvalText).
func ReadText(path, embedded string, f data.Format) (*Text, error) {
	var body, source string
	if path == "" {
		b, err := assets.ReadFile(embedded)
		if err != nil {
			return nil, err
		}
		if body, err = data.Normalize(string(b), f); err != nil {
			return nil, err
		}
		source = "embedded:" + embedded
	} else {
		t, err := data.ReadText(path, f)
		if err != nil {
			return nil, err
		}
		body, source = t, filepath.Clean(path)
	}
	sum := sha256.Sum256([]byte(body))
	return &Text{Body: body, Source: source, SHA256: hex.EncodeToString(sum[:])}, nil
}

// Calibration is a calibration pool: the text cut into sequences of SeqLen tokens.
type Calibration struct {
	Text   *Text
	SeqLen int
	// Tokens caps the pool to the first Tokens/SeqLen chunks (0: the whole text).
	Tokens int
	Pool   [][]int
}

// NewCalibration tokenizes text (without special tokens) and cuts it into the pool.
func NewCalibration(lm *Loaded, text *Text, seqLen, tokens int) (*Calibration, error) {
	if seqLen < 2 {
		return nil, invalid("SeqLen", seqLen, "must be at least 2")
	}
	if tokens < 0 {
		return nil, invalid("CalibTokens", tokens, "must be ≥ 0 (0: the whole text)")
	}
	if err := checkContext(lm, seqLen); err != nil {
		return nil, err
	}
	pool, err := data.CalibrationPool(lm.Tokenizer.Encode(text.Body, false), seqLen, tokens)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", text.Source, err)
	}
	return &Calibration{Text: text, SeqLen: seqLen, Tokens: tokens, Pool: pool}, nil
}

// checkContext refuses sequences longer than the model's context (hf.Config.ContextLength):
// positions past max_position_embeddings (or its rope-scaled extension) were never trained, so a
// perplexity, KL or calibration statistic computed there describes the model used outside its
// range, which no request asks for. It is an error rather than a warning because the numbers
// would otherwise be recorded in profiles and databases as if they were valid.
func checkContext(lm *Loaded, seqLen int) error {
	if n := lm.Model.Config.ContextLength(); seqLen > n {
		return invalid("SeqLen", seqLen, "longer than the model's context of %d positions (%s)", n, lm.Model.Config.DescribeContext())
	}
	return nil
}

// The embedded calibration text and its format: the default of every request.
const (
	defaultCalib = assets.CalibText
	rawFormat    = data.Raw
)
