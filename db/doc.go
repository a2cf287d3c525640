// Package db is the EvoPress level database (docs/design.md, "The method": the level database): every linear layer of a model
// compressed to each of its levels — sparsities on the EvoPress grid (SparseGPT, Wanda or
// magnitude), bit-widths (GPTQ or RTN), or llama.cpp's tensor types (gguf) — stored packed,
// with a manifest, and assembled into candidate models by swapping weight slices.
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
// A gguf database (ModeGGUF, method ggml) holds each layer in every ggml type of GGUFParams.Types
// (DefaultGGUFTypes: Q2_K … Q6_K and Q8_0), or in the type llama-quantize writes instead where
// the layer's rows do not fit the type's blocks (ggml.Fallback: llama-pd-11m's 704-column
// down_proj takes Q4_0, Q5_0, Q5_1 and Q8_0), once per distinct type; a level is the type's id
// (ggml.Type), and its file holds the ggml blocks themselves, byte for byte what llama-quantize
// writes for the same weights and importance vector (ggml.Quantize). A level's bits per weight
// are its bytes·8/numel (block scales included) and its TensorBytes the bytes the tensor takes
// in a GGUF file. ggml quantizes each block on its own (no error feedback between layers), so
// no sequential mode. The importance matrix is computed from the build's own calibration pass
// (imatrix.Collector.AddStats on the Hessians, llama-imatrix's definition; written into the
// database as ImatrixFile, llama-imatrix's GGUF format, its SHA-256 in the manifest), read
// from a file (its path and SHA-256 recorded), or none. A gguf database serves quant profiles
// (ProfileMode) whose levels are ggml type ids; the quant search sees it in its cost form
// (QuantConfig: levels in the order of their bytes, costs of 8·bytes). GGUFBlocks hands an
// exporter a level's type and blocks.
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
//	DIR/levels/<layer>/q4_K.evl, q8_0.evl …  gguf level (ggml type) of a layer
//	DIR/imatrix.gguf                       a gguf database's computed importance matrix
//
// A level file is an 8-byte magic, a little JSON header (layer, level, shape, value type or
// bits/groups) and the payload: for sparse levels a bitmask (1 bit per weight) and the kept values
// in row-major order, stored as the narrowest of bf16, f16 and f32 that represents them all
// exactly (SparseParams.Values optionally rounds them to f16 or bf16 instead, as the reference's
// float16 copies do); for quant levels the codes bit-packed at the level's width, one IEEE
// binary16 scale and one zero point (at the level's width) per output row and group, and, with
// act-order, the int32 g_idx of every input column; for gguf levels the ggml blocks, row by row.
// Decoding yields exactly the weights that were evaluated when the level's error was computed.
//
// # Using
//
// Open validates the manifest and checks that every level file is present with its recorded size;
// a file's SHA-256 is checked the first time it is read (Verify checks all of them). Check
// compares the model fingerprint. Decode writes a level into a preallocated buffer. Weights
// returns a level held compactly, as its file stores it (ggml blocks; codes with float32 scales
// and zero points; a bitmask with running counts and the stored values), behind a
// kernels.Decoder that the matrix multiply calls as it packs a panel, so the values are exactly
// Decode's without a float32 copy of the layer (a Q4_K level holds 0.5625 bytes per weight, a
// 4-bit quant level with groups of 128 0.5625, a 50% sparse level with float32 values 2.19,
// against 4 decoded); it comes from an LRU cache of such levels bounded by a byte budget on
// their compact sizes (SetCacheBudget). Apply returns a model.Clone whose named layers hold
// cached levels (Linear.Stored), so a candidate that differs from its parent in a few layers
// costs a few pointer swaps (and a read per cache miss).
// ApplyProfile applies a sparse or quant profile file after checking its mode, target and
// fingerprints; UniformProfile writes the uniform baseline profile (gguf: one type everywhere,
// with llama-quantize's fallback).
package db
