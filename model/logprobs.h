// logprobs.h: per-token log-probabilities and entropies from logits; the one definition both the sampler
// and the learner use, so behaviour and recomputed log-probs agree.
#pragma once

#include <ATen/core/Tensor.h>

namespace rlj {

// logits [B, T, V] (any float dtype), targets [B, T] int64 → log softmax(logits / temperature)[targets],
// float32 [B, T]. temperature must be > 0.
at::Tensor TokenLogProbs(const at::Tensor& logits, const at::Tensor& targets, double temperature = 1.0);

// Entropy of softmax(logits / temperature) per position, float32 [B, T].
at::Tensor TokenEntropy(const at::Tensor& logits, double temperature = 1.0);

}  // namespace rlj
