// grpo.cc: group-relative advantages (GRPO, Dr. GRPO, RLOO) and the clipped, KL-penalised policy loss.
#include "learner/grpo.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace rlj {
namespace {

// Mean, unbiased std and signal of the valid rewards of one group.
GroupAdvantageResult GroupStatistics(const std::vector<double>& rewards, const std::vector<bool>& valid) {
  GroupAdvantageResult result;
  const size_t size = std::min(rewards.size(), valid.size());
  result.advantages.assign(rewards.size(), 0.0f);
  double sum = 0;
  double low = 0;
  double high = 0;
  for (size_t i = 0; i < size; ++i) {
    if (!valid[i]) continue;
    if (result.valid_count == 0) {
      low = high = rewards[i];
    } else {
      low = std::min(low, rewards[i]);
      high = std::max(high, rewards[i]);
    }
    sum += rewards[i];
    ++result.valid_count;
  }
  if (result.valid_count == 0) return result;
  result.mean = sum / result.valid_count;
  if (result.valid_count < 2) return result;
  double squares = 0;
  for (size_t i = 0; i < size; ++i) {
    if (valid[i]) squares += (rewards[i] - result.mean) * (rewards[i] - result.mean);
  }
  result.std = std::sqrt(squares / (result.valid_count - 1));
  result.has_signal = high > low && std::isfinite(result.std);
  return result;
}

}  // namespace

AdvantageOptions AdvantageOptionsFromConfig(const v1::LearnerConfig& learner) {
  AdvantageOptions options;
  switch (learner.algorithm()) {
    case v1::LearnerConfig::grpo:
      options = {AdvantageBaseline::kGroupMean, RewardScaling::kGroup};
      break;
    case v1::LearnerConfig::dr_grpo:
      options = {AdvantageBaseline::kGroupMean, RewardScaling::kNone};
      break;
    case v1::LearnerConfig::rloo:
      options = {AdvantageBaseline::kLeaveOneOut, RewardScaling::kNone};
      break;
  }
  if (learner.has_reward_scaling()) {
    switch (learner.reward_scaling()) {
      case v1::LearnerConfig::group:
        options.scaling = RewardScaling::kGroup;
        break;
      case v1::LearnerConfig::batch:
        options.scaling = RewardScaling::kBatch;
        break;
      case v1::LearnerConfig::none:
        options.scaling = RewardScaling::kNone;
        break;
    }
  }
  return options;
}

GroupAdvantageResult GroupAdvantages(const std::vector<double>& rewards, const std::vector<bool>& valid) {
  BatchAdvantageResult batch = ComputeAdvantages({GroupRewards{rewards, valid}}, AdvantageOptions{});
  return std::move(batch.groups[0]);
}

BatchAdvantageResult ComputeAdvantages(const std::vector<GroupRewards>& groups, const AdvantageOptions& options) {
  BatchAdvantageResult result;
  result.groups.reserve(groups.size());
  double batch_sum = 0;
  double batch_squares = 0;
  int64_t batch_count = 0;
  for (const GroupRewards& group : groups) {
    result.groups.push_back(GroupStatistics(group.rewards, group.valid));
    const GroupAdvantageResult& stats = result.groups.back();
    if (!stats.has_signal) {
      ++result.groups_without_signal;
      continue;
    }
    for (size_t i = 0; i < group.rewards.size() && i < group.valid.size(); ++i) {
      if (!group.valid[i]) continue;
      batch_sum += group.rewards[i];
      batch_squares += group.rewards[i] * group.rewards[i];
      ++batch_count;
    }
  }
  if (batch_count > 1) {
    const double mean = batch_sum / static_cast<double>(batch_count);
    const double variance =
        (batch_squares - static_cast<double>(batch_count) * mean * mean) / static_cast<double>(batch_count - 1);
    result.batch_std = std::sqrt(std::max(0.0, variance));
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    GroupAdvantageResult& stats = result.groups[g];
    if (!stats.has_signal) continue;
    const GroupRewards& group = groups[g];
    const double n = stats.valid_count;
    double scale = 1.0;
    if (options.scaling == RewardScaling::kGroup) scale = 1.0 / (stats.std + kAdvantageStdEpsilon);
    if (options.scaling == RewardScaling::kBatch) scale = 1.0 / (result.batch_std + kAdvantageStdEpsilon);
    for (size_t i = 0; i < group.rewards.size() && i < group.valid.size(); ++i) {
      if (!group.valid[i]) continue;
      double centred = group.rewards[i] - stats.mean;
      if (options.baseline == AdvantageBaseline::kLeaveOneOut) centred *= n / (n - 1);
      stats.advantages[i] = static_cast<float>(centred * scale);
    }
  }
  return result;
}

