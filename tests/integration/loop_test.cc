// loop_test.cc: the whole loop with real processes on loopback: `rlj run` end to end, and learner, judge
// and two actors started by hand, checked through Learner.Status and the SQLite reward log.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/arithmetic_task.h"
#include "common/dataset.h"
#include "common/grpc_util.h"
#include "common/reward_log.h"
#include "common/run_dir.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::FailedCleanly;
using testing::RunRlj;
using testing::StartRlj;

// A tiny run: small model, a few steps, small groups; everything under `dir`.
std::string WriteTinyRun(const std::string& dir, int steps, int actors) {
  testing::WriteTinyTask(dir);
  const std::string config = absl::StrCat(testing::TinyRunConfigHead(dir, "tiny"), testing::TinySignalJudgeSection(),
                                          R"(learner:
  steps: )",
                                          steps, R"(
  groups_per_step: 4
  lr: 1.0e-3
  max_staleness: 4
actor:
  count: )",
                                          actors, R"(
  prompts_per_batch: 4
)");
  const std::string path = dir + "/tiny.yaml";
  EXPECT_TRUE(WriteFileAtomically(path, config).ok());
  return path;
}

// The addresses the learner and judge-0 report in the run directory ("" for one that has not within a minute).
std::pair<std::string, std::string> WaitForEndpoints(const RunDir& run_dir) {
  std::string learner, judge;
  for (int i = 0; i < 600 && (learner.empty() || judge.empty()); ++i) {
    learner = run_dir.ReadEndpoint("learner").value_or("");
    judge = run_dir.ReadEndpoint("judge-0").value_or("");
    if (learner.empty() || judge.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling files other processes write
    }
  }
  return {learner, judge};
}

