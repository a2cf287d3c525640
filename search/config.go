package search

import (
	"fmt"
	"slices"
)

// DefaultInitTokens is the size of the batch that scores a mode's initial candidates when
// Config.InitTokens is zero.
const DefaultInitTokens = 2048

// Config holds the parameters of one search run. Offspring, Stages, Generations and InitTokens
// come from a mode's defaults and the CLI (see Settings and ResolveSettings); Seed, SeqLen and
// PoolChunks describe the calibration pool the evaluator scores on.
type Config struct {
	// Offspring is λ, the number of distinct offspring made per generation (≥ 1).
	Offspring int `json:"offspring"`
	// Stages is the multi-step selection schedule (see ParseStages).
	Stages []Stage `json:"stages"`
	// Generations is the number of generations to run (≥ 0). A resumed run may ask for more
	// generations than the run it continues.
	Generations int `json:"generations"`
	// InitTokens is the token budget of the batch that scores the initial candidates when a mode
	// offers more than one (it must then fit the pool); 0 means DefaultInitTokens.
	InitTokens int `json:"init_tokens"`
	// Seed seeds the single random stream of the run.
	Seed uint64 `json:"seed"`
	// SeqLen is the length in tokens of one calibration chunk (≥ 1).
	SeqLen int `json:"seq_len"`
	// PoolChunks is the number of calibration chunks batches are drawn from (≥ 1).
	PoolChunks int `json:"pool_chunks"`
	// MaxAttempts bounds the mutation attempts spent making one generation's offspring before
	// Run gives up (the neighbourhood of the parent is too small for λ distinct offspring);
	// 0 means 1000 + 100·Offspring.
	MaxAttempts int `json:"max_attempts,omitempty"`
}

// NewConfig combines search settings with the calibration pool's shape and a seed.
func NewConfig(s Settings, seed uint64, seqLen, poolChunks int) Config {
	return Config{
		Offspring:   s.Offspring,
		Stages:      slices.Clone(s.Stages),
		Generations: s.Generations,
		InitTokens:  s.InitTokens,
		Seed:        seed,
		SeqLen:      seqLen,
		PoolChunks:  poolChunks,
	}
}

// withDefaults fills the zero-valued optional fields.
func (c Config) withDefaults() Config {
	if c.InitTokens == 0 {
		c.InitTokens = DefaultInitTokens
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 1000 + 100*c.Offspring
	}
	c.Stages = slices.Clone(c.Stages)
	return c
}

// Validate checks the configuration, naming the offending field. Zero InitTokens and
// MaxAttempts are accepted (they mean the defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Offspring < 1 {
		return fmt.Errorf("search: config: offspring = %d, want at least 1", c.Offspring)
	}
	if c.Generations < 0 {
		return fmt.Errorf("search: config: generations = %d, want at least 0", c.Generations)
	}
	if c.InitTokens < 0 {
		return fmt.Errorf("search: config: init tokens = %d, want at least 1 (0 for the default %d)", c.InitTokens, DefaultInitTokens)
	}
	if c.MaxAttempts < 0 {
		return fmt.Errorf("search: config: max attempts = %d, want at least 1 (0 for the default)", c.MaxAttempts)
	}
	if c.SeqLen < 1 {
		return fmt.Errorf("search: config: seq len = %d, want at least 1", c.SeqLen)
	}
	if c.PoolChunks < 1 {
		return fmt.Errorf("search: config: pool chunks = %d, want at least 1", c.PoolChunks)
	}
	if err := ValidateStages(c.Stages); err != nil {
		return fmt.Errorf("search: config: %w", err)
	}
	for i, st := range c.Stages[:len(c.Stages)-1] {
		if st.Survivors > c.Offspring {
			return fmt.Errorf("search: config: stage %d (%s) keeps %d survivors but a generation has only %d offspring",
				i+1, st, st.Survivors, c.Offspring)
		}
	}
	for i, st := range c.Stages {
		if n := chunksFor(st.Tokens, c.SeqLen); n > c.PoolChunks {
			return fmt.Errorf("search: config: stage %d (%s) needs %d chunks of %d tokens but the calibration pool holds only %d chunks",
				i+1, st, n, c.SeqLen, c.PoolChunks)
		}
	}
	return nil
}

// checkInitPool checks that the init batch fits the pool; Run checks it only when a mode
// offers several initial profiles (otherwise no init batch is drawn).
func (c Config) checkInitPool() error {
	if n := chunksFor(c.InitTokens, c.SeqLen); n > c.PoolChunks {
		return fmt.Errorf("search: config: init tokens %d need %d chunks of %d tokens but the calibration pool holds only %d chunks",
			c.InitTokens, n, c.SeqLen, c.PoolChunks)
	}
	return nil
}

// chunksFor is the number of chunks of a batch of the given token budget: max(1, tokens/seqLen).
func chunksFor(tokens, seqLen int) int {
	return max(1, tokens/seqLen)
}

// Settings are the search parameters a mode has defaults for and the CLI can override.
type Settings struct {
	Offspring   int     `json:"offspring"`
	Stages      []Stage `json:"stages"`
	Generations int     `json:"generations"`
	InitTokens  int     `json:"init_tokens"`
}

// Validate checks the settings alone (Config.Validate also checks them against the pool).
func (s Settings) Validate() error {
	return Config{Offspring: s.Offspring, Stages: s.Stages, Generations: s.Generations,
		InitTokens: s.InitTokens, SeqLen: 1, PoolChunks: 1 << 30}.Validate()
}

// Preset names accepted by ResolveSettings.
const (
	// PresetPaper uses the mode's defaults, those of the paper's reference runs.
	PresetPaper = "paper"
	// PresetFast is the paper's "super-fast" setting: λ = 16 and stages "4:512,1:8192", with the
	// mode's default generations and init tokens.
	PresetFast = "fast"
)

// Overrides are explicitly set search parameters; nil (or an empty Stages) means "not set".
type Overrides struct {
	Offspring   *int
	Stages      []Stage
	Generations *int
	InitTokens  *int
}

// ResolveSettings applies a preset ("" means PresetPaper) to a mode's defaults, then the
// explicit overrides, and validates the result.
func ResolveSettings(preset string, defaults Settings, o Overrides) (Settings, error) {
	s := defaults
	s.Stages = slices.Clone(defaults.Stages)
	switch preset {
	case "", PresetPaper:
	case PresetFast:
		s.Offspring = 16
		s.Stages = []Stage{{Survivors: 4, Tokens: 512}, {Survivors: 1, Tokens: 8192}}
	default:
		return Settings{}, fmt.Errorf("search: preset %q: want %q or %q", preset, PresetFast, PresetPaper)
	}
	if o.Offspring != nil {
		s.Offspring = *o.Offspring
	}
	if len(o.Stages) > 0 {
		s.Stages = slices.Clone(o.Stages)
	}
	if o.Generations != nil {
		s.Generations = *o.Generations
	}
	if o.InitTokens != nil {
		s.InitTokens = *o.InitTokens
	}
	if err := s.Validate(); err != nil {
		return Settings{}, err
	}
	return s, nil
}
