// grpo_test.cc: advantages (GRPO, Dr. GRPO, RLOO, group/batch scaling) and the policy loss (clip-higher,
// dual clip, k1/k2/k3 KL, entropy bonus, truncated importance sampling, loss aggregations) against
// hand-computed values, gradients included.
#include "learner/grpo.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "learner/grpo_trainer.h"
#include "test_util.h"

namespace rlj {
namespace {

const double kLn2 = std::log(2.0);

// ---------------------------------------------------------------------------------------------------------
// Advantages

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

TEST(ComputeAdvantages, DrGrpoIsCentredWithoutStd) {
  // rewards 1 0 0 1, mean 0.5: advantages r - 0.5, no division.
  const BatchAdvantageResult result = ComputeAdvantages({{{1, 0, 0, 1}, {true, true, true, true}}},
                                                        {AdvantageBaseline::kGroupMean, RewardScaling::kNone});
  ASSERT_EQ(result.groups.size(), 1u);
  EXPECT_EQ(result.groups[0].advantages, std::vector<float>({0.5f, -0.5f, -0.5f, 0.5f}));
  EXPECT_EQ(result.groups_without_signal, 0);
}

TEST(ComputeAdvantages, RlooUsesTheMeanOfTheOtherSamples) {
  // rewards 1 0 0 0: r0 - mean(0,0,0) = 1; r1 - mean(1,0,0) = -1/3 (same for r2, r3).
  const BatchAdvantageResult single = ComputeAdvantages({{{1, 0, 0, 0}, {true, true, true, true}}},
                                                        {AdvantageBaseline::kLeaveOneOut, RewardScaling::kNone});
  EXPECT_FLOAT_EQ(single.groups[0].advantages[0], 1.0f);
  EXPECT_FLOAT_EQ(single.groups[0].advantages[1], static_cast<float>(-1.0 / 3.0));
  EXPECT_FLOAT_EQ(single.groups[0].advantages[2], static_cast<float>(-1.0 / 3.0));
  EXPECT_FLOAT_EQ(single.groups[0].advantages[3], static_cast<float>(-1.0 / 3.0));

  // An invalid sample is no one's baseline: valid 2 5 8 → 2 - (5+8)/2 = -4.5, 5 - (2+8)/2 = 0, 8 - 3.5 = 4.5.
  const BatchAdvantageResult with_invalid = ComputeAdvantages({{{2, 5, 100, 8}, {true, true, false, true}}},
                                                              {AdvantageBaseline::kLeaveOneOut, RewardScaling::kNone});
  EXPECT_EQ(with_invalid.groups[0].advantages, std::vector<float>({-4.5f, 0.0f, 0.0f, 4.5f}));
}

TEST(ComputeAdvantages, GroupVersusBatchScalingAndSkippedGroups) {
  // Groups A = {1, 0}, B = {0, 2}, C = {3, 3} (no signal: zeros, counted, not part of the batch std).
  const std::vector<GroupRewards> groups = {{{1, 0}, {true, true}}, {{0, 2}, {true, true}}, {{3, 3}, {true, true}}};

  // Per group: std(A) = sqrt(0.5) = 0.7071068, std(B) = sqrt(2) = 1.4142136.
  //   A: ±0.5 / (0.7071068 + 1e-6) = ±0.7071058;  B: ±1 / (1.4142136 + 1e-6) = ±0.7071063.
  const BatchAdvantageResult group = ComputeAdvantages(groups, {AdvantageBaseline::kGroupMean, RewardScaling::kGroup});
  EXPECT_EQ(group.groups_without_signal, 1);
  EXPECT_NEAR(group.groups[0].advantages[0], 0.7071058, 1e-6);
  EXPECT_NEAR(group.groups[0].advantages[1], -0.7071058, 1e-6);
  EXPECT_NEAR(group.groups[1].advantages[0], -0.7071063, 1e-6);
  EXPECT_NEAR(group.groups[1].advantages[1], 0.7071063, 1e-6);
  EXPECT_EQ(group.groups[2].advantages, std::vector<float>({0, 0}));

  // Per batch: the rewards with signal are 1 0 0 2: mean 0.75, squared deviations .0625 .5625 .5625 1.5625
  // = 2.75, unbiased variance 2.75 / 3, std 0.9574271. A: ±0.5 / 0.9574281 = ±0.5222324, B: ±1.0444648.
  const BatchAdvantageResult batch = ComputeAdvantages(groups, {AdvantageBaseline::kGroupMean, RewardScaling::kBatch});
  EXPECT_EQ(batch.groups_without_signal, 1);
  EXPECT_NEAR(batch.batch_std, 0.9574271, 1e-7);
  EXPECT_NEAR(batch.groups[0].advantages[0], 0.5222324, 1e-6);
  EXPECT_NEAR(batch.groups[0].advantages[1], -0.5222324, 1e-6);
  EXPECT_NEAR(batch.groups[1].advantages[0], -1.0444648, 1e-6);
  EXPECT_NEAR(batch.groups[1].advantages[1], 1.0444648, 1e-6);
  EXPECT_EQ(batch.groups[2].advantages, std::vector<float>({0, 0}));

  // RLOO scaled per group: A's leave-one-out advantages ±1 divided by std(A): ±1 / 0.7071078 = ±1.4142116.
  const BatchAdvantageResult rloo = ComputeAdvantages(groups, {AdvantageBaseline::kLeaveOneOut, RewardScaling::kGroup});
  EXPECT_NEAR(rloo.groups[0].advantages[0], 1.4142116, 1e-6);
}

TEST(AdvantageOptionsFromConfig, AlgorithmsAndScalingOverride) {
  v1::LearnerConfig learner;
  learner.set_algorithm(v1::LearnerConfig::grpo);
  const AdvantageOptions grpo = AdvantageOptionsFromConfig(learner);
  EXPECT_EQ(grpo.baseline, AdvantageBaseline::kGroupMean);
  EXPECT_EQ(grpo.scaling, RewardScaling::kGroup);

  learner.set_algorithm(v1::LearnerConfig::dr_grpo);
  const AdvantageOptions dr_grpo = AdvantageOptionsFromConfig(learner);
  EXPECT_EQ(dr_grpo.baseline, AdvantageBaseline::kGroupMean);
  EXPECT_EQ(dr_grpo.scaling, RewardScaling::kNone);

  learner.set_algorithm(v1::LearnerConfig::rloo);
  const AdvantageOptions rloo = AdvantageOptionsFromConfig(learner);
  EXPECT_EQ(rloo.baseline, AdvantageBaseline::kLeaveOneOut);
  EXPECT_EQ(rloo.scaling, RewardScaling::kNone);

  learner.set_reward_scaling(v1::LearnerConfig::batch);
  const AdvantageOptions rloo_batch = AdvantageOptionsFromConfig(learner);
  EXPECT_EQ(rloo_batch.baseline, AdvantageBaseline::kLeaveOneOut);
  EXPECT_EQ(rloo_batch.scaling, RewardScaling::kBatch);
}

// ---------------------------------------------------------------------------------------------------------
// Policy loss

at::Tensor Float2d(const std::vector<std::vector<float>>& rows) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t t = static_cast<int64_t>(rows[0].size());
  at::Tensor out = at::empty({n, t}, at::kFloat);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < t; ++j) out[i][j] = rows[i][j];
  }
  return out;
}