TEST(Loop, RunSupervisesLearnerJudgeAndActorsToTheEnd) {
  testing::ScratchDir dir;
  const std::string config = WriteTinyRun(dir.path(), 3, 2);
  const testing::Finished run = RunRlj({"run", config}, dir.file("run.out"));
  ASSERT_TRUE(run.exit.ok()) << run.exit.Describe() << "\n" << run.output;

  const RunDir run_dir(dir.path() + "/runs/tiny");
  RLJ_ASSERT_OK_AND_ASSIGN(std::string summary_text, ReadFile(run_dir.summary_path()));
  const nlohmann::json summary = nlohmann::json::parse(summary_text);
  EXPECT_EQ(summary["steps"], 3);
  EXPECT_EQ(summary["policy_version"], 3);
  EXPECT_GT(summary["wall_s"].get<double>(), 0);
  EXPECT_EQ(summary["eval_before"]["total"], 20);
  EXPECT_EQ(summary["eval_after"]["total"], 20);
  // The after-RL accuracy is the final checkpoint's: `rlj eval` of it, a separate process, agrees exactly.
  const nlohmann::json& after = summary["eval_after"];
  EXPECT_DOUBLE_EQ(after["accuracy"].get<double>(), after["correct"].get<double>() / after["total"].get<double>());
  const testing::Finished eval = RunRlj(
      {"eval", config, "--checkpoint", summary["checkpoint"].get<std::string>(), "--json"}, dir.file("eval.json"));
  ASSERT_TRUE(eval.exit.ok()) << eval.output;
  const nlohmann::json evaluated = nlohmann::json::parse(eval.output.substr(eval.output.find('{')), nullptr, false);
  ASSERT_TRUE(evaluated.is_object()) << eval.output;
  EXPECT_EQ(evaluated["correct"], after["correct"]) << eval.output;
  EXPECT_EQ(evaluated["total"], after["total"]) << eval.output;
  EXPECT_EQ(summary["reward_curve"].size(), 3u);
  EXPECT_TRUE(std::filesystem::exists(summary["checkpoint"].get<std::string>() + "/model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(run_dir.config_path()));
  EXPECT_TRUE(std::filesystem::exists(run_dir.log_path("learner")));

  // Every verdict is in the reward log, with a reward for every sample of the tiny task. (Which actors
  // contributed depends on timing: a fast one may serve all 3 steps before the other starts.)
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(run_dir.reward_log_dir()));
  ASSERT_GE(rows.size(), 3u * 4u * 4u);
  for (const RewardLogRow& row : rows) {
    EXPECT_TRUE(row.actor == "actor-0" || row.actor == "actor-1") << row.actor;
    EXPECT_EQ(row.run, "tiny");
    EXPECT_EQ(row.backend, "rule");
    ASSERT_TRUE(row.reward.has_value()) << row.error_message;
    EXPECT_TRUE(*row.reward == 0.0 || *row.reward == 1.0);
    EXPECT_FALSE(row.prompt.empty());
  }
  // The supervisor started both (it opens each child's console file before exec); whether an actor got as far
  // as opening its own log before the 3 steps were done also depends on timing.
  for (const char* actor : {"actor-0", "actor-1"}) {
    EXPECT_TRUE(std::filesystem::exists(run_dir.logs_dir() + "/" + actor + ".console")) << actor << " never started";
  }
}

TEST(Loop, AJudgeThatMisgradesItsCanariesRaisesAnAlarmInTheReportAndTheSummary) {
  testing::ScratchDir dir;
  const std::string config = WriteTinyRun(dir.path(), 6, 1);
  // The judge rewards any answer that starts with a printable character; these canaries say such answers are
  // wrong, so every one of them fails, as a grader's would on answers it misgrades.
  std::string canaries;
  for (int i = 0; i < 5; ++i) {
    canaries += absl::StrCat("{\"id\": \"c", i, "\", \"prompt\": \"", i, "+1=\", \"completion\": \"", i + 2,
                             "\", \"reference\": \"", i + 1, "\", \"expected_reward\": 0}\n");
  }
  ASSERT_TRUE(WriteFileAtomically(dir.file("canaries.jsonl"), canaries).ok());
  const testing::Finished run = RunRlj(
      {"run", config, "--set", "quality.canary_path=" + dir.file("canaries.jsonl"), "--set", "quality.canary_rate=1"},
      dir.file("run.out"));
  ASSERT_TRUE(run.exit.ok()) << run.exit.Describe() << "\n" << run.output;
  RLJ_ASSERT_OK_AND_ASSIGN(std::string summary_text, ReadFile(dir.path() + "/runs/tiny/summary.json"));
  const nlohmann::json summary = nlohmann::json::parse(summary_text);
  ASSERT_TRUE(summary["alarms"].is_array()) << summary_text;
  bool canary_alarm = false;
  for (const auto& alarm : summary["alarms"]) {
    canary_alarm |= absl::StrContains(alarm.get<std::string>(), "the judge misgrades known answers");
  }
  EXPECT_TRUE(canary_alarm) << summary["alarms"];
  EXPECT_TRUE(absl::StrContains(run.output, "ALARM: canary accuracy 0.0% (")) << run.output;
}

TEST(Loop, RunStartsJudgeReplicasAndSpreadsActorsOverThem) {
  testing::ScratchDir dir;
  const std::string config = WriteTinyRun(dir.path(), 8, 2);
  const testing::Finished run = RunRlj({"run", config, "--set", "judge.replicas=2"}, dir.file("run.out"));
  ASSERT_TRUE(run.exit.ok()) << run.exit.Describe() << "\n" << run.output;

  const RunDir run_dir(dir.path() + "/runs/tiny");
  EXPECT_TRUE(run_dir.ReadEndpoint("judge-0").ok());
  EXPECT_TRUE(run_dir.ReadEndpoint("judge-1").ok());
  EXPECT_NE(run_dir.ReadEndpoint("judge-0").value_or(""), run_dir.ReadEndpoint("judge-1").value_or(""));
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(run_dir.reward_log_dir()));
  ASSERT_GE(rows.size(), 8u * 4u * 4u);
  // actor i sends to judge i mod 2, and each replica logs to its own file.
  for (const RewardLogRow& row : rows) {
    EXPECT_EQ(row.replica, row.actor == "actor-0" ? "judge-0" : "judge-1") << row.actor;
  }
}

