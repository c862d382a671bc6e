// grpo.h: the policy-gradient math: group-relative advantages (GRPO, Dr. GRPO, RLOO) and the clipped,
// KL-penalised, importance-corrected per-token policy loss.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

inline constexpr double kAdvantageStdEpsilon = 1e-6;
// Log-ratios (current vs. sampling policy, reference vs. current) are clamped to ±this before exp(): e^20 ≈ 4.9e8.
// A token sampled with a tiny probability (a log-prob of -100 is possible at a high temperature) would
// otherwise overflow float32 to inf and the step's loss to inf/NaN. Gradients through a clamped ratio are 0.
inline constexpr double kMaxLogRatio = 20.0;

// How a group's baseline is formed: the group mean (grpo, dr_grpo) or, for each sample, the mean of the
// other valid samples of its group (rloo).
enum class AdvantageBaseline { kGroupMean, kLeaveOneOut };
// Whose unbiased standard deviation divides the centred rewards.
enum class RewardScaling { kGroup, kBatch, kNone };

struct AdvantageOptions {
  AdvantageBaseline baseline = AdvantageBaseline::kGroupMean;
  RewardScaling scaling = RewardScaling::kGroup;
};

// learner.algorithm and learner.reward_scaling → options.
AdvantageOptions AdvantageOptionsFromConfig(const v1::LearnerConfig& learner);

// Advantages of one group of G completions of a prompt.
struct GroupAdvantageResult {
  std::vector<float> advantages;  // [G]; 0 for invalid entries and for a group without signal
  bool has_signal = false;        // false: fewer than 2 valid rewards, or all valid rewards equal
  int valid_count = 0;
  double mean = 0;  // over the valid rewards
  double std = 0;   // unbiased (n - 1) standard deviation over the valid rewards
};

// GRPO: (r - mean) / (std + 1e-6) over the valid entries, with the unbiased std (as TRL's GRPO); invalid
// entries get 0. `rewards` and `valid` have the same length G.
GroupAdvantageResult GroupAdvantages(const std::vector<double>& rewards, const std::vector<bool>& valid);

// The rewards of one group, as the advantage functions take them.
struct GroupRewards {
  std::vector<double> rewards;
  std::vector<bool> valid;
};

struct BatchAdvantageResult {
  std::vector<GroupAdvantageResult> groups;  // one per input group, in order
  double batch_std = 0;  // RewardScaling::kBatch: unbiased std of the valid rewards of the groups with signal
  int groups_without_signal = 0;
};

// Advantages of a step's groups:
//   centred  = r - mean(group)                        (kGroupMean)
//            = r - mean(other valid rewards of group)  (kLeaveOneOut) = n/(n-1) · (r - mean)
//   advantage = centred / (std + 1e-6), std of the group (kGroup) or of the batch (kBatch); = centred (kNone)
// Groups without signal get zeros and are counted. Invalid entries get 0.
BatchAdvantageResult ComputeAdvantages(const std::vector<GroupRewards>& groups, const AdvantageOptions& options);

enum class KlEstimator { kK1, kK2, kK3 };

struct PolicyLossOptions {
  double clip_low = 0.2;  // ratio clipped to [1 - clip_low, 1 + clip_high]
  double clip_high = 0.2;
  double dual_clip = 0;  // c > 1: a negative-advantage token's loss is at most c·|A|; 0 = off
  KlEstimator kl_estimator = KlEstimator::kK3;
  double kl_coef = 0;       // used when ref_logprobs are given
  double entropy_coef = 0;  // used when entropy is given
  double tis_cap = 0;       // > 0: weight each token by min(exp(old - behaviour), tis_cap); needs old_logprobs
};

// learner.* → options.
PolicyLossOptions PolicyLossOptionsFromConfig(const v1::LearnerConfig& learner);

// The inputs of one (micro-)batch, all [N, T] float except advantages [N]. Everything but logprobs and
// entropy is treated as a constant.
struct PolicyLossInputs {
  at::Tensor logprobs;            // the policy's log-probs (differentiable)
  at::Tensor behaviour_logprobs;  // the sampler's
  at::Tensor old_logprobs;  // the learner's at the start of the step; undefined → behaviour is the proximal policy
  at::Tensor ref_logprobs;  // the frozen reference's; undefined → no KL term
  at::Tensor entropy;       // per-token entropy (differentiable); undefined → no entropy bonus
  at::Tensor advantages;    // [N]; may be undefined when token_advantages are given
  // [N, T]: each token's own advantage (on-policy distillation, learner/distill.h); undefined → advantages[n]
  // for every token of row n.
  at::Tensor token_advantages;
  at::Tensor weights;  // each token's share of the step's loss; 0 = not trained (see TokenLossWeights)
};

// Per token (prox = old_logprobs when given, else behaviour_logprobs; A = token_advantages[n, t] when given,
// else advantages[n], so the clip and the dual clip below act on each token's own advantage):
//   ratio = exp(logp - prox)
//   pg    = -min(ratio·A, clamp(ratio, 1 - clip_low, 1 + clip_high)·A)
//   pg    = min(pg, -c·A) when A < 0 and dual_clip c > 0
//   pg   *= min(exp(prox - behaviour), tis_cap) when tis_cap > 0 and old_logprobs are given
//   kl    = k1: logp - ref | k2: (logp - ref)²/2 | k3: exp(ref - logp) - (ref - logp) - 1
//   term  = pg + kl_coef·kl - entropy_coef·entropy
// loss = Σ weights · term. Tokens with weight 0 are computed from zeros, so padding never makes inf/NaN.
struct PolicyLossResult {
  at::Tensor loss;  // scalar, differentiable w.r.t. logprobs (and entropy)
  // Sums over the tokens with weight > 0, as one float64 tensor on the loss's device (no device sync):
  // [tokens, kl, ratio, clipped, dual_clipped, is_weight, is_capped, entropy] (see PolicyLossStat).
  at::Tensor stats;
};
enum PolicyLossStat {
  kStatTokens = 0,
  kStatKl,
  kStatRatio,
  kStatClipped,      // the clipped term was chosen and differs from the unclipped one
  kStatDualClipped,  // the dual clip bound the loss
  kStatIsWeight,
  kStatIsCapped,
  kStatEntropy,  // only when entropy was given
  kNumPolicyLossStats,
};

PolicyLossResult PolicyLoss(const PolicyLossInputs& inputs, const PolicyLossOptions& options);

// How token losses are averaged over a step (learner.loss_aggregation).
enum class LossAggregation { kTokenMean, kSeqMeanTokenMean, kSeqMeanTokenSum };
LossAggregation LossAggregationFromConfig(v1::LearnerConfig::LossAggregation aggregation);

// The weight of each of a sequence's tokens so that Σ weight · term over the whole step is
//   token_mean:           Σ_all tokens term / total_tokens
//   seq_mean_token_mean:  (1/N) Σ_sequences (1/n_i) Σ_tokens term
//   seq_mean_token_sum:   (1/N) Σ_sequences Σ_tokens term
// given the sequence's trained tokens n_i, the step's N sequences and total_tokens. Weights are global, so
// micro-batches and data-parallel ranks just add up their shares.
double TokenLossWeight(LossAggregation aggregation, int64_t sequence_tokens, int64_t sequences, int64_t total_tokens);

}  // namespace rlj
