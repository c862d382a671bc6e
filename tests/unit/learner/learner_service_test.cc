// learner_service_test.cc: the Learner service over a real in-process gRPC server on 127.0.0.1:0:
// validation with nothing applied, staleness, backpressure, weight streaming, waits and status.
#include "learner/learner_service.h"

#include <ATen/ATen.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <future>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/grpc_util.h"
#include "learner_fixtures.h"
#include "model/tensor/tensor_codec.h"
#include "test_util.h"

namespace rlj {
namespace {

using std::chrono::milliseconds;

constexpr int kVocab = 32;
constexpr int kMaxSeqLen = 16;

using testing::MakeRollout;

v1::RolloutGroup MakeGroup(const std::string& id, int64_t version) {
  return testing::MakeTwoCompletionGroup(id, version);
}

v1::RolloutBatch Batch(std::vector<v1::RolloutGroup> groups) {
  v1::RolloutBatch batch;
  for (auto& group : groups) *batch.add_groups() = std::move(group);
  return batch;
}

NamedTensors Weights(float offset) {
  at::manual_seed(11);
  return {{"model.embed_tokens.weight", at::randn({kVocab, 24}) + offset},
          {"model.norm.weight", at::ones({24}) + offset},
          {"lm_head.weight", at::randn({kVocab, 24}) - offset}};
}

struct Fetched {
  grpc::Status status;
  std::vector<v1::PolicyMessage> messages;
};

class LearnerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LearnerServiceOptions options;
    options.vocab_size = kVocab;
    options.max_seq_len = kMaxSeqLen;
    options.max_staleness = 1;
    options.max_policy_wait = milliseconds(300);
    service_ = std::make_unique<LearnerService>(options, &buffer_, &publisher_);
    RLJ_ASSERT_OK(publisher_.Publish(0, model_, Weights(0)));
    RLJ_ASSERT_OK_AND_ASSIGN(server_, StartServer(ServerOptions{}, {service_.get()}));
    stub_ = v1::Learner::NewStub(MakeChannel(server_.address));
  }

  void TearDown() override {
    publisher_.Close();
    buffer_.Close();
    server_.server->Shutdown(std::chrono::system_clock::now() + milliseconds(2000));
  }

