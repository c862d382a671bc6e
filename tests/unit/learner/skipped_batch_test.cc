// skipped_batch_test.cc: a batch with nothing to train on is not a step. Over a real in-process learner:
// batches whose samples are all masked (a judge outage in mask mode) or whose groups have no reward difference
// publish no version and do not count toward learner.steps; the status counts them by reason; the run goes on
// to its steps with the batches that can be learned from; learner.max_skipped_batches_in_a_row of them in a
// row stop training with an error saying why.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "learner/learner_server.h"
#include "learner_fixtures.h"
#include "test_util.h"

namespace rlj {
namespace {

using std::chrono::milliseconds;

v1::RunConfig Config(int steps, int max_skipped_in_a_row) {
  v1::RunConfig config = testing::TinyLearnerConfig();
  config.set_name("skipped-batch-test");
  config.set_seed(3);
  auto* learner = config.mutable_learner();
  learner->set_steps(steps);
  learner->set_groups_per_step(1);
  learner->set_buffer_groups(32);
  learner->set_max_staleness(100);  // every group is pushed at version 0, up front
  learner->set_max_skipped_batches_in_a_row(max_skipped_in_a_row);
  learner->set_listen("127.0.0.1:0");
  return config;
}

v1::RolloutGroup Learnable(const std::string& id) { return testing::MakeTwoCompletionGroup(id, 0, -2.0f); }

// Every verdict failed: the samples are masked (never rewards of 0).
v1::RolloutGroup AllMasked(const std::string& id) {
  v1::RolloutGroup group = Learnable(id);
  for (v1::Rollout& rollout : *group.mutable_rollouts()) {
    rollout.set_valid(false);
    rollout.set_reward(0);
  }
  return group;
}

// Judged, but every answer got the same reward: no advantage.
v1::RolloutGroup NoSignal(const std::string& id) {
  v1::RolloutGroup group = Learnable(id);
  for (v1::Rollout& rollout : *group.mutable_rollouts()) rollout.set_reward(0.5);
  return group;
}

TEST(SkippedBatch, IsNotAStepAndPublishesNoVersion) {
  testing::ScratchDir dir;
  LearnerServerOptions options;
  options.run_dir = dir.file("run");
  RLJ_ASSERT_OK_AND_ASSIGN(auto server, LearnerServer::Start(Config(3, 10), options));
  // Three steps' worth of learnable groups among four that cannot be learned from.
  testing::PushAll(server->address(), {AllMasked("m1"), Learnable("a"), NoSignal("n1"), AllMasked("m2"), Learnable("b"),
                                       NoSignal("n2"), Learnable("c")});
  ASSERT_TRUE(server->WaitForTraining(milliseconds(120000)));
  RLJ_EXPECT_OK(server->training_status());
  const v1::LearnerStatus status = server->status();
  EXPECT_TRUE(status.done());
  EXPECT_EQ(status.step(), 3);
  EXPECT_EQ(status.version(), 3);  // one version per applied update, none for a skipped batch
  EXPECT_EQ(status.batches_skipped_all_masked(), 2);
  EXPECT_EQ(status.batches_skipped_no_signal(), 2);
  EXPECT_EQ(status.samples_masked(), 4);
  EXPECT_GT(status.last().trained_samples(), 0);
  EXPECT_TRUE(status.last().batch_skipped().empty());
  RLJ_EXPECT_OK(server->Stop());
}

TEST(SkippedBatch, ThatManyInARowStopTrainingSayingWhy) {
  testing::ScratchDir dir;
  LearnerServerOptions options;
  options.run_dir = dir.file("run");
  RLJ_ASSERT_OK_AND_ASSIGN(auto server, LearnerServer::Start(Config(5, 3), options));
  testing::PushAll(server->address(),
                   {Learnable("a"), AllMasked("m1"), AllMasked("m2"), AllMasked("m3"), Learnable("b")});
  ASSERT_TRUE(server->WaitForTraining(milliseconds(120000)));
  const absl::Status stopped = server->training_status();
  EXPECT_TRUE(IsTrainingStoppedError(stopped)) << stopped;
  const std::string message(stopped.message());
  EXPECT_NE(message.find("after step 1: 3 batches in a row had nothing to train on"), std::string::npos) << message;
  EXPECT_NE(message.find("learner.max_skipped_batches_in_a_row = 3"), std::string::npos) << message;
  EXPECT_NE(message.find("The judge failed every sample"), std::string::npos) << message;
  const v1::LearnerStatus status = server->status();
  EXPECT_FALSE(status.done());
  EXPECT_EQ(status.step(), 1);
  EXPECT_EQ(status.version(), 1);
  EXPECT_EQ(status.last().batch_skipped(), "all_masked");
  EXPECT_TRUE(IsTrainingStoppedError(server->Stop()));
}

}  // namespace
}  // namespace rlj
