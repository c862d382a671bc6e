// outage_load_test.cc: the judge's teacher goes away and comes back, and the judge under load, with real
// processes. A teacher the test controls (an OpenAI-compatible HTTP server in this process, stopped and
// restarted on the same port) is down for longer than the judge's retry budget: with judge.on_outage mask the
// samples are logged as errors and masked, never trained on as 0; with pause the policy stops advancing, no
// error verdict exists, and the run resumes and completes once the teacher is back. Then `rlj judge` with
// judge.threads 2 and a slow teacher under 24 concurrent clients: every sample is logged exactly once, the
// clients are answered RESOURCE_EXHAUSTED (backpressure) and the judge's peak RSS stays bounded.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/reward_log.h"
#include "common/run_dir.h"
#include "common/telemetry/metrics_server.h"
#include "openai_stand_in.h"
#include "rlj/v1/judge.grpc.pb.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "rlj_process.h"
#include "run_probes.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::StartRlj;
using Clock = std::chrono::steady_clock;

using ControlledTeacher = testing::OpenAiStandIn;
using testing::AwaitWhileRunning;
using testing::LearnerStatusOf;

// The openai judge section for a teacher on `port`, with a retry budget of well under a second: one retry,
// short backoff, a circuit breaker that opens after two failures and probes again after 300 ms.
// `breaker_failures` 0 turns the breaker off (the load test: a busy test teacher that closes a kept-alive
// connection must not open it and fail samples; the outage tests want it).
std::string JudgeSection(int port, const std::string& on_outage, int breaker_failures = 2, int max_retries = 1,
                         int max_outage_s = 0) {
  return absl::StrCat(R"(judge:
  backend: openai
  on_outage: )",
                      on_outage, R"(
  max_outage_s: )",
                      max_outage_s, R"(
  timeout_ms: 30000
  openai:
    base_url: http://127.0.0.1:)",
                      port, R"(/v1
    model: teacher
    rubric: "Grade this answer to {prompt}: {completion}"
    max_retries: )",
                      max_retries, R"(
    retry_base_ms: 10
    retry_cap_ms: 50
    timeout_ms: 5000
    breaker_failures: )",
                      breaker_failures, R"(
    breaker_cooldown_ms: 300
    cache: false
)");
}

// The skipped-batch limit is off: in mask mode an outage makes batches with nothing to train on, which are
// not steps (skipped_batch_test.cc tests the limit); these tests are about the outage.
std::string WriteOutageRun(const std::string& dir, const std::string& name, int port, const std::string& on_outage,
                           int steps, int max_outage_s = 0) {
  testing::WriteTinyTask(dir);
  const std::string config =
      absl::StrCat(testing::TinyRunConfigHead(dir, name), JudgeSection(port, on_outage, 2, 1, max_outage_s), R"(learner:
  steps: )",
                   steps, R"(
  max_skipped_batches_in_a_row: 0
  groups_per_step: 2
  lr: 1.0e-3
  max_staleness: 4
actor:
  count: 1
  prompts_per_batch: 2
eval:
  before_and_after: false
)");
  const std::string path = dir + "/" + name + ".yaml";
  EXPECT_TRUE(WriteFileAtomically(path, config).ok());
  return path;
}

// A counter or gauge of the judge-0 /metrics of the run (-1 when it cannot be read).
double JudgeMetric(const RunDir& run_dir, const std::string& name) {
  const std::string address = run_dir.ReadEndpoint("metrics-judge-0").value_or("");
  if (address.empty()) return -1;
  absl::StatusOr<std::string> text = telemetry::ScrapeMetrics(address);
  if (!text.ok()) return -1;
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + " ", 0) != 0) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(name.size() + 1), &value)) return value;
  }
  return -1;
}

std::vector<RewardLogRow> RewardRows(const RunDir& run_dir) {
  return ReadRewardLog(run_dir.reward_log_dir()).value_or(std::vector<RewardLogRow>{});
}

int ErrorRows(const std::vector<RewardLogRow>& rows) {
  int errors = 0;
  for (const RewardLogRow& row : rows) errors += row.error_kind.empty() ? 0 : 1;
  return errors;
}

constexpr auto kPhaseTimeout = std::chrono::seconds(300);

