// outage_test.cc: judge.on_outage. A backend that cannot reach its teacher (a fake behind JudgeBackend, and the
// real openai backend against a closed port): mask answers the samples with their error and logs them as
// errors; pause answers the call UNAVAILABLE ("Judge.Score paused … unreachable since …"), logs and books
// nothing, and answers normally once the teacher is back; the outage is tracked and exported as metrics.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/config_loader.h"
#include "common/grpc_util.h"
#include "common/reward_log.h"
#include "common/telemetry/metrics_registry.h"
#include "judge/judge_server.h"
#include "judge/judge_service.h"
#include "rlj/v1/judge.grpc.pb.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;
using ::rlj::testing::ScratchDir;

// A teacher that is up or down: down, every sample fails with an availability error (http_error), as the
// HTTP backends report a teacher still unreachable after their retries. Up, reward = 0.25 per sample; a
// completion "cached" is answered as a cache hit. `down_ids` fails only those samples.
class SwitchableBackend final : public JudgeBackend {
 public:
  std::string name() const override { return "switchable"; }
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override {
    std::vector<Judgement> judgements;
    for (const v1::Sample& sample : samples) {
      Judgement judgement;
      judgement.verdict.set_sample_id(sample.id());
      if (sample.completion() == "slow") {  // answered by the teacher, but only once released
        if (!entered.HasBeenNotified()) entered.Notify();
        release.WaitForNotification();
      }
      if (down.load() || sample.id() == down_id) {
        SetVerdictError(&judgement.verdict, absl::StatusCode::kUnavailable, error_kind::kHttpError,
                        "connect to http://127.0.0.1:9/v1 failed: Connection refused (4 attempts)");
      } else {
        judgement.verdict.set_reward(0.25);
        judgement.verdict.set_cache_hit(sample.completion() == "cached");
      }
      judgements.push_back(std::move(judgement));
    }
    ++calls;
    return judgements;
  }
  std::atomic<bool> down{false};
  std::string down_id;  // set before use
  std::atomic<int> calls{0};
  absl::Notification entered, release;  // a "slow" sample: in the backend / may answer
};

v1::ScoreRequest MakeRequest(const std::string& prefix, int n, const std::string& completion = "42") {
  v1::ScoreRequest request;
  for (int i = 0; i < n; ++i) {
    v1::Sample* sample = request.add_samples();
    sample->set_id(prefix + "/" + std::to_string(i));
    sample->set_prompt("What is 40+2?");
    sample->set_completion(completion);
    sample->set_group_id(prefix);
    sample->set_index_in_group(i);
    sample->set_policy_version(3);
  }
  return request;
}

class OutageTest : public ::testing::Test {
 protected:
  void Make(OutagePolicy policy) {
    auto backend = std::make_unique<SwitchableBackend>();
    backend_ = backend.get();
    auto writer = RewardLogWriter::Open(scratch_.file("reward_log/judge-0.sqlite"));
    ASSERT_TRUE(writer.ok()) << writer.status();
    service_ = std::make_unique<JudgeService>(std::move(backend), std::move(writer).value());
    service_->SetOutagePolicy(policy);
    service_->ExportOutageMetrics(&registry_);
  }
  std::vector<RewardLogRow> Rows() {
    auto rows = ReadRewardLog(scratch_.file("reward_log"));
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? *rows : std::vector<RewardLogRow>{};
  }

  ScratchDir scratch_;
  telemetry::MetricsRegistry registry_;  // outlives service_
  SwitchableBackend* backend_ = nullptr;
  std::unique_ptr<JudgeService> service_;
};

TEST(OutagePolicyTest, FromConfig) {
  EXPECT_EQ(OutagePolicyFromConfig(v1::JudgeConfig::mask), OutagePolicy::kMask);
  EXPECT_EQ(OutagePolicyFromConfig(v1::JudgeConfig::pause), OutagePolicy::kPause);
}

