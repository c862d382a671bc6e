// judge_service_test.cc: Judge.Score through a real in-process gRPC server on 127.0.0.1:0: per-sample
// errors stay errors, bad requests are INVALID_ARGUMENT, non-finite rewards become errors, every verdict
// lands in the SQLite reward log; and a whole judge replica (JudgeServer) with the rule backend.
#include "judge/judge_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cmath>
#include <limits>

#include "absl/strings/numbers.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/reward_log.h"
#include "common/run_dir.h"
#include "judge/judge_server.h"
#include "nlohmann/json.hpp"
#include "rlj/v1/judge.grpc.pb.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::ScratchDir;

// A backend behind the interface: the completion says what to do. "nan"/"inf" → that reward; "fail" → a
// parse error; a number → that reward, with the raw response "raw:<completion>".
class ScriptedBackend final : public JudgeBackend {
 public:
  std::string name() const override { return "scripted"; }
  std::string model() const override { return "scripted-model"; }
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override {
    std::vector<Judgement> judgements;
    for (const v1::Sample& sample : samples) {
      Judgement judgement;
      judgement.verdict.set_sample_id(sample.id());
      judgement.raw_response = "raw:" + sample.completion();
      double reward = 0;
      if (sample.completion() == "nan") {
        judgement.verdict.set_reward(std::numeric_limits<double>::quiet_NaN());
      } else if (sample.completion() == "inf") {
        judgement.verdict.set_reward(std::numeric_limits<double>::infinity());
      } else if (sample.completion() == "fail") {
        SetVerdictError(&judgement.verdict, absl::StatusCode::kInternal, error_kind::kParse, "no score in answer");
      } else if (absl::SimpleAtod(sample.completion(), &reward)) {
        judgement.verdict.set_reward(reward);
        (*judgement.verdict.mutable_components())["score"] = reward * 10;
        judgement.verdict.set_rationale("scripted " + sample.completion());
        judgement.verdict.set_tokens_in(11);
        judgement.verdict.set_tokens_out(3);
      }
      judgements.push_back(std::move(judgement));
    }
    return judgements;
  }
};

v1::Sample MakeSample(const std::string& id, const std::string& completion) {
  v1::Sample sample;
  sample.set_id(id);
  sample.set_prompt_id("p-" + id);
  sample.set_prompt("What is 2+2?");
  sample.set_completion(completion);
  sample.set_reference("4");
  sample.set_group_id("g-1");
  sample.set_index_in_group(3);
  sample.set_run("unit");
  sample.set_actor("actor-0");
  sample.set_policy_version(5);
  return sample;
}

class JudgeServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_path_ = scratch_.file("reward_log/judge-0.sqlite");
    auto writer = RewardLogWriter::Open(log_path_);
    ASSERT_TRUE(writer.ok()) << writer.status();
    service_ = std::make_unique<JudgeService>(std::make_unique<ScriptedBackend>(), std::move(writer).value());
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.max_concurrent_rpcs = 4;
    auto running = StartServer(options, {service_.get()});
    ASSERT_TRUE(running.ok()) << running.status();
    server_ = std::move(running->server);
    stub_ = v1::Judge::NewStub(MakeChannel(running->address));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  grpc::Status Call(const v1::ScoreRequest& request, v1::ScoreResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(30));
    return stub_->Score(&context, request, response);
  }

  ScratchDir scratch_;
  std::string log_path_;
  std::unique_ptr<JudgeService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Judge::Stub> stub_;
};

