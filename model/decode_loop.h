// decode_loop.h: one batched generation pass over a KV cache, the mechanism under every sampler of rlj (actor,
// teacher, eval, generate): the prompts left-padded and prefilled in one forward pass, then one decode step per
// token for the rows still going, finished rows dropped from the cache once that saves more than it costs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace at {
class Tensor;
}  // namespace at

namespace rlj {

class Transformer;

// What the caller decides: which rows are done, and the next id of each row still going.
class DecodeRows {
 public:
  virtual ~DecodeRows() = default;
  // Whether AfterPrefill needs the logits of every prompt position (the teacher's prompt log-probs); otherwise
  // the prefill computes the last position's only.
  virtual bool WantsPrefillLogits() const { return false; }
  // The prefill's logits on the model's device: [B, W, V] when WantsPrefillLogits (prompt b fills the last
  // prompts[b].size() positions of row b), else [B, 1, V]. Rows that need no new token can be marked finished here.
  virtual absl::Status AfterPrefill(const at::Tensor& logits);
  virtual bool finished(int64_t row) const = 0;
  // logits [n, V] float32 on the model's device, row i the next-token logits of prompt rows[i] (unfinished ones
  // only): records and returns the next id of each, int64 [n], best on that device (sampled there, only the ids
  // and what the stop checks need go to the host).
  virtual absl::StatusOr<at::Tensor> Step(const at::Tensor& logits, std::span<const int64_t> rows) = 0;
};

// Decodes until every row is finished or max_steps tokens were sampled per row; returns the forward passes
// made. Prompts must be non-empty with ids in the vocabulary and fit max_seq_len with max_steps; pad_id fills
// the left padding. Runs on the model's device; call it under InferenceMode.
absl::StatusOr<int64_t> DecodeBatch(Transformer& model, std::span<const std::span<const int32_t>> prompts,
                                    int32_t pad_id, int64_t max_steps, DecodeRows& rows);

}  // namespace rlj
