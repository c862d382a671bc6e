// decode_step.h: one decode step (one new token per row) of a float32 Llama-family model on the CPU, fused into
// plain loops over the raw weights. At a small batch the ~35 LibTorch ops a layer costs take several times
// the arithmetic (each op is a dispatch, an allocation and often a thread wake-up); here every weight is read
// once per step and the step's scratch is a few activation rows. Transformer::forward_cached calls it.
#pragma once

#include <cstdint>
#include <vector>

namespace rlj {

// Batches up to this size take the fused step; larger ones amortise LibTorch's per-op cost over the batch and
// use its GEMMs (bench generate: the fused step wins up to here).
inline constexpr int64_t kMaxFusedDecodeRows = 8;

// One decoder layer's weights, row-major [out, in] float32 as in the checkpoint; a null bias is none. keys and
// values are this layer's cache, [rows, n_kv_heads, capacity, head_dim].
struct DecodeLayerWeights {
  const float* input_norm = nullptr;
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* o = nullptr;
  const float* q_bias = nullptr;
  const float* k_bias = nullptr;
  const float* v_bias = nullptr;
  const float* o_bias = nullptr;
  const float* post_attention_norm = nullptr;
  const float* gate = nullptr;
  const float* up = nullptr;
  const float* down = nullptr;
  float* keys = nullptr;
  float* values = nullptr;
};

struct DecodeStep {
  int64_t d_model = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn_hidden = 0, vocab_size = 0;
  double norm_eps = 1e-5;
  int64_t rows = 0;
  int64_t capacity = 0;             // cache slots per row
  int64_t slot = 0;                 // the new token's slot: its key and value are written there, and it attends to it
  int64_t first_key = 0;            // the oldest slot attended to (> 0 under a sliding window)
  const int64_t* tokens = nullptr;  // [rows], in [0, vocab_size)
  // [rows, 4, head_dim]: the new token's RoPE factors: key cos, key rotate-half-signed sin, and the same two
  // times 1/sqrt(head_dim) for the query (Transformer's RoPE table layout).
  const float* rope = nullptr;
  // [rows, key_mask_stride] (slot j of row r at r * key_mask_stride + j): false marks a pad key; null when
  // every cached slot is real. The new token's own slot is always attended to.
  const bool* key_mask = nullptr;
  int64_t key_mask_stride = 0;
  const float* embed = nullptr;       // [vocab_size, d_model]
  const float* final_norm = nullptr;  // [d_model]
  const float* lm_head = nullptr;     // [vocab_size, d_model]
  std::vector<DecodeLayerWeights> layers;
  float* logits = nullptr;  // [rows, vocab_size], written
};

// Runs the step: embeds the tokens, runs every layer (writing each layer's key and value at `slot`) and writes
// the logits. The caller checks shapes and token ids.
void RunDecodeStep(const DecodeStep& step);

}  // namespace rlj
