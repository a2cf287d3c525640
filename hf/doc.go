// Package hf reads and writes Hugging Face model directories: config.json for
// the Llama family (llama, mistral, qwen2), safetensors checkpoints (a single
// model.safetensors or a sharded one described by model.safetensors.index.json)
// with F32, F16, BF16 (and F64) tensors, and the conversions between float32
// and the 16-bit float formats.
//
// Reading never loads a whole checkpoint: OpenCheckpoint parses and validates
// the headers only, and ReadFloat32 reads one tensor's byte range with ReadAt
// and converts it. A Checkpoint is safe for concurrent reads.
//
// Writing (WriteSafetensors, Config.MarshalWith) is atomic and deterministic,
// for exporting compressed models.
package hf
