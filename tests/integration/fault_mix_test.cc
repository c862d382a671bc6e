// fault_mix_test.cc: the whole loop (`rlj run`, openai judge in rubric mode) against an OpenAI-compatible
// stand-in that fails the way hosted APIs fail (openai_stand_in.h), in the three conditions of issue 15: a
// clean API, the hosted-API fault mix (18% of requests fail: 429s with Retry-After, 500s, stalls past the
// timeout, malformed bodies, refusals, scores out of range) and an outage of several seconds mid-run. Every
// run counts applied steps only; under the fault mix the masked share is the share of faults that cannot
// be retried and the run's training time stays within a bound of the clean run's (measured in the same
// test, printed as a JSON line, asserted with slack for a loaded machine); the outage pauses the policy and
// the run resumes and completes with every version.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/reward_log.h"
#include "common/run_dir.h"
#include "openai_stand_in.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "rlj_process.h"
#include "run_probes.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::AwaitWhileRunning;
using testing::FaultMix;
using testing::LearnerStatusOf;
using testing::OpenAiStandIn;
using Clock = std::chrono::steady_clock;

constexpr int kSteps = 24;
// The stand-in's latency when it answers: a hosted API's, so that the clean run is judge-bound as real runs
// with a frontier teacher are.
constexpr std::chrono::milliseconds kLatency(150);

// The issue's judge settings: the documented defaults plus a 1.5 s request timeout and 4 retries.
std::string JudgeSection(int port) {
  return absl::StrCat(R"(judge:
  backend: openai
  openai:
    base_url: http://127.0.0.1:)",
                      port, R"(/v1
    model: teacher
    rubric: "Grade this answer to {prompt}: {completion}"
    timeout_ms: 1500
    max_retries: 4
    cache: false
)");
}

std::string WriteRun(const std::string& dir, const std::string& name, int port) {
  testing::WriteTinyTask(dir);
  const std::string config = absl::StrCat(testing::TinyRunConfigHead(dir, name), JudgeSection(port), R"(learner:
  steps: )",
                                          kSteps, R"(
  groups_per_step: 8
  lr: 1.0e-4
actor:
  count: 1
  prompts_per_batch: 8
eval:
  before_and_after: false
)");
  const std::string path = dir + "/" + name + ".yaml";
  EXPECT_TRUE(WriteFileAtomically(path, config).ok());
  return path;
}

struct RunResult {
  nlohmann::json summary;
  std::vector<RewardLogRow> rows;
  std::string output;
};

// Runs `rlj run` on `config` to completion; the test fails when it does not exit 0.
RunResult RunToEnd(const std::string& config, const RunDir& run_dir, const std::string& output_path) {
  RunResult result;
  const testing::Finished run = testing::RunRlj({"run", config}, output_path);
  result.output = run.output;
  EXPECT_TRUE(run.exit.ok()) << run.exit.Describe() << "\n" << run.output;
  const std::string summary_text = ReadFile(run_dir.summary_path()).value_or("{}");
  result.summary = nlohmann::json::parse(summary_text, nullptr, /*allow_exceptions=*/false);
  result.rows = ReadRewardLog(run_dir.reward_log_dir()).value_or(std::vector<RewardLogRow>{});
  return result;
}

// Every step was an applied update and every verdict that failed was masked, never a reward.
void ExpectAppliedStepsAndMaskedFailures(const RunResult& run) {
  ASSERT_TRUE(run.summary.is_object()) << run.output;
  EXPECT_EQ(run.summary["steps"], kSteps) << run.summary.dump();
  EXPECT_EQ(run.summary["policy_version"], kSteps) << "every step published a version";
  std::set<std::string> ids;
  for (const RewardLogRow& row : run.rows) {
    EXPECT_TRUE(ids.insert(row.sample_id).second) << row.sample_id << " logged twice";
    if (row.error_kind.empty()) {
      ASSERT_TRUE(row.reward.has_value()) << row.sample_id;
      EXPECT_GE(*row.reward, 0.1 - 1e-9) << "the stand-in scores 1..10 of 10; a 0 is a failure trained on as 0";
    } else {
      EXPECT_FALSE(row.reward.has_value()) << row.sample_id << ": an error verdict logged with a reward";
    }
  }
}