TEST_F(JudgeServiceTest, VerdictsInOrderWithPerSampleErrors) {
  v1::ScoreRequest request;
  *request.add_samples() = MakeSample("ok-1", "0.75");
  *request.add_samples() = MakeSample("bad", "fail");
  *request.add_samples() = MakeSample("", "1.0");  // no id
  *request.add_samples() = MakeSample("nan", "nan");
  *request.add_samples() = MakeSample("inf", "inf");
  *request.add_samples() = MakeSample("ok-2", "-0.5");
  v1::ScoreResponse response;
  const grpc::Status status = Call(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.verdicts_size(), 6);

  const v1::Verdict& ok1 = response.verdicts(0);
  EXPECT_EQ(ok1.sample_id(), "ok-1");
  EXPECT_FALSE(ok1.has_error());
  EXPECT_EQ(ok1.reward(), 0.75);
  EXPECT_EQ(ok1.components().at("score"), 7.5);
  EXPECT_EQ(ok1.backend(), "scripted");
  EXPECT_EQ(ok1.model(), "scripted-model");
  EXPECT_GT(ok1.latency_ms(), 0);

  const v1::Verdict& bad = response.verdicts(1);
  EXPECT_EQ(bad.sample_id(), "bad");
  ASSERT_TRUE(bad.has_error());  // an error, not a reward of 0
  EXPECT_EQ(bad.error().kind(), "parse");
  EXPECT_EQ(bad.error().code(), static_cast<int>(grpc::StatusCode::INTERNAL));

  const v1::Verdict& no_id = response.verdicts(2);
  ASSERT_TRUE(no_id.has_error());
  EXPECT_EQ(no_id.error().kind(), "invalid");
  EXPECT_NE(no_id.error().message().find("sample 2 has no id"), std::string::npos);

  for (int i : {3, 4}) {
    const v1::Verdict& non_finite = response.verdicts(i);
    ASSERT_TRUE(non_finite.has_error()) << i;
    EXPECT_EQ(non_finite.error().kind(), "invalid");
    EXPECT_NE(non_finite.error().message().find("non-finite"), std::string::npos);
    EXPECT_EQ(non_finite.reward(), 0.0);
  }
  EXPECT_EQ(response.verdicts(5).sample_id(), "ok-2");
  EXPECT_EQ(response.verdicts(5).reward(), -0.5);

  const JudgeCounters counters = service_->counters();
  EXPECT_EQ(counters.requests, 1);
  EXPECT_EQ(counters.samples, 6);
  EXPECT_EQ(counters.errors, 4);
  EXPECT_EQ(counters.errors_by_kind.at("invalid"), 3);
  EXPECT_EQ(counters.errors_by_kind.at("parse"), 1);
  EXPECT_EQ(counters.reward_log_failures, 0);
}

TEST_F(JudgeServiceTest, BadRequestsAreInvalidArgument) {
  v1::ScoreResponse response;
  grpc::Status status = Call(v1::ScoreRequest(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("no samples"), std::string::npos);

  v1::ScoreRequest too_many;
  for (int i = 0; i <= kMaxSamplesPerScoreRequest; ++i) *too_many.add_samples() = MakeSample(std::to_string(i), "1");
  status = Call(too_many, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("4097 samples"), std::string::npos);

  const JudgeCounters counters = service_->counters();
  EXPECT_EQ(counters.requests, 2);
  EXPECT_EQ(counters.rejected_requests, 2);
  EXPECT_EQ(counters.samples, 0);
}

TEST_F(JudgeServiceTest, EveryVerdictLandsInTheRewardLog) {
  v1::ScoreRequest request;
  *request.add_samples() = MakeSample("a", "0.25");
  *request.add_samples() = MakeSample("b", "fail");
  *request.add_samples() = MakeSample("c", "nan");
  v1::ScoreResponse response;
  ASSERT_TRUE(Call(request, &response).ok());
  v1::ScoreRequest second;
  *second.add_samples() = MakeSample("d", "1");
  ASSERT_TRUE(Call(second, &response).ok());

  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(log_path_));
  ASSERT_EQ(rows.size(), 4u);
  const RewardLogRow& a = rows[0];
  EXPECT_EQ(a.sample_id, "a");
  EXPECT_EQ(a.prompt_id, "p-a");
  EXPECT_EQ(a.prompt, "What is 2+2?");
  EXPECT_EQ(a.completion, "0.25");
  EXPECT_EQ(a.reference, "4");
  EXPECT_EQ(a.group_id, "g-1");
  EXPECT_EQ(a.index_in_group, 3);
  EXPECT_EQ(a.run, "unit");
  EXPECT_EQ(a.actor, "actor-0");
  EXPECT_EQ(a.policy_version, 5);
  EXPECT_EQ(a.reward, 0.25);
  EXPECT_EQ(nlohmann::json::parse(a.components_json), nlohmann::json({{"score", 2.5}}));
  EXPECT_EQ(a.rationale, "scripted 0.25");
  EXPECT_EQ(a.raw_response, "raw:0.25");
  EXPECT_EQ(a.backend, "scripted");
  EXPECT_EQ(a.model, "scripted-model");
  EXPECT_GT(a.latency_ms, 0);
  EXPECT_EQ(a.tokens_in, 11);
  EXPECT_EQ(a.tokens_out, 3);
  EXPECT_EQ(a.error_kind, "");

  EXPECT_EQ(rows[1].sample_id, "b");
  EXPECT_EQ(rows[1].reward, std::nullopt);  // failed: NULL, never 0
  EXPECT_EQ(rows[1].error_kind, "parse");
  EXPECT_EQ(rows[1].error_message, "no score in answer");
  EXPECT_EQ(rows[2].sample_id, "c");
  EXPECT_EQ(rows[2].reward, std::nullopt);
  EXPECT_EQ(rows[2].error_kind, "invalid");
  EXPECT_EQ(rows[3].sample_id, "d");
  EXPECT_EQ(rows[3].reward, 1.0);
}

