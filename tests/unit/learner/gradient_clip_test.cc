// gradient_clip_test.cc: the guard both trainers put before an optimiser step: the global gradient norm by
// hand, the clipping factor, non-finite losses and gradients detected and left alone, and the skipped update.
#include "learner/gradient_clip.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace rlj {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// A float parameter holding `values`, with `gradient` as its gradient (none when empty).
at::Tensor Parameter(const std::vector<float>& values, const std::vector<float>& gradient) {
  at::Tensor parameter = at::tensor(values).requires_grad_(true);
  if (!gradient.empty()) parameter.mutable_grad() = at::tensor(gradient);
  return parameter;
}

std::vector<float> Values(const at::Tensor& tensor) {
  const at::Tensor host = tensor.detach().contiguous();
  return std::vector<float>(host.data_ptr<float>(), host.data_ptr<float>() + host.numel());
}

TEST(ClipGradients, HandComputedNormAndClippingFactor) {
  // ‖(3, 4, 12)‖ = sqrt(9 + 16 + 144) = 13 across two gradients; a parameter without one is ignored.
  const std::vector<at::Tensor> parameters = {Parameter({0, 0}, {3, 4}), Parameter({0}, {12}), Parameter({0, 0}, {})};
  const ClippedGradients clipped = ClipGradients(parameters, /*loss=*/0.25, /*max_norm=*/6.5);
  EXPECT_TRUE(clipped.finite);
  EXPECT_TRUE(clipped.norm_taken);
  EXPECT_DOUBLE_EQ(clipped.norm, 13.0);
  EXPECT_DOUBLE_EQ(clipped.scale, 6.5 / (13.0 + kGradClipEpsilon));
  EXPECT_NEAR(clipped.scale, 0.5, 1e-7);
  const std::vector<float> first = Values(parameters[0].grad());
  const std::vector<float> second = Values(parameters[1].grad());
  EXPECT_NEAR(first[0], 1.5, 1e-6);
  EXPECT_NEAR(first[1], 2.0, 1e-6);
  EXPECT_NEAR(second[0], 6.0, 1e-6);
  EXPECT_FALSE(parameters[2].grad().defined());
  // Clipped to (just under) the limit: a second pass finds the norm there and leaves it (all but) alone.
  const ClippedGradients again = ClipGradients(parameters, 0.25, 6.5);
  EXPECT_NEAR(again.norm, 6.5, 1e-5);
  EXPECT_NEAR(again.scale, 1.0, 1e-6);
}

TEST(ClipGradients, WithinTheLimitOrWithoutOneNothingIsScaled) {
  for (double max_norm : {13.0, 20.0, 0.0, -1.0}) {  // at the limit, under it, no limit (<= 0)
    const std::vector<at::Tensor> parameters = {Parameter({0, 0}, {3, 4}), Parameter({0}, {12})};
    const ClippedGradients clipped = ClipGradients(parameters, 1.0, max_norm);
    EXPECT_TRUE(clipped.finite) << max_norm;
    EXPECT_DOUBLE_EQ(clipped.norm, 13.0) << max_norm;
    EXPECT_EQ(clipped.scale, 1.0) << max_norm;
    EXPECT_EQ(Values(parameters[0].grad()), std::vector<float>({3, 4})) << max_norm;
    EXPECT_EQ(Values(parameters[1].grad()), std::vector<float>({12})) << max_norm;
  }
}

TEST(ClipGradients, NoGradientAtAllHasNormZero) {
  const ClippedGradients clipped = ClipGradients({Parameter({1, 2}, {})}, 1.0, 1.0);
  EXPECT_TRUE(clipped.finite);
  EXPECT_TRUE(clipped.norm_taken);
  EXPECT_EQ(clipped.norm, 0.0);
  EXPECT_EQ(clipped.scale, 1.0);
}

TEST(ClipGradients, ANonFiniteGradientIsDetectedAndLeftAlone) {
  for (float bad : {kNaN, kInf, -kInf}) {
    const std::vector<at::Tensor> parameters = {Parameter({0, 0}, {bad, 40}), Parameter({0}, {12})};
    const ClippedGradients clipped = ClipGradients(parameters, 0.5, /*max_norm=*/1.0);
    EXPECT_FALSE(clipped.finite) << bad;
    EXPECT_TRUE(clipped.norm_taken) << bad;
    EXPECT_FALSE(std::isfinite(clipped.norm)) << bad;
    if (std::isnan(bad)) {
      EXPECT_TRUE(std::isnan(clipped.norm));
    } else {
      EXPECT_EQ(clipped.norm, std::numeric_limits<double>::infinity());
    }
    EXPECT_EQ(clipped.scale, 1.0) << bad;
    // Not scaled, although far over the limit: the caller drops the update instead.
    EXPECT_EQ(Values(parameters[0].grad())[1], 40.0f) << bad;
    EXPECT_EQ(Values(parameters[1].grad()), std::vector<float>({12})) << bad;
  }
}

TEST(ClipGradients, ANonFiniteLossSkipsWithoutReadingTheGradients) {
  for (double loss : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                      -std::numeric_limits<double>::infinity()}) {
    const std::vector<at::Tensor> parameters = {Parameter({0, 0}, {3, 4})};
    const ClippedGradients clipped = ClipGradients(parameters, loss, /*max_norm=*/1.0);
    EXPECT_FALSE(clipped.finite) << loss;
    EXPECT_FALSE(clipped.norm_taken) << loss;
    EXPECT_TRUE(std::isnan(clipped.norm)) << loss;  // no norm was taken: NaN, not a made-up 0
    EXPECT_EQ(clipped.scale, 1.0) << loss;
    EXPECT_EQ(Values(parameters[0].grad()), std::vector<float>({3, 4})) << loss;
  }
}

TEST(StepUnlessNonFinite, AppliesAFiniteUpdate) {
  at::Tensor parameter = Parameter({1, 1}, {3, 4});
  torch::optim::SGD optimizer(std::vector<at::Tensor>{parameter}, torch::optim::SGDOptions(0.1));
  const ClippedGradients clipped = ClipGradients({parameter}, 1.0, /*max_norm=*/2.5);  // scale ≈ 0.5
  int64_t skipped = 0;
  EXPECT_TRUE(StepUnlessNonFinite(optimizer, clipped, &skipped));
  EXPECT_EQ(skipped, 0);
  const std::vector<float> values = Values(parameter);
  EXPECT_NEAR(values[0], 1 - 0.1 * 1.5, 1e-6);
  EXPECT_NEAR(values[1], 1 - 0.1 * 2.0, 1e-6);
}

TEST(StepUnlessNonFinite, DropsANonFiniteUpdateAndCountsIt) {
  for (double loss : {1.0, std::numeric_limits<double>::quiet_NaN()}) {  // a NaN gradient, then a NaN loss
    at::Tensor parameter = Parameter({1, 1}, {kNaN, 4});
    torch::optim::SGD optimizer(std::vector<at::Tensor>{parameter}, torch::optim::SGDOptions(0.1));
    int64_t skipped = 2;
    EXPECT_FALSE(StepUnlessNonFinite(optimizer, ClipGradients({parameter}, loss, 1.0), &skipped)) << loss;
    EXPECT_EQ(skipped, 3) << loss;
    EXPECT_EQ(Values(parameter), std::vector<float>({1, 1})) << loss;
    EXPECT_TRUE(!parameter.grad().defined() || parameter.grad().abs().sum().item<double>() == 0.0) << loss;
  }
}

}  // namespace
}  // namespace rlj
