// learner_server_test.cc: the learner process end to end in-process: a real server on 127.0.0.1:0 that
// trains on pushed groups, publishes each version, checkpoints, finishes, and checkpoints when stopped early.
#include "learner/learner_server.h"

#include <ATen/ATen.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/run_dir.h"
#include "learner_fixtures.h"
#include "model/checkpoint/checkpoint.h"
#include "model/tensor/tensor_codec.h"
#include "model/transformer.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "test_util.h"

namespace rlj {
namespace {

using std::chrono::milliseconds;

v1::RunConfig TinyConfig(int steps) {
  v1::RunConfig config = testing::TinyLearnerConfig();
  config.set_name("learner-test");
  config.set_seed(5);
  auto* learner = config.mutable_learner();
  learner->set_steps(steps);
  learner->set_groups_per_step(2);
  learner->set_buffer_groups(8);
  learner->set_checkpoint_every(2);
  learner->set_listen("127.0.0.1:0");
  return config;
}

// Behaviour log-probs of about log(1/32): what the untrained model gives.
v1::RolloutGroup MakeGroup(const std::string& id, int64_t version) {
  return testing::MakeTwoCompletionGroup(id, version, -3.4f);
}

class LearnerClient {
 public:
  explicit LearnerClient(const std::string& address) : stub_(v1::Learner::NewStub(MakeChannel(address))) {}

  v1::PushRolloutsResponse Push(std::vector<v1::RolloutGroup> groups) {
    grpc::ClientContext context;
    SetDeadline(&context, milliseconds(30000));
    v1::PushRolloutsResponse response;
    auto writer = stub_->PushRollouts(&context, &response);
    v1::RolloutBatch batch;
    for (auto& group : groups) *batch.add_groups() = std::move(group);
    writer->Write(batch);
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Waits (server side, up to 30 s) for a version other than `have_version` and decodes it.
  std::pair<int64_t, NamedTensors> GetPolicy(int64_t have_version) {
    grpc::ClientContext context;
    SetDeadline(&context, milliseconds(60000));
    v1::GetPolicyRequest request;
    request.set_have_version(have_version);
    request.set_wait_ms(30000);
    auto reader = stub_->GetPolicy(&context, request);
    v1::PolicyMessage message;
    v1::PolicyManifest manifest;
    std::vector<std::string> bytes;
    while (reader->Read(&message)) {
      if (message.has_manifest()) {
        manifest = message.manifest();
        bytes.assign(manifest.tensors_size(), "");
      } else {
        EXPECT_EQ(Crc32c(message.chunk().data()), message.chunk().crc32c());
        bytes.at(message.chunk().tensor_index()) += message.chunk().data();
      }
    }
    const grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    NamedTensors tensors;
    for (int i = 0; i < manifest.tensors_size(); ++i) {
      auto decoded = DecodeTensorBytes(manifest.tensors(i), bytes[i]);
      EXPECT_TRUE(decoded.ok()) << decoded.status();
      if (decoded.ok()) tensors.emplace_back(manifest.tensors(i).name(), *decoded);
    }
    EXPECT_FALSE(manifest.unchanged());
    return {manifest.version(), std::move(tensors)};
  }

  v1::LearnerStatus Status() {
    grpc::ClientContext context;
    SetDeadline(&context, milliseconds(10000));
    v1::LearnerStatus status;
    EXPECT_TRUE(stub_->Status(&context, v1::StatusRequest(), &status).ok());
    return status;
  }

 private:
  std::unique_ptr<v1::Learner::Stub> stub_;
};

LearnerServerOptions InRunDir(const std::string& run_dir) {
  LearnerServerOptions options;
  options.run_dir = run_dir;
  return options;
}

bool SameTensors(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || !at::equal(a[i].second.cpu(), b[i].second.cpu())) return false;
  }
  return true;
}

TEST(LearnerServer, TrainsPublishesCheckpointsAndFinishes) {
  testing::ScratchDir dir;
  const v1::RunConfig config = TinyConfig(3);
  RLJ_ASSERT_OK_AND_ASSIGN(auto server, LearnerServer::Start(config, InRunDir(dir.path())));
  const RunDir run_dir(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(std::string endpoint, run_dir.ReadEndpoint("learner"));
  EXPECT_EQ(endpoint, server->address());

  LearnerClient client(server->address());
  auto [version, weights] = client.GetPolicy(-1);
  EXPECT_EQ(version, 0);
  ASSERT_FALSE(weights.empty());
  EXPECT_EQ(client.Status().total_steps(), 3);

  for (int step = 1; step <= 3; ++step) {
    const v1::PushRolloutsResponse pushed = client.Push(
        {MakeGroup(absl::StrCat("g", step, "a"), version), MakeGroup(absl::StrCat("g", step, "b"), version)});
    EXPECT_EQ(pushed.accepted_groups(), 2);
    auto [next_version, next_weights] = client.GetPolicy(version);  // returns once the step is published
    EXPECT_EQ(next_version, version + 1);
    EXPECT_FALSE(SameTensors(next_weights, weights)) << "step " << step << " changed nothing";
    version = next_version;
    weights = std::move(next_weights);
  }
  ASSERT_TRUE(server->WaitForTraining(milliseconds(60000)));
  RLJ_ASSERT_OK(server->training_status());

  const v1::LearnerStatus status = client.Status();
  EXPECT_TRUE(status.done());
  EXPECT_EQ(status.step(), 3);
  EXPECT_EQ(status.version(), 3);
  EXPECT_EQ(status.groups_received(), 6);
  EXPECT_EQ(status.last().step(), 3);
  EXPECT_EQ(status.last().groups(), 2);
  EXPECT_EQ(status.last().samples(), 4);
  EXPECT_DOUBLE_EQ(status.last().reward_mean(), 0.5);
  EXPECT_DOUBLE_EQ(status.last().staleness_mean(), 0.0);
  EXPECT_GT(status.last().step_s(), 0.0);
  EXPECT_GE(status.last().idle_fraction(), 0.0);
  EXPECT_LE(status.last().idle_fraction(), 1.0);
  const std::string final_dir = run_dir.checkpoints_dir() + "/step-3";
  EXPECT_EQ(status.checkpoint(), final_dir);

  // checkpoint_every 2 → step-2 on the way; the final one at step 3, named by `latest`.
  EXPECT_TRUE(std::filesystem::exists(run_dir.checkpoints_dir() + "/step-2/model.safetensors"));
  RLJ_ASSERT_OK_AND_ASSIGN(std::string latest, ReadFile(run_dir.checkpoints_dir() + "/latest"));
  EXPECT_EQ(latest, "step-3\n");
  RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint checkpoint, LoadCheckpoint(final_dir));
  EXPECT_EQ(checkpoint.state.step, 3);
  EXPECT_EQ(checkpoint.state.policy_version, 3);
  EXPECT_TRUE(SameTensors(NamedParameters(checkpoint.model), weights));

  // Done: further pushes are acknowledged without being buffered.
  EXPECT_EQ(client.Push({MakeGroup("late", 3)}).accepted_groups(), 0);
  RLJ_EXPECT_OK(server->Stop());
}

TEST(LearnerServer, StopBeforeTheEndCheckpointsTheCurrentState) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK_AND_ASSIGN(auto server, LearnerServer::Start(TinyConfig(100), InRunDir(dir.path())));
  LearnerClient client(server->address());
  ASSERT_EQ(client.Push({MakeGroup("a", 0), MakeGroup("b", 0)}).accepted_groups(), 2);
  auto [version, weights] = client.GetPolicy(0);  // step 1 published
  EXPECT_EQ(version, 1);
  RLJ_ASSERT_OK(server->Stop());
  const RunDir run_dir(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(std::string latest, ReadFile(run_dir.checkpoints_dir() + "/latest"));
  EXPECT_EQ(latest, "step-1\n");
  RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint checkpoint, LoadCheckpoint(run_dir.checkpoints_dir() + "/step-1"));
  EXPECT_EQ(checkpoint.state.step, 1);
  EXPECT_TRUE(SameTensors(NamedParameters(checkpoint.model), weights));
  EXPECT_FALSE(server->status().done());
  RLJ_EXPECT_OK(server->Stop());  // idempotent
}

