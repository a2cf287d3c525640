// Package db is the EvoPress level database (docs/design.md, "The method": the level database): every linear layer of a model
// compressed to each of its levels — sparsities on the EvoPress grid (SparseGPT, Wanda or
// magnitude) or bit-widths (GPTQ or RTN) — stored packed, with a manifest, and assembled into
// candidate models by swapping weight slices.
//
// # Building
//
// Build runs the calibration sequences through the model block by block (package calib: H =
// 2XᵀX/N per layer in float32, q/k/v and gate/up sharing theirs), compresses each layer of the
// block to every level against its Hessian (package compress), records each level's normalised
// layer error tr(ΔW·H·ΔWᵀ)/tr(W·H·Wᵀ) while H is at hand, and writes the levels. Sparse level ℓ of a
// layer of numel weights prunes exactly round(s·numel) + ℓ·D weights (s the target, D the
// weights diff, the range from search/sparse.LevelRange), so the sparse search's budget
// arithmetic holds exactly. In sequential mode each block is calibrated on the outputs of the
// earlier blocks compressed to one level (the reference's 3-bit calibration model for GPTQ).
//
// Every file is written atomically (internal/atomicfile) and the manifest is rewritten after every
// layer. A build that finds a manifest with the same settings in its output directory keeps the
// layers whose level files are intact (checksums) and computes only the others; since every step
// is deterministic (fixed batch split, CPU-count-independent kernels) the result is byte for byte
// that of an uninterrupted build. In sequential mode the kept blocks feed later blocks with their
// stored levels, which are the exact weights the uninterrupted build used.
//
// # Layout
//
//	DIR/manifest.json                      the Manifest (format "evopress-db/v1")
//	DIR/levels/<layer>/l-3.evl, l+0.evl …  sparse level ℓ of a layer
//	DIR/levels/<layer>/b2.evl, b3.evl …    quant level (bit-width) of a layer
//
// A level file is an 8-byte magic, a little JSON header (layer, level, shape, value type or
// bits/groups) and the payload: for sparse levels a bitmask (1 bit per weight) and the kept values
// in row-major order, stored as the narrowest of bf16, f16 and f32 that represents them all
// exactly (SparseParams.Values optionally rounds them to f16 or bf16 instead, as the reference's
// float16 copies do); for quant levels the codes bit-packed at the level's width, one IEEE
// binary16 scale and one zero point (at the level's width) per output row and group, and, with
// act-order, the int32 g_idx of every input column. Decoding yields exactly the weights that
// were evaluated when the level's error was computed.
//
// # Using
//
// Open validates the manifest and checks that every level file is present with its recorded size;
// a file's SHA-256 is checked the first time it is read (Verify checks all of them). Check
// compares the model fingerprint. Decode writes a level into a preallocated buffer; Weights
// returns it from an LRU cache of decoded levels bounded by a byte budget (SetCacheBudget); Apply
// returns a model.Clone whose named layers point at cached levels, so a candidate that differs
// from its parent in a few layers costs a few pointer swaps (and a decode per cache miss).
// ApplyProfile applies a sparse or quant profile file after checking its mode, target and
// fingerprints; UniformProfile writes the uniform baseline profile.
package db