  grpc::Status Push(const std::vector<v1::RolloutBatch>& batches, v1::PushRolloutsResponse* response,
                    milliseconds timeout = milliseconds(20000)) {
    grpc::ClientContext context;
    SetDeadline(&context, timeout);
    auto writer = stub_->PushRollouts(&context, response);
    for (const auto& batch : batches) {
      if (!writer->Write(batch)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  Fetched GetPolicy(int64_t have_version, int64_t wait_ms, milliseconds timeout = milliseconds(20000)) {
    grpc::ClientContext context;
    SetDeadline(&context, timeout);
    v1::GetPolicyRequest request;
    request.set_have_version(have_version);
    request.set_wait_ms(wait_ms);
    request.set_actor("test");
    auto reader = stub_->GetPolicy(&context, request);
    Fetched fetched;
    v1::PolicyMessage message;
    while (reader->Read(&message)) fetched.messages.push_back(message);
    fetched.status = reader->Finish();
    return fetched;
  }

  v1::LearnerStatus Status() {
    grpc::ClientContext context;
    SetDeadline(&context, milliseconds(5000));
    v1::LearnerStatus status;
    EXPECT_TRUE(stub_->Status(&context, v1::StatusRequest(), &status).ok());
    return status;
  }

  // Expects a manifest and chunks that reassemble to exactly `expected` (CRCs checked).
  void ExpectWeights(const Fetched& fetched, int64_t version, const NamedTensors& expected) {
    ASSERT_TRUE(fetched.status.ok()) << fetched.status.error_message();
    ASSERT_GE(fetched.messages.size(), 1u);
    ASSERT_TRUE(fetched.messages[0].has_manifest());
    const v1::PolicyManifest& manifest = fetched.messages[0].manifest();
    EXPECT_EQ(manifest.version(), version);
    EXPECT_FALSE(manifest.unchanged());
    EXPECT_EQ(manifest.model().d_model(), model_.d_model());
    ASSERT_EQ(manifest.tensors_size(), static_cast<int>(expected.size()));
    std::vector<std::string> bytes(expected.size());
    uint64_t total = 0;
    for (size_t i = 1; i < fetched.messages.size(); ++i) {
      ASSERT_TRUE(fetched.messages[i].has_chunk()) << "message " << i;
      const v1::WeightChunk& chunk = fetched.messages[i].chunk();
      EXPECT_EQ(chunk.version(), version);
      ASSERT_LT(chunk.tensor_index(), bytes.size());
      EXPECT_EQ(chunk.offset(), bytes[chunk.tensor_index()].size());
      EXPECT_EQ(Crc32c(chunk.data()), chunk.crc32c());
      bytes[chunk.tensor_index()] += chunk.data();
      total += chunk.data().size();
    }
    EXPECT_EQ(total, manifest.total_bytes());
    EXPECT_GT(fetched.messages.size(), expected.size() + 1);  // the 4 KiB tensors span several 1 KiB chunks
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(manifest.tensors(i).name(), expected[i].first);
      RLJ_ASSERT_OK_AND_ASSIGN(at::Tensor decoded, DecodeTensorBytes(manifest.tensors(i), bytes[i]));
      EXPECT_TRUE(at::equal(decoded, expected[i].second)) << expected[i].first;
    }
  }

  v1::ModelConfig model_ = [] {
    v1::ModelConfig model;
    model.set_d_model(24);
    model.set_vocab_size(kVocab);
    return model;
  }();
  RolloutBuffer buffer_{8};
  WeightPublisher publisher_{WeightPublisherOptions{.chunk_bytes = 1024}};
  std::unique_ptr<LearnerService> service_;
  RunningServer server_;
  std::unique_ptr<v1::Learner::Stub> stub_;
};

TEST_F(LearnerServiceTest, ValidGroupsAreBuffered) {
  v1::PushRolloutsResponse response;
  ASSERT_TRUE(Push({Batch({MakeGroup("a", 0), MakeGroup("b", 0)}), Batch({MakeGroup("c", 0)})}, &response).ok());
  EXPECT_EQ(response.accepted_groups(), 3);
  EXPECT_EQ(response.rejected_stale_groups(), 0);
  EXPECT_EQ(response.learner_version(), 0);
  EXPECT_EQ(buffer_.size(), 3);
  const auto taken = buffer_.Take(3, 0, 1, RolloutBuffer::Clock::now());
  ASSERT_EQ(taken.groups.size(), 3u);
  EXPECT_EQ(taken.groups[2].group_id(), "c");
  EXPECT_EQ(taken.groups[0].rollouts(1).completion_tokens_size(), 3);

  const v1::LearnerStatus status = Status();
  EXPECT_EQ(status.groups_received(), 3);
  EXPECT_EQ(status.version(), 0);
  EXPECT_GT(status.sample_tokens_per_s(), 0.0);  // 15 completion tokens arrived
}

TEST_F(LearnerServiceTest, InvalidGroupRejectsTheWholeBatch) {
  struct Case {
    std::string what;
    std::function<void(v1::RolloutGroup*)> spoil;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"no rollouts", [](v1::RolloutGroup* g) { g->clear_rollouts(); }, "has no rollouts"},
      {"empty prompt", [](v1::RolloutGroup* g) { g->clear_prompt_tokens(); }, "prompt_tokens is empty"},
      {"prompt id", [](v1::RolloutGroup* g) { g->set_prompt_tokens(1, -1); },
       "prompt_tokens[1] = -1 is outside the vocabulary [0, 32)"},
      {"completion id", [](v1::RolloutGroup* g) { g->mutable_rollouts(1)->set_completion_tokens(2, kVocab); },
       "rollout 1 (sample_id 'bad-one-1'): completion_tokens[2] = 32 is outside the vocabulary"},
      {"lengths", [](v1::RolloutGroup* g) { g->mutable_rollouts(0)->add_behaviour_logprobs(-2.0f); },
       "completion_tokens has 2 ids but behaviour_logprobs has 3 values"},
      {"too long",
       [](v1::RolloutGroup* g) {
         for (int i = 0; i < 12; ++i) {
           g->mutable_rollouts(0)->add_completion_tokens(4);
           g->mutable_rollouts(0)->add_behaviour_logprobs(-1.0f);
         }
       },
       "prompt (3) + completion (14) = 17 tokens exceed the model's max_seq_len 16"},
      {"negative version", [](v1::RolloutGroup* g) { g->set_policy_version(-1); }, "policy_version -1 is negative"},
      {"future version", [](v1::RolloutGroup* g) { g->set_policy_version(5); },
       "policy_version 5 is newer than the learner's version 0"},
      {"nan log-prob", [](v1::RolloutGroup* g) { g->mutable_rollouts(1)->set_behaviour_logprobs(0, NAN); },
       "behaviour_logprobs[0] is not finite"},
      {"positive log-prob", [](v1::RolloutGroup* g) { g->mutable_rollouts(1)->set_behaviour_logprobs(1, 3.0f); },
       "behaviour_logprobs[1] = 3 is not a log-probability of a sampled token (outside [-10000, 0])"},
      {"absurd log-prob", [](v1::RolloutGroup* g) { g->mutable_rollouts(0)->set_behaviour_logprobs(0, -1e30f); },
       "behaviour_logprobs[0] = -1e+30 is not a log-probability"},
      {"huge reward", [](v1::RolloutGroup* g) { g->mutable_rollouts(0)->set_reward(1e12); },
       "rollout 0 (sample_id 'bad-one-0'): reward 1e+12 is outside [-1e+09, 1e+09]"},
  };
  for (const Case& c : cases) {
    v1::RolloutGroup bad = MakeGroup("bad-one", 0);
    c.spoil(&bad);
    v1::PushRolloutsResponse response;
    // The first batch is applied; the second holds a valid group before the invalid one and is not.
    const grpc::Status status =
        Push({Batch({MakeGroup("first", 0)}), Batch({MakeGroup("ok", 0), bad, MakeGroup("after", 0)})}, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.what;
    EXPECT_NE(status.error_message().find("batch 1, group 1 (group_id 'bad-one')"), std::string::npos)
        << c.what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.needle), std::string::npos) << c.what << ": " << status.error_message();
    const auto taken = buffer_.Take(8, 0, 1, RolloutBuffer::Clock::now());
    ASSERT_EQ(taken.groups.size(), 1u) << c.what;
    EXPECT_EQ(taken.groups[0].group_id(), "first") << c.what;
  }
}

