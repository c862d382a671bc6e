// resume_kill_test.cc: `rlj run` killed with SIGKILL (every process of the run) mid-training, its newest
// checkpoint corrupted, then `rlj run --resume`: the learner refuses the corrupt checkpoint, continues from
// the previous one, policy versions never go backwards and the run completes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/arithmetic_task.h"
#include "common/dataset.h"
#include "common/run_dir.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::ChildPid;
using testing::RunRlj;
using testing::StartRlj;

constexpr int kSteps = 60;

std::string WriteRun(const std::string& dir) {
  testing::WriteTinyTask(dir);
  const std::string config = absl::StrCat(testing::TinyRunConfigHead(dir, "resumed"), testing::TinySignalJudgeSection(),
                                          R"(learner:
  steps: )",
                                          kSteps, R"(
  groups_per_step: 2
  lr: 1.0e-3
  max_staleness: 4
  checkpoint_every: 3
  keep_checkpoints: 3
actor:
  count: 1
  prompts_per_batch: 2
)");
  const std::string path = dir + "/resumed.yaml";
  EXPECT_TRUE(WriteFileAtomically(path, config).ok());
  return path;
}

// The step-N checkpoint directories (complete ones: temporaries start with a dot), ascending.
std::vector<int64_t> CheckpointSteps(const RunDir& run_dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(run_dir.checkpoints_dir(), ec)) {
    const std::string name = entry.path().filename().string();
    int64_t step = 0;
    if (name.rfind("step-", 0) == 0 && absl::SimpleAtoi(name.substr(5), &step)) steps.push_back(step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

int64_t NewestCheckpointStep(const RunDir& run_dir) {
  const std::vector<int64_t> steps = CheckpointSteps(run_dir);
  return steps.empty() ? -1 : steps.back();
}

// Waits (up to 5 minutes) until the run has a checkpoint of at least `step`; fails if the run ends first.
void AwaitCheckpoint(Subprocess* run, const RunDir& run_dir, int64_t step, const std::string& output_path) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (NewestCheckpointStep(run_dir) < step && std::chrono::steady_clock::now() < give_up) {
    ASSERT_FALSE(run->Poll().has_value()) << "the run ended early:\n" << ReadFile(output_path).value_or("");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling files other processes write
  }
}

// The pids `rlj run` logged for its children ("started learner (pid 123)").
std::vector<pid_t> ChildPids(const RunDir& run_dir) {
  std::vector<pid_t> pids;
  const std::string log = ReadFile(run_dir.log_path("run")).value_or("");
  const std::regex started(R"(started [a-z0-9-]+ \(pid (\d+)\))");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), started); it != std::sregex_iterator(); ++it) {
    pids.push_back(static_cast<pid_t>(std::stol((*it)[1].str())));
  }
  return pids;
}

