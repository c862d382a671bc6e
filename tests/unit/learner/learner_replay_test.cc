// learner_replay_test.cc: a learner killed after publishing steps past its last checkpoint comes back, on
// resume, at the version it had published (it takes the recorded steps again, to the same weights), and the
// training ledger names every group once; a group re-sent after a lost reply is trained once.
#include <ATen/ATen.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/run_dir.h"
#include "learner/learner_server.h"
#include "learner/training_ledger.h"
#include "learner_fixtures.h"
#include "model/checkpoint/checkpoint.h"
#include "model/transformer.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "test_util.h"

namespace rlj {
namespace {

using std::chrono::milliseconds;

v1::RunConfig ReplayConfig(int steps) {
  v1::RunConfig config = testing::TinyLearnerConfig();
  config.set_name("replay-test");
  config.set_seed(11);
  auto* learner = config.mutable_learner();
  learner->set_steps(steps);
  learner->set_groups_per_step(2);
  learner->set_buffer_groups(8);
  learner->set_checkpoint_every(2);
  learner->set_listen("127.0.0.1:0");
  return config;
}

// Two groups of step `step`, sampled with `version`; their rewards differ per step so every step moves.
std::vector<v1::RolloutGroup> StepGroups(int step, int64_t version) {
  std::vector<v1::RolloutGroup> groups;
  for (const char* suffix : {"a", "b"}) {
    v1::RolloutGroup group = testing::MakeTwoCompletionGroup(absl::StrCat("g", step, suffix), version, -3.4f);
    group.set_actor("actor-0");
    group.mutable_rollouts(0)->set_reward(1.0 + step);
    groups.push_back(std::move(group));
  }
  return groups;
}

class Client {
 public:
  explicit Client(const std::string& address) : stub_(v1::Learner::NewStub(MakeChannel(address))) {}

  v1::PushRolloutsResponse Push(const std::vector<v1::RolloutGroup>& groups) {
    grpc::ClientContext context;
    SetDeadline(&context, milliseconds(30000));
    v1::PushRolloutsResponse response;
    auto writer = stub_->PushRollouts(&context, &response);
    v1::RolloutBatch batch;
    for (const auto& group : groups) *batch.add_groups() = group;
    writer->Write(batch);
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Waits (server side, up to 30 s) for a version newer than `have_version`; returns the version seen.
  int64_t AwaitVersionAfter(int64_t have_version) {
    grpc::ClientContext context;
    SetDeadline(&context, milliseconds(60000));
    v1::GetPolicyRequest request;
    request.set_have_version(have_version);
    request.set_wait_ms(30000);
    auto reader = stub_->GetPolicy(&context, request);
    v1::PolicyMessage message;
    int64_t version = -1;
    while (reader->Read(&message)) {
      if (message.has_manifest()) version = message.manifest().version();
    }
    EXPECT_TRUE(reader->Finish().ok());
    return version;
  }

 private:
  std::unique_ptr<v1::Learner::Stub> stub_;
};

LearnerServerOptions InRunDir(const std::string& run_dir, bool resume) {
  LearnerServerOptions options;
  options.run_dir = run_dir;
  options.resume = resume;
  return options;
}

NamedTensors CheckpointWeights(const std::string& dir) {
  auto loaded = LoadCheckpoint(dir);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return loaded.ok() ? NamedParameters(loaded->model) : NamedTensors{};
}

bool SameTensors(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size() || a.empty()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || !at::equal(a[i].second.cpu(), b[i].second.cpu())) return false;
  }
  return true;
}

// Runs a learner through `steps` steps in `dir` (checkpoint_every 2) and returns its final weights.
NamedTensors TrainToTheEnd(const std::string& dir, int steps) {
  auto server = LearnerServer::Start(ReplayConfig(steps), InRunDir(dir, false));
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return {};
  Client client((*server)->address());
  for (int step = 1; step <= steps; ++step) {
    EXPECT_EQ(client.Push(StepGroups(step, step - 1)).accepted_groups(), 2);
    EXPECT_EQ(client.AwaitVersionAfter(step - 1), step);
  }
  EXPECT_TRUE((*server)->WaitForTraining(milliseconds(60000)));
  EXPECT_TRUE((*server)->Stop().ok());
  return CheckpointWeights(absl::StrCat(dir, "/checkpoints/step-", steps));
}

// The learner "killed" after step 3 was published but before its checkpoint: step-3 is gone, latest says
// step-2. The resumed learner replays step 3 from the ledger before serving: it publishes v3 at once (never
// v2, below what actors had seen), with the weights the killed learner had, and the ledger has steps 1..3.
TEST(LearnerReplay, ResumeTakesTheRecordedStepsAgainAndServesTheVersionItHadPublished) {
  testing::ScratchDir dir;
  const NamedTensors trained = TrainToTheEnd(dir.path(), 3);
  ASSERT_FALSE(trained.empty());
  const RunDir run_dir(dir.path());
  std::filesystem::remove_all(run_dir.checkpoints_dir() + "/step-3");
  RLJ_ASSERT_OK(WriteFileAtomically(run_dir.checkpoints_dir() + "/latest", "step-2\n"));
  ASSERT_TRUE(std::filesystem::exists(StepInputsPath(dir.file(kStepInputsDir), 3)));

  RLJ_ASSERT_OK_AND_ASSIGN(auto resumed, LearnerServer::Start(ReplayConfig(3), InRunDir(dir.path(), true)));
  const v1::LearnerStatus status = resumed->status();
  EXPECT_EQ(status.version(), 3);
  EXPECT_EQ(status.step(), 3);
  EXPECT_EQ(status.resumed_from_step(), 2);
  ASSERT_TRUE(resumed->WaitForTraining(milliseconds(60000)));
  RLJ_ASSERT_OK(resumed->training_status());
  RLJ_ASSERT_OK(resumed->Stop());
  EXPECT_TRUE(SameTensors(CheckpointWeights(run_dir.checkpoints_dir() + "/step-3"), trained))
      << "the replayed step 3 did not reproduce the killed learner's weights";

  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<LedgerLine> lines, ReadTrainedGroups(dir.file(kTrainedGroupsFile)));
  ASSERT_EQ(lines.size(), 3u);
  std::set<std::string> ids;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].step, static_cast<int64_t>(i + 1));
    EXPECT_EQ(lines[i].version, static_cast<int64_t>(i + 1));
    ASSERT_EQ(lines[i].groups.size(), 2u);
    EXPECT_EQ(lines[i].groups[0].group_id, absl::StrCat("g", i + 1, "a"));
    EXPECT_EQ(lines[i].groups[1].group_id, absl::StrCat("g", i + 1, "b"));
    for (const LedgerGroup& group : lines[i].groups) EXPECT_TRUE(ids.insert(group.group_id).second) << group.group_id;
  }
  // metrics.jsonl: one line per step, the replayed one included.
  RLJ_ASSERT_OK_AND_ASSIGN(std::string metrics, ReadFile(run_dir.metrics_path()));
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 3);
}