TEST(Loop, RunRefusesToMixWithAnExistingRun) {
  testing::ScratchDir dir;
  const std::string config = WriteTinyRun(dir.path(), 1, 1);
  ASSERT_TRUE(MakeDirectories(dir.path() + "/runs/tiny/checkpoints").ok());
  ASSERT_TRUE(WriteFileAtomically(dir.path() + "/runs/tiny/summary.json", "{}").ok());
  EXPECT_TRUE(FailedCleanly(RunRlj({"run", config}, dir.file("run.out")), "already holds a run; pass --overwrite"));
}

TEST(Loop, StandaloneProcessesAdvanceVersionsAndDeliverRewards) {
  testing::ScratchDir dir;
  const std::string config = WriteTinyRun(dir.path(), 1000, 2);
  const std::string run_dir_path = dir.path() + "/runs/tiny";
  const RunDir run_dir(run_dir_path);
  auto learner = StartRlj({"learner", config, "--run-dir", run_dir_path}, dir.file("learner.out"));
  auto judge = StartRlj({"judge", config, "--run-dir", run_dir_path}, dir.file("judge.out"));
  ASSERT_TRUE(learner && judge);

  // Each server reports its ephemeral port in the run directory.
  const auto [learner_address, judge_address] = WaitForEndpoints(run_dir);
  ASSERT_FALSE(learner_address.empty()) << ReadFile(dir.file("learner.out")).value_or("");
  ASSERT_FALSE(judge_address.empty()) << ReadFile(dir.file("judge.out")).value_or("");
  RLJ_ASSERT_OK(WaitForHealthy(learner_address, std::chrono::seconds(60)));
  RLJ_ASSERT_OK(WaitForHealthy(judge_address, std::chrono::seconds(60)));

  std::vector<std::unique_ptr<Subprocess>> actors;
  for (int i = 0; i < 2; ++i) {
    actors.push_back(StartRlj({"actor", config, "--run-dir", run_dir_path, "--learner", learner_address, "--judge",
                               judge_address, "--index", std::to_string(i), "--count", "2"},
                              dir.file(absl::StrCat("actor", i, ".out"))));
  }

  auto stub = v1::Learner::NewStub(MakeChannel(learner_address));
  v1::LearnerStatus status;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (std::chrono::steady_clock::now() < give_up) {
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(10));
    v1::StatusRequest request;
    ASSERT_TRUE(stub->Status(&context, request, &status).ok());
    if (status.version() >= 3) break;
    for (auto& actor : actors) ASSERT_FALSE(actor->Poll().has_value()) << "an actor ended early";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling another process's progress
  }
  EXPECT_GE(status.version(), 3);
  EXPECT_EQ(status.version(), status.step());
  EXPECT_GE(status.groups_received(), 3 * 4);
  EXPECT_EQ(status.samples_masked(), 0);
  EXPECT_GT(status.last().samples(), 0);
  EXPECT_GE(status.last().reward_mean(), 0.0);
  EXPECT_LE(status.last().reward_mean(), 1.0);

  // SIGTERM stops everyone cleanly once they are working (a process signalled while still loading its
  // libraries simply dies of the signal); the learner checkpoints on the way out.
  for (int i = 0; i < 2; ++i) {
    const std::string log = run_dir.log_path(absl::StrCat("actor-", i));
    for (int poll = 0; poll < 600 && ReadFile(log).value_or("").find("got policy v") == std::string::npos; ++poll) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling a file another process writes
    }
    EXPECT_NE(ReadFile(log).value_or("").find("got policy v"), std::string::npos)
        << "actor-" << i << " never got a policy";
  }
  for (auto& actor : actors) {
    const ExitInfo exit = actor->Stop(std::chrono::seconds(60));
    EXPECT_TRUE(exit.ok()) << exit.Describe();
  }
  EXPECT_TRUE(judge->Stop(std::chrono::seconds(60)).ok());
  const ExitInfo learner_exit = learner->Stop(std::chrono::seconds(120));
  EXPECT_TRUE(learner_exit.ok()) << learner_exit.Describe() << ReadFile(dir.file("learner.out")).value_or("");
  EXPECT_TRUE(std::filesystem::exists(run_dir.checkpoints_dir() + "/latest"));

  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(run_dir.reward_log_dir()));
  EXPECT_GE(rows.size(), static_cast<size_t>(status.groups_received()) * 4);
  int64_t max_version = 0;
  for (const RewardLogRow& row : rows) max_version = std::max(max_version, row.policy_version);
  EXPECT_GE(max_version, 2) << "actors kept sampling with newer policies";
}

