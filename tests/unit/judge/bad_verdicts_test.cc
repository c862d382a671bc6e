// bad_verdicts_test.cc: hostile backends and requests at the judge: NaN, infinite and absurd rewards and
// components (from a scripted backend, a real command program and a remote judge over gRPC) become per-sample
// errors (masked, never reward 0 as a success, never NaN on the wire); repeated sample ids and oversized
// requests are refused and the server keeps serving.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "judge/backends/command_backend.h"
#include "judge/backends/remote_backend.h"
#include "judge/judge_backend.h"
#include "judge/judge_service.h"
#include "rlj/v1/judge.grpc.pb.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::ScratchDir;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

v1::Sample MakeSample(const std::string& id, const std::string& completion) {
  v1::Sample sample;
  sample.set_id(id);
  sample.set_prompt("What is 2+2?");
  sample.set_completion(completion);
  sample.set_reference("4");
  return sample;
}

// Every double of a verdict that goes on the wire is finite.
bool AllFinite(const v1::Verdict& verdict) {
  if (!std::isfinite(verdict.reward()) || !std::isfinite(verdict.cost_usd()) || !std::isfinite(verdict.latency_ms())) {
    return false;
  }
  for (const auto& [name, value] : verdict.components()) {
    if (!std::isfinite(value)) return false;
  }
  return true;
}

v1::Verdict Normalized(double reward, std::map<std::string, double> components = {}, bool failed = false) {
  v1::Verdict verdict;
  verdict.set_reward(reward);
  for (const auto& [name, value] : components) (*verdict.mutable_components())[name] = value;
  if (failed) SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse, "no score");
  NormalizeVerdict(&verdict);
  return verdict;
}

TEST(NormalizeVerdict, NonFiniteAndAbsurdRewardsBecomeErrors) {
  struct Case {
    double reward;
    const char* kind;
    const char* says;
  };
  const Case cases[] = {
      {kNaN, error_kind::kInvalid, "non-finite reward (nan)"},
      {kInf, error_kind::kInvalid, "non-finite reward (inf)"},
      {-kInf, error_kind::kInvalid, "non-finite reward (-inf)"},
      {1e12, error_kind::kOutOfRange, "reward 1e+12, outside [-1e+09, 1e+09]"},
      {-2e9, error_kind::kOutOfRange, "reward -2e+09, outside"},
  };
  for (const Case& c : cases) {
    const v1::Verdict verdict = Normalized(c.reward);
    ASSERT_TRUE(verdict.has_error()) << c.reward;
    EXPECT_EQ(verdict.error().kind(), c.kind) << c.reward;
    EXPECT_NE(verdict.error().message().find(c.says), std::string::npos) << verdict.error().message();
    EXPECT_NE(verdict.error().code(), 0);
    EXPECT_EQ(verdict.reward(), 0);
    EXPECT_TRUE(AllFinite(verdict));
  }
  // The bound itself and ordinary rewards pass untouched.
  for (double reward : {1e9, -1e9, 0.0, 0.75, -3.5}) {
    const v1::Verdict verdict = Normalized(reward, {{"score", 7.5}});
    EXPECT_FALSE(verdict.has_error()) << reward << ": " << verdict.error().message();
    EXPECT_EQ(verdict.reward(), reward);
    EXPECT_EQ(verdict.components().at("score"), 7.5);
  }
}

TEST(NormalizeVerdict, NonFiniteComponentsFailASuccessAndAreDroppedFromAFailure) {
  const v1::Verdict success = Normalized(0.5, {{"good", 1.0}, {"bad", kNaN}});
  ASSERT_TRUE(success.has_error());
  EXPECT_EQ(success.error().kind(), error_kind::kInvalid);
  EXPECT_NE(success.error().message().find("non-finite component 'bad' (nan)"), std::string::npos)
      << success.error().message();
  EXPECT_EQ(success.reward(), 0);
  EXPECT_EQ(success.components().count("bad"), 0u);
  EXPECT_EQ(success.components().at("good"), 1.0);

  const v1::Verdict failure = Normalized(kNaN, {{"x", -kInf}}, /*failed=*/true);
  ASSERT_TRUE(failure.has_error());
  EXPECT_EQ(failure.error().kind(), error_kind::kParse);  // its own error is kept
  EXPECT_TRUE(failure.components().empty());
  EXPECT_TRUE(AllFinite(failure));

  v1::Verdict costly;
  costly.set_reward(1);
  costly.set_cost_usd(kNaN);
  costly.set_latency_ms(kInf);
  NormalizeVerdict(&costly);
  EXPECT_FALSE(costly.has_error());
  EXPECT_EQ(costly.cost_usd(), 0);
  EXPECT_EQ(costly.latency_ms(), 0);
}