// `rlj run config` once its policy has reached version 2 (judged by the teacher for a while); null, with the test
// failed, when it did not within kPhaseTimeout.
std::unique_ptr<Subprocess> StartRunPastVersion2(const std::string& config, const RunDir& run_dir,
                                                 const std::string& output_path) {
  auto run = StartRlj({"run", config}, output_path);
  if (!run) return nullptr;
  const bool reached = AwaitWhileRunning(run.get(), kPhaseTimeout, [&] {
    auto status = LearnerStatusOf(run_dir);
    return status && status->version() >= 2;
  });
  EXPECT_TRUE(reached) << ReadFile(output_path).value_or("");
  return reached ? std::move(run) : nullptr;
}

TEST(TeacherOutage, MaskLogsErrorsMasksThemAndTheRunCompletesWhenTheTeacherIsBack) {
  testing::ScratchDir dir;
  ControlledTeacher teacher;
  ASSERT_NO_FATAL_FAILURE(teacher.Start());
  const int port = teacher.port();
  constexpr int kSteps = 40;
  const std::string config = WriteOutageRun(dir.path(), "masked", port, "mask", kSteps);
  const RunDir run_dir(dir.path() + "/runs/masked");
  // Judged by the teacher for a while, then the teacher goes away for longer than the retry budget.
  auto run = StartRunPastVersion2(config, run_dir, dir.file("run.out"));
  ASSERT_TRUE(run);
  teacher.Stop();
  ASSERT_TRUE(AwaitWhileRunning(run.get(), kPhaseTimeout, [&] { return ErrorRows(RewardRows(run_dir)) >= 8; }))
      << "no error verdicts while the teacher is down:\n"
      << ReadFile(dir.file("run.out")).value_or("");
  EXPECT_GE(JudgeMetric(run_dir, "rlj_judge_outages_total"), 1);
  // The gauge shows the outage. Awaited rather than read once: a call already on a kept-alive connection when
  // the stand-in stops may still be answered and end the first outage before the next failure begins another
  // (seen on a loaded CI machine).
  EXPECT_TRUE(AwaitWhileRunning(run.get(), kPhaseTimeout, [&] {
    return JudgeMetric(run_dir, "rlj_judge_outage") == 1;
  })) << "rlj_judge_outage never read 1 while the teacher was down";
  auto during = LearnerStatusOf(run_dir);
  ASSERT_TRUE(during.has_value());

  // The teacher is back on the same port: the run completes.
  ASSERT_NO_FATAL_FAILURE(teacher.Start(port));
  auto exit = run->Wait(std::chrono::seconds(600));
  ASSERT_TRUE(exit.has_value()) << "the run did not finish after the teacher came back";
  ASSERT_TRUE(exit->ok()) << exit->Describe() << "\n" << ReadFile(dir.file("run.out")).value_or("");

  RLJ_ASSERT_OK_AND_ASSIGN(std::string summary_text, ReadFile(run_dir.summary_path()));
  const nlohmann::json summary = nlohmann::json::parse(summary_text);
  EXPECT_EQ(summary["steps"], kSteps);
  const std::vector<RewardLogRow> rows = RewardRows(run_dir);
  int errors = 0;
  int rewarded = 0;
  for (const RewardLogRow& row : rows) {
    if (row.error_kind.empty()) {
      ASSERT_TRUE(row.reward.has_value());
      EXPECT_GE(*row.reward, 0.1 - 1e-9) << "the teacher scores 1..10 of 10; a 0 is a failure trained on as 0";
      EXPECT_LE(*row.reward, 1.0 + 1e-9);
      ++rewarded;
    } else {
      ++errors;
      EXPECT_FALSE(row.reward.has_value()) << row.sample_id << ": an error verdict logged with a reward";
      EXPECT_TRUE(row.error_kind == "http_error" || row.error_kind == "circuit_open" || row.error_kind == "timeout")
          << row.error_kind << ": " << row.error_message;
    }
  }
  EXPECT_GE(errors, 8);
  EXPECT_GT(rewarded, 0);
  // The learner masked what failed (never a reward of 0: no judged reward in this run is below 0.1).
  EXPECT_GE(summary["samples_masked"].get<int64_t>(), 8) << summary_text;
  EXPECT_GT(teacher.requests(), 0);
}