// Killed before its first checkpoint (checkpoint_every 0): the resumed learner starts from the seeded initial
// weights and takes every recorded step again, to the same weights.
TEST(LearnerReplay, WithoutACheckpointEveryRecordedStepIsTakenAgainFromTheStart) {
  testing::ScratchDir dir;
  v1::RunConfig config = ReplayConfig(5);
  config.mutable_learner()->set_checkpoint_every(0);
  const RunDir run_dir(dir.path());
  const std::string kept_inputs = dir.file("kept_step_inputs");
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto server, LearnerServer::Start(config, InRunDir(dir.path(), false)));
    Client client(server->address());
    for (int step = 1; step <= 3; ++step) {
      EXPECT_EQ(client.Push(StepGroups(step, step - 1)).accepted_groups(), 2);
      EXPECT_EQ(client.AwaitVersionAfter(step - 1), step);
    }
    // v3 is published, so its record is durable; no checkpoint exists yet. Keep what a kill -9 would leave.
    std::filesystem::copy(dir.file(kStepInputsDir), kept_inputs);
    RLJ_ASSERT_OK(server->Stop());  // checkpoints step 3 (the weights to compare with)
  }
  const NamedTensors trained = CheckpointWeights(run_dir.checkpoints_dir() + "/step-3");
  ASSERT_FALSE(trained.empty());
  std::filesystem::remove_all(run_dir.checkpoints_dir());
  std::filesystem::remove_all(dir.file(kStepInputsDir));
  std::filesystem::rename(kept_inputs, dir.file(kStepInputsDir));

  RLJ_ASSERT_OK_AND_ASSIGN(auto resumed, LearnerServer::Start(config, InRunDir(dir.path(), true)));
  EXPECT_EQ(resumed->status().version(), 3);
  EXPECT_EQ(resumed->status().step(), 3);
  RLJ_ASSERT_OK(resumed->Stop());
  EXPECT_TRUE(SameTensors(CheckpointWeights(run_dir.checkpoints_dir() + "/step-3"), trained));
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<LedgerLine> lines, ReadTrainedGroups(dir.file(kTrainedGroupsFile)));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2].groups[0].group_id, "g3a");
}

// A producer that re-sends a batch after losing the reply (same groups, same bytes): the learner
// acknowledges it but trains each group once; the step takes the next new group instead.
TEST(LearnerReplay, AGroupResentAfterALostReplyIsTrainedOnce) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK_AND_ASSIGN(auto server, LearnerServer::Start(ReplayConfig(1), InRunDir(dir.path(), false)));
  Client client(server->address());
  std::vector<v1::RolloutGroup> first = StepGroups(1, 0);
  first.pop_back();  // g1a only
  EXPECT_EQ(client.Push(first).accepted_groups(), 1);
  client.Push(first);  // the re-send
  std::vector<v1::RolloutGroup> second = StepGroups(1, 0);
  second.erase(second.begin());  // g1b
  EXPECT_EQ(client.Push(second).accepted_groups(), 1);
  EXPECT_EQ(client.AwaitVersionAfter(0), 1);
  ASSERT_TRUE(server->WaitForTraining(milliseconds(60000)));
  RLJ_ASSERT_OK(server->Stop());
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<LedgerLine> lines, ReadTrainedGroups(dir.file(kTrainedGroupsFile)));
  ASSERT_EQ(lines.size(), 1u);
  ASSERT_EQ(lines[0].groups.size(), 2u);
  EXPECT_EQ(lines[0].groups[0].group_id, "g1a");
  EXPECT_EQ(lines[0].groups[1].group_id, "g1b");
}

}  // namespace
}  // namespace rlj