// A remote judge that misbehaves: the completion names what it answers.
class MisbehavingJudge final : public v1::Judge::Service {
 public:
  grpc::Status Score(grpc::ServerContext* /*context*/, const v1::ScoreRequest* request,
                     v1::ScoreResponse* response) override {
    for (const v1::Sample& sample : request->samples()) {
      v1::Verdict* verdict = response->add_verdicts();
      verdict->set_sample_id(sample.id());
      const std::string& c = sample.completion();
      if (c == "nan") verdict->set_reward(kNaN);
      if (c == "inf") verdict->set_reward(-kInf);
      if (c == "huge") verdict->set_reward(1e300);
      if (c == "nan-component") {
        verdict->set_reward(1);
        (*verdict->mutable_components())["rubric"] = kNaN;
      }
      if (c == "nan-cost") {
        verdict->set_reward(0.25);
        verdict->set_cost_usd(kNaN);
      }
      if (c == "fine") verdict->set_reward(0.75);
    }
    return grpc::Status::OK;
  }
};

class BadVerdictsOverTheWire : public ::testing::Test {
 protected:
  // Serves `backend` behind a JudgeService on 127.0.0.1:0 with the given message limit.
  void Serve(std::unique_ptr<JudgeBackend> backend, int max_message_bytes = kMaxMessageBytes) {
    service_ = std::make_unique<JudgeService>(std::move(backend), nullptr);
    ServerOptions options;
    options.max_concurrent_rpcs = 4;
    options.max_message_bytes = max_message_bytes;
    RLJ_ASSERT_OK_AND_ASSIGN(server_, StartServer(options, {service_.get()}));
    stub_ = v1::Judge::NewStub(MakeChannel(server_.address));
  }
  void TearDown() override {
    if (server_.server != nullptr) server_.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (remote_.server != nullptr) remote_.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  grpc::Status Call(const v1::ScoreRequest& request, v1::ScoreResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(60));
    return stub_->Score(&context, request, response);
  }

  std::unique_ptr<JudgeService> service_;
  RunningServer server_;
  std::unique_ptr<v1::Judge::Stub> stub_;
  MisbehavingJudge misbehaving_;
  RunningServer remote_;
};

TEST_F(BadVerdictsOverTheWire, RemoteJudgesNaNsAndHugeRewardsArriveAsErrors) {
  RLJ_ASSERT_OK_AND_ASSIGN(remote_, StartServer(ServerOptions{}, {&misbehaving_}));
  v1::RemoteJudgeConfig remote;
  remote.set_address(remote_.address);
  remote.set_timeout_ms(30000);
  RLJ_ASSERT_OK_AND_ASSIGN(auto backend, RemoteBackend::Create(remote, JudgeBackendDeps{}));
  Serve(std::move(backend));

  const std::vector<std::pair<std::string, std::string>> expected = {{"nan", "non-finite reward (nan)"},
                                                                     {"inf", "non-finite reward (-inf)"},
                                                                     {"huge", "reward 1e+300, outside"},
                                                                     {"nan-component", "non-finite component 'rubric'"},
                                                                     {"nan-cost", ""},
                                                                     {"fine", ""}};
  v1::ScoreRequest request;
  for (const auto& [completion, error] : expected) *request.add_samples() = MakeSample("s-" + completion, completion);
  v1::ScoreResponse response;
  const grpc::Status status = Call(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.verdicts_size(), static_cast<int>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    const v1::Verdict& verdict = response.verdicts(static_cast<int>(i));
    const auto& [completion, error] = expected[i];
    EXPECT_EQ(verdict.sample_id(), "s-" + completion);
    EXPECT_TRUE(AllFinite(verdict)) << completion;
    if (error.empty()) {
      EXPECT_FALSE(verdict.has_error()) << completion << ": " << verdict.error().message();
      continue;
    }
    ASSERT_TRUE(verdict.has_error()) << completion;
    EXPECT_NE(verdict.error().message().find(error), std::string::npos)
        << completion << ": " << verdict.error().message();
    EXPECT_EQ(verdict.reward(), 0) << completion;
  }
  EXPECT_EQ(response.verdicts(4).reward(), 0.25);
  EXPECT_EQ(response.verdicts(4).cost_usd(), 0);
  EXPECT_EQ(response.verdicts(5).reward(), 0.75);
  const JudgeCounters counters = service_->counters();
  EXPECT_EQ(counters.errors, 4);
  EXPECT_EQ(counters.errors_by_kind.at("invalid"), 3);
  EXPECT_EQ(counters.errors_by_kind.at("out_of_range"), 1);
}

