// gradient_clip.cc: the global gradient norm, clipping and the non-finite guard of every optimiser step.
#include "learner/gradient_clip.h"

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>

#include <cmath>

namespace rlj {

ClippedGradients ClipGradients(const std::vector<at::Tensor>& parameters, double loss, double max_norm) {
  ClippedGradients out;
  if (!std::isfinite(loss)) return out;
  // Global L2 norm of every gradient, in one device sync.
  std::vector<at::Tensor> norms;
  norms.reserve(parameters.size());
  for (const at::Tensor& parameter : parameters) {
    if (parameter.grad().defined()) norms.push_back(parameter.grad().norm().to(at::kDouble));
  }
  out.norm = norms.empty() ? 0.0 : at::stack(norms).norm().item<double>();
  out.norm_taken = true;
  if (!std::isfinite(out.norm)) return out;
  out.finite = true;
  if (max_norm > 0 && out.norm > max_norm) {
    at::NoGradGuard no_grad;
    out.scale = max_norm / (out.norm + kGradClipEpsilon);
    for (const at::Tensor& parameter : parameters) {
      if (parameter.grad().defined()) parameter.grad().mul_(out.scale);
    }
  }
  return out;
}

bool StepUnlessNonFinite(torch::optim::Optimizer& optimizer, const ClippedGradients& gradients,
                         int64_t* nonfinite_skipped) {
  if (!gradients.finite) {
    optimizer.zero_grad();
    ++*nonfinite_skipped;
    return false;
  }
  optimizer.step();
  return true;
}

}  // namespace rlj
