// rank_group_test.cc: two data-parallel ranks (threads of this process) over a real TCPStore and Gloo:
// collectives, and a GRPO step on two ranks equal to one rank's step on the union batch.
#include "learner/rank_group.h"

#include <ATen/ATen.h>
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "learner/grpo_trainer.h"
#include "learner_fixtures.h"
#include "model/transformer.h"
#include "model_fixtures.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::WithTwoRanks;

TEST(RankGroup, AllReduceAndBroadcastAcrossTwoRanks) {
  ASSERT_TRUE(RankGroupAvailable("cpu"));
  at::Tensor sums[2], broadcasts[2];
  std::string bytes[2];
  WithTwoRanks([&](int rank, RankGroup& group) {
    at::Tensor sum = rank == 0 ? at::tensor(std::vector<float>{1, 2, 3}) : at::tensor(std::vector<float>{10, 20, 30});
    ASSERT_TRUE(group.AllReduceSum(sum).ok());
    sums[rank] = sum;
    at::Tensor root = rank == 0 ? at::tensor(std::vector<double>{0.5, -7}) : at::zeros({2}, at::kDouble);
    ASSERT_TRUE(group.Broadcast(root, 0).ok());
    broadcasts[rank] = root;
    std::string text = rank == 0 ? std::string("rank zero's \0 bytes", 19) : std::string("overwritten");
    ASSERT_TRUE(group.BroadcastBytes(&text, 0).ok());
    std::string empty = rank == 0 ? "" : "stale";
    ASSERT_TRUE(group.BroadcastBytes(&empty, 0).ok());
    bytes[rank] = text + "|" + empty;
  });
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_TRUE(at::equal(sums[rank], at::tensor(std::vector<float>{11, 22, 33}))) << sums[rank];
    EXPECT_TRUE(at::equal(broadcasts[rank], at::tensor(std::vector<double>{0.5, -7})));
    EXPECT_EQ(bytes[rank], std::string("rank zero's \0 bytes|", 20));
  }
}

TEST(RankGroup, OptionsFromTheTorchrunVariables) {
  ::setenv("RANK", "1", 1);
  ::setenv("WORLD_SIZE", "3", 1);
  ::setenv("MASTER_ADDR", "10.1.2.3", 1);
  ::setenv("MASTER_PORT", "29511", 1);
  RLJ_ASSERT_OK_AND_ASSIGN(RankGroupOptions options, RankGroupOptionsFromEnvironment());
  EXPECT_EQ(options.rank, 1);
  EXPECT_EQ(options.world_size, 3);
  EXPECT_EQ(options.master_addr, "10.1.2.3");
  EXPECT_EQ(options.master_port, 29511);
  ::setenv("RANK", "3", 1);
  EXPECT_TRUE(testing::FailsWith(RankGroupOptionsFromEnvironment(), absl::StatusCode::kInvalidArgument, "RANK 3"));
  ::setenv("RANK", "x", 1);
  EXPECT_TRUE(testing::FailsWith(RankGroupOptionsFromEnvironment(), absl::StatusCode::kInvalidArgument, "RANK='x'"));
  for (const char* name : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(name);
  RLJ_ASSERT_OK_AND_ASSIGN(RankGroupOptions single, RankGroupOptionsFromEnvironment());
  EXPECT_EQ(single.rank, 0);
  EXPECT_EQ(single.world_size, 1);
}

// Five groups of different lengths (rows are dealt longest first, round robin, so the ranks get unequal
// token counts), behaviour log-probs that make some ratios clip, and a KL reference.
std::vector<v1::RolloutGroup> UnionBatch() {
  std::vector<v1::RolloutGroup> groups;
  for (int g = 0; g < 5; ++g) {
    v1::RolloutGroup group = testing::MakeTwoCompletionGroup(absl::StrCat("g", g), 0, -2.5f - 0.3f * g);
    for (int extra = 0; extra < g; ++extra) {
      group.mutable_rollouts(0)->add_completion_tokens(9 + extra);
      group.mutable_rollouts(0)->add_behaviour_logprobs(-3.0f);
    }
    group.mutable_rollouts(1)->set_reward(0.25 * g);
    groups.push_back(group);
  }
  return groups;
}

v1::RunConfig DataParallelConfig() {
  v1::RunConfig config = testing::TinyLearnerConfig();
  config.mutable_learner()->set_kl_coef(0.05);
  config.mutable_learner()->set_loss_aggregation(v1::LearnerConfig::seq_mean_token_mean);
  config.mutable_learner()->set_grad_clip(0.5);
  config.mutable_learner()->set_ppo_epochs(2);
  return config;
}

Transformer TinyModel(const v1::RunConfig& config, uint64_t seed) {
  at::manual_seed(seed);
  return Transformer(TransformerConfig::FromProto(config.model()).value());
}

TEST(DataParallel, TwoRanksStepLikeOneRankOnTheUnionBatch) {
  const v1::RunConfig config = DataParallelConfig();
  const std::vector<v1::RolloutGroup> groups = UnionBatch();

  // One rank, the whole batch.
  Transformer single = TinyModel(config, 7);
  RLJ_ASSERT_OK_AND_ASSIGN(auto single_trainer, GrpoTrainer::Create(config, single));
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics single_metrics, single_trainer->Step(groups));
  ASSERT_GT(single_metrics.grad_norm(), 0.5);  // the clip is exercised

  // Two ranks; rank 1 starts from other weights and takes rank 0's at the start.
  Transformer models[2] = {TinyModel(config, 7), TinyModel(config, 8)};
  v1::StepMetrics metrics[2];
  int64_t trained_samples[2] = {0, 0};
  WithTwoRanks([&](int rank, RankGroup& group) {
    auto trainer = GrpoTrainer::Create(config, models[rank], &group);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    ASSERT_TRUE((*trainer)->SynchronizeFromRankZero().ok());
    auto stepped = (*trainer)->Step(groups);
    ASSERT_TRUE(stepped.ok()) << stepped.status();
    metrics[rank] = *stepped;
    trained_samples[rank] = stepped->trained_samples();
  });

  // Every rank applied the union's update: parameters equal the single rank's within float tolerance.
  const auto expected = single->named_parameters();
  for (int rank = 0; rank < 2; ++rank) {
    const auto got = models[rank]->named_parameters();
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      const double difference = (got[i].value() - expected[i].value()).abs().max().item<double>();
      EXPECT_LT(difference, 2e-6) << "rank " << rank << " " << expected[i].key();
    }
    // The summed statistics are the union's.
    EXPECT_NEAR(metrics[rank].loss(), single_metrics.loss(), 1e-6);
    EXPECT_NEAR(metrics[rank].grad_norm(), single_metrics.grad_norm(), 1e-5);
    EXPECT_NEAR(metrics[rank].kl(), single_metrics.kl(), 1e-7);
    EXPECT_NEAR(metrics[rank].clip_fraction(), single_metrics.clip_fraction(), 1e-9);
    EXPECT_EQ(metrics[rank].ranks(), 2);
    EXPECT_EQ(trained_samples[rank], single_metrics.trained_samples());
  }
  // The step really changed the weights (not a trivially equal no-op).
  Transformer initial = TinyModel(config, 7);
  EXPECT_GT((initial->parameters()[0] - single->parameters()[0]).abs().max().item<double>(), 1e-4);
}

}  // namespace
}  // namespace rlj