TEST_F(LearnerServiceTest, StaleGroupsAreCountedNotBuffered) {
  for (int64_t version = 1; version <= 3; ++version) RLJ_ASSERT_OK(publisher_.Publish(version, model_, Weights(0)));
  // Current version 3, max_staleness 1: version 1 is stale, 2 and 3 are not.
  v1::PushRolloutsResponse response;
  ASSERT_TRUE(Push({Batch({MakeGroup("old", 1), MakeGroup("recent", 2), MakeGroup("new", 3)})}, &response).ok());
  EXPECT_EQ(response.accepted_groups(), 2);
  EXPECT_EQ(response.rejected_stale_groups(), 1);
  EXPECT_EQ(response.learner_version(), 3);
  EXPECT_EQ(buffer_.size(), 2);
  const v1::LearnerStatus status = Status();
  EXPECT_EQ(status.groups_dropped_stale(), 1);
  EXPECT_EQ(status.groups_received(), 3);
  EXPECT_EQ(status.buffered_groups(), 2);
}

TEST_F(LearnerServiceTest, FullBufferPastTheDeadlineIsResourceExhausted) {
  for (int i = 0; i < 8; ++i)
    ASSERT_TRUE(buffer_.Push(MakeGroup(absl::StrCat("fill-", i), 0), RolloutBuffer::Clock::now()));
  v1::PushRolloutsResponse response;
  const grpc::Status status = Push({Batch({MakeGroup("one-too-many", 0)})}, &response, milliseconds(3000));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("buffer stayed full (8 groups)"), std::string::npos) << status.error_message();
  EXPECT_EQ(buffer_.size(), 8);
}