TEST(OutagePolicyTest, ConfigValidationNamesTheKey) {
  RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig defaults, ParseRunConfig("name: x\n", "<test>"));
  EXPECT_EQ(defaults.judge().on_outage(), v1::JudgeConfig::pause);  // an outage waits by default
  EXPECT_EQ(defaults.judge().max_outage_s(), 900);
  RLJ_ASSERT_OK(ParseRunConfig("name: x\njudge:\n  on_outage: pause\n", "<test>").status());
  EXPECT_TRUE(FailsWith(ParseRunConfig("name: x\njudge:\n  on_outage: wait\n", "<test>"),
                        absl::StatusCode::kInvalidArgument, "judge.on_outage: expected pause or mask"));
}

// A call that was already with the teacher when the outage began, and got its answer, does not end the
// outage: only an answer to a call that began after it says the teacher is back.
TEST_F(OutageTest, AnAnswerFromBeforeTheOutageDoesNotEndIt) {
  Make(OutagePolicy::kMask);
  v1::ScoreResponse early;
  std::thread slow([&] {
    auto answered = service_->ScoreSamples(MakeRequest("early", 2, "slow"));
    ASSERT_TRUE(answered.ok()) << answered.status();
    early = *answered;
  });
  backend_->entered.WaitForNotification();
  backend_->down = true;
  // The teacher is gone: this call (begun after the slow one) fails; the outage begins.
  RLJ_ASSERT_OK(service_->ScoreSamples(MakeRequest("late", 2)).status());
  const double since = service_->counters().outage_since_unix_s;
  ASSERT_GT(since, 0);
  backend_->down = false;
  backend_->release.Notify();  // the early call gets the teacher's answers now
  slow.join();
  EXPECT_FALSE(early.verdicts(0).has_error());
  EXPECT_EQ(service_->counters().outage_since_unix_s, since);  // still in the outage
  // A call begun now that reaches the teacher ends it.
  RLJ_ASSERT_OK(service_->ScoreSamples(MakeRequest("after", 2)).status());
  EXPECT_EQ(service_->counters().outage_since_unix_s, 0);
}

TEST_F(OutageTest, MaskAnswersErrorsAndLogsThemAsErrorsNeverZero) {
  Make(OutagePolicy::kMask);
  backend_->down = true;
  RLJ_ASSERT_OK_AND_ASSIGN(v1::ScoreResponse response, service_->ScoreSamples(MakeRequest("g0", 4)));
  ASSERT_EQ(response.verdicts_size(), 4);
  for (const v1::Verdict& verdict : response.verdicts()) {
    ASSERT_TRUE(verdict.has_error());
    EXPECT_EQ(verdict.error().kind(), "http_error");
  }
  JudgeCounters counters = service_->counters();
  EXPECT_EQ(counters.outages, 1);
  EXPECT_GT(counters.outage_since_unix_s, 0);
  EXPECT_EQ(counters.paused_requests, 0);
  EXPECT_EQ(counters.errors, 4);

  std::vector<RewardLogRow> rows = Rows();
  ASSERT_EQ(rows.size(), 4u);
  for (const RewardLogRow& row : rows) {
    EXPECT_FALSE(row.reward.has_value()) << row.sample_id << " logged with a reward";
    EXPECT_EQ(row.error_kind, "http_error");
  }

  // A second failing call is the same outage; the teacher answering ends it.
  RLJ_ASSERT_OK(service_->ScoreSamples(MakeRequest("g1", 2)).status());
  EXPECT_EQ(service_->counters().outages, 1);
  backend_->down = false;
  RLJ_ASSERT_OK_AND_ASSIGN(response, service_->ScoreSamples(MakeRequest("g2", 2)));
  EXPECT_EQ(response.verdicts(0).reward(), 0.25);
  counters = service_->counters();
  EXPECT_EQ(counters.outages, 1);
  EXPECT_EQ(counters.outage_since_unix_s, 0);
  EXPECT_GE(counters.outage_seconds_total, 0);
  EXPECT_EQ(Rows().size(), 8u);
}