TEST(JudgeServiceRewardLog, AWriteFailureIsCountedButDoesNotFailTheCall) {
  ScratchDir scratch;
  const std::string path = scratch.file("judge-0.sqlite");
  RLJ_ASSERT_OK_AND_ASSIGN(auto writer, RewardLogWriter::Open(path, std::chrono::milliseconds(50)));
  JudgeService service(std::make_unique<ScriptedBackend>(), std::move(writer));
  auto running = StartServer(ServerOptions{"127.0.0.1:0", 4}, {&service});
  RLJ_ASSERT_OK(running);
  auto stub = v1::Judge::NewStub(MakeChannel(running->address));
  auto call = [&](const std::string& id) {
    v1::ScoreRequest request;
    *request.add_samples() = MakeSample(id, "0.5");
    v1::ScoreResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(30));
    const grpc::Status status = stub->Score(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.verdicts_size(), 1);
    if (response.verdicts_size() == 1) {
      EXPECT_EQ(response.verdicts(0).reward(), 0.5);
    }
  };

  // Another connection holds the write lock: the log cannot be written within its busy timeout.
  sqlite3* blocker = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &blocker), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  call("while-locked");
  EXPECT_EQ(service.counters().reward_log_failures, 1);
  ASSERT_EQ(sqlite3_exec(blocker, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(blocker);

  call("after-unlock");
  EXPECT_EQ(service.counters().reward_log_failures, 1);
  EXPECT_EQ(service.counters().samples, 2);
  running->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(path));
  ASSERT_EQ(rows.size(), 1u);  // the verdict of the failed write is lost, the next one is kept
  EXPECT_EQ(rows[0].sample_id, "after-unlock");
}

TEST(JudgeServer, ReplicaWithRuleBackendServesWritesEndpointAndLog) {
  ScratchDir scratch;
  v1::RunConfig config;
  config.set_name("unit");
  config.mutable_judge()->set_backend("rule");
  config.mutable_judge()->set_threads(1);  // the smallest allowed: must still serve
  JudgeServerOptions options;
  options.listen = "127.0.0.1:0";
  options.run_dir = scratch.file("run");
  options.replica = "judge-3";
  JudgeServer server(config, options);
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string address, server.Start());
  EXPECT_EQ(address.rfind("127.0.0.1:", 0), 0u) << address;
  EXPECT_NE(address, "127.0.0.1:0");
  const RunDir run_dir(options.run_dir);
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string endpoint, run_dir.ReadEndpoint("judge-3"));
  EXPECT_EQ(endpoint, address);
  EXPECT_FALSE(server.Start().ok());  // once only

  auto stub = v1::Judge::NewStub(MakeChannel(address));
  v1::ScoreRequest request;
  *request.add_samples() = MakeSample("right", "2+2 is 4");
  *request.add_samples() = MakeSample("wrong", "5");
  v1::Sample no_reference = MakeSample("no-ref", "4");
  no_reference.clear_reference();
  *request.add_samples() = no_reference;
  v1::ScoreResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, std::chrono::seconds(30));
  const grpc::Status status = stub->Score(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.verdicts_size(), 3);
  EXPECT_EQ(response.verdicts(0).reward(), 1.0);
  EXPECT_EQ(response.verdicts(0).backend(), "rule");
  EXPECT_EQ(response.verdicts(0).model(), "numeric");
  EXPECT_EQ(response.verdicts(1).reward(), 0.0);
  EXPECT_FALSE(response.verdicts(1).has_error());
  EXPECT_EQ(response.verdicts(1).rationale(), "expected 4, got 5");
  ASSERT_TRUE(response.verdicts(2).has_error());
  EXPECT_EQ(response.verdicts(2).error().kind(), "invalid");
  server.Stop();

  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(run_dir.reward_log_dir()));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].sample_id, "right");
  EXPECT_EQ(rows[0].reward, 1.0);
  EXPECT_EQ(rows[0].components_json, R"({"correct":1.0})");
  EXPECT_EQ(rows[1].reward, 0.0);
  EXPECT_EQ(rows[2].reward, std::nullopt);
  EXPECT_EQ(rows[2].error_kind, "invalid");
}

TEST(JudgeServer, StartFailuresAreErrors) {
  ScratchDir scratch;
  v1::RunConfig config;
  JudgeServerOptions options;
  options.listen = "127.0.0.1:0";
  EXPECT_FALSE(JudgeServer(config, options).Start().ok());  // no run directory

  options.run_dir = scratch.file("run");
  config.mutable_judge()->set_backend("psychic");
  auto unknown = JudgeServer(config, options).Start();
  EXPECT_TRUE(::rlj::testing::FailsWith(unknown, absl::StatusCode::kInvalidArgument, "known backends: rule, openai"));

  config.mutable_judge()->set_backend("rule");
  options.listen = "not-an-address";
  EXPECT_FALSE(JudgeServer(config, options).Start().ok());
}

}  // namespace
}  // namespace rlj