TEST_F(LearnerServiceTest, FullBufferPushCompletesWhenTheLearnerTakes) {
  for (int i = 0; i < 8; ++i)
    ASSERT_TRUE(buffer_.Push(MakeGroup(absl::StrCat("fill-", i), 0), RolloutBuffer::Clock::now()));
  v1::PushRolloutsResponse response;
  auto pushed = std::async(std::launch::async, [&] { return Push({Batch({MakeGroup("waiting", 0)})}, &response); });
  // The learner takes all 8 and then waits for the 9th, which the push delivers once there is room.
  const auto first = buffer_.Take(8, 0, 1, RolloutBuffer::Clock::now() + std::chrono::seconds(30));
  EXPECT_EQ(first.groups.size(), 8u);
  const auto second = buffer_.Take(1, 0, 1, RolloutBuffer::Clock::now() + std::chrono::seconds(30));
  ASSERT_EQ(second.groups.size(), 1u);
  EXPECT_EQ(second.groups[0].group_id(), "waiting");
  EXPECT_TRUE(pushed.get().ok());
  EXPECT_EQ(response.accepted_groups(), 1);
}

TEST_F(LearnerServiceTest, PushesAfterTrainingIsDoneAreAcknowledgedNotBuffered) {
  service_->UpdateProgress([](v1::LearnerStatus* status) { status->set_done(true); });
  v1::PushRolloutsResponse response;
  ASSERT_TRUE(Push({Batch({MakeGroup("late", 0)})}, &response).ok());
  EXPECT_EQ(response.accepted_groups(), 0);
  EXPECT_EQ(buffer_.size(), 0);
  EXPECT_TRUE(Status().done());
}

TEST_F(LearnerServiceTest, GetPolicyStreamsThePublishedWeights) {
  ExpectWeights(GetPolicy(-1, 0), 0, Weights(0));
  RLJ_ASSERT_OK(publisher_.Publish(1, model_, Weights(2.5f)));
  ExpectWeights(GetPolicy(0, 0), 1, Weights(2.5f));
  // A caller ahead of the learner (the learner restarted) gets the learner's weights too.
  ExpectWeights(GetPolicy(7, 0), 1, Weights(2.5f));
}

TEST_F(LearnerServiceTest, GetPolicyAnswersUnchangedAfterTheWait) {
  const auto start = std::chrono::steady_clock::now();
  const Fetched fetched = GetPolicy(0, 100);
  const double waited_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(fetched.status.ok()) << fetched.status.error_message();
  ASSERT_EQ(fetched.messages.size(), 1u);
  EXPECT_TRUE(fetched.messages[0].manifest().unchanged());
  EXPECT_EQ(fetched.messages[0].manifest().version(), 0);
  EXPECT_EQ(fetched.messages[0].manifest().tensors_size(), 0);
  EXPECT_GE(waited_ms, 90.0);

  // wait_ms is capped (300 ms in this fixture, 30 s by default): a 10-minute ask returns well before.
  const Fetched capped = GetPolicy(0, 600000, milliseconds(60000));
  ASSERT_TRUE(capped.status.ok()) << capped.status.error_message();
  EXPECT_TRUE(capped.messages[0].manifest().unchanged());
}

TEST_F(LearnerServiceTest, GetPolicyWaitingCallerGetsTheNewVersion) {
  auto fetched = std::async(std::launch::async, [&] { return GetPolicy(0, 300000, milliseconds(60000)); });
  RLJ_ASSERT_OK(publisher_.Publish(1, model_, Weights(1.0f)));
  ExpectWeights(fetched.get(), 1, Weights(1.0f));
}

TEST_F(LearnerServiceTest, StatusCarriesTheLoopsProgress) {
  service_->UpdateProgress([](v1::LearnerStatus* status) {
    status->set_step(4);
    status->set_total_steps(10);
    status->mutable_last()->set_reward_mean(0.25);
    status->set_groups_skipped_no_signal(2);
    status->set_checkpoint("/tmp/x/step-4");
  });
  ASSERT_TRUE(buffer_.Push(MakeGroup("b", 0), RolloutBuffer::Clock::now()));
  const v1::LearnerStatus status = Status();
  EXPECT_EQ(status.step(), 4);
  EXPECT_EQ(status.total_steps(), 10);
  EXPECT_DOUBLE_EQ(status.last().reward_mean(), 0.25);
  EXPECT_EQ(status.groups_skipped_no_signal(), 2);
  EXPECT_EQ(status.checkpoint(), "/tmp/x/step-4");
  EXPECT_EQ(status.buffered_groups(), 1);
  EXPECT_FALSE(status.done());
}

}  // namespace
}  // namespace rlj
