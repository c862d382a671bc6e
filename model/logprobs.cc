// logprobs.cc: log softmax(logits / temperature) at the target ids, and the entropy of the same
// distribution, in float32; differentiable, so the learner's loss uses them directly.
#include "model/logprobs.h"

#include <ATen/ops/log_softmax.h>
#include <ATen/ops/logsumexp.h>
#include <c10/util/Exception.h>

namespace rlj {
namespace {

at::Tensor ScaledFloatLogits(const at::Tensor& logits, double temperature, const char* what) {
  TORCH_CHECK(temperature > 0, what, ": temperature must be > 0, got ", temperature);
  TORCH_CHECK(logits.defined() && logits.dim() >= 1, what, ": logits must have a vocabulary dimension");
  const at::Tensor logits32 = logits.scalar_type() == at::kFloat ? logits : logits.to(at::kFloat);
  return temperature == 1.0 ? logits32 : logits32.div(temperature);
}

}  // namespace

at::Tensor TokenLogProbs(const at::Tensor& logits, const at::Tensor& targets, double temperature) {
  const at::Tensor scaled = ScaledFloatLogits(logits, temperature, "TokenLogProbs");
  TORCH_CHECK(targets.defined() && targets.dim() == logits.dim() - 1 &&
                  targets.sizes() == logits.sizes().slice(0, logits.dim() - 1),
              "TokenLogProbs: targets ", targets.sizes(), " must match logits ", logits.sizes(),
              " without the vocabulary dimension");
  const at::Tensor index = (targets.scalar_type() == at::kLong ? targets : targets.to(at::kLong)).unsqueeze(-1);
  // x[target] - logsumexp(x): no [B, T, V] log-softmax is materialised.
  return scaled.gather(-1, index).squeeze(-1).sub(at::logsumexp(scaled, {-1}));
}

at::Tensor TokenEntropy(const at::Tensor& logits, double temperature) {
  const at::Tensor log_probs = at::log_softmax(ScaledFloatLogits(logits, temperature, "TokenEntropy"), -1);
  const at::Tensor probs = log_probs.exp();
  // Ids with probability 0 (logits of -inf, e.g. masked) contribute 0, not 0 * -inf.
  return probs.mul(log_probs.masked_fill(probs.eq(0), 0.0)).sum(-1).neg();
}

}  // namespace rlj
