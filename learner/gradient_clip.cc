// gradient_clip.cc: the global gradient norm, clipping and the non-finite guard of every optimiser step.
#include "learner/gradient_clip.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/optim/optimizer.h>

#include <cmath>

namespace rlj {

ClippedGradients ClipGradients(const std::vector<at::Tensor>& parameters, double loss, double max_norm) {
  ClippedGradients out;
  if (!std::isfinite(loss)) return out;
  // Global L2 norm of every gradient: squares summed in double, in one device sync.
  at::Tensor squares;
  for (const at::Tensor& parameter : parameters) {
    if (!parameter.grad().defined()) continue;
    const at::Tensor sum = parameter.grad().to(at::kDouble).square().sum();
    squares = squares.defined() ? squares + sum : sum;
  }
  out.norm = squares.defined() ? std::sqrt(squares.item<double>()) : 0.0;
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