// Polls Learner.Status until `done(status)` or the deadline; returns the last status.
v1::LearnerStatus WaitForStatus(v1::Learner::Stub* stub, const std::function<bool(const v1::LearnerStatus&)>& done,
                                std::chrono::seconds timeout) {
  v1::LearnerStatus status;
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < give_up) {
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(10));
    v1::StatusRequest request;
    if (stub->Status(&context, request, &status).ok() && done(status)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling another process's progress
  }
  return status;
}

TEST(Loop, ActorReconnectsWhenTheJudgeRestarts) {
  testing::ScratchDir dir;
  const std::string config = WriteTinyRun(dir.path(), 100000, 1);
  const std::string run_dir_path = dir.path() + "/runs/tiny";
  const RunDir run_dir(run_dir_path);
  auto learner = StartRlj({"learner", config, "--run-dir", run_dir_path}, dir.file("learner.out"));
  auto judge = StartRlj({"judge", config, "--run-dir", run_dir_path}, dir.file("judge.out"));
  const auto [learner_address, judge_address] = WaitForEndpoints(run_dir);
  ASSERT_FALSE(learner_address.empty() || judge_address.empty());
  auto actor =
      StartRlj({"actor", config, "--run-dir", run_dir_path, "--learner", learner_address, "--judge", judge_address},
               dir.file("actor.out"));
  auto stub = v1::Learner::NewStub(MakeChannel(learner_address));
  v1::LearnerStatus status = WaitForStatus(
      stub.get(), [](const auto& s) { return s.version() >= 2; }, std::chrono::minutes(5));
  ASSERT_GE(status.version(), 2);

  // The judge dies hard; a new one comes up on the same address a little later.
  judge->Signal(SIGKILL);
  ASSERT_TRUE(judge->Wait(std::chrono::seconds(30)).has_value());
  const int64_t version_at_kill = WaitForStatus(
                                      stub.get(), [](const auto&) { return true; }, std::chrono::seconds(10))
                                      .version();
  judge = StartRlj({"judge", config, "--run-dir", run_dir_path, "--listen", judge_address}, dir.file("judge2.out"));
  RLJ_ASSERT_OK(WaitForHealthy(judge_address, std::chrono::seconds(60)));

  status = WaitForStatus(
      stub.get(), [&](const auto& s) { return s.version() >= version_at_kill + 3; }, std::chrono::minutes(5));
  EXPECT_GE(status.version(), version_at_kill + 3) << ReadFile(dir.file("actor.out")).value_or("");
  EXPECT_FALSE(actor->Poll().has_value()) << "the actor gave up instead of reconnecting";
  EXPECT_EQ(status.samples_masked(), 0) << "no sample was trained on without a verdict";

  actor->Stop(std::chrono::seconds(60));
  judge->Stop(std::chrono::seconds(60));
  learner->Stop(std::chrono::seconds(120));
}

}  // namespace
}  // namespace rlj
