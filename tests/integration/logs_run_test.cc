// logs_run_test.cc: observability of a real run (learner, judge with canaries and self-consistency, an
// actor, then a teacher over the learner's checkpoint, as separate `rlj` processes): each one's /metrics
// scraped and checked with `promtool check metrics`, the learner's and judge's TensorBoard event files
// parsed back, canaries never returned to the caller of Judge.Score, and every `rlj logs` view run on the
// resulting run directory.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/arithmetic_task.h"
#include "common/dataset.h"
#include "common/grpc_util.h"
#include "common/reward_log.h"
#include "common/run_dir.h"
#include "common/telemetry/metrics_server.h"
#include "common/telemetry/tensorboard_writer.h"
#include "rlj/v1/judge.grpc.pb.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::RunRlj;
using testing::StartRlj;

// A tiny run whose judge mixes in canaries (one per two samples) and scores a quarter of samples twice. The
// rule judge (numeric, with a tolerance any number meets) rewards an answer that holds a number: a random tiny
// model writes one in about 15% of its samples, enough reward differences for steps that are real updates.
std::string WriteObservedRun(const std::string& dir) {
  testing::WriteTinyTask(dir);
  EXPECT_TRUE(
      WriteFileAtomically(dir + "/canaries.jsonl",
                          "{\"id\": \"right\", \"prompt\": \"2+2=\", \"completion\": \"4\", \"reference\": \"4\", "
                          "\"expected_reward\": 1}\n"
                          "{\"id\": \"wrong\", \"prompt\": \"3+3=\", \"completion\": \"seven\", \"reference\": \"6\", "
                          "\"expected_reward\": 0}\n")
          .ok());
  const std::string config = absl::StrCat(testing::TinyRunConfigHead(dir, "observed"), R"(judge:
  rule:
    mode: numeric
    tolerance: 1.0e9
learner:
  steps: 100000
  groups_per_step: 2
  lr: 1.0e-4
  max_staleness: 4
  checkpoint_every: 2
actor:
  count: 1
  prompts_per_batch: 2
quality:
  canary_path: )",
                                          dir, R"(/canaries.jsonl
  canary_rate: 0.5
  self_consistency_rate: 0.25
  length_correlation_min_samples: 8
)");
  const std::string path = dir + "/observed.yaml";
  EXPECT_TRUE(WriteFileAtomically(path, config).ok());
  return path;
}

std::string WaitForEndpoint(const RunDir& run_dir, const std::string& name) {
  std::string address;
  for (int i = 0; i < 1200 && address.empty(); ++i) {
    address = run_dir.ReadEndpoint(name).value_or("");
    if (address.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));  // another process writes it
  }
  return address;
}

struct Shell {
  int exit_code = -1;
  std::string output;
};