PolicyLossOptions PolicyLossOptionsFromConfig(const v1::LearnerConfig& learner) {
  PolicyLossOptions options;
  options.clip_low = learner.has_clip_eps_low() ? learner.clip_eps_low() : learner.clip_eps();
  options.clip_high = learner.has_clip_eps_high() ? learner.clip_eps_high() : learner.clip_eps();
  options.dual_clip = learner.dual_clip();
  options.kl_coef = learner.kl_coef();
  options.entropy_coef = learner.entropy_coef();
  options.tis_cap = learner.tis_cap();
  switch (learner.kl_estimator()) {
    case v1::LearnerConfig::k1:
      options.kl_estimator = KlEstimator::kK1;
      break;
    case v1::LearnerConfig::k2:
      options.kl_estimator = KlEstimator::kK2;
      break;
    case v1::LearnerConfig::k3:
      options.kl_estimator = KlEstimator::kK3;
      break;
  }
  return options;
}

PolicyLossResult PolicyLoss(const PolicyLossInputs& in, const PolicyLossOptions& options) {
  const at::Tensor& logprobs = in.logprobs;
  TORCH_CHECK(logprobs.dim() == 2, "logprobs must be [N, T], got ", logprobs.sizes());
  const auto check_same = [&](const at::Tensor& t, const char* name) {
    TORCH_CHECK(!t.defined() || t.sizes() == logprobs.sizes(), name, " ", t.sizes(), " does not match logprobs ",
                logprobs.sizes());
  };
  TORCH_CHECK(in.behaviour_logprobs.defined(), "behaviour_logprobs are required");
  TORCH_CHECK(in.weights.defined(), "weights are required");
  check_same(in.behaviour_logprobs, "behaviour_logprobs");
  check_same(in.old_logprobs, "old_logprobs");
  check_same(in.ref_logprobs, "ref_logprobs");
  check_same(in.entropy, "entropy");
  check_same(in.weights, "weights");
  check_same(in.token_advantages, "token_advantages");
  const bool per_token = in.token_advantages.defined();
  TORCH_CHECK(
      per_token || (in.advantages.defined() && in.advantages.dim() == 1 && in.advantages.size(0) == logprobs.size(0)),
      "advantages must be [N] with N = ", logprobs.size(0), ", got ",
      in.advantages.defined() ? in.advantages.sizes() : at::IntArrayRef{});

  const at::ScalarType type = logprobs.scalar_type();
  const at::Tensor weight = in.weights.detach().to(type);
  const at::Tensor keep = weight.gt(0);
  const at::Tensor zeros = at::zeros_like(logprobs);
  const at::Tensor behaviour = in.behaviour_logprobs.detach().to(type);
  const bool has_old = in.old_logprobs.defined();
  const at::Tensor proximal = has_old ? in.old_logprobs.detach().to(type) : behaviour;
  // Per-token advantages outside the mask are replaced by 0 like every other input there: 0 · inf is NaN.
  const at::Tensor advantage = per_token ? at::where(keep, in.token_advantages.detach().to(type), zeros)
                                         : in.advantages.detach().to(type).unsqueeze(1);

  // Outside the mask every term is computed from 0, so padding cannot produce inf/NaN, not even in grads.
  const at::Tensor ratio = at::where(keep, logprobs - proximal, zeros).clamp(-kMaxLogRatio, kMaxLogRatio).exp();
  const at::Tensor unclipped = ratio * advantage;
  const at::Tensor clipped = ratio.clamp(1.0 - options.clip_low, 1.0 + options.clip_high) * advantage;
  at::Tensor pg = -at::minimum(unclipped, clipped);
  at::Tensor dual_clipped;
  if (options.dual_clip > 0) {
    const at::Tensor bound = -options.dual_clip * advantage;  // > 0 where A < 0
    dual_clipped = advantage.lt(0).expand_as(pg) & pg.gt(bound);
    pg = at::where(dual_clipped, bound.expand_as(pg), pg);
  }
  at::Tensor is_weight;
  if (options.tis_cap > 0 && has_old) {
    is_weight = at::where(keep, proximal - behaviour, zeros)
                    .clamp(-kMaxLogRatio, kMaxLogRatio)
                    .exp()
                    .clamp_max(options.tis_cap);
    pg = pg * is_weight;
  }
  at::Tensor term = pg;
  at::Tensor kl;
  if (in.ref_logprobs.defined()) {
    const at::Tensor ref_minus_logp = at::where(keep, in.ref_logprobs.detach().to(type) - logprobs, zeros);
    switch (options.kl_estimator) {
      case KlEstimator::kK1:
        kl = -ref_minus_logp;
        break;
      case KlEstimator::kK2:
        kl = 0.5 * ref_minus_logp.square();
        break;
      case KlEstimator::kK3: {
        const at::Tensor clamped = ref_minus_logp.clamp(-kMaxLogRatio, kMaxLogRatio);
        kl = clamped.exp() - clamped - 1.0;
        break;
      }
    }
    if (options.kl_coef != 0) term = term + options.kl_coef * kl;
  }
  if (in.entropy.defined() && options.entropy_coef != 0) {
    term = term - options.entropy_coef * at::where(keep, in.entropy, zeros);
  }

  PolicyLossResult result;
  result.loss = (term * weight).sum();
  {
    at::NoGradGuard no_grad;
    const at::Tensor mask = keep.to(at::kDouble);
    const auto masked_sum = [&](const at::Tensor& t) { return (t.detach().to(at::kDouble) * mask).sum(); };
    const at::Tensor zero = at::zeros({}, mask.options());
    std::vector<at::Tensor> stats(kNumPolicyLossStats, zero);
    stats[kStatTokens] = mask.sum();
    if (kl.defined()) stats[kStatKl] = masked_sum(kl);
    stats[kStatRatio] = masked_sum(ratio);
    stats[kStatClipped] = masked_sum(clipped.detach().lt(unclipped.detach()));
    if (dual_clipped.defined()) stats[kStatDualClipped] = masked_sum(dual_clipped);
    if (is_weight.defined()) {
      stats[kStatIsWeight] = masked_sum(is_weight);
      stats[kStatIsCapped] = masked_sum(is_weight.ge(options.tis_cap));
    } else {
      stats[kStatIsWeight] = stats[kStatTokens];
    }
    if (in.entropy.defined()) stats[kStatEntropy] = masked_sum(in.entropy);
    result.stats = at::stack(stats);
  }
  return result;
}

LossAggregation LossAggregationFromConfig(v1::LearnerConfig::LossAggregation aggregation) {
  switch (aggregation) {
    case v1::LearnerConfig::seq_mean_token_mean:
      return LossAggregation::kSeqMeanTokenMean;
    case v1::LearnerConfig::seq_mean_token_sum:
      return LossAggregation::kSeqMeanTokenSum;
    case v1::LearnerConfig::token_mean:
      break;
  }
  return LossAggregation::kTokenMean;
}

double TokenLossWeight(LossAggregation aggregation, int64_t sequence_tokens, int64_t sequences, int64_t total_tokens) {
  if (sequence_tokens <= 0 || sequences <= 0 || total_tokens <= 0) return 0;
  switch (aggregation) {
    case LossAggregation::kTokenMean:
      return 1.0 / static_cast<double>(total_tokens);
    case LossAggregation::kSeqMeanTokenMean:
      return 1.0 / (static_cast<double>(sequences) * static_cast<double>(sequence_tokens));
    case LossAggregation::kSeqMeanTokenSum:
      return 1.0 / static_cast<double>(sequences);
  }
  return 0;
}

}  // namespace rlj