at::Tensor Float1d(const std::vector<float>& values) { return at::tensor(values); }

double Stat(const PolicyLossResult& result, PolicyLossStat stat) { return result.stats[stat].item<double>(); }

void ExpectGrad(const at::Tensor& grad, const std::vector<std::vector<double>>& expected, double tolerance = 1e-5) {
  ASSERT_TRUE(grad.defined());
  for (size_t i = 0; i < expected.size(); ++i) {
    for (size_t j = 0; j < expected[i].size(); ++j) {
      EXPECT_NEAR(grad[i][j].item<double>(), expected[i][j], tolerance) << "token " << i << "," << j;
    }
  }
}

TEST(PolicyLoss, SymmetricClipLossStatsAndGradients) {
  // behaviour log-probs are -1 everywhere; logp = -1 + ln(ratio). clip 0.2 → trust region [0.8, 1.2].
  // Row 0, A = +1, ratios 1.1, 1.5, 0.5:
  //   1.1: min(1.1, 1.1) = 1.1 (inside)            → -1.1, d/dlogp = -ratio*A = -1.1
  //   1.5: min(1.5, 1.2) = 1.2 (clipped, differs)  → -1.2, d/dlogp = 0
  //   0.5: min(0.5, 0.8) = 0.5 (unclipped chosen)  → -0.5, d/dlogp = -0.5
  // Row 1, A = -2, ratios 0.5, 1.5, and a padding token (weight 0):
  //   0.5: min(-1.0, -1.6) = -1.6 (clipped)        → +1.6, d/dlogp = 0
  //   1.5: min(-3.0, -2.4) = -3.0 (unclipped)      → +3.0, d/dlogp = -ratio*A = 3
  // token_mean weights 1/5: loss = (-1.1 - 1.2 - 0.5 + 1.6 + 3.0) / 5 = 0.36; 2 clipped; ratio sum 5.1.
  at::Tensor logprobs = Float2d({{-1.0f + std::log(1.1f), -1.0f + std::log(1.5f), -1.0f + std::log(0.5f)},
                                 {-1.0f + std::log(0.5f), -1.0f + std::log(1.5f), 0.0f}})
                            .requires_grad_(true);
  PolicyLossInputs in;
  in.logprobs = logprobs;
  // The padding token's behaviour log-prob would make exp(logp - behaviour) overflow if it were used.
  in.behaviour_logprobs = Float2d({{-1, -1, -1}, {-1, -1, -1000}});
  in.advantages = Float1d({1.0f, -2.0f});
  in.weights = Float2d({{0.2f, 0.2f, 0.2f}, {0.2f, 0.2f, 0.0f}});

  const PolicyLossResult result = PolicyLoss(in, PolicyLossOptions{});
  EXPECT_NEAR(result.loss.item<double>(), 0.36, 1e-5);
  EXPECT_DOUBLE_EQ(Stat(result, kStatTokens), 5.0);
  EXPECT_DOUBLE_EQ(Stat(result, kStatClipped), 2.0);
  EXPECT_NEAR(Stat(result, kStatRatio), 5.1, 1e-5);
  EXPECT_DOUBLE_EQ(Stat(result, kStatKl), 0.0);
  EXPECT_DOUBLE_EQ(Stat(result, kStatDualClipped), 0.0);
  EXPECT_DOUBLE_EQ(Stat(result, kStatIsWeight), 5.0);  // no correction: weight 1 per token

  result.loss.backward();
  ExpectGrad(logprobs.grad(), {{-1.1 / 5, 0.0, -0.5 / 5}, {0.0, 3.0 / 5, 0.0}});
  EXPECT_EQ(logprobs.grad()[1][2].item<double>(), 0.0);
  EXPECT_FALSE(logprobs.grad().isnan().any().item<bool>());
}

