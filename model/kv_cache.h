// kv_cache.h: the key/value cache for incremental decoding: per-layer K and V preallocated as
// [batch, n_kv_heads, max_len, head_dim], the number of filled slots, and a key mask [batch, max_len] that
// marks the pad keys of left-padded prompts. Decoding writes in place; nothing is reallocated per step.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "model/model_config.h"

namespace rlj {

class KvCache {
 public:
  // Allocates the cache for `batch` rows of up to `max_len` slots (max_len <= config.max_seq_len). Throws
  // c10::Error on bad sizes (call inside TorchCall). Allocate and use a cache in the same grad mode (inside
  // or outside torch::InferenceMode), as in-place writes to inference tensors are refused outside it.
  KvCache(const TransformerConfig& config, int64_t batch, int64_t max_len, c10::Device device = c10::kCPU,
          c10::ScalarType dtype = c10::kFloat);

  // Reserves the next key_mask.size(1) slots for every row; key_mask [batch, T_new] bool (any device) says
  // which of them are real (false: padding, never attended to). Transformer::forward_cached then fills them.
  absl::Status Append(const at::Tensor& key_mask);
  // Reserves `count` slots that are real for every row (a decode step).
  absl::Status AppendValid(int64_t count);

  // Keeps only the given rows (ascending, distinct indices into the current rows), in that order, moving
  // them to the front of the preallocated storage; batch() shrinks. Used to drop finished rows.
  absl::Status KeepRows(const std::vector<int64_t>& rows);

  // Forgets every slot and restores the full batch.
  void Reset();

  int64_t batch() const { return batch_; }
  int64_t capacity() const { return max_len_; }
  int64_t length() const { return length_; }    // reserved slots, written or about to be
  int64_t pending() const { return pending_; }  // slots reserved by Append, not yet written
  int64_t num_layers() const { return static_cast<int64_t>(keys_.size()); }
  // True once any reserved slot was marked padding by Append (until Reset; KeepRows keeps it set). While
  // false, a decode step attends to every cached slot and needs no key mask at all.
  bool has_pad_keys() const { return has_pad_keys_; }

  // Views over the current rows: keys/values [batch, n_kv_heads, max_len, head_dim], key mask [batch, length].
  at::Tensor keys(int64_t layer) const;
  at::Tensor values(int64_t layer) const;
  at::Tensor key_mask() const;
  // Scratch for one decode step's attention products, [batch, n_kv_heads, n_heads / n_kv_heads, max_len,
  // head_dim]; reused by every layer and step, so decoding allocates nothing of the cache's size.
  at::Tensor attention_workspace() const;

  // Called by Transformer::forward_cached once every layer has written the pending slots.
  void MarkWritten() { pending_ = 0; }

  // Per-position tables the model derives once per cache (its RoPE factors for positions 0..capacity-1);
  // undefined until the model sets them. The cache only keeps them; their layout is the model's business.
  const at::Tensor& position_table() const { return position_table_; }
  void set_position_table(at::Tensor table) { position_table_ = std::move(table); }

 private:
  int64_t capacity_batch_;
  int64_t batch_;
  int64_t max_len_;
  int64_t length_ = 0;
  int64_t pending_ = 0;
  bool has_pad_keys_ = false;
  std::vector<at::Tensor> keys_;    // per layer [capacity_batch, n_kv_heads, max_len, head_dim]
  std::vector<at::Tensor> values_;  // same
  at::Tensor key_mask_;             // [capacity_batch, max_len] bool
  at::Tensor workspace_;            // [capacity_batch, n_kv_heads, group, max_len, head_dim]
  at::Tensor position_table_;       // see position_table()
};

}  // namespace rlj
