// learner_fixtures.h: the small configs and rollout groups the learner tests share.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "rlj/v1/learner.pb.h"

namespace rlj::testing {

// A tiny model (vocab 32, d_model 16, 1 layer, 2 heads, ffn 32, 32 positions) trained on the CPU at lr 1e-2.
inline v1::RunConfig TinyLearnerConfig() {
  v1::RunConfig config;
  config.mutable_runtime()->set_device("cpu");
  v1::ModelConfig* model = config.mutable_model();
  model->set_vocab_size(32);
  model->set_d_model(16);
  model->set_n_layers(1);
  model->set_n_heads(2);
  model->set_ffn_hidden(32);
  model->set_max_seq_len(32);
  config.mutable_learner()->set_lr(1e-2);
  return config;
}

// A valid rollout of `completion` whose every token has behaviour log-prob `behaviour_logprob`.
inline v1::Rollout MakeRollout(const std::vector<int32_t>& completion, double reward, float behaviour_logprob = -1.0f,
                               const std::string& sample_id = "s") {
  v1::Rollout rollout;
  rollout.set_sample_id(sample_id);
  for (int32_t id : completion) {
    rollout.add_completion_tokens(id);
    rollout.add_behaviour_logprobs(behaviour_logprob);
  }
  rollout.set_reward(reward);
  rollout.set_valid(true);
  return rollout;
}

// Group `id` sampled with `version`: prompt {1, 2, 3}; completions {4, 5} (reward 1) and {6, 7, 8}
// (reward 0), sample ids "<id>-0" and "<id>-1".
inline v1::RolloutGroup MakeTwoCompletionGroup(const std::string& id, int64_t version,
                                               float behaviour_logprob = -1.0f) {
  v1::RolloutGroup group;
  group.set_group_id(id);
  group.set_policy_version(version);
  for (int32_t t : {1, 2, 3}) group.add_prompt_tokens(t);
  *group.add_rollouts() = MakeRollout({4, 5}, 1.0, behaviour_logprob, absl::StrCat(id, "-0"));
  *group.add_rollouts() = MakeRollout({6, 7, 8}, 0.0, behaviour_logprob, absl::StrCat(id, "-1"));
  return group;
}

// Pushes `groups` to the learner at `address` in one PushRollouts stream; fails the test unless all are accepted.
inline void PushAll(const std::string& address, std::vector<v1::RolloutGroup> groups) {
  auto stub = v1::Learner::NewStub(MakeChannel(address));
  grpc::ClientContext context;
  SetDeadline(&context, std::chrono::milliseconds(60000));
  v1::PushRolloutsResponse response;
  auto writer = stub->PushRollouts(&context, &response);
  v1::RolloutBatch batch;
  for (auto& group : groups) *batch.add_groups() = std::move(group);
  writer->Write(batch);
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.accepted_groups(), batch.groups_size());
}

}  // namespace rlj::testing