TEST(PolicyLoss, ClipHigherWidensOnlyTheUpperBound) {
  // clip_low 0.2, clip_high 0.28 → trust region [0.8, 1.28]; weights 1.
  // A = +1, ratio 1.25: symmetric clip would give 1.2; here min(1.25, 1.25) = 1.25 → -1.25, grad -1.25.
  // A = -1, ratio 0.75: min(-0.75, -0.8) = -0.8 (clipped at the unchanged low bound) → +0.8, grad 0.
  // loss = -1.25 + 0.8 = -0.45; one clipped token.
  at::Tensor logprobs = Float2d({{std::log(1.25f)}, {std::log(0.75f)}}).requires_grad_(true);
  PolicyLossInputs in;
  in.logprobs = logprobs;
  in.behaviour_logprobs = at::zeros({2, 1});
  in.advantages = Float1d({1.0f, -1.0f});
  in.weights = at::ones({2, 1});
  PolicyLossOptions options;
  options.clip_low = 0.2;
  options.clip_high = 0.28;
  const PolicyLossResult result = PolicyLoss(in, options);
  EXPECT_NEAR(result.loss.item<double>(), -0.45, 1e-6);
  EXPECT_DOUBLE_EQ(Stat(result, kStatClipped), 1.0);
  result.loss.backward();
  ExpectGrad(logprobs.grad(), {{-1.25}, {0.0}});

  // The same tokens with the symmetric clip: -1.2 + 0.8 = -0.4, both clipped, no gradient.
  at::Tensor symmetric_logprobs = logprobs.detach().clone().requires_grad_(true);
  in.logprobs = symmetric_logprobs;
  const PolicyLossResult symmetric = PolicyLoss(in, PolicyLossOptions{});
  EXPECT_NEAR(symmetric.loss.item<double>(), -0.4, 1e-6);
  EXPECT_DOUBLE_EQ(Stat(symmetric, kStatClipped), 2.0);
  symmetric.loss.backward();
  ExpectGrad(symmetric_logprobs.grad(), {{0.0}, {0.0}});
}

