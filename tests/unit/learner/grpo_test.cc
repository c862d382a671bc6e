// grpo_test.cc: GRPO advantages and policy loss against hand-computed values, gradients included.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "learner/grpo.h"

namespace rlj {
namespace {

TEST(GroupAdvantages, UnbiasedStdOverAllValid) {
  // rewards 1 0 0 1: mean 0.5, unbiased variance (4 * 0.25) / 3 = 1/3, std 0.5773503.
  const GroupAdvantageResult result = GroupAdvantages({1, 0, 0, 1}, {true, true, true, true});
  ASSERT_TRUE(result.has_signal);
  EXPECT_EQ(result.valid_count, 4);
  EXPECT_DOUBLE_EQ(result.mean, 0.5);
  EXPECT_NEAR(result.std, 0.5773503, 1e-7);
  const float expected = static_cast<float>(0.5 / (std::sqrt(1.0 / 3.0) + 1e-6));  // 0.8660239
  EXPECT_NEAR(expected, 0.8660239f, 1e-6);
  ASSERT_EQ(result.advantages.size(), 4u);
  EXPECT_FLOAT_EQ(result.advantages[0], expected);
  EXPECT_FLOAT_EQ(result.advantages[1], -expected);
  EXPECT_FLOAT_EQ(result.advantages[2], -expected);
  EXPECT_FLOAT_EQ(result.advantages[3], expected);
}

TEST(GroupAdvantages, InvalidEntriesAreExcludedAndZero) {
  // valid rewards 2 5 8: mean 5, unbiased variance (9 + 0 + 9) / 2 = 9, std 3; the 100 is invalid.
  const GroupAdvantageResult result = GroupAdvantages({2, 5, 100, 8}, {true, true, false, true});
  ASSERT_TRUE(result.has_signal);
  EXPECT_EQ(result.valid_count, 3);
  EXPECT_DOUBLE_EQ(result.mean, 5.0);
  EXPECT_DOUBLE_EQ(result.std, 3.0);
  EXPECT_FLOAT_EQ(result.advantages[0], static_cast<float>(-3.0 / 3.000001));  // -0.99999967
  EXPECT_FLOAT_EQ(result.advantages[1], 0.0f);
  EXPECT_FLOAT_EQ(result.advantages[2], 0.0f);
  EXPECT_FLOAT_EQ(result.advantages[3], static_cast<float>(3.0 / 3.000001));
}

TEST(GroupAdvantages, NoSignalWhenEqualOrTooFewValid) {
  const GroupAdvantageResult equal = GroupAdvantages({0.7, 0.7, 0.7}, {true, true, true});
  EXPECT_FALSE(equal.has_signal);
  EXPECT_EQ(equal.advantages, std::vector<float>({0, 0, 0}));

  const GroupAdvantageResult one_valid = GroupAdvantages({3, 7}, {true, false});
  EXPECT_FALSE(one_valid.has_signal);
  EXPECT_EQ(one_valid.valid_count, 1);
  EXPECT_EQ(one_valid.advantages, std::vector<float>({0, 0}));

  // Equal among the valid ones; the different reward is invalid.
  const GroupAdvantageResult equal_valid = GroupAdvantages({1, 0, 1}, {true, false, true});
  EXPECT_FALSE(equal_valid.has_signal);
  EXPECT_EQ(equal_valid.advantages, std::vector<float>({0, 0, 0}));

  const GroupAdvantageResult empty = GroupAdvantages({}, {});
  EXPECT_FALSE(empty.has_signal);
  EXPECT_TRUE(empty.advantages.empty());
}

at::Tensor Float2d(const std::vector<std::vector<float>>& rows) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t t = static_cast<int64_t>(rows[0].size());
  at::Tensor out = at::empty({n, t}, at::kFloat);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < t; ++j) out[i][j] = rows[i][j];
  }
  return out;
}