TEST(LearnerServer, StartsFromInitCheckpointAndChecksItsShape) {
  testing::ScratchDir dir;
  v1::RunConfig config = TinyConfig(1);
  at::manual_seed(99);
  Transformer initial(TransformerConfig::FromProto(config.model()).value());
  RLJ_ASSERT_OK(SaveCheckpoint(dir.file("init"), initial, CheckpointState{7, 0}));
  config.mutable_model()->set_init_checkpoint(dir.file("init"));
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto server, LearnerServer::Start(config, InRunDir(dir.file("run"))));
    LearnerClient client(server->address());
    auto [version, weights] = client.GetPolicy(-1);
    EXPECT_EQ(version, 0);
    EXPECT_TRUE(SameTensors(weights, NamedParameters(initial)));
  }
  config.mutable_model()->set_d_model(32);
  EXPECT_TRUE(testing::FailsWith(LearnerServer::Start(config, InRunDir(dir.file("run2"))),
                                 absl::StatusCode::kInvalidArgument, "model.d_model is 32 in the config but 16"));
}

TEST(LearnerServer, RandomInitIsSeeded) {
  testing::ScratchDir dir;
  NamedTensors first;
  for (int attempt = 0; attempt < 2; ++attempt) {
    RLJ_ASSERT_OK_AND_ASSIGN(auto server,
                             LearnerServer::Start(TinyConfig(1), InRunDir(dir.file(absl::StrCat("run", attempt)))));
    LearnerClient client(server->address());
    auto [version, weights] = client.GetPolicy(-1);
    if (attempt == 0) {
      first = std::move(weights);
    } else {
      EXPECT_TRUE(SameTensors(first, weights));
    }
  }
}

}  // namespace
}  // namespace rlj