TEST(PolicyLoss, DualClipBoundsNegativeAdvantageLosses) {
  // dual clip c = 3, clip 0.2, weights 1. Row 0 has A = -1, row 1 A = +1.
  //   A=-1, ratio 5: -min(-5, -1.2) = 5 > c·|A| = 3 → 3 (dual clipped), grad 0
  //   A=-1, ratio 2: -min(-2, -1.2) = 2 ≤ 3 → 2, grad d(ratio)/dlogp = 2
  //   A=+1, ratio 5: -min(5, 1.2) = -1.2 (clipped; the dual clip never applies to A > 0), grad 0
  //   A=+1, ratio 1: -1, grad -1
  // loss = 3 + 2 - 1.2 - 1 = 2.8; 1 clipped, 1 dual clipped.
  at::Tensor logprobs = Float2d({{std::log(5.0f), std::log(2.0f)}, {std::log(5.0f), 0.0f}}).requires_grad_(true);
  PolicyLossInputs in;
  in.logprobs = logprobs;
  in.behaviour_logprobs = at::zeros({2, 2});
  in.advantages = Float1d({-1.0f, 1.0f});
  in.weights = at::ones({2, 2});
  PolicyLossOptions options;
  options.dual_clip = 3.0;
  const PolicyLossResult result = PolicyLoss(in, options);
  EXPECT_NEAR(result.loss.item<double>(), 2.8, 1e-5);
  EXPECT_DOUBLE_EQ(Stat(result, kStatClipped), 1.0);
  EXPECT_DOUBLE_EQ(Stat(result, kStatDualClipped), 1.0);
  result.loss.backward();
  ExpectGrad(logprobs.grad(), {{0.0, 2.0}, {0.0, -1.0}});

  // Without the dual clip the first token costs 5: loss 4.8 and a gradient of 5 there.
  at::Tensor plain_logprobs = logprobs.detach().clone().requires_grad_(true);
  in.logprobs = plain_logprobs;
  const PolicyLossResult plain = PolicyLoss(in, PolicyLossOptions{});
  EXPECT_NEAR(plain.loss.item<double>(), 4.8, 1e-5);
  plain.loss.backward();
  ExpectGrad(plain_logprobs.grad(), {{5.0, 2.0}, {0.0, -1.0}});
}

// A = 0 leaves only the KL term; ref - logp = +ln 2 and -ln 2; kl_coef 0.1; token_mean weights 1/2.
struct KlCase {
  KlEstimator estimator;
  double kl_sum;   // Σ kl over the two tokens
  double grad[2];  // d loss / d logp = 0.1 · 0.5 · d kl / d logp
};