TEST(TeacherOutage, PauseStopsThePolicyKeepsTheGroupsAndResumesWhenTheTeacherIsBack) {
  testing::ScratchDir dir;
  ControlledTeacher teacher;
  ASSERT_NO_FATAL_FAILURE(teacher.Start());
  const int port = teacher.port();
  constexpr int kSteps = 16;
  const std::string config = WriteOutageRun(dir.path(), "paused", port, "pause", kSteps);
  const RunDir run_dir(dir.path() + "/runs/paused");
  auto run = StartRunPastVersion2(config, run_dir, dir.file("run.out"));
  ASSERT_TRUE(run);
  teacher.Stop();

  // The judge answers the actor "paused"; once it has done so a few times no group reaches the learner (a
  // group judged just before the teacher went away may still be pushed and trained first: the actor has
  // several groups out at once).
  ASSERT_TRUE(AwaitWhileRunning(run.get(), kPhaseTimeout, [&] {
    return JudgeMetric(run_dir, "rlj_judge_paused_requests_total") >= 5;
  })) << ReadFile(dir.file("run.out")).value_or("");
  auto paused_at = LearnerStatusOf(run_dir);
  ASSERT_TRUE(paused_at.has_value());
  const size_t rows_at_pause = RewardRows(run_dir).size();
  ASSERT_TRUE(AwaitWhileRunning(run.get(), kPhaseTimeout, [&] {
    return JudgeMetric(run_dir, "rlj_judge_paused_requests_total") >= 12;
  })) << ReadFile(dir.file("run.out")).value_or("");
  auto still_paused = LearnerStatusOf(run_dir);
  ASSERT_TRUE(still_paused.has_value());
  EXPECT_EQ(still_paused->version(), paused_at->version()) << "the policy advanced while the teacher was down";
  EXPECT_EQ(still_paused->groups_received(), paused_at->groups_received());
  EXPECT_LT(still_paused->version(), kSteps);
  EXPECT_EQ(RewardRows(run_dir).size(), rows_at_pause) << "a paused call logs nothing";
  EXPECT_EQ(JudgeMetric(run_dir, "rlj_judge_outage"), 1);
  EXPECT_GT(JudgeMetric(run_dir, "rlj_judge_outage_seconds"), 0);
  // The backend's machinery is seen: the refused connections were retried as transport failures and the
  // breaker (2 failures) opened.
  EXPECT_GT(JudgeMetric(run_dir, R"(rlj_judge_backend_retries_total{backend="openai",cause="transport"})"), 0);
  EXPECT_GE(JudgeMetric(run_dir, R"(rlj_judge_backend_circuit_opened_total{backend="openai"})"), 1);

  // Back on the same port: the held group is judged, the run goes on and completes.
  ASSERT_NO_FATAL_FAILURE(teacher.Start(port));
  auto exit = run->Wait(std::chrono::seconds(600));
  ASSERT_TRUE(exit.has_value()) << "the run did not finish after the teacher came back";
  ASSERT_TRUE(exit->ok()) << exit->Describe() << "\n" << ReadFile(dir.file("run.out")).value_or("");

  RLJ_ASSERT_OK_AND_ASSIGN(std::string summary_text, ReadFile(run_dir.summary_path()));
  const nlohmann::json summary = nlohmann::json::parse(summary_text);
  EXPECT_EQ(summary["steps"], kSteps);
  EXPECT_EQ(summary["samples_masked"].get<int64_t>(), 0) << "nothing was masked: the outage was waited out";
  const std::vector<RewardLogRow> rows = RewardRows(run_dir);
  EXPECT_EQ(ErrorRows(rows), 0) << "no error verdict exists, so none was trained on";
  std::set<std::string> ids;
  for (const RewardLogRow& row : rows) {
    EXPECT_TRUE(ids.insert(row.sample_id).second) << row.sample_id << " logged twice";
    ASSERT_TRUE(row.reward.has_value());
    EXPECT_GE(*row.reward, 0.1 - 1e-9);
  }
  // The actor said why it waited, and the judge logged the outage's start and end.
  const std::string judge_log = ReadFile(run_dir.log_path("judge-0")).value_or("");
  EXPECT_NE(judge_log.find("TEACHER OUTAGE 1 began"), std::string::npos) << judge_log;
  EXPECT_NE(judge_log.find("teacher outage over"), std::string::npos) << judge_log;
  const std::string actor_log = ReadFile(run_dir.log_path("actor-0")).value_or("");
  EXPECT_NE(actor_log.find("held through the teacher outage"), std::string::npos) << actor_log;
}

