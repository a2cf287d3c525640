// Package compress holds the layer compressors of the EvoPress level
// database: SparseGPT (unstructured sparsity levels), GPTQ (bit-width
// levels), and the baselines' compressors magnitude pruning, Wanda and
// round-to-nearest (RTN) quantization, together with the calibration
// Hessian accumulator, the layer error measure and compact packings.
//
// # Conventions
//
// Everything operates on one linear layer. W is the weight matrix of
// rows = out × cols = in entries, row-major float32, in the Hugging Face
// layout: y = x·Wᵀ. H is the cols×cols row-major float32 calibration
// Hessian H = 2XᵀX/N of the layer's inputs X (N rows, one per token; see
// Hessian). Inputs are validated: wrong shapes, NaN or ±Inf, sparsities
// outside [0, 1], bit-widths outside 1..8 and a Hessian that is not
// positive definite after damping all return errors, as does a layer of
// more than 2³¹−1 weights; nothing panics on bad input. Inputs are never
// modified.
//
// Precision: the factorisation (U, the upper Cholesky factor of the
// inverse of the damped H, from one blocked Cholesky factorisation of the
// reversed H and one triangular inverse) runs in float64, and so do all of
// SparseGPT's and GPTQ's column updates, which work on a float64 copy of W;
// the large products go through kernels.Dgemm, which gives the same bits on
// every kernel path. Results are rounded to float32 once at the end
// (SparseGPT) or are exact grid values (GPTQ).
// Hessian accumulation uses float32, as the reference does.
//
// # SparseGPT
//
// Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately
// Pruned in One-Shot" (ICML 2023); reference: IST-DASLab/sparsegpt,
// sparsegpt.py, SparseGPT.fasterprune with prunen = 0. Dead inputs
// (H_ii = 0) get H_ii = 1 and their weights are zeroed; H is damped by
// PercDamp·mean(diag H); U is the upper Cholesky factor of H⁻¹. Columns go
// in blocks of 128: the block's mask is the block's entries of least
// saliency w²/U_cc², then each pruned weight's error err = w/U_cc is
// subtracted as err·U[c, j] from the block's later columns j, and the
// block's errors update all later blocks at once. This is the optimal brain
// surgeon (OBS) update restricted to the columns not yet processed: for one
// pruned weight it yields the least-squares reconstruction of the layer
// output with every earlier column held fixed. One call builds every
// requested sparsity level from one factorisation, and each level has
// exactly round(s·rows·cols) pruned weights (see SparseGPT for how the
// count is split over blocks and how dead inputs count).
//
// # GPTQ and RTN
//
// Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers" (ICLR 2023); reference: IST-DASLab/gptq,
// gptq.py GPTQ.fasterquant and quant.py Quantizer (asymmetric, per channel,
// min–max, no MSE grid search). The same column loop as SparseGPT, with
// "prune" replaced by "round to the group's grid". The grid of each
// (row, group) is xmin = min(min w, 0), xmax = max(max w, 0) (both zero ⇒
// −1, +1), scale = (xmax − xmin)/(2^bits − 1) rounded up to binary16,
// zero = round(−xmin/scale), code = clamp(round(w/scale) + zero, 0,
// 2^bits − 1), value = scale·(code − zero); it is computed from the
// error-updated weights when the group's first column is reached. ActOrder
// processes columns by decreasing diag(H) and records the group of every
// column in GIdx (the reference's g_idx scheme). RTN rounds W to the same
// grid computed from W itself. The result is a Quantized: codes, scales,
// zero points, and BitsPerWeight under a documented storage convention.
//
// # Baselines
//
// Magnitude zeroes the layer's smallest |w|. Wanda (Sun et al., "A Simple
// and Effective Pruning Approach for Large Language Models", ICLR 2024)
// zeroes, per output row, the entries of least |W_ij|·‖x_j‖, with
// ‖x_j‖ ∝ sqrt(H_jj). Both hit the requested count exactly.
//
// # Error and storage
//
// LayerError returns tr(ΔW·H·ΔWᵀ) and its ratio to tr(W·H·Wᵀ), the
// per-layer score of the DP baseline and the database manifest. PackCodes
// and UnpackCodes bit-pack codes of any width 1..8; PackSparse and
// UnpackSparse store a sparse matrix as a bitmask plus its non-zero values.
// Both round-trip bit for bit.
//
// The EvoPress level database (Sieberling et al., "EvoPress: Accurate
// Dynamic Model Compression via Evolutionary Search", ICML 2025; reference
// IST-DASLab/EvoPress) uses SparseGPT and GPTQ with the defaults of
// DefaultSparseGPTOptions and DefaultGPTQOptions.
package compress