TEST(PolicyLoss, KlEstimatorsK1K2K3) {
  const std::vector<KlCase> cases = {
      // k1 = logp - ref = -ln 2, +ln 2: sum 0; d/dlogp = 1 → grad 0.05 each.
      {KlEstimator::kK1, 0.0, {0.05, 0.05}},
      // k2 = (logp - ref)² / 2 = ln²2 / 2 = 0.2402265 each: sum 0.4804530; d/dlogp = logp - ref = ∓ln 2
      //   → grad 0.05 · (-0.6931472, +0.6931472) = (-0.0346574, +0.0346574).
      {KlEstimator::kK2, 0.4804530, {-0.0346574, 0.0346574}},
      // k3 = exp(ref - logp) - (ref - logp) - 1 = 2 - ln 2 - 1 = 0.3068528 and 0.5 + ln 2 - 1 = 0.1931472:
      //   sum 0.5; d/dlogp = 1 - exp(ref - logp) = -1 and +0.5 → grad (-0.05, +0.025).
      {KlEstimator::kK3, 0.5, {-0.05, 0.025}},
  };
  for (const KlCase& c : cases) {
    SCOPED_TRACE(static_cast<int>(c.estimator));
    at::Tensor logprobs = Float2d({{-2.0f, -1.0f}}).requires_grad_(true);
    PolicyLossInputs in;
    in.logprobs = logprobs;
    in.behaviour_logprobs = Float2d({{-2.0f, -1.0f}});
    in.ref_logprobs = Float2d({{static_cast<float>(-2.0 + kLn2), static_cast<float>(-1.0 - kLn2)}});
    in.advantages = at::zeros({1});
    in.weights = at::full({1, 2}, 0.5f);
    PolicyLossOptions options;
    options.kl_estimator = c.estimator;
    options.kl_coef = 0.1;
    const PolicyLossResult result = PolicyLoss(in, options);
    EXPECT_NEAR(Stat(result, kStatKl), c.kl_sum, 1e-6);
    EXPECT_NEAR(result.loss.item<double>(), 0.1 * 0.5 * c.kl_sum, 1e-7);
    EXPECT_NEAR(Stat(result, kStatRatio), 2.0, 1e-6);
    result.loss.backward();
    ExpectGrad(logprobs.grad(), {{c.grad[0], c.grad[1]}}, 1e-6);

    // kl_coef 0 with a reference: the KL is reported, not trained on.
    options.kl_coef = 0;
    const PolicyLossResult unpenalised = PolicyLoss(in, options);
    EXPECT_NEAR(Stat(unpenalised, kStatKl), c.kl_sum, 1e-6);
    EXPECT_NEAR(unpenalised.loss.item<double>(), 0.0, 1e-9);
  }
}

TEST(PolicyLoss, EntropyBonusRewardsEntropy) {
  // A = 0, entropy 1.5 and 0.5, entropy_coef 0.01, weights 1/2: loss = -0.01 · (0.75 + 0.25) = -0.01;
  // d loss / d entropy = -0.01 · 0.5 = -0.005 per token (gradient descent raises the entropy).
  at::Tensor entropy = Float2d({{1.5f, 0.5f}}).requires_grad_(true);
  PolicyLossInputs in;
  in.logprobs = at::zeros({1, 2});
  in.behaviour_logprobs = at::zeros({1, 2});
  in.entropy = entropy;
  in.advantages = at::zeros({1});
  in.weights = at::full({1, 2}, 0.5f);
  PolicyLossOptions options;
  options.entropy_coef = 0.01;
  const PolicyLossResult result = PolicyLoss(in, options);
  EXPECT_NEAR(result.loss.item<double>(), -0.01, 1e-7);
  EXPECT_NEAR(Stat(result, kStatEntropy), 2.0, 1e-6);
  result.loss.backward();
  ExpectGrad(entropy.grad(), {{-0.005, -0.005}}, 1e-7);
}

