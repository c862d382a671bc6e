// grpo.h: the GRPO math: group-relative advantages and the clipped, KL-penalised policy loss.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace rlj {

// Advantages of one group of G completions of a prompt.
struct GroupAdvantageResult {
  std::vector<float> advantages;  // [G]; 0 for invalid entries and for a group without signal
  bool has_signal = false;        // false: fewer than 2 valid rewards, or all valid rewards equal
  int valid_count = 0;
  double mean = 0;  // over the valid rewards
  double std = 0;   // unbiased (n - 1) standard deviation over the valid rewards
};

// (r - mean) / (std + 1e-6) over the valid entries, with the unbiased std (as TRL's GRPO); invalid
// entries get 0. `rewards` and `valid` have the same length G.
GroupAdvantageResult GroupAdvantages(const std::vector<double>& rewards, const std::vector<bool>& valid);

inline constexpr double kAdvantageStdEpsilon = 1e-6;

struct PolicyLossResult {
  at::Tensor loss;            // scalar, differentiable w.r.t. logprobs
  double kl_mean = 0;         // masked mean of the k3 estimator (0 without a reference)
  double clip_fraction = 0;   // share of masked tokens where the clipped term was chosen and differs
  double ratio_mean = 0;      // masked mean of exp(logp - behaviour)
  double masked_tokens = 0;   // number of tokens in the mask
};

// PPO-clipped policy loss with a k3 KL penalty, token-mean over `mask` across the whole batch:
//   ratio = exp(logp - behaviour)
//   per token: -min(ratio * A, clamp(ratio, 1 - clip_eps, 1 + clip_eps) * A) + kl_coef * k3
//   k3 = exp(ref - logp) - (ref - logp) - 1
// logprobs, behaviour_logprobs, ref_logprobs [N, T] float; ref_logprobs may be undefined (no KL term);
// advantages [N]; mask [N, T] (bool or float, 1 = train on this token). behaviour, ref and advantages are
// treated as constants. An empty mask gives a zero loss (still connected to `logprobs`).
PolicyLossResult GrpoPolicyLoss(const at::Tensor& logprobs, const at::Tensor& behaviour_logprobs,
                                const at::Tensor& ref_logprobs, const at::Tensor& advantages, const at::Tensor& mask,
                                double clip_eps, double kl_coef);

}  // namespace rlj