TEST(GrpoPolicyLoss, HandComputedLossMetricsAndGradients) {
  // behaviour log-probs are -1 everywhere; logp = -1 + ln(ratio). clip_eps 0.2 → trust region [0.8, 1.2].
  // Row 0, A = +1, ratios 1.1, 1.5, 0.5:
  //   1.1: min(1.1, 1.1) = 1.1 (inside)            → -1.1, d/dlogp = -ratio*A = -1.1
  //   1.5: min(1.5, 1.2) = 1.2 (clipped, differs)  → -1.2, d/dlogp = 0
  //   0.5: min(0.5, 0.8) = 0.5 (unclipped chosen)  → -0.5, d/dlogp = -0.5
  // Row 1, A = -2, ratios 0.5, 1.5, and a masked padding token:
  //   0.5: min(-1.0, -1.6) = -1.6 (clipped)        → +1.6, d/dlogp = 0
  //   1.5: min(-3.0, -2.4) = -3.0 (unclipped)      → +3.0, d/dlogp = -ratio*A = 3
  // Loss = (-1.1 - 1.2 - 0.5 + 1.6 + 3.0) / 5 = 0.36; clip fraction 2/5; ratio mean 5.1 / 5 = 1.02.
  at::Tensor logprobs = Float2d({{-1.0f + std::log(1.1f), -1.0f + std::log(1.5f), -1.0f + std::log(0.5f)},
                                 {-1.0f + std::log(0.5f), -1.0f + std::log(1.5f), 0.0f}})
                            .requires_grad_(true);
  // The masked token's behaviour log-prob would make exp(logp - behaviour) overflow if it were used.
  const at::Tensor behaviour = Float2d({{-1, -1, -1}, {-1, -1, -1000}});
  const at::Tensor advantages = at::tensor(std::vector<float>{1.0f, -2.0f});
  const at::Tensor mask = Float2d({{1, 1, 1}, {1, 1, 0}}).to(at::kBool);

  const PolicyLossResult result = GrpoPolicyLoss(logprobs, behaviour, at::Tensor(), advantages, mask, 0.2, 0.0);
  EXPECT_NEAR(result.loss.item<double>(), 0.36, 1e-5);
  EXPECT_NEAR(result.clip_fraction, 0.4, 1e-9);
  EXPECT_NEAR(result.ratio_mean, 1.02, 1e-5);
  EXPECT_DOUBLE_EQ(result.kl_mean, 0.0);
  EXPECT_DOUBLE_EQ(result.masked_tokens, 5.0);

  result.loss.backward();
  const at::Tensor grad = logprobs.grad();
  ASSERT_TRUE(grad.defined());
  const std::vector<std::vector<double>> expected = {{-1.1 / 5, 0.0, -0.5 / 5}, {0.0, 3.0 / 5, 0.0}};
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 3; ++j) {
      EXPECT_NEAR(grad[i][j].item<double>(), expected[i][j], 1e-5) << "token " << i << "," << j;
    }
  }
  // Gradient descent raises the log-prob of a positively-advantaged token inside the trust region and
  // lowers that of a negatively-advantaged one; clipped tokens get exactly zero gradient.
  EXPECT_LT(grad[0][0].item<double>(), 0.0);
  EXPECT_GT(grad[1][1].item<double>(), 0.0);
  EXPECT_EQ(grad[0][1].item<double>(), 0.0);
  EXPECT_EQ(grad[1][0].item<double>(), 0.0);
  EXPECT_EQ(grad[1][2].item<double>(), 0.0);
}

TEST(GrpoPolicyLoss, K3PenaltyTowardsReference) {
  // A = 0 leaves only the KL term. ref - logp = +ln 2 and -ln 2:
  //   k3 = 2 - ln 2 - 1 = 0.3068528 and 0.5 + ln 2 - 1 = 0.1931472; mean 0.25; loss = 0.1 * 0.25 = 0.025.
  //   dk3/dlogp = 1 - exp(ref - logp) = -1 and +0.5; gradient = 0.1 * [-1, 0.5] / 2 = [-0.05, 0.025].
  at::Tensor logprobs = Float2d({{-2.0f, -1.0f}}).requires_grad_(true);
  const at::Tensor behaviour = Float2d({{-2.0f, -1.0f}});
  const at::Tensor ref = Float2d({{-2.0f + std::log(2.0f), -1.0f - std::log(2.0f)}});
  const at::Tensor advantages = at::zeros({1});
  const at::Tensor mask = at::ones({1, 2});

  const PolicyLossResult result = GrpoPolicyLoss(logprobs, behaviour, ref, advantages, mask, 0.2, 0.1);
  EXPECT_NEAR(result.kl_mean, 0.25, 1e-6);
  EXPECT_NEAR(result.loss.item<double>(), 0.025, 1e-7);
  EXPECT_NEAR(result.ratio_mean, 1.0, 1e-7);
  EXPECT_DOUBLE_EQ(result.clip_fraction, 0.0);
  result.loss.backward();
  EXPECT_NEAR(logprobs.grad()[0][0].item<double>(), -0.05, 1e-6);
  EXPECT_NEAR(logprobs.grad()[0][1].item<double>(), 0.025, 1e-6);

  // kl_coef 0 with a reference: the KL is reported, not trained on.
  const PolicyLossResult unpenalised = GrpoPolicyLoss(logprobs, behaviour, ref, advantages, mask, 0.2, 0.0);
  EXPECT_NEAR(unpenalised.kl_mean, 0.25, 1e-6);
  EXPECT_NEAR(unpenalised.loss.item<double>(), 0.0, 1e-9);
}

TEST(GrpoPolicyLoss, EmptyMaskIsZeroLoss) {
  at::Tensor logprobs = Float2d({{-1.0f, -2.0f}}).requires_grad_(true);
  const PolicyLossResult result = GrpoPolicyLoss(logprobs, Float2d({{-3.0f, -3.0f}}), at::Tensor(),
                                                 at::ones({1}), at::zeros({1, 2}), 0.2, 0.0);
  EXPECT_EQ(result.loss.item<double>(), 0.0);
  EXPECT_EQ(result.masked_tokens, 0.0);
  result.loss.backward();
  EXPECT_EQ(logprobs.grad().abs().sum().item<double>(), 0.0);
}

}  // namespace
}  // namespace rlj