TEST(PolicyLoss, TruncatedImportanceSamplingWeightsAndCaps) {
  // behaviour (the sampler's) -1; old (the learner's at the step start) -1 + ln 3 and -1 + ln 1.5; the policy
  // equals old (ratio 1 against the proximal policy), A = +1, tis_cap 2, weights 1:
  //   IS weights min(exp(old - behaviour), 2) = min(3, 2) = 2 (capped) and 1.5
  //   pg = -ratio · A · w = -2 and -1.5 → loss -3.5; d/dlogp = -ratio · w = -2 and -1.5.
  const at::Tensor old =
      Float2d({{static_cast<float>(-1.0 + std::log(3.0)), static_cast<float>(-1.0 + std::log(1.5))}});
  at::Tensor logprobs = old.clone().requires_grad_(true);
  PolicyLossInputs in;
  in.logprobs = logprobs;
  in.behaviour_logprobs = at::full({1, 2}, -1.0f);
  in.old_logprobs = old;
  in.advantages = Float1d({1.0f});
  in.weights = at::ones({1, 2});
  PolicyLossOptions options;
  options.tis_cap = 2.0;
  const PolicyLossResult result = PolicyLoss(in, options);
  EXPECT_NEAR(result.loss.item<double>(), -3.5, 1e-5);
  EXPECT_NEAR(Stat(result, kStatIsWeight), 3.5, 1e-5);
  EXPECT_DOUBLE_EQ(Stat(result, kStatIsCapped), 1.0);
  EXPECT_NEAR(Stat(result, kStatRatio), 2.0, 1e-6);  // against old, not behaviour
  EXPECT_DOUBLE_EQ(Stat(result, kStatClipped), 0.0);
  result.loss.backward();
  ExpectGrad(logprobs.grad(), {{-2.0, -1.5}});

  // tis_cap 0: old is still the proximal policy (ratio 1), but no weights: loss -2, grads -1.
  at::Tensor uncorrected_logprobs = old.clone().requires_grad_(true);
  in.logprobs = uncorrected_logprobs;
  const PolicyLossResult uncorrected = PolicyLoss(in, PolicyLossOptions{});
  EXPECT_NEAR(uncorrected.loss.item<double>(), -2.0, 1e-5);
  EXPECT_NEAR(Stat(uncorrected, kStatIsWeight), 2.0, 1e-6);
  uncorrected.loss.backward();
  ExpectGrad(uncorrected_logprobs.grad(), {{-1.0, -1.0}});

  // Without old log-probs the behaviour policy is the proximal one: ratios 3 and 1.5, both clipped to 1.2.
  in.old_logprobs = at::Tensor();
  in.logprobs = old.clone().requires_grad_(true);
  const PolicyLossResult behaviour_proximal = PolicyLoss(in, options);
  EXPECT_NEAR(behaviour_proximal.loss.item<double>(), -2.4, 1e-5);
  EXPECT_DOUBLE_EQ(Stat(behaviour_proximal, kStatClipped), 2.0);
}

TEST(PolicyLoss, ZeroWeightsAreZeroLossAndZeroGradient) {
  at::Tensor logprobs = Float2d({{-1.0f, -2.0f}}).requires_grad_(true);
  PolicyLossInputs in;
  in.logprobs = logprobs;
  in.behaviour_logprobs = Float2d({{-3000.0f, -3.0f}});
  in.ref_logprobs = Float2d({{3000.0f, 0.0f}});
  in.advantages = at::ones({1});
  in.weights = at::zeros({1, 2});
  PolicyLossOptions options;
  options.kl_coef = 0.5;
  const PolicyLossResult result = PolicyLoss(in, options);
  EXPECT_EQ(result.loss.item<double>(), 0.0);
  EXPECT_EQ(Stat(result, kStatTokens), 0.0);
  result.loss.backward();
  EXPECT_EQ(logprobs.grad().abs().sum().item<double>(), 0.0);
}

