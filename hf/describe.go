package hf

// Description summarises a model directory: its architecture, parameters and files (what
// `evopress inspect` shows).
type Description struct {
	Path             string         `json:"path"`
	ModelType        string         `json:"model_type"`
	Layers           int            `json:"layers"`
	HiddenSize       int            `json:"hidden_size"`
	IntermediateSize int            `json:"intermediate_size"`
	Heads            int            `json:"heads"`
	KVHeads          int            `json:"kv_heads"`
	HeadDim          int            `json:"head_dim"`
	VocabSize        int            `json:"vocab_size"`
	TiedEmbeddings   bool           `json:"tied_embeddings"`
	RopeTheta        float64        `json:"rope_theta"`
	Parameters       int            `json:"parameters"`
	DTypes           map[string]int `json:"dtypes"` // parameters per stored dtype
	Tensors          int            `json:"tensors"`
	Files            []string       `json:"files"`
	// Fingerprint and LegacyFingerprint: see Checkpoint.Fingerprint and LegacyFingerprint.
	Fingerprint       string `json:"fingerprint"`
	LegacyFingerprint string `json:"legacy_fingerprint"`
}

// Describe reads dir's config.json and safetensors headers, and hashes the weights for the
// fingerprint (see Checkpoint.Fingerprint: cached after the first time).
func Describe(dir string) (*Description, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	d := &Description{Path: dir, ModelType: cfg.ModelType, Layers: cfg.NumHiddenLayers, HiddenSize: cfg.HiddenSize,
		IntermediateSize: cfg.IntermediateSize, Heads: cfg.NumAttentionHeads, KVHeads: cfg.NumKeyValueHeads, HeadDim: cfg.HeadDim,
		VocabSize: cfg.VocabSize, TiedEmbeddings: cfg.TieWordEmbeddings, RopeTheta: cfg.RopeTheta,
		DTypes: map[string]int{}, Tensors: ck.Len(), Files: ck.Files(), LegacyFingerprint: ck.LegacyFingerprint()}
	if d.Fingerprint, err = ck.Fingerprint(); err != nil {
		return nil, err
	}
	for _, n := range ck.Names() {
		info, _ := ck.Info(n)
		d.Parameters += info.Numel()
		d.DTypes[string(info.DType)] += info.Numel()
	}
	return d, nil
}