// A teacher that stays down longer than judge.max_outage_s: `rlj run` waits (the policy does not advance),
// then stops with an error naming the key and the last error, exits non-zero and leaves a checkpoint to resume.
TEST(TeacherOutage, LongerThanMaxOutageStopsTheRunWithAnErrorNotFinished) {
  testing::ScratchDir dir;
  ControlledTeacher teacher;
  ASSERT_NO_FATAL_FAILURE(teacher.Start());
  constexpr int kSteps = 200;
  const std::string config = WriteOutageRun(dir.path(), "gone", teacher.port(), "pause", kSteps, /*max_outage_s=*/4);
  const RunDir run_dir(dir.path() + "/runs/gone");
  auto run = StartRunPastVersion2(config, run_dir, dir.file("run.out"));
  ASSERT_TRUE(run);
  teacher.Stop();
  auto exit = run->Wait(std::chrono::seconds(300));
  ASSERT_TRUE(exit.has_value()) << "the run did not stop while its teacher stayed down";
  EXPECT_FALSE(exit->ok()) << "a run that could not reach its judge must not end as finished";
  const std::string output = ReadFile(dir.file("run.out")).value_or("");
  EXPECT_NE(output.find("the judge's teacher has been unreachable for"), std::string::npos) << output;
  EXPECT_NE(output.find("judge.max_outage_s = 4"), std::string::npos) << output;
  EXPECT_FALSE(std::filesystem::exists(run_dir.summary_path())) << "no summary of a run that did not finish";
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string latest, ReadFile(run_dir.checkpoints_dir() + "/latest"));
  EXPECT_FALSE(latest.empty());
  EXPECT_EQ(ErrorRows(RewardRows(run_dir)), 0) << "paused calls log nothing; nothing was masked";
}

// Peak and current resident memory of a process in MB (VmHWM, VmRSS from /proc/<pid>/status).
std::pair<double, double> MemoryMb(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  double hwm = -1, rss = -1;
  for (std::string line; std::getline(status, line);) {
    double kb = 0;
    std::string digits;
    for (char c : line) {
      if (c >= '0' && c <= '9') digits += c;
    }
    if (!absl::SimpleAtod(digits, &kb)) continue;
    if (line.rfind("VmHWM:", 0) == 0) hwm = kb / 1024;
    if (line.rfind("VmRSS:", 0) == 0) rss = kb / 1024;
  }
  return {hwm, rss};
}