TEST(ResumeAfterKill, KilledRunResumesFromTheLastGoodCheckpointAndCompletes) {
  testing::ScratchDir dir;
  const std::string config = WriteRun(dir.path());
  const RunDir run_dir(dir.path() + "/runs/resumed");

  // 1. Run until a few checkpoints exist, then SIGKILL every process of the run: the supervisor stopped
  //    first (so it restarts nothing), then the children (so none gets the parent-death SIGTERM and
  //    checkpoints gracefully), then the supervisor.
  auto run = StartRlj({"run", config}, dir.file("run1.out"));
  ASSERT_TRUE(run);
  ASSERT_NO_FATAL_FAILURE(AwaitCheckpoint(run.get(), run_dir, 9, dir.file("run1.out")));
  ASSERT_TRUE(testing::StopAndAwaitStopped(run->pid()));
  const std::vector<pid_t> children = ChildPids(run_dir);
  ASSERT_GE(children.size(), 3u);                                             // learner, judge, actor
  for (pid_t pid : children) ASSERT_TRUE(testing::StopAndAwaitStopped(pid));  // nothing written from here on
  for (pid_t pid : children) ::kill(pid, SIGKILL);
  run->Signal(SIGKILL);
  ASSERT_TRUE(run->Wait(std::chrono::seconds(30)).has_value());
  ASSERT_FALSE(std::filesystem::exists(run_dir.summary_path()));

  const std::vector<int64_t> steps = CheckpointSteps(run_dir);
  ASSERT_GE(steps.size(), 2u);
  const int64_t killed_at = steps.back();
  ASSERT_GE(killed_at, 9);
  ASSERT_LT(killed_at, kSteps) << "the run finished before it could be killed; nothing was resumed";
  // The newest checkpoint is damaged on disk: the resume must refuse it and take the one before.
  const std::string weights = absl::StrCat(run_dir.checkpoints_dir(), "/step-", killed_at, "/model.safetensors");
  {
    std::fstream file(weights, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file.good());
    file.seekg(300);
    const char original = static_cast<char>(file.get());
    file.seekp(300);
    file.put(static_cast<char>(original ^ 0x5a));
  }
  const int64_t expected_resume = steps[steps.size() - 2];

  // 2. Resume.
  const testing::Finished resumed = RunRlj({"run", config, "--resume"}, dir.file("run2.out"));
  ASSERT_TRUE(resumed.exit.ok()) << resumed.exit.Describe() << "\n" << resumed.output;

  RLJ_ASSERT_OK_AND_ASSIGN(std::string summary_text, ReadFile(run_dir.summary_path()));
  const nlohmann::json summary = nlohmann::json::parse(summary_text);
  EXPECT_EQ(summary["steps"], kSteps);
  EXPECT_EQ(summary["policy_version"], kSteps);
  EXPECT_EQ(summary["eval_before"]["total"], 20);
  EXPECT_EQ(summary["eval_after"]["total"], 20);

  const std::string learner_log = ReadFile(run_dir.log_path("learner")).value_or("");
  EXPECT_NE(learner_log.find(absl::StrCat("/step-", killed_at, ": model.safetensors: CRC-32C mismatch")),
            std::string::npos)
      << learner_log;
  EXPECT_NE(learner_log.find(absl::StrCat("(step ", expected_resume, ", policy v", expected_resume)), std::string::npos)
      << learner_log;
  const std::string run_log = ReadFile(run_dir.log_path("run")).value_or("");
  EXPECT_NE(run_log.find("reusing the before-RL evaluation"), std::string::npos) << run_log;

  // metrics.jsonl: one line per step 1..kSteps in order, version = step: the steps redone after the resume
  // replaced the lines the killed run wrote past its checkpoint, and no version ever went backwards.
  RLJ_ASSERT_OK_AND_ASSIGN(std::string metrics, ReadFile(run_dir.metrics_path()));
  std::istringstream lines(metrics);
  std::string line;
  int64_t expected_step = 1;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    const nlohmann::json json = nlohmann::json::parse(line);
    const auto number = [&](const char* key) {
      const auto& value = json.at(key);
      return value.is_string() ? std::stoll(value.get<std::string>()) : value.get<int64_t>();
    };
    EXPECT_EQ(number("step"), expected_step);
    EXPECT_EQ(number("version"), expected_step);
    ++expected_step;
  }
  EXPECT_EQ(expected_step, kSteps + 1);
  // The final checkpoint and the last good ones survive; the corrupt one was replaced by the redone step.
  RLJ_ASSERT_OK_AND_ASSIGN(std::string latest, ReadFile(run_dir.checkpoints_dir() + "/latest"));
  EXPECT_EQ(latest, absl::StrCat("step-", kSteps, "\n"));
}