TEST_F(OutageTest, PauseAnswersUnavailableAndLogsNothingUntilTheTeacherIsBack) {
  Make(OutagePolicy::kPause);
  backend_->down = true;
  const v1::ScoreRequest request = MakeRequest("g0", 4);
  absl::StatusOr<v1::ScoreResponse> paused = service_->ScoreSamples(request);
  EXPECT_TRUE(FailsWith(paused, absl::StatusCode::kUnavailable, "Judge.Score paused (judge.on_outage: pause)"));
  EXPECT_TRUE(FailsWith(paused, absl::StatusCode::kUnavailable, "unreachable since 20"));  // an ISO date
  EXPECT_TRUE(FailsWith(paused, absl::StatusCode::kUnavailable, "Connection refused"));    // the teacher's error
  EXPECT_TRUE(Rows().empty()) << "a paused call logs nothing (the actor sends it again)";
  EXPECT_EQ(service_->StatusNow().steps_size(), 0) << "and books nothing";

  // The same samples again while down: still paused, still nothing logged.
  EXPECT_TRUE(FailsWith(service_->ScoreSamples(request), absl::StatusCode::kUnavailable, "Judge.Score paused"));
  JudgeCounters counters = service_->counters();
  EXPECT_EQ(counters.outages, 1);
  EXPECT_EQ(counters.paused_requests, 2);
  EXPECT_EQ(counters.requests, 2);
  EXPECT_EQ(counters.samples, 0);
  EXPECT_TRUE(Rows().empty());

  // The teacher is back: the retried call is scored and logged exactly once.
  backend_->down = false;
  RLJ_ASSERT_OK_AND_ASSIGN(v1::ScoreResponse response, service_->ScoreSamples(request));
  ASSERT_EQ(response.verdicts_size(), 4);
  for (const v1::Verdict& verdict : response.verdicts()) {
    EXPECT_FALSE(verdict.has_error());
    EXPECT_EQ(verdict.reward(), 0.25);
  }
  std::vector<RewardLogRow> rows = Rows();
  ASSERT_EQ(rows.size(), 4u);
  for (const RewardLogRow& row : rows) EXPECT_EQ(row.reward, 0.25);
  counters = service_->counters();
  EXPECT_EQ(counters.outage_since_unix_s, 0);
  EXPECT_EQ(counters.paused_requests, 2);
  EXPECT_EQ(counters.samples, 4);
  EXPECT_EQ(counters.errors, 0);
}

TEST_F(OutageTest, PauseHoldsTheWholeCallWhenOneSampleIsUnreachable) {
  Make(OutagePolicy::kPause);
  backend_->down_id = "g0/2";
  EXPECT_TRUE(
      FailsWith(service_->ScoreSamples(MakeRequest("g0", 4)), absl::StatusCode::kUnavailable, "Judge.Score paused"));
  EXPECT_TRUE(Rows().empty()) << "no partial group is logged";
}

TEST_F(OutageTest, PauseStillAnswersSampleErrorsThatAreNotOutages) {
  Make(OutagePolicy::kPause);
  v1::ScoreRequest request = MakeRequest("g0", 2);
  request.mutable_samples(1)->clear_id();  // invalid: a per-sample error, not an outage
  RLJ_ASSERT_OK_AND_ASSIGN(v1::ScoreResponse response, service_->ScoreSamples(request));
  EXPECT_FALSE(response.verdicts(0).has_error());
  ASSERT_TRUE(response.verdicts(1).has_error());
  EXPECT_EQ(response.verdicts(1).error().kind(), "invalid");
  EXPECT_EQ(service_->counters().outages, 0);
}

