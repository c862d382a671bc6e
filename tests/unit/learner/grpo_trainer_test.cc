// grpo_trainer_test.cc: GRPO steps on a tiny random model: the direction of an update, groups without
// signal, excluded invalid samples, non-finite losses, the KL reference and several epochs.
#include "learner/grpo_trainer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "learner_fixtures.h"
#include "model/logprobs.h"
#include "model/transformer.h"
#include "model_fixtures.h"
#include "test_util.h"

namespace rlj {
namespace {

v1::RunConfig TinyRunConfig() { return testing::TinyLearnerConfig(); }

Transformer TinyModel(const v1::RunConfig& config, uint64_t seed = 7) {
  at::manual_seed(seed);
  return Transformer(TransformerConfig::FromProto(config.model()).value());
}

using testing::CompletionLogProbs;

double Sum(const std::vector<float>& values) {
  double total = 0;
  for (float v : values) total += v;
  return total;
}

v1::Rollout MakeRollout(Transformer& model, const std::vector<int32_t>& prompt, const std::vector<int32_t>& completion,
                        double reward, bool valid = true) {
  v1::Rollout rollout;
  rollout.set_sample_id("s");
  for (int32_t id : completion) rollout.add_completion_tokens(id);
  // Sampled by the current policy: behaviour log-probs are the policy's own, so every ratio starts at 1.
  for (float lp : CompletionLogProbs(model, prompt, completion)) rollout.add_behaviour_logprobs(lp);
  rollout.set_reward(reward);
  rollout.set_valid(valid);
  return rollout;
}

v1::RolloutGroup MakeGroup(const std::vector<int32_t>& prompt, std::vector<v1::Rollout> rollouts) {
  v1::RolloutGroup group;
  group.set_group_id("g");
  for (int32_t id : prompt) group.add_prompt_tokens(id);
  for (auto& rollout : rollouts) *group.add_rollouts() = std::move(rollout);
  return group;
}

bool SameParameters(Transformer& a, Transformer& b) {
  const auto pa = a->parameters();
  const auto pb = b->parameters();
  if (pa.size() != pb.size()) return false;
  for (size_t i = 0; i < pa.size(); ++i) {
    if (!at::equal(pa[i], pb[i])) return false;
  }
  return true;
}

const std::vector<int32_t> kPrompt = {1, 2, 3};
const std::vector<int32_t> kGood = {4, 5, 6};
const std::vector<int32_t> kBad = {7, 8};

TEST(GrpoTrainer, PositiveAdvantageRaisesTheCompletionsLogProb) {
  const v1::RunConfig config = TinyRunConfig();
  Transformer model = TinyModel(config);
  const double good_before = Sum(CompletionLogProbs(model, kPrompt, kGood));
  const double bad_before = Sum(CompletionLogProbs(model, kPrompt, kBad));
  const v1::RolloutGroup group =
      MakeGroup(kPrompt, {MakeRollout(model, kPrompt, kGood, 1.0), MakeRollout(model, kPrompt, kBad, 0.0)});

  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
  EXPECT_EQ(trainer->device(), "cpu");
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics metrics, trainer->Step({group}));

  // Rewards 1 and 0: mean 0.5, unbiased std sqrt(0.5), advantages ±0.5 / (0.7071068 + 1e-6) = ±0.7071058.
  EXPECT_DOUBLE_EQ(metrics.reward_mean(), 0.5);
  EXPECT_DOUBLE_EQ(metrics.reward_std(), 0.5);  // population std of the rewards
  EXPECT_NEAR(metrics.advantage_abs_mean(), 0.7071058, 1e-6);
  // Every ratio is 1, so the loss is -(3 * 0.7071058 - 2 * 0.7071058) / 5 tokens = -0.1414212.
  EXPECT_NEAR(metrics.loss(), -0.1414212, 1e-4);
  EXPECT_NEAR(metrics.clip_fraction(), 0.0, 1e-12);
  EXPECT_EQ(metrics.kl(), 0.0);
  EXPECT_GT(metrics.grad_norm(), 0.0);
  EXPECT_GT(metrics.entropy(), 0.0);
  EXPECT_LE(metrics.entropy(), std::log(32.0) + 1e-4);
  EXPECT_GT(metrics.tokens_per_s(), 0.0);
  EXPECT_EQ(metrics.groups(), 1);
  EXPECT_EQ(metrics.samples(), 2);
  EXPECT_EQ(metrics.masked_samples(), 0);
  EXPECT_EQ(trainer->optimizer_steps(), 1);