double TrainingSeconds(const RunResult& run) { return run.summary.value("training_s", 0.0); }

TEST(FaultMix, FaultsAreRetriedOrMaskedAndCostLittleTime) {
  testing::ScratchDir dir;
  OpenAiStandIn clean_api(kLatency);
  ASSERT_NO_FATAL_FAILURE(clean_api.Start());
  const RunResult clean = RunToEnd(WriteRun(dir.path(), "clean", clean_api.port()), RunDir(dir.path() + "/runs/clean"),
                                   dir.file("clean.out"));
  ASSERT_NO_FATAL_FAILURE(ExpectAppliedStepsAndMaskedFailures(clean));
  EXPECT_EQ(clean.summary["samples_masked"], 0) << "nothing fails against a clean API";

  const FaultMix mix = testing::HostedApiFaultMix();
  OpenAiStandIn faulty_api(kLatency, mix, /*seed=*/15);
  ASSERT_NO_FATAL_FAILURE(faulty_api.Start());
  const RunDir faulty_dir(dir.path() + "/runs/faulty");
  const RunResult faulty =
      RunToEnd(WriteRun(dir.path(), "faulty", faulty_api.port()), faulty_dir, dir.file("faulty.out"));
  ASSERT_NO_FATAL_FAILURE(ExpectAppliedStepsAndMaskedFailures(faulty));

  // Masked: the refusals and out-of-range scores (not retryable), and nothing that a retry could fix.
  int errors = 0;
  for (const RewardLogRow& row : faulty.rows) {
    if (row.error_kind.empty()) continue;
    ++errors;
    EXPECT_TRUE(row.error_kind == "refusal" || row.error_kind == "parse" || row.error_kind == "out_of_range")
        << row.sample_id << ": " << row.error_kind << " " << row.error_message;
  }
  ASSERT_GT(faulty.rows.size(), 0u);
  const double masked_share = static_cast<double>(errors) / static_cast<double>(faulty.rows.size());
  EXPECT_GT(masked_share, 0.0) << "the stand-in refused some requests for good";
  EXPECT_LT(masked_share, 3 * mix.non_retryable()) << "more masked than the stand-in failed for good";
  EXPECT_GT(faulty_api.faults_injected(), 0);

  // Seen, not guessed: `rlj logs summary` and TensorBoard show the retries by cause, the breaker and the limit.
  const testing::Finished summary =
      testing::RunRlj({"logs", faulty_dir.root(), "summary", "--json"}, dir.file("summary.json"));
  ASSERT_TRUE(summary.exit.ok()) << summary.output;
  const nlohmann::json logs = nlohmann::json::parse(summary.output, nullptr, false);
  ASSERT_TRUE(logs.is_object() && logs.contains("teacher_backends")) << summary.output;
  ASSERT_EQ(logs["teacher_backends"].size(), 1u) << summary.output;
  const nlohmann::json& backend = logs["teacher_backends"][0];
  EXPECT_EQ(backend["name"], "openai");
  for (const char* cause : {"rate_limited", "server_error", "timeout", "malformed"}) {
    EXPECT_GT(backend["retries"][cause].get<int64_t>(), 0) << cause << ": " << backend.dump();
  }
  EXPECT_GT(backend["retry_after_waits"].get<int64_t>(), 0) << backend.dump();
  EXPECT_GE(backend["concurrency_limit"].get<int64_t>(), 1) << backend.dump();
  EXPECT_TRUE(backend.contains("circuit")) << backend.dump();
  const testing::Finished table = testing::RunRlj({"logs", faulty_dir.root(), "summary"}, dir.file("summary.txt"));
  EXPECT_NE(table.output.find("retries 429/5xx/timeout/transport/malformed"), std::string::npos) << table.output;
  const std::string events = testing::ReadFilesUnder(faulty_dir.root() + "/tensorboard/judge-0");
  for (const char* tag : {"teacher/openai/retries_rate_limited", "teacher/openai/concurrency_limit",
                          "teacher/openai/circuit_open", "teacher/openai/retry_after_waits"}) {
    EXPECT_NE(events.find(tag), std::string::npos) << tag << " is not in the judge's TensorBoard events";
  }

  const double ratio = TrainingSeconds(faulty) / std::max(1e-3, TrainingSeconds(clean));
  std::printf(
      "{\"test\":\"fault_mix\",\"steps\":%d,\"clean_training_s\":%.2f,\"faulty_training_s\":%.2f,"
      "\"ratio\":%.3f,\"masked_share\":%.4f,\"non_retryable_share\":%.4f,\"faults_injected\":%lld,"
      "\"requests\":%lld}\n",
      kSteps, TrainingSeconds(clean), TrainingSeconds(faulty), ratio, masked_share, mix.non_retryable(),
      static_cast<long long>(faulty_api.faults_injected()), static_cast<long long>(faulty_api.requests()));
  // The target is 1.5x (measured on a quiet machine); the slack is for a loaded one. The report that filed
  // issue 15 measured 10x.
  EXPECT_LT(ratio, 3.0) << "faults cost far more time than they should";
}

