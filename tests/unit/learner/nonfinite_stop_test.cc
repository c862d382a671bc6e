// nonfinite_stop_test.cc: learner.max_nonfinite_steps_in_a_row over a real in-process learner: skipped
// NaN/inf steps are counted, a healthy step resets the run of them, and that many in a row end training with
// an error naming the step and the count (and no checkpoint of the failing state).
#include <ATen/ATen.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/run_dir.h"
#include "learner/learner_server.h"
#include "learner_fixtures.h"
#include "model/checkpoint/checkpoint.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "test_util.h"

namespace rlj {
namespace {

using std::chrono::milliseconds;

// The token whose embedding row is NaN in the starting weights (see PoisonedStart).
constexpr int32_t kPoisonToken = 31;

// Starting weights as a corrupted checkpoint leaves them (an fp16 overflow, a bad disk): the tiny model,
// untied, with the embedding row of kPoisonToken NaN. A group whose prompt holds that token has a NaN loss
// and gradient; the others never touch the row. (Rollouts from the wire cannot make a loss non-finite: their
// log-probs are bounded and log-ratios clamped.)
std::string PoisonedStart(const std::string& dir, const v1::RunConfig& config) {
  Transformer model(TransformerConfig::FromProto(config.model()).value());
  NamedTensors tensors = NamedParameters(model);
  for (auto& [name, tensor] : tensors) {
    if (name == "model.embed_tokens.weight")
      tensor = tensor.clone().index_fill_(0, at::tensor({kPoisonToken}, at::kLong), NAN);
  }
  EXPECT_TRUE(LoadNamedTensors(model, tensors).ok());
  const std::string path = dir + "/poisoned-start";
  EXPECT_TRUE(SaveCheckpoint(path, model, CheckpointState{}).ok());
  return path;
}

v1::RunConfig Config(const std::string& dir, int steps, int max_in_a_row) {
  v1::RunConfig config = testing::TinyLearnerConfig();
  config.set_name("nonfinite-test");
  config.set_seed(5);
  config.mutable_model()->set_tie_embeddings(false);
  config.mutable_model()->set_init_checkpoint(PoisonedStart(dir, config));
  auto* learner = config.mutable_learner();
  learner->set_steps(steps);
  learner->set_groups_per_step(1);
  learner->set_buffer_groups(16);
  learner->set_checkpoint_every(1);
  learner->set_max_staleness(100);  // every group is pushed at version 0, up front
  learner->set_max_nonfinite_steps_in_a_row(max_in_a_row);
  learner->set_listen("127.0.0.1:0");
  return config;
}

v1::RolloutGroup Healthy(const std::string& id) { return testing::MakeTwoCompletionGroup(id, 0, -3.4f); }

// A group whose prompt holds the poisoned token: every completion log-prob after it is NaN.
v1::RolloutGroup Poisoned(const std::string& id) {
  v1::RolloutGroup group = Healthy(id);
  group.set_prompt_tokens(1, kPoisonToken);
  return group;
}

LearnerServerOptions InRunDir(const std::string& run_dir) {
  LearnerServerOptions options;
  options.run_dir = run_dir;
  return options;
}

TEST(NonFiniteStop, ThatManyInARowStopTrainingNamingStepAndCount) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK_AND_ASSIGN(auto server, LearnerServer::Start(Config(dir.path(), 10, 3), InRunDir(dir.file("run"))));
  // Step 1 trains; steps 2, 3 and 4 are non-finite; the rest would never be taken.
  testing::PushAll(server->address(), {Healthy("h1"), Poisoned("p2"), Poisoned("p3"), Poisoned("p4"), Healthy("h5")});
  ASSERT_TRUE(server->WaitForTraining(milliseconds(120000)));
  const absl::Status status = server->training_status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_TRUE(IsTrainingStoppedError(status));
  const std::string message(status.message());
  EXPECT_NE(message.find("step 4: 3 steps in a row had a non-finite loss or gradient norm and were skipped"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("learner.max_nonfinite_steps_in_a_row = 3; 3 skipped in all"), std::string::npos) << message;

  const v1::LearnerStatus learner = server->status();
  EXPECT_FALSE(learner.done());
  EXPECT_EQ(learner.step(), 4);
  EXPECT_EQ(learner.steps_skipped_nonfinite(), 3);
  EXPECT_TRUE(learner.last().update_skipped_nonfinite());
  // Checkpoints up to step 3 (checkpoint_every 1); none of the state that stopped.
  const RunDir run_dir(dir.file("run"));
  EXPECT_TRUE(std::filesystem::exists(run_dir.checkpoints_dir() + "/step-3"));
  EXPECT_FALSE(std::filesystem::exists(run_dir.checkpoints_dir() + "/step-4"));
  RLJ_ASSERT_OK_AND_ASSIGN(std::string latest, ReadFile(run_dir.checkpoints_dir() + "/latest"));
  EXPECT_EQ(latest, "step-3\n");
  EXPECT_TRUE(IsTrainingStoppedError(server->Stop()));
}

TEST(NonFiniteStop, AHealthyStepResetsTheCountAndZeroNeverStops) {
  for (const int limit : {2, 0}) {
    testing::ScratchDir dir;
    RLJ_ASSERT_OK_AND_ASSIGN(auto server,
                             LearnerServer::Start(Config(dir.path(), 5, limit), InRunDir(dir.file("run"))));
    // limit 2: never two in a row; limit 0: three in a row do not stop either.
    std::vector<v1::RolloutGroup> groups =
        limit == 2
            ? std::vector<v1::RolloutGroup>{Poisoned("a"), Healthy("b"), Poisoned("c"), Healthy("d"), Poisoned("e")}
            : std::vector<v1::RolloutGroup>{Healthy("a"), Poisoned("b"), Poisoned("c"), Poisoned("d"), Healthy("e")};
    testing::PushAll(server->address(), std::move(groups));
    ASSERT_TRUE(server->WaitForTraining(milliseconds(120000))) << limit;
    RLJ_EXPECT_OK(server->training_status());
    const v1::LearnerStatus learner = server->status();
    EXPECT_TRUE(learner.done()) << limit;
    EXPECT_EQ(learner.step(), 5) << limit;
    EXPECT_EQ(learner.steps_skipped_nonfinite(), 3) << limit;
    RLJ_EXPECT_OK(server->Stop());
  }
}

TEST(NonFiniteStop, OnlyThatErrorIsATrainingStop) {
  EXPECT_FALSE(IsTrainingStoppedError(absl::OkStatus()));
  EXPECT_FALSE(IsTrainingStoppedError(absl::AbortedError("step 4: 3 steps in a row")));  // the text alone is not it
}

}  // namespace
}  // namespace rlj