// A command judge program that prints raw JSON text (Python's json would refuse some of it).
constexpr char kRawJudgeProgram[] = R"PY(
import json, sys
for line in sys.stdin:
    request = json.loads(line)
    c, i = request["completion"], json.dumps(request["id"])
    answers = {
        "overflow": '{"id": %s, "reward": 1e400}' % i,
        "huge": '{"id": %s, "reward": 5e10}' % i,
        "nan-literal": '{"id": %s, "reward": NaN}' % i,
        "component-overflow": '{"id": %s, "reward": 1, "components": {"len": -1e999}}' % i,
    }
    print(answers.get(c, '{"id": %s, "reward": 0.5}' % i), flush=True)
)PY";

TEST_F(BadVerdictsOverTheWire, CommandProgramsOverflowingNumbersAreErrors) {
  ScratchDir scratch;
  const std::string script = scratch.file("raw_judge.py");
  std::ofstream(script) << kRawJudgeProgram;
  v1::CommandJudgeConfig command;
  command.add_argv("/usr/bin/python3");
  command.add_argv("-u");
  command.add_argv(script);
  command.set_timeout_ms(20000);
  RLJ_ASSERT_OK_AND_ASSIGN(auto backend, CommandBackend::Create(command, JudgeBackendDeps{}));
  Serve(std::move(backend));

  v1::ScoreRequest request;
  for (const char* c : {"overflow", "huge", "nan-literal", "component-overflow", "fine"}) {
    *request.add_samples() = MakeSample(std::string("s-") + c, c);
  }
  v1::ScoreResponse response;
  const grpc::Status status = Call(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.verdicts_size(), 5);
  for (int i = 0; i < 4; ++i) {
    const v1::Verdict& verdict = response.verdicts(i);
    EXPECT_TRUE(verdict.has_error()) << verdict.sample_id();
    EXPECT_EQ(verdict.reward(), 0) << verdict.sample_id();
    EXPECT_TRUE(AllFinite(verdict)) << verdict.sample_id();
  }
  EXPECT_EQ(response.verdicts(1).error().kind(), error_kind::kOutOfRange) << response.verdicts(1).error().message();
  EXPECT_NE(response.verdicts(1).error().message().find("reward 5e+10, outside"), std::string::npos);
  ASSERT_FALSE(response.verdicts(4).has_error()) << response.verdicts(4).error().message();
  EXPECT_EQ(response.verdicts(4).reward(), 0.5);
}

// Counts what the backend is asked.
class CountingBackend final : public JudgeBackend {
 public:
  std::string name() const override { return "counting"; }
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override {
    scored += static_cast<int>(samples.size());
    std::vector<Judgement> judgements(samples.size());
    for (size_t i = 0; i < samples.size(); ++i) {
      judgements[i].verdict.set_sample_id(samples[i].id());
      judgements[i].verdict.set_reward(1);
    }
    return judgements;
  }
  std::atomic<int> scored{0};
};

TEST_F(BadVerdictsOverTheWire, RepeatedSampleIdsAreRefusedPerSample) {
  auto backend = std::make_unique<CountingBackend>();
  CountingBackend* counting = backend.get();
  Serve(std::move(backend));
  v1::ScoreRequest request;
  *request.add_samples() = MakeSample("a", "4");
  *request.add_samples() = MakeSample("b", "4");
  *request.add_samples() = MakeSample("a", "5");
  v1::ScoreResponse response;
  ASSERT_TRUE(Call(request, &response).ok());
  ASSERT_EQ(response.verdicts_size(), 3);
  EXPECT_FALSE(response.verdicts(0).has_error());
  EXPECT_FALSE(response.verdicts(1).has_error());
  ASSERT_TRUE(response.verdicts(2).has_error());
  EXPECT_EQ(response.verdicts(2).error().kind(), error_kind::kInvalid);
  EXPECT_EQ(response.verdicts(2).error().message(), "sample 2: id 'a' repeats sample 0's");
  EXPECT_EQ(counting->scored.load(), 2);  // the repeat never reached the backend
}

TEST_F(BadVerdictsOverTheWire, OversizedRequestIsResourceExhaustedAndTheServerKeepsServing) {
  auto backend = std::make_unique<CountingBackend>();
  CountingBackend* counting = backend.get();
  Serve(std::move(backend), /*max_message_bytes=*/64 * 1024);
  v1::ScoreRequest big;
  *big.add_samples() = MakeSample("big", std::string(100 * 1024, 'x'));
  v1::ScoreResponse response;
  const grpc::Status refused = Call(big, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(counting->scored.load(), 0);
  EXPECT_EQ(service_->counters().requests, 0);  // never reached the service

  v1::ScoreRequest small;
  *small.add_samples() = MakeSample("small", "4");
  const grpc::Status served = Call(small, &response);
  ASSERT_TRUE(served.ok()) << served.error_message();
  ASSERT_EQ(response.verdicts_size(), 1);
  EXPECT_EQ(response.verdicts(0).reward(), 1);
  EXPECT_EQ(service_->counters().requests, 1);
}

}  // namespace
}  // namespace rlj