// A token sampled with a tiny probability (behaviour log-prob -100) that the policy now likes (-1): the ratio
// e^99 would be inf in float32; clamped at e^20 the loss stays finite. With A < 0 the unclipped branch is taken
// (its gradient is 0 through the clamp); with A > 0 the clipped one (1.2·A, gradient 0). The k3 KL to a
// reference 100 nats below is clamped the same way: e^-20 - (-20) - 1 instead of e^-100 + 99.
TEST(PolicyLoss, HugeLogRatiosAreClampedNotInfinite) {
  at::Tensor logprobs = Float2d({{-1.0f}, {-1.0f}}).requires_grad_(true);
  PolicyLossInputs in;
  in.logprobs = logprobs;
  in.behaviour_logprobs = Float2d({{-100.0f}, {-100.0f}});
  in.ref_logprobs = Float2d({{-101.0f}, {-1.0f}});
  in.advantages = Float1d({-1.0f, 1.0f});
  in.weights = Float2d({{0.5f}, {0.5f}});
  PolicyLossOptions options;
  options.kl_coef = 1.0;
  options.kl_estimator = KlEstimator::kK3;
  const PolicyLossResult result = PolicyLoss(in, options);
  const double e20 = std::exp(20.0);
  const double k3 = std::exp(-20.0) + 20.0 - 1.0;
  // Row 0: -min(-e^20, -0.8) = e^20, plus k3; row 1: -min(e^20, 1.2) = -1.2, plus k3 of 0 = 0.
  EXPECT_NEAR(result.loss.item<double>() / (0.5 * (e20 + k3) + 0.5 * (-1.2)), 1.0, 1e-5);
  EXPECT_TRUE(std::isfinite(result.loss.item<double>()));
  result.loss.backward();
  EXPECT_FALSE(logprobs.grad().isnan().any().item<bool>());
  EXPECT_FALSE(logprobs.grad().isinf().any().item<bool>());
}

TEST(PolicyLoss, RejectsMismatchedShapes) {
  PolicyLossInputs in;
  in.logprobs = at::zeros({2, 3});
  in.behaviour_logprobs = at::zeros({2, 2});
  in.advantages = at::zeros({2});
  in.weights = at::ones({2, 3});
  EXPECT_THROW(PolicyLoss(in, PolicyLossOptions{}), c10::Error);
}

TEST(PolicyLossOptionsFromConfig, ClipBoundsDefaultToClipEps) {
  v1::LearnerConfig learner;
  learner.set_clip_eps(0.25);
  const PolicyLossOptions symmetric = PolicyLossOptionsFromConfig(learner);
  EXPECT_DOUBLE_EQ(symmetric.clip_low, 0.25);
  EXPECT_DOUBLE_EQ(symmetric.clip_high, 0.25);
  EXPECT_EQ(symmetric.kl_estimator, KlEstimator::kK3);

  learner.set_clip_eps_high(0.28);
  learner.set_dual_clip(3);
  learner.set_kl_estimator(v1::LearnerConfig::k2);
  learner.set_kl_coef(0.05);
  learner.set_entropy_coef(0.001);
  learner.set_tis_cap(2);
  const PolicyLossOptions options = PolicyLossOptionsFromConfig(learner);
  EXPECT_DOUBLE_EQ(options.clip_low, 0.25);
  EXPECT_DOUBLE_EQ(options.clip_high, 0.28);
  EXPECT_DOUBLE_EQ(options.dual_clip, 3);
  EXPECT_EQ(options.kl_estimator, KlEstimator::kK2);
  EXPECT_DOUBLE_EQ(options.kl_coef, 0.05);
  EXPECT_DOUBLE_EQ(options.entropy_coef, 0.001);
  EXPECT_DOUBLE_EQ(options.tis_cap, 2);
}

// ---------------------------------------------------------------------------------------------------------
// Loss aggregation

