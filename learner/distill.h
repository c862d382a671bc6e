// distill.h: on-policy distillation's per-token advantages (learner.distill): each completion token's advantage
// gets the discounted sum of the teacher-minus-behaviour log-prob gaps from that token on.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/learner.pb.h"

namespace rlj {

struct DistillOptions {
  double coef = 0;      // 0 = off: the trainer keeps its per-sequence advantages
  double discount = 0;  // 0 = each token's own gap only
};

// learner.distill → options.
DistillOptions DistillOptionsFromConfig(const v1::LearnerConfig& learner);

// One rollout's per-token advantages and its share of the step's distillation metrics.
struct TokenAdvantages {
  std::vector<float> advantages;  // one per completion token
  std::vector<bool> valid;        // false: the teacher gave no value for the token, which is not trained
  int64_t valid_tokens = 0;       // tokens with valid = true
  double reverse_kl_sum = 0;      // Σ (behaviour − teacher) over the tokens with a teacher value
  int64_t teacher_tokens = 0;     // how many tokens have a teacher value
};

// Rollout `rollout` of `group`, whose sequence advantage is `sequence_advantage`:
//   A_t = A_seq + coef · Σ_{k ≥ t, k valid} discount^(k − t) · (teacher_k − behaviour_k)   (0^0 = 1)
// A token is valid unless its teacher value is missing (NaN; ±inf counts as missing too, since it would make
// the whole step's loss non-finite). A rollout without teacher_logprobs has every token valid and A_t = A_seq.
// teacher_logprobs of another length than completion_tokens is an InvalidArgument error naming the group and
// the rollout. behaviour_logprobs must already match completion_tokens in length.
absl::StatusOr<TokenAdvantages> DistillAdvantages(const v1::RolloutGroup& group, int rollout, float sequence_advantage,
                                                  const DistillOptions& options);

}  // namespace rlj