// A teacher that answers 4xx (a wrong key, a refused request) is reachable: those samples are masked, and
// pause mode does not hold the call waiting for a recovery that a retry cannot bring.
TEST(OutageKinds, OnlyUnreachableOr5xxHttpErrorsAreOutages) {
  v1::SampleError error;
  error.set_kind(error_kind::kHttpError);
  for (const auto& [code, outage] :
       std::vector<std::pair<absl::StatusCode, bool>>{{absl::StatusCode::kUnavailable, true},  // refused, reset, 5xx
                                                      {absl::StatusCode::kDeadlineExceeded, true},  // no answer in time
                                                      {absl::StatusCode::kUnauthenticated, false},  // 401
                                                      {absl::StatusCode::kPermissionDenied, false},  // 403
                                                      {absl::StatusCode::kInvalidArgument, false},   // 400
                                                      {absl::StatusCode::kFailedPrecondition, false}}) {
    error.set_code(static_cast<int>(code));
    EXPECT_EQ(error_kind::IsAvailabilityError(error), outage) << absl::StatusCodeToString(code);
  }
  error.set_kind(error_kind::kCircuitOpen);
  error.set_code(static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(error_kind::IsAvailabilityError(error));
  error.set_kind(error_kind::kParse);
  EXPECT_FALSE(error_kind::IsAvailabilityError(error));
}

TEST_F(OutageTest, CacheHitsDoNotEndAnOutage) {
  Make(OutagePolicy::kMask);
  backend_->down = true;
  RLJ_ASSERT_OK(service_->ScoreSamples(MakeRequest("g0", 1)).status());
  backend_->down = false;
  RLJ_ASSERT_OK(service_->ScoreSamples(MakeRequest("g1", 1, "cached")).status());
  EXPECT_GT(service_->counters().outage_since_unix_s, 0) << "an answer from the cache says nothing of the teacher";
  RLJ_ASSERT_OK(service_->ScoreSamples(MakeRequest("g2", 1)).status());
  EXPECT_EQ(service_->counters().outage_since_unix_s, 0);
}

TEST_F(OutageTest, MetricsShowTheOutage) {
  Make(OutagePolicy::kPause);
  backend_->down = true;
  EXPECT_FALSE(service_->ScoreSamples(MakeRequest("g0", 1)).ok());
  const std::string during = registry_.Render();
  EXPECT_NE(during.find("rlj_judge_outage 1"), std::string::npos) << during;
  EXPECT_NE(during.find("rlj_judge_outages_total 1"), std::string::npos) << during;
  EXPECT_NE(during.find("rlj_judge_paused_requests_total 1"), std::string::npos) << during;
  backend_->down = false;
  RLJ_ASSERT_OK(service_->ScoreSamples(MakeRequest("g0", 1)).status());
  const std::string after = registry_.Render();
  EXPECT_NE(after.find("rlj_judge_outage 0"), std::string::npos) << after;
  EXPECT_NE(after.find("rlj_judge_outage_seconds 0"), std::string::npos) << after;
}

// A port nothing listens on: bound, then closed.
int ClosedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

// The whole replica: the openai backend's retries and circuit breaker against a teacher that is not there,
// through gRPC. Pause: UNAVAILABLE with the reason; the reward log stays empty.
TEST(JudgeServerOutage, OpenAiBackendWithoutTeacherPausesOverGrpc) {
  ScratchDir scratch;
  const std::string yaml = absl::StrCat(R"(name: outage
judge:
  backend: openai
  on_outage: pause
  timeout_ms: 20000
  openai:
    base_url: http://127.0.0.1:)",
                                        ClosedPort(), R"(/v1
    model: teacher
    rubric: "Grade {completion}"
    max_retries: 1
    retry_base_ms: 10
    retry_cap_ms: 20
    timeout_ms: 2000
    breaker_failures: 2
    breaker_cooldown_ms: 60000
    cache: false
)");
  RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig config, ParseRunConfig(yaml, "<test>"));
  JudgeServerOptions options;
  options.listen = "127.0.0.1:0";
  options.run_dir = scratch.file("run");
  JudgeServer server(config, options);
  RLJ_ASSERT_OK_AND_ASSIGN(std::string address, server.Start());
  auto stub = v1::Judge::NewStub(MakeChannel(address));
  for (int call = 0; call < 3; ++call) {  // the last ones meet the open circuit breaker
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(60));
    v1::ScoreResponse response;
    const grpc::Status status = stub->Score(&context, MakeRequest(absl::StrCat("g", call), 2), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
    EXPECT_NE(status.error_message().find("Judge.Score paused"), std::string::npos) << status.error_message();
    EXPECT_NE(status.error_message().find("the openai backend's teacher is unreachable since"), std::string::npos)
        << status.error_message();
    // The typed signal callers act on.
    v1::ScoreDeferred deferred;
    ASSERT_TRUE(deferred.ParseFromString(status.error_details())) << "no ScoreDeferred detail";
    EXPECT_EQ(deferred.backend(), "openai");
    EXPECT_GE(deferred.outage_seconds(), 0);
    EXPECT_FALSE(deferred.last_error().empty());
  }
  EXPECT_EQ(server.service()->counters().paused_requests, 3);
  EXPECT_EQ(server.service()->counters().outages, 1);
  server.Stop();
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(scratch.file("run/reward_log")));
  EXPECT_TRUE(rows.empty());
}

}  // namespace
}  // namespace rlj
