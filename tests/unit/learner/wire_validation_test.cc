// wire_validation_test.cc: hostile PushRollouts over a real in-process gRPC server on 127.0.0.1:0: a rejected
// batch (token ids outside the vocabulary, empty groups, versions the learner never published) changes no
// counter, no buffer and no prompt lease; an oversized message is RESOURCE_EXHAUSTED and the server keeps
// serving; and a learner whose tokenizer has more ids than its model refuses to start.
#include <ATen/ATen.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dataset.h"
#include "common/grpc_util.h"
#include "learner/learner_server.h"
#include "learner/learner_service.h"
#include "learner/prompt_dispatcher.h"
#include "learner_fixtures.h"
#include "test_util.h"

namespace rlj {
namespace {

using std::chrono::milliseconds;

constexpr int kVocab = 32;

class WireValidationTest : public ::testing::Test {
 protected:
  void Start(int max_message_bytes = kMaxMessageBytes) {
    LearnerServiceOptions options;
    options.vocab_size = kVocab;
    options.max_seq_len = 16;
    options.max_staleness = 10;
    options.max_policy_wait = milliseconds(100);
    service_ = std::make_unique<LearnerService>(options, &buffer_, &publisher_, &dispatcher_);
    v1::ModelConfig model;
    model.set_d_model(8);
    model.set_vocab_size(kVocab);
    for (int64_t version = 0; version <= 3; ++version) {
      RLJ_ASSERT_OK(publisher_.Publish(version, model, {{"model.norm.weight", at::ones({8})}}));
    }
    ServerOptions server;
    server.max_message_bytes = max_message_bytes;
    RLJ_ASSERT_OK_AND_ASSIGN(server_, StartServer(server, {service_.get()}));
    stub_ = v1::Learner::NewStub(MakeChannel(server_.address));  // the client may send up to 64 MiB
  }
  void TearDown() override {
    publisher_.Close();
    buffer_.Close();
    if (server_.server != nullptr) server_.server->Shutdown(std::chrono::system_clock::now() + milliseconds(2000));
  }

  grpc::Status Push(const std::vector<v1::RolloutGroup>& groups, v1::PushRolloutsResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context, milliseconds(30000));
    auto writer = stub_->PushRollouts(&context, response);
    v1::RolloutBatch batch;
    for (const auto& group : groups) *batch.add_groups() = group;
    writer->Write(batch);
    writer->WritesDone();
    return writer->Finish();
  }

  v1::LearnerStatus Status() { return service_->CurrentStatus(); }

  // A group for a leased prompt, sampled with `version`.
  v1::RolloutGroup Leased(const v1::LeasePromptsResponse& lease, int index, int64_t version) {
    v1::RolloutGroup group = testing::MakeTwoCompletionGroup(absl::StrCat("leased-", index), version);
    group.set_lease_id(lease.lease_id());
    group.set_item_id(lease.prompts(index).item_id());
    return group;
  }