TEST(JudgeUnderLoad, TwelveTimesItsThreadsLosesNothingBoundsMemoryAndPushesBack) {
  testing::ScratchDir dir;
  ControlledTeacher teacher(std::chrono::milliseconds(100));
  ASSERT_NO_FATAL_FAILURE(teacher.Start());
  const std::string config_path = dir.file("load.yaml");
  ASSERT_TRUE(
      WriteFileAtomically(config_path, absl::StrCat("name: load\nruns_root: ", dir.path(), "/runs\n",
                                                    JudgeSection(teacher.port(), "mask", 0, 5), "  threads: 2\n"))
          .ok());
  const RunDir run_dir(dir.path() + "/runs/load");
  auto judge = StartRlj({"judge", config_path, "--listen", "127.0.0.1:0"}, dir.file("judge.out"));
  ASSERT_TRUE(judge);
  std::string address;
  ASSERT_TRUE(AwaitWhileRunning(judge.get(), kPhaseTimeout, [&] {
    address = run_dir.ReadEndpoint("judge-0").value_or("");
    return !address.empty();
  })) << ReadFile(dir.file("judge.out")).value_or("");

  constexpr int kClients = 24;  // 12x judge.threads
  constexpr int kCallsPerClient = 4;
  constexpr int kSamplesPerCall = 4;
  const std::string completion(16 * 1024, 'x');  // 64 KB per request
  auto make_request = [&](int client, int call) {
    v1::ScoreRequest request;
    for (int i = 0; i < kSamplesPerCall; ++i) {
      v1::Sample* sample = request.add_samples();
      sample->set_id(absl::StrCat("c", client, "-k", call, "/", i));
      sample->set_prompt("What is 2+2?");
      sample->set_completion(completion);
      sample->set_group_id(absl::StrCat("c", client, "-k", call));
      sample->set_index_in_group(i);
    }
    return request;
  };
  // One warm-up call, then the judge's resident memory is the baseline.
  {
    auto stub = v1::Judge::NewStub(MakeChannel(address));
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(60));
    v1::ScoreResponse response;
    ASSERT_TRUE(stub->Score(&context, make_request(-1, 0), &response).ok());
  }
  const double baseline_rss_mb = MemoryMb(judge->pid()).second;
  ASSERT_GT(baseline_rss_mb, 0);

  // Each client: its own channel (an actor of its own), the actor's policy on RESOURCE_EXHAUSTED: keep the
  // request and try again after a jittered exponential backoff (actor/judge_client.cc).
  std::atomic<int64_t> exhausted{0};
  std::atomic<int64_t> other_failures{0};
  std::atomic<int> verdicts_ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto stub = v1::Judge::NewStub(MakeChannel(address));
      std::mt19937 jitter(static_cast<uint32_t>(c));
      for (int k = 0; k < kCallsPerClient; ++k) {
        const v1::ScoreRequest request = make_request(c, k);
        int backoff_ms = 20;
        for (int attempt = 0; attempt < 10000; ++attempt) {
          grpc::ClientContext context;
          SetDeadline(&context, std::chrono::seconds(120));
          v1::ScoreResponse response;
          const grpc::Status status = stub->Score(&context, request, &response);
          if (status.ok()) {
            if (response.verdicts_size() == kSamplesPerCall) verdicts_ok += kSamplesPerCall;
            break;
          }
          if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
            ++exhausted;
          } else {
            ++other_failures;
            ADD_FAILURE() << status.error_message();
            break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(
              std::uniform_int_distribution<int>(backoff_ms / 2, backoff_ms)(jitter)));  // backoff, as the actor
          backoff_ms = std::min(backoff_ms * 2, 500);
        }
      }
    });
  }
  for (std::thread& thread : clients) thread.join();
  const auto [peak_mb, rss_mb] = MemoryMb(judge->pid());

  EXPECT_EQ(other_failures.load(), 0);
  EXPECT_EQ(verdicts_ok.load(), kClients * kCallsPerClient * kSamplesPerCall);
  EXPECT_GT(exhausted.load(), 0) << "24 clients on 2 threads and never a RESOURCE_EXHAUSTED";
  // Bounded memory: the thread quota admits at most judge.threads + 2 calls (64 KB each) at a time and the
  // rest are refused, not queued; 24 connections' HTTP/2 buffers and the reward log's page cache come to a
  // few MB. 96 admitted calls (6 MB of samples) plus every refused attempt were sent; a judge that held
  // them would grow by far more than this bound.
  constexpr double kGrowthBoundMb = 48;
  EXPECT_LT(peak_mb - baseline_rss_mb, kGrowthBoundMb)
      << "peak RSS " << peak_mb << " MB, baseline " << baseline_rss_mb << " MB";
  std::printf("judge under load: baseline RSS %.1f MB, peak %.1f MB, end %.1f MB; %lld RESOURCE_EXHAUSTED answers\n",
              baseline_rss_mb, peak_mb, rss_mb, static_cast<long long>(exhausted.load()));

  judge->Stop(std::chrono::seconds(30));
  // Every sample has exactly one row (the warm-up call's 4 as well).
  const std::vector<RewardLogRow> rows = RewardRows(run_dir);
  EXPECT_EQ(rows.size(), static_cast<size_t>(kClients * kCallsPerClient * kSamplesPerCall + kSamplesPerCall));
  std::map<std::string, int> seen;
  for (const RewardLogRow& row : rows) ++seen[row.sample_id];
  for (const auto& [id, times] : seen) EXPECT_EQ(times, 1) << id;
  EXPECT_EQ(ErrorRows(rows), 0);
  for (const RewardLogRow& row : rows) {
    if (!row.error_kind.empty()) ADD_FAILURE() << row.sample_id << ": " << row.error_kind << ": " << row.error_message;
    if (!row.error_kind.empty()) break;
  }
}

}  // namespace
}  // namespace rlj