// Two sequences with per-token terms {3} and {1, 2, 3} (a k1 KL term, kl_coef 1, A = 0):
//   token_mean          = (3 + 1 + 2 + 3) / 4     = 2.25
//   seq_mean_token_mean = (3/1 + 6/3) / 2         = 2.5
//   seq_mean_token_sum  = (3 + 6) / 2             = 4.5
TEST(LossAggregation, WeightsGiveEachAggregationsMean) {
  struct Case {
    v1::LearnerConfig::LossAggregation name;
    double loss;
  };
  for (const Case& c : {Case{v1::LearnerConfig::token_mean, 2.25}, Case{v1::LearnerConfig::seq_mean_token_mean, 2.5},
                        Case{v1::LearnerConfig::seq_mean_token_sum, 4.5}}) {
    SCOPED_TRACE(v1::LearnerConfig::LossAggregation_Name(c.name));
    const LossAggregation aggregation = LossAggregationFromConfig(c.name);
    const double w0 = TokenLossWeight(aggregation, 1, 2, 4);
    const double w1 = TokenLossWeight(aggregation, 3, 2, 4);
    PolicyLossInputs in;
    in.logprobs = at::zeros({2, 3});
    in.behaviour_logprobs = at::zeros({2, 3});
    // k1 = logp - ref → ref = -term.
    in.ref_logprobs = Float2d({{-3, 0, 0}, {-1, -2, -3}});
    in.advantages = at::zeros({2});
    in.weights = Float2d(
        {{static_cast<float>(w0), 0, 0}, {static_cast<float>(w1), static_cast<float>(w1), static_cast<float>(w1)}});
    PolicyLossOptions options;
    options.kl_estimator = KlEstimator::kK1;
    options.kl_coef = 1.0;
    const PolicyLossResult all = PolicyLoss(in, options);
    EXPECT_NEAR(all.loss.item<double>(), c.loss, 1e-6);

    // Micro-batches (or ranks) each computing their own rows add up to the same loss.
    PolicyLossInputs first = in, second = in;
    for (PolicyLossInputs* part : {&first, &second}) {
      const int64_t row = part == &first ? 0 : 1;
      part->logprobs = in.logprobs.narrow(0, row, 1);
      part->behaviour_logprobs = in.behaviour_logprobs.narrow(0, row, 1);
      part->ref_logprobs = in.ref_logprobs.narrow(0, row, 1);
      part->advantages = in.advantages.narrow(0, row, 1);
      part->weights = in.weights.narrow(0, row, 1);
    }
    EXPECT_NEAR(PolicyLoss(first, options).loss.item<double>() + PolicyLoss(second, options).loss.item<double>(),
                c.loss, 1e-6);
  }
  EXPECT_DOUBLE_EQ(TokenLossWeight(LossAggregation::kTokenMean, 3, 2, 4), 0.25);
  EXPECT_DOUBLE_EQ(TokenLossWeight(LossAggregation::kSeqMeanTokenMean, 3, 2, 4), 1.0 / 6.0);
  EXPECT_DOUBLE_EQ(TokenLossWeight(LossAggregation::kSeqMeanTokenSum, 3, 2, 4), 0.5);
  EXPECT_DOUBLE_EQ(TokenLossWeight(LossAggregation::kTokenMean, 0, 2, 4), 0.0);
}

// ---------------------------------------------------------------------------------------------------------
// Learning-rate schedule

TEST(ScheduledLearningRate, WarmupThenConstantOrCosine) {
  v1::LearnerConfig learner;
  learner.set_lr(1e-3);
  learner.set_warmup_steps(4);
  // Warmup: lr · (step + 1) / 4.
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(learner, 0, 14), 2.5e-4);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(learner, 2, 14), 7.5e-4);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(learner, 3, 14), 1e-3);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(learner, 100, 14), 1e-3);  // constant

  // Cosine from step 4 to 14 down to 0.1 · lr: floor + (lr - floor) · (1 + cos(π · (step - 4) / 10)) / 2.
  learner.set_lr_schedule(v1::LearnerConfig::cosine);
  learner.set_min_lr_ratio(0.1);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(learner, 4, 14), 1e-3);
  EXPECT_NEAR(ScheduledLearningRate(learner, 9, 14), 5.5e-4, 1e-12);  // halfway: 1e-4 + 9e-4 · 0.5
  EXPECT_NEAR(ScheduledLearningRate(learner, 14, 14), 1e-4, 1e-12);
  EXPECT_NEAR(ScheduledLearningRate(learner, 30, 14), 1e-4, 1e-12);  // stays at the floor
}

}  // namespace
}  // namespace rlj