  RolloutBuffer buffer_{8};
  WeightPublisher publisher_{WeightPublisherOptions{.chunk_bytes = 1024}};
  PromptDispatcher dispatcher_{{{"p0", "1+1=", "2"}, {"p1", "2+2=", "4"}}, 7, std::chrono::seconds(600)};
  std::unique_ptr<LearnerService> service_;
  RunningServer server_;
  std::unique_ptr<v1::Learner::Stub> stub_;
};

TEST_F(WireValidationTest, RejectedBatchesChangeNoCounterBufferOrLease) {
  Start();
  const v1::LeasePromptsResponse lease = dispatcher_.Lease("actor-0", 2, PromptDispatcher::Clock::now());
  ASSERT_EQ(lease.prompts_size(), 2);
  struct Case {
    std::string what;
    std::function<void(v1::RolloutGroup*)> spoil;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"token id past the vocabulary",
       [](v1::RolloutGroup* g) { g->mutable_rollouts(0)->set_completion_tokens(1, 40000); },
       "rollout 0 (sample_id 'leased-1-0'): completion_tokens[1] = 40000 is outside the vocabulary [0, 32)"},
      {"a tokenizer's vocabulary bigger than the model's", [](v1::RolloutGroup* g) { g->set_prompt_tokens(0, kVocab); },
       "prompt_tokens[0] = 32 is outside the vocabulary [0, 32)"},
      {"no rollouts", [](v1::RolloutGroup* g) { g->clear_rollouts(); }, "rollouts is empty"},
      {"a version the learner never published", [](v1::RolloutGroup* g) { g->set_policy_version(7); },
       "policy_version 7 is newer than the learner's version 3"},
      {"a negative version", [](v1::RolloutGroup* g) { g->set_policy_version(-2); }, "policy_version -2 is negative"},
      {"a non-finite reward", [](v1::RolloutGroup* g) { g->mutable_rollouts(1)->set_reward(NAN); },
       "rollout 1 (sample_id 'leased-1-1'): reward is not finite"},
  };
  for (const Case& c : cases) {
    v1::RolloutGroup bad = Leased(lease, 1, 3);
    c.spoil(&bad);
    v1::PushRolloutsResponse response;
    // A valid leased group first: the batch is refused as a whole, so it is not received either.
    const grpc::Status status = Push({Leased(lease, 0, 3), bad}, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.what;
    EXPECT_NE(status.error_message().find("batch 0, group 1 (group_id 'leased-1'): " + c.needle), std::string::npos)
        << c.what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find("(nothing of this batch was applied)"), std::string::npos) << c.what;
    const v1::LearnerStatus after = Status();
    EXPECT_EQ(after.groups_received(), 0) << c.what;
    EXPECT_EQ(after.groups_duplicate(), 0) << c.what;
    EXPECT_EQ(after.buffered_groups(), 0) << c.what;
  }
  // The leases were not consumed: the same groups, now valid, are accepted once.
  v1::PushRolloutsResponse response;
  ASSERT_TRUE(Push({Leased(lease, 0, 3), Leased(lease, 1, 3)}, &response).ok());
  EXPECT_EQ(response.accepted_groups(), 2);
  EXPECT_EQ(response.rejected_duplicate_groups(), 0);
  EXPECT_EQ(Status().groups_received(), 2);
  EXPECT_EQ(buffer_.size(), 2);
}

TEST_F(WireValidationTest, OversizedMessageIsResourceExhaustedAndTheServerKeepsServing) {
  Start(/*max_message_bytes=*/64 * 1024);
  v1::RolloutGroup huge = testing::MakeTwoCompletionGroup("huge", 3);
  huge.mutable_rollouts(0)->set_error(std::string(100 * 1024, 'e'));  // 100 KiB over a 64 KiB limit
  v1::PushRolloutsResponse response;
  const grpc::Status refused = Push({huge}, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(Status().groups_received(), 0);
  EXPECT_EQ(buffer_.size(), 0);

  const grpc::Status served = Push({testing::MakeTwoCompletionGroup("small", 3)}, &response);
  ASSERT_TRUE(served.ok()) << served.error_message();
  EXPECT_EQ(response.accepted_groups(), 1);
  EXPECT_EQ(buffer_.size(), 1);
}

// Where a vocabulary mismatch enters: a tokenizer with more ids than the model's vocab_size would make every
// pushed group invalid; the learner refuses to start, naming both sizes.
TEST(VocabularyMismatch, LearnerRefusesATokenizerBiggerThanTheModel) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK(WritePromptDataset(dir.file("train.jsonl"), {{"1", "1+1=", "2"}}));
  v1::RunConfig config = testing::TinyLearnerConfig();  // model vocab_size 32
  config.mutable_data()->set_train_path(dir.file("train.jsonl"));
  config.mutable_tokenizer()->set_kind(v1::TokenizerConfig::byte);  // 259 ids
  config.mutable_learner()->set_listen("127.0.0.1:0");
  LearnerServerOptions options;
  options.run_dir = dir.file("run");
  EXPECT_TRUE(
      testing::FailsWith(LearnerServer::Start(config, options), absl::StatusCode::kFailedPrecondition,
                         "the tokenizer (tokenizer.kind byte) has 259 token ids but the model's vocab_size is 32"));
}

}  // namespace
}  // namespace rlj