  // The trainer shares the module: `model` is the updated policy.
  const double good_after = Sum(CompletionLogProbs(model, kPrompt, kGood));
  const double bad_after = Sum(CompletionLogProbs(model, kPrompt, kBad));
  EXPECT_GT(good_after, good_before);
  EXPECT_LT(bad_after, bad_before);
}

TEST(GrpoTrainer, GroupWithEqualRewardsChangesNothing) {
  const v1::RunConfig config = TinyRunConfig();
  Transformer model = TinyModel(config);
  Transformer before = CloneTransformer(model);
  const v1::RolloutGroup group =
      MakeGroup(kPrompt, {MakeRollout(model, kPrompt, kGood, 1.0), MakeRollout(model, kPrompt, kBad, 1.0)});
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics metrics, trainer->Step({group}));
  EXPECT_TRUE(SameParameters(model, before));
  EXPECT_EQ(trainer->groups_skipped_no_signal(), 1);
  EXPECT_EQ(trainer->optimizer_steps(), 0);
  EXPECT_DOUBLE_EQ(metrics.reward_mean(), 1.0);
  EXPECT_EQ(metrics.loss(), 0.0);
  EXPECT_EQ(metrics.groups(), 1);
}

TEST(GrpoTrainer, InvalidSamplesAreExcluded) {
  const v1::RunConfig config = TinyRunConfig();
  Transformer base = TinyModel(config);
  const v1::Rollout good = MakeRollout(base, kPrompt, kGood, 1.0);
  const v1::Rollout bad = MakeRollout(base, kPrompt, kBad, 0.0);
  // Two different invalid rollouts (other tokens, lengths and junk rewards) and none at all must train the
  // policy identically: neither their rewards nor their tokens take part.
  const v1::RolloutGroup with_invalid_a =
      MakeGroup(kPrompt, {good, bad, MakeRollout(base, kPrompt, {9, 9, 9, 9}, 100.0, false)});
  const v1::RolloutGroup with_invalid_b =
      MakeGroup(kPrompt, {good, MakeRollout(base, kPrompt, {10}, -7.0, false), bad});
  const v1::RolloutGroup without_invalid = MakeGroup(kPrompt, {good, bad});

  Transformer model_a = CloneTransformer(base);
  Transformer model_b = CloneTransformer(base);
  Transformer model_c = CloneTransformer(base);
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer_a, GrpoTrainer::Create(config, model_a));
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer_b, GrpoTrainer::Create(config, model_b));
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer_c, GrpoTrainer::Create(config, model_c));
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics metrics_a, trainer_a->Step({with_invalid_a}));
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics metrics_b, trainer_b->Step({with_invalid_b}));
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics metrics_c, trainer_c->Step({without_invalid}));

  EXPECT_FALSE(SameParameters(model_a, base));
  EXPECT_TRUE(SameParameters(model_a, model_c));
  EXPECT_TRUE(SameParameters(model_b, model_c));
  EXPECT_EQ(metrics_a.samples(), 3);
  EXPECT_EQ(metrics_a.masked_samples(), 1);
  EXPECT_DOUBLE_EQ(metrics_a.reward_mean(), 0.5);
  EXPECT_DOUBLE_EQ(metrics_a.loss(), metrics_c.loss());
  EXPECT_EQ(trainer_a->samples_masked(), 1);
}

