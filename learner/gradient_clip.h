// gradient_clip.h: the guarded optimiser update both trainers share: the global gradient L2 norm, clipping
// to a maximum norm, and the non-finite check that drops an update instead of writing NaN/inf into weights.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace torch::optim {
class Optimizer;
}  // namespace torch::optim

namespace rlj {

// Added to the norm before dividing, so that a norm just above the limit never scales by more than 1.
inline constexpr double kGradClipEpsilon = 1e-6;

// What ClipGradients found and did.
struct ClippedGradients {
  bool finite = false;      // the loss and the norm are finite: the update may be applied
  bool norm_taken = false;  // false when the loss was already non-finite (the gradients were not looked at)
  double norm = std::numeric_limits<double>::quiet_NaN();  // before clipping; 0 without any gradient
  double scale = 1.0;                                      // what every gradient was multiplied by (1: not clipped)
};

// The guard before an optimiser step, given the step's loss and the parameters whose gradients it holds:
//   - a non-finite `loss` → not finite, no norm taken, the gradients untouched;
//   - else the global L2 norm over every defined gradient (the norm of the per-tensor norms, in one device
//     sync); a non-finite norm → not finite, the gradients untouched;
//   - else, when max_norm > 0 and norm > max_norm, every gradient is multiplied by
//     max_norm / (norm + kGradClipEpsilon).
ClippedGradients ClipGradients(const std::vector<at::Tensor>& parameters, double loss, double max_norm);

// Applies `optimizer`'s step when `gradients.finite`. Otherwise drops the update, so a NaN/inf never
// reaches the weights or the optimiser's moments: every gradient is zeroed, nothing is applied, and
// *nonfinite_skipped grows by one. Returns whether the step was applied.
bool StepUnlessNonFinite(torch::optim::Optimizer& optimizer, const ClippedGradients& gradients,
                         int64_t* nonfinite_skipped);

}  // namespace rlj