// kill -9 of the learner and of the judge under a running `rlj run`: the supervisor restarts both on their
// addresses, the learner resumes from its newest checkpoint, the actor carries on, and the run completes.
TEST(ResumeAfterKill, SupervisorRestartsAKilledLearnerAndJudgeAndTheRunCompletes) {
  testing::ScratchDir dir;
  const std::string config = WriteRun(dir.path());
  const RunDir run_dir(dir.path() + "/runs/resumed");
  auto run = StartRlj({"run", config}, dir.file("run.out"));
  ASSERT_TRUE(run);
  ASSERT_NO_FATAL_FAILURE(AwaitCheckpoint(run.get(), run_dir, 6, dir.file("run.out")));
  const pid_t learner = ChildPid(run_dir, "learner");
  const pid_t judge = ChildPid(run_dir, "judge-0");
  ASSERT_GT(learner, 0);
  ASSERT_GT(judge, 0);
  // Read while the learner is stopped: the newest checkpoint it will ever have written, the one its
  // successor must resume from.
  ASSERT_TRUE(testing::StopAndAwaitStopped(learner));
  const int64_t killed_at = NewestCheckpointStep(run_dir);
  ASSERT_EQ(::kill(learner, SIGKILL), 0);
  ASSERT_EQ(::kill(judge, SIGKILL), 0);
  ASSERT_LT(killed_at, kSteps) << "the run finished before it could be killed";

  const std::optional<ExitInfo> exit = run->Wait(std::chrono::minutes(10));
  ASSERT_TRUE(exit.has_value()) << "the run did not finish after the kills";
  const std::string output = ReadFile(dir.file("run.out")).value_or("");
  ASSERT_TRUE(exit->ok()) << exit->Describe() << "\n" << output;

  RLJ_ASSERT_OK_AND_ASSIGN(std::string summary_text, ReadFile(run_dir.summary_path()));
  const nlohmann::json summary = nlohmann::json::parse(summary_text);
  EXPECT_EQ(summary["steps"], kSteps);
  EXPECT_EQ(summary["policy_version"], kSteps);
  const std::string run_log = ReadFile(run_dir.log_path("run")).value_or("");
  EXPECT_NE(run_log.find("learner ended (killed by signal 9"), std::string::npos) << run_log;
  EXPECT_NE(run_log.find("judge-0 ended (killed by signal 9"), std::string::npos) << run_log;
  EXPECT_NE(ChildPid(run_dir, "learner"), learner) << "the learner was not started again";
  EXPECT_NE(ChildPid(run_dir, "judge-0"), judge) << "the judge was not started again";
  const std::string learner_log = ReadFile(run_dir.log_path("learner")).value_or("");
  EXPECT_NE(learner_log.find(absl::StrCat("(step ", killed_at)), std::string::npos)
      << "the restarted learner did not resume from step " << killed_at << ":\n"
      << learner_log;
}

// SIGTERM to `rlj run` (as Ctrl-C): the learner checkpoints, every child is stopped, the run exits 0 and its
// summary says it was interrupted; `--resume` could continue from there.
TEST(RunStop, SigtermCheckpointsStopsEveryChildAndExitsZero) {
  testing::ScratchDir dir;
  const std::string config = WriteRun(dir.path());
  const RunDir run_dir(dir.path() + "/runs/resumed");
  auto run = StartRlj({"run", config}, dir.file("run.out"));
  ASSERT_TRUE(run);
  ASSERT_NO_FATAL_FAILURE(AwaitCheckpoint(run.get(), run_dir, 3, dir.file("run.out")));
  const std::vector<pid_t> children = ChildPids(run_dir);
  ASSERT_GE(children.size(), 3u);
  run->Signal(SIGTERM);
  const std::optional<ExitInfo> exit = run->Wait(std::chrono::minutes(3));
  ASSERT_TRUE(exit.has_value()) << "rlj run did not stop after SIGTERM";
  EXPECT_TRUE(exit->ok()) << exit->Describe() << "\n" << ReadFile(dir.file("run.out")).value_or("");
  for (pid_t pid : children) {
    EXPECT_TRUE(::kill(pid, 0) == -1 && errno == ESRCH) << "child " << pid << " outlived rlj run";
  }
  RLJ_ASSERT_OK_AND_ASSIGN(std::string summary_text, ReadFile(run_dir.summary_path()));
  const nlohmann::json summary = nlohmann::json::parse(summary_text);
  EXPECT_EQ(summary["interrupted"], true);
  const int64_t steps = summary["steps"].get<int64_t>();
  EXPECT_GE(steps, 3);
  EXPECT_LT(steps, kSteps);
  // The learner's checkpoint on the way out is at least as new as the last step the supervisor saw.
  EXPECT_GE(NewestCheckpointStep(run_dir), steps);
}

}  // namespace
}  // namespace rlj
