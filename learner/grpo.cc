// grpo.cc: group-relative advantages and the clipped, KL-penalised GRPO policy loss.
#include "learner/grpo.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace rlj {

GroupAdvantageResult GroupAdvantages(const std::vector<double>& rewards, const std::vector<bool>& valid) {
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
  if (!result.has_signal) return result;
  for (size_t i = 0; i < size; ++i) {
    if (valid[i]) {
      result.advantages[i] = static_cast<float>((rewards[i] - result.mean) / (result.std + kAdvantageStdEpsilon));
    }
  }
  return result;
}

PolicyLossResult GrpoPolicyLoss(const at::Tensor& logprobs, const at::Tensor& behaviour_logprobs,
                                const at::Tensor& ref_logprobs, const at::Tensor& advantages, const at::Tensor& mask,
                                double clip_eps, double kl_coef) {
  TORCH_CHECK(logprobs.dim() == 2, "logprobs must be [N, T], got ", logprobs.sizes());
  TORCH_CHECK(behaviour_logprobs.sizes() == logprobs.sizes(), "behaviour_logprobs ", behaviour_logprobs.sizes(),
              " does not match logprobs ", logprobs.sizes());
  TORCH_CHECK(mask.sizes() == logprobs.sizes(), "mask ", mask.sizes(), " does not match logprobs ", logprobs.sizes());
  TORCH_CHECK(advantages.dim() == 1 && advantages.size(0) == logprobs.size(0), "advantages must be [N] with N = ",
              logprobs.size(0), ", got ", advantages.sizes());
  const bool has_ref = ref_logprobs.defined();
  if (has_ref) {
    TORCH_CHECK(ref_logprobs.sizes() == logprobs.sizes(), "ref_logprobs ", ref_logprobs.sizes(),
                " does not match logprobs ", logprobs.sizes());
  }

  const at::Tensor keep = mask.to(at::kBool);
  const at::Tensor weight = keep.to(logprobs.scalar_type());
  const at::Tensor zeros = at::zeros_like(logprobs);
  // Outside the mask every term is computed from 0 so padding can never produce inf/NaN, not even in grads.
  const at::Tensor log_ratio = at::where(keep, logprobs - behaviour_logprobs.detach(), zeros);
  const at::Tensor ratio = log_ratio.exp();
  const at::Tensor advantage = advantages.detach().to(logprobs.scalar_type()).unsqueeze(1);
  const at::Tensor unclipped = ratio * advantage;
  const at::Tensor clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantage;
  at::Tensor per_token = -at::minimum(unclipped, clipped);
  at::Tensor k3;
  if (has_ref) {
    const at::Tensor ref_minus_logp = at::where(keep, ref_logprobs.detach() - logprobs, zeros);
    k3 = ref_minus_logp.exp() - ref_minus_logp - 1.0;
    if (kl_coef != 0) per_token = per_token + kl_coef * k3;
  }
  const at::Tensor token_count = weight.sum().clamp_min(1.0);

  PolicyLossResult result;
  result.loss = (per_token * weight).sum() / token_count;
  {
    at::NoGradGuard no_grad;
    const double count = token_count.item<double>();
    result.masked_tokens = weight.sum().item<double>();
    result.ratio_mean = (ratio.detach() * weight).sum().item<double>() / count;
    result.clip_fraction =
        ((clipped.detach() < unclipped.detach()) & keep).to(at::kDouble).sum().item<double>() / count;
    if (has_ref) result.kl_mean = (k3.detach() * weight).sum().item<double>() / count;
  }
  return result;
}

}  // namespace rlj