TEST(GrpoTrainer, NonFiniteLossIsNeverApplied) {
  const v1::RunConfig config = TinyRunConfig();
  Transformer model = TinyModel(config);
  Transformer before = CloneTransformer(model);
  v1::Rollout bad = MakeRollout(model, kPrompt, kBad, 0.0);
  // A NaN that got past the wire (which refuses it): the ratio, the loss and the gradient are NaN.
  bad.set_behaviour_logprobs(0, std::numeric_limits<float>::quiet_NaN());
  const v1::RolloutGroup group = MakeGroup(kPrompt, {MakeRollout(model, kPrompt, kGood, 1.0), bad});
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics metrics, trainer->Step({group}));
  EXPECT_FALSE(std::isfinite(metrics.loss()));
  EXPECT_TRUE(metrics.update_skipped_nonfinite());
  EXPECT_EQ(trainer->nonfinite_steps_skipped(), 1);
  EXPECT_EQ(trainer->optimizer_steps(), 0);
  EXPECT_TRUE(SameParameters(model, before));
  for (const at::Tensor& parameter : model->parameters()) {
    EXPECT_TRUE(!parameter.grad().defined() || parameter.grad().abs().sum().item<double>() == 0.0);
  }

  // The next, healthy step trains normally.
  const v1::RolloutGroup healthy =
      MakeGroup(kPrompt, {MakeRollout(model, kPrompt, kGood, 1.0), MakeRollout(model, kPrompt, kBad, 0.0)});
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics next, trainer->Step({healthy}));
  EXPECT_TRUE(std::isfinite(next.loss()));
  EXPECT_FALSE(next.update_skipped_nonfinite());
  EXPECT_EQ(trainer->optimizer_steps(), 1);
  EXPECT_FALSE(SameParameters(model, before));
}

TEST(GrpoTrainer, KlReferenceAndSeveralEpochs) {
  v1::RunConfig config = TinyRunConfig();
  config.mutable_learner()->set_kl_coef(0.1);
  config.mutable_learner()->set_ppo_epochs(3);
  config.mutable_sampling()->set_temperature(0.7);
  Transformer model = TinyModel(config);
  const v1::RolloutGroup group =
      MakeGroup(kPrompt, {MakeRollout(model, kPrompt, kGood, 1.0), MakeRollout(model, kPrompt, kBad, 0.0)});
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics metrics, trainer->Step({group}));
  EXPECT_EQ(trainer->optimizer_steps(), 3);
  // Epoch 0 matches the reference exactly (k3 = 0); later epochs have moved away from it.
  EXPECT_GT(metrics.kl(), 0.0);
  EXPECT_LT(metrics.kl(), 1.0);
  EXPECT_TRUE(std::isfinite(metrics.loss()));
  EXPECT_TRUE(std::isfinite(metrics.grad_norm()));
}

TEST(GrpoTrainer, TokenBudgetMicroBatchesAccumulateToTheWholeStep) {
  v1::RunConfig whole_config = TinyRunConfig();
  whole_config.mutable_learner()->set_loss_aggregation(v1::LearnerConfig::seq_mean_token_mean);
  v1::RunConfig micro_config = whole_config;
  micro_config.mutable_learner()->set_micro_batch_tokens(6);  // rows of 5 and 4 positions: one row per batch
  Transformer base = TinyModel(whole_config);
  std::vector<v1::RolloutGroup> groups;
  for (int g = 0; g < 3; ++g) {
    groups.push_back(
        MakeGroup(kPrompt, {MakeRollout(base, kPrompt, kGood, 1.0 + g), MakeRollout(base, kPrompt, kBad, 0.0)}));
  }
  Transformer whole_model = CloneTransformer(base);
  Transformer micro_model = CloneTransformer(base);
  RLJ_ASSERT_OK_AND_ASSIGN(auto whole, GrpoTrainer::Create(whole_config, whole_model));
  RLJ_ASSERT_OK_AND_ASSIGN(auto micro, GrpoTrainer::Create(micro_config, micro_model));
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics whole_metrics, whole->Step(groups));
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics micro_metrics, micro->Step(groups));
  EXPECT_EQ(whole_metrics.micro_batches(), 1);
  EXPECT_EQ(micro_metrics.micro_batches(), 6);
  EXPECT_NEAR(micro_metrics.loss(), whole_metrics.loss(), 1e-6);
  EXPECT_NEAR(micro_metrics.grad_norm(), whole_metrics.grad_norm(), 1e-5);
  EXPECT_EQ(micro_metrics.trained_tokens(), whole_metrics.trained_tokens());
  const auto a = whole_model->parameters();
  const auto b = micro_model->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_LT((a[i] - b[i]).abs().max().item<double>(), 2e-6) << i;
  }
}