TEST(FaultMix, AnOutageWaitsAndTheRunResumesWithEveryVersion) {
  testing::ScratchDir dir;
  OpenAiStandIn api(kLatency);
  ASSERT_NO_FATAL_FAILURE(api.Start());
  const int port = api.port();
  const RunDir run_dir(dir.path() + "/runs/outage");
  auto run = testing::StartRlj({"run", WriteRun(dir.path(), "outage", port)}, dir.file("run.out"));
  ASSERT_TRUE(run);
  ASSERT_TRUE(AwaitWhileRunning(run.get(), std::chrono::seconds(300), [&] {
    auto status = LearnerStatusOf(run_dir);
    return status && status->version() >= 4;
  })) << ReadFile(dir.file("run.out")).value_or("");

  // The API goes down for longer than a request's retries last (timeout 1.5 s, 4 retries with backoff).
  api.Stop();
  const auto down_at = LearnerStatusOf(run_dir);
  ASSERT_TRUE(down_at.has_value());
  std::this_thread::sleep_for(std::chrono::seconds(12));  // the outage's length: the thing under test
  const auto before_back = LearnerStatusOf(run_dir);
  ASSERT_TRUE(before_back.has_value());
  // A step or two may apply what was judged before the API went down; then the policy waits.
  EXPECT_LE(before_back->version(), down_at->version() + 2) << "steps were counted while the API was down";
  EXPECT_LT(before_back->version(), kSteps);
  ASSERT_NO_FATAL_FAILURE(api.Start(port));

  auto exit = run->Wait(std::chrono::seconds(600));
  ASSERT_TRUE(exit.has_value()) << "the run did not finish after the API came back";
  const std::string output = ReadFile(dir.file("run.out")).value_or("");
  ASSERT_TRUE(exit->ok()) << exit->Describe() << "\n" << output;
  EXPECT_NE(output.find("TEACHER OUTAGE"), std::string::npos) << "the progress line did not show the outage:\n"
                                                              << output;
  RunResult result;
  result.summary = nlohmann::json::parse(ReadFile(run_dir.summary_path()).value_or("{}"), nullptr, false);
  result.rows = ReadRewardLog(run_dir.reward_log_dir()).value_or(std::vector<RewardLogRow>{});
  result.output = output;
  ASSERT_NO_FATAL_FAILURE(ExpectAppliedStepsAndMaskedFailures(result));
  EXPECT_EQ(result.summary["samples_masked"], 0) << "the outage was waited out, nothing masked";
}

}  // namespace
}  // namespace rlj