Shell RunShell(const std::string& command) {
  Shell result;
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Scrapes `address` and runs promtool over the text; returns the text.
std::string ScrapeAndCheck(const std::string& address, const std::string& scratch_file, const std::string& process) {
  auto scraped = telemetry::ScrapeMetrics(address, 10000);
  EXPECT_TRUE(scraped.ok()) << process << ": " << scraped.status();
  if (!scraped.ok()) return "";
  {
    std::ofstream file(scratch_file, std::ios::binary);
    file << *scraped;
  }
  const Shell check = RunShell("promtool check metrics < '" + scratch_file + "' 2>&1");
  EXPECT_EQ(check.exit_code, 0) << process << " /metrics fails promtool:\n" << check.output << "\n" << *scraped;
  return *scraped;
}

// The value of an unlabelled sample line "name value" in Prometheus text; -1 when absent.
double SampleValue(const std::string& text, const std::string& name) {
  const std::string key = "\n" + name + " ";
  const size_t at = text.find(key);
  if (at == std::string::npos) return -1;
  return std::strtod(text.c_str() + at + key.size(), nullptr);
}

std::set<std::string> ScalarTags(const std::string& dir) {
  std::set<std::string> tags;
  for (const std::string& file : telemetry::EventFiles(dir)) {
    auto events = telemetry::ReadEventFile(file);
    EXPECT_TRUE(events.ok()) << events.status();
    if (!events.ok()) continue;
    if (!events->empty()) {
      EXPECT_EQ(events->front().file_version(), "brain.Event:2");
    }
    for (const auto& event : *events) {
      for (const auto& value : event.summary().value()) tags.insert(value.tag());
    }
  }
  return tags;
}

TEST(LogsRun, EveryServiceServesValidMetricsAndTheLogsToolReadsTheRun) {
  if (RunShell("command -v promtool >/dev/null 2>&1").exit_code != 0) GTEST_SKIP() << "promtool not installed";
  testing::ScratchDir dir;
  const std::string config = WriteObservedRun(dir.path());
  const std::string run_path = dir.path() + "/runs/observed";
  const RunDir run_dir(run_path);
  auto learner = StartRlj({"learner", config, "--run-dir", run_path}, dir.file("learner.out"));
  auto judge = StartRlj({"judge", config, "--run-dir", run_path}, dir.file("judge.out"));
  ASSERT_TRUE(learner && judge);
  const std::string learner_address = WaitForEndpoint(run_dir, "learner");
  const std::string judge_address = WaitForEndpoint(run_dir, "judge-0");
  ASSERT_FALSE(learner_address.empty()) << ReadFile(dir.file("learner.out")).value_or("");
  ASSERT_FALSE(judge_address.empty()) << ReadFile(dir.file("judge.out")).value_or("");
  auto actor =
      StartRlj({"actor", config, "--run-dir", run_path, "--learner", learner_address, "--judge", judge_address},
               dir.file("actor.out"));
  ASSERT_TRUE(actor);

  // Each process reports its /metrics address as metrics-<process>.
  const std::string learner_metrics = WaitForEndpoint(run_dir, "metrics-learner");
  const std::string judge_metrics = WaitForEndpoint(run_dir, "metrics-judge-0");
  const std::string actor_metrics = WaitForEndpoint(run_dir, "metrics-actor-0");
  ASSERT_FALSE(learner_metrics.empty() || judge_metrics.empty() || actor_metrics.empty())
      << ReadFile(dir.file("actor.out")).value_or("");

  // Train until the learner has taken 4 steps (polling its own metrics).
  std::string learner_text;
  for (int i = 0; i < 3000; ++i) {
    learner_text = telemetry::ScrapeMetrics(learner_metrics).value_or("");
    if (SampleValue(learner_text, "rlj_learner_steps_total") >= 4) break;
    ASSERT_FALSE(actor->Poll().has_value()) << "the actor ended: " << ReadFile(dir.file("actor.out")).value_or("");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling another process's progress
  }
  ASSERT_GE(SampleValue(learner_text, "rlj_learner_steps_total"), 4) << learner_text;

  // A direct Judge.Score call gets exactly its own verdicts back: canaries and second scorings stay inside.
  {
    auto stub = v1::Judge::NewStub(MakeChannel(judge_address));
    v1::ScoreRequest request;
    for (int i = 0; i < 8; ++i) {
      v1::Sample* sample = request.add_samples();
      sample->set_id(absl::StrCat("probe-", i));
      sample->set_prompt("1+1=");
      sample->set_completion(i % 2 == 0 ? "2" : "three");
      sample->set_reference("2");
      sample->set_run("observed");
      sample->set_actor("probe");
    }
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(60));
    v1::ScoreResponse response;
    ASSERT_TRUE(stub->Score(&context, request, &response).ok());
    ASSERT_EQ(response.verdicts_size(), 8);
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(response.verdicts(i).sample_id(), absl::StrCat("probe-", i));
      EXPECT_EQ(response.verdicts(i).reward(), i % 2 == 0 ? 1.0 : 0.0);
    }
  }

  const std::string learner_scraped = ScrapeAndCheck(learner_metrics, dir.file("learner.prom"), "learner");
  const std::string judge_scraped = ScrapeAndCheck(judge_metrics, dir.file("judge.prom"), "judge");
  const std::string actor_scraped = ScrapeAndCheck(actor_metrics, dir.file("actor.prom"), "actor");
  EXPECT_TRUE(absl::StrContains(learner_scraped, "# TYPE rlj_learner_loss gauge")) << learner_scraped;
  EXPECT_TRUE(absl::StrContains(judge_scraped, "rlj_judge_verdicts_total{kind=\"canary\"}")) << judge_scraped;
  EXPECT_TRUE(absl::StrContains(judge_scraped, "rlj_judge_latency_seconds_bucket{le=\"+Inf\"}")) << judge_scraped;
  EXPECT_TRUE(absl::StrContains(judge_scraped, "rlj_judge_requests_total")) << judge_scraped;
  // The rule judge is right about both canaries every time, and deterministic.
  EXPECT_EQ(SampleValue(judge_scraped, "rlj_judge_canary_accuracy"), 1) << judge_scraped;
  EXPECT_EQ(SampleValue(judge_scraped, "rlj_judge_self_consistency"), 1) << judge_scraped;
  EXPECT_GT(SampleValue(actor_scraped, "rlj_actor_samples_judged_total"), 0) << actor_scraped;

  EXPECT_TRUE(actor->Stop(std::chrono::seconds(60)).ok());
  EXPECT_TRUE(judge->Stop(std::chrono::seconds(60)).ok());
  const ExitInfo learner_exit = learner->Stop(std::chrono::seconds(120));
  EXPECT_TRUE(learner_exit.ok()) << learner_exit.Describe();

  // TensorBoard: the learner's scalars per step, the judge's per policy version (flushed at exit).
  const std::set<std::string> learner_tags = ScalarTags(run_path + "/tensorboard/learner");
  EXPECT_TRUE(learner_tags.count("learner/loss") && learner_tags.count("learner/reward_mean"))
      << ::testing::PrintToString(learner_tags);
  const std::set<std::string> judge_tags = ScalarTags(run_path + "/tensorboard/judge-0");
  for (const char* tag : {"judge/reward_mean", "judge/canary_accuracy", "judge/latency_ms_mean", "judge/reward"}) {
    EXPECT_TRUE(judge_tags.count(tag)) << tag << " missing: " << ::testing::PrintToString(judge_tags);
  }

  // The teacher serves the learner's checkpoint and its /metrics too.
  RLJ_ASSERT_OK_AND_ASSIGN(std::string latest, ReadFile(run_dir.checkpoints_dir() + "/latest"));
  const std::string checkpoint = run_dir.checkpoints_dir() + "/" + std::string(absl::StripAsciiWhitespace(latest));
  auto teacher = StartRlj({"teacher", "--model", checkpoint, "--run-dir", run_path}, dir.file("teacher.out"));
  const std::string teacher_metrics = WaitForEndpoint(run_dir, "metrics-teacher");
  ASSERT_FALSE(teacher_metrics.empty()) << ReadFile(dir.file("teacher.out")).value_or("");
  const std::string teacher_scraped = ScrapeAndCheck(teacher_metrics, dir.file("teacher.prom"), "teacher");
  EXPECT_TRUE(absl::StrContains(teacher_scraped, "rlj_teacher_requests_total 0")) << teacher_scraped;
  EXPECT_TRUE(teacher->Stop(std::chrono::seconds(30)).ok());

  // The reward log holds train, canary and consistency rows; canaries are the judge's own.
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(run_dir.reward_log_dir()));
  int64_t canaries = 0, consistency = 0;
  for (const RewardLogRow& row : rows) {
    if (row.kind == row_kind::kCanary) {
      ++canaries;
      EXPECT_EQ(row.actor, "canary");
      EXPECT_EQ(row.canary_pass, true) << row.completion;
    }
    if (row.kind == row_kind::kConsistency) ++consistency;
  }
  EXPECT_GT(canaries, 0);
  EXPECT_GT(consistency, 0);

  // `rlj logs`: every view on the finished run.
  const auto logs = [&](std::vector<std::string> args, const std::string& out) {
    args.insert(args.begin(), {"logs", run_path});
    return RunRlj(args, dir.file(out), std::chrono::seconds(300));
  };
  testing::Finished summary = logs({"summary", "--json"}, "summary.json");
  ASSERT_TRUE(summary.exit.ok()) << summary.output;
  const nlohmann::json json = nlohmann::json::parse(summary.output.substr(summary.output.find('{')));
  EXPECT_EQ(json["canary"]["total"], canaries);
  EXPECT_EQ(json["canary"]["accuracy"], 1.0);
  EXPECT_EQ(json["self_consistency"]["agreement_rate"], 1.0);
  EXPECT_GE(json["learner"]["steps"].get<int64_t>(), 4);
  EXPECT_EQ(json["rows"].get<size_t>(), rows.size());

  testing::Finished text = logs({"--width", "80", "summary"}, "summary.txt");
  ASSERT_TRUE(text.exit.ok()) << text.output;
  EXPECT_TRUE(absl::StrContains(text.output, "canary accuracy")) << text.output;
  EXPECT_TRUE(logs({"tail", "-n", "5"}, "tail.txt").exit.ok());
  testing::Finished top = logs({"top", "3"}, "top.txt");
  EXPECT_TRUE(top.exit.ok() && absl::StrContains(top.output, "judge-0:")) << top.output;
  EXPECT_TRUE(logs({"bottom", "3"}, "bottom.txt").exit.ok());
  testing::Finished show = logs({"show", "judge-0:1"}, "show.txt");
  EXPECT_TRUE(show.exit.ok() && absl::StrContains(show.output, "--- teacher's raw answer ---")) << show.output;
  testing::Finished grep = logs({"grep", "probe|never-matches"}, "grep.txt");
  EXPECT_TRUE(grep.exit.ok()) << grep.output;
  EXPECT_TRUE(absl::StrContains(logs({"grep", "^2$"}, "grep2.txt").output, "judge-0:"));
  testing::Finished curve = logs({"curve"}, "curve.txt");
  EXPECT_TRUE(curve.exit.ok() && absl::StrContains(curve.output, "reward: mean '*'")) << curve.output;
  EXPECT_TRUE(logs({"errors"}, "errors.txt").exit.ok());
  testing::Finished csv = logs({"export", "--format", "csv", "-o", dir.file("rows.csv")}, "export.txt");
  EXPECT_TRUE(csv.exit.ok()) << csv.output;
  EXPECT_TRUE(absl::StartsWith(ReadFile(dir.file("rows.csv")).value_or(""), "row,replica,id,"));
  testing::Finished report = logs({"report", "-o", dir.file("report.html")}, "report.txt");
  EXPECT_TRUE(report.exit.ok()) << report.output;
  EXPECT_TRUE(absl::StrContains(ReadFile(dir.file("report.html")).value_or(""), "data-charts-expected"));
  testing::Finished compare = RunRlj({"logs", "compare", run_path, run_path, "--json"}, dir.file("compare.json"));
  ASSERT_TRUE(compare.exit.ok()) << compare.output;
  EXPECT_TRUE(absl::StrContains(compare.output, "\"reward mean\"")) << compare.output;
  // Rescoring with the same rule judge agrees fully.
  testing::Finished rescore = logs({"rescore", "--judge", config, "--json"}, "rescore.json");
  ASSERT_TRUE(rescore.exit.ok()) << rescore.output;
  const nlohmann::json agreement = nlohmann::json::parse(rescore.output.substr(rescore.output.find('{')));
  EXPECT_EQ(agreement["failed"], 0);
  EXPECT_EQ(agreement["decision_agreement"], 1.0);
  EXPECT_GT(agreement["with_reference"].get<int64_t>(), 0);
  EXPECT_EQ(agreement["original_accuracy"], agreement["rescored_accuracy"]);
  // A bad view argument fails cleanly.
  EXPECT_TRUE(testing::FailedCleanly(logs({"show", "judge-0:999999"}, "bad.txt"), "no row judge-0:999999"));
}