TEST(GrpoTrainer, TruncatedCompletionsKeptMaskedOrPenalised) {
  // Dr. GRPO (no std) so the penalty shows in the advantages. Rewards 1, 0 (truncated), 1:
  //   keep:     mean 2/3 → advantages 1/3, -2/3, 1/3; |A| mean 4/9
  //   penalize: the truncated reward becomes 0 - 1 = -1: mean 1/3 → 2/3, -4/3, 2/3; |A| mean 8/9
  //   mask:     advantages as keep, the truncated completion is not trained: |A| mean over the 2 rows 1/3
  v1::RunConfig config = TinyRunConfig();
  config.mutable_learner()->set_algorithm(v1::LearnerConfig::dr_grpo);
  Transformer base = TinyModel(config);
  v1::Rollout truncated = MakeRollout(base, kPrompt, kBad, 0.0);
  truncated.set_truncated(true);
  const v1::RolloutGroup group =
      MakeGroup(kPrompt, {MakeRollout(base, kPrompt, kGood, 1.0), truncated, MakeRollout(base, kPrompt, {4, 6}, 1.0)});
  struct Case {
    v1::LearnerConfig::Truncated mode;
    int64_t trained;
    double abs_mean;
  };
  for (const Case& c : {Case{v1::LearnerConfig::keep, 3, 4.0 / 9.0}, Case{v1::LearnerConfig::penalize, 3, 8.0 / 9.0},
                        Case{v1::LearnerConfig::mask, 2, 1.0 / 3.0}}) {
    SCOPED_TRACE(v1::LearnerConfig::Truncated_Name(c.mode));
    config.mutable_learner()->set_truncated(c.mode);
    Transformer model = CloneTransformer(base);
    RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
    RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics metrics, trainer->Step({group}));
    EXPECT_EQ(metrics.truncated_samples(), 1);
    EXPECT_EQ(metrics.trained_samples(), c.trained);
    EXPECT_NEAR(metrics.advantage_abs_mean(), c.abs_mean, 1e-6);
    EXPECT_NEAR(metrics.reward_mean(), 2.0 / 3.0, 1e-12);  // the judge's rewards, before any penalty
  }
}

TEST(GrpoTrainer, RejectsOverlongSequences) {
  v1::RunConfig config = TinyRunConfig();
  Transformer model = TinyModel(config);
  v1::RolloutGroup group =
      MakeGroup(kPrompt, {MakeRollout(model, kPrompt, kGood, 1.0), MakeRollout(model, kPrompt, kBad, 0.0)});
  for (int i = 0; i < 40; ++i) {
    group.mutable_rollouts(0)->add_completion_tokens(4);
    group.mutable_rollouts(0)->add_behaviour_logprobs(-1.0f);
  }
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
  EXPECT_TRUE(testing::FailsWith(trainer->Step({group}), absl::StatusCode::kInvalidArgument, "max_seq_len"));
}

}  // namespace
}  // namespace rlj