// `rlj logs RUN tail -f` prints rows appended after it started, and stops on SIGINT.
TEST(LogsRun, TailFollowsRowsAsTheyAreLogged) {
  testing::ScratchDir dir;
  const RunDir run_dir(dir.path());
  const auto row = [](const std::string& completion, int64_t step) {
    RewardLogRow r;
    r.time_unix_s = 1.7e9 + static_cast<double>(step);
    r.run = "followed";
    r.policy_version = step;
    r.actor = "actor-0";
    r.sample_id = completion;
    r.prompt = "What is 6*7?";
    r.completion = completion;
    r.reference = "42";
    r.reward = 1.0;
    r.backend = "rule";
    return r;
  };
  RLJ_ASSERT_OK_AND_ASSIGN(auto writer, RewardLogWriter::Open(run_dir.reward_log_path("judge-0")));
  RLJ_ASSERT_OK(writer->Append({row("first-answer", 1)}));
  auto tail = StartRlj({"logs", dir.path(), "tail", "-f"}, dir.file("tail.out"));
  ASSERT_TRUE(tail);
  const auto wait_for = [&](const std::string& needle) {
    for (int i = 0; i < 1200; ++i) {
      if (ReadFile(dir.file("tail.out")).value_or("").find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling a file another process writes
    }
    return false;
  };
  ASSERT_TRUE(wait_for("first-answer")) << ReadFile(dir.file("tail.out")).value_or("");
  RLJ_ASSERT_OK(writer->Append({row("second-answer", 2), row("third-answer", 2)}));
  EXPECT_TRUE(wait_for("third-answer")) << ReadFile(dir.file("tail.out")).value_or("");
  tail->Signal(SIGINT);
  const auto exit = tail->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->ok()) << exit->Describe();
  const std::string output = ReadFile(dir.file("tail.out")).value_or("");
  EXPECT_EQ(output.find("first-answer"), output.rfind("first-answer")) << "a row printed twice:\n" << output;
  EXPECT_LT(output.find("second-answer"), output.find("third-answer"));
}

}  // namespace
}  // namespace rlj
