// teacher_run_test.cc: a short teacher-judged run with real processes: `rlj dataset grading` and `rlj sft`
// make a tiny teacher, `rlj run` starts it (`rlj teacher`) before the judge, points the judge's openai
// backend (label mode) at it, and the rewards in the reward log come from the teacher's label probabilities.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/arithmetic_task.h"
#include "common/dataset.h"
#include "common/reward_log.h"
#include "common/run_dir.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::FailedCleanly;
using testing::RunRlj;

// The tiny task (sums up to 20) and a run judged by a tiny teacher (MakeTinyTeacher); returns the run config.
std::string WriteTeacherJudgedRun(const std::string& dir) {
  testing::WriteTinyTask(dir);
  const std::string run_config =
      absl::StrCat(testing::TinyRunConfigHead(dir, "tiny"), testing::TinyTeacherJudgeSections(dir, 1), R"(learner:
  steps: 3
  groups_per_step: 4
  lr: 1.0e-3
  max_staleness: 4
actor:
  count: 1
  prompts_per_batch: 4
)");
  EXPECT_TRUE(WriteFileAtomically(dir + "/tiny.yaml", run_config).ok());
  return dir + "/tiny.yaml";
}

TEST(TeacherRun, RunStartsTheTeacherAndTheJudgeScoresWithIt) {
  testing::ScratchDir dir;
  const std::string config = WriteTeacherJudgedRun(dir.path());

  const std::string teacher_failure = testing::MakeTinyTeacher(dir.path());
  ASSERT_EQ(teacher_failure, "");
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<PromptRow> grading_rows, LoadPromptDataset(dir.file("grading.jsonl")));
  ASSERT_EQ(grading_rows.size(), 400u);

  const testing::Finished run = RunRlj({"run", config}, dir.file("run.out"));
  ASSERT_TRUE(run.exit.ok()) << run.exit.Describe() << "\n" << run.output;

  const RunDir run_dir(dir.path() + "/runs/tiny");
  RLJ_ASSERT_OK_AND_ASSIGN(std::string summary_text, ReadFile(run_dir.summary_path()));
  const nlohmann::json summary = nlohmann::json::parse(summary_text);
  EXPECT_EQ(summary["steps"], 3);
  ASSERT_TRUE(summary.contains("teacher")) << summary_text;
  const std::string teacher_url = summary["teacher"].get<std::string>();
  EXPECT_EQ(teacher_url.rfind("http://127.0.0.1:", 0), 0u) << teacher_url;  // loopback by default
  // The judge was pointed at the teacher through the run's config.
  RLJ_ASSERT_OK_AND_ASSIGN(std::string resolved, ReadFile(run_dir.config_path()));
  EXPECT_NE(resolved.find(teacher_url), std::string::npos) << resolved;
  EXPECT_TRUE(std::filesystem::exists(run_dir.log_path("teacher")));

  // Every verdict came from the teacher's label probabilities: a reward P(Y) in [0, 1] with p(Y) + p(N) = 1.
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(run_dir.reward_log_dir()));
  ASSERT_GE(rows.size(), 3u * 4u * 4u);
  int rewarded = 0;
  int strictly_between = 0;
  for (const RewardLogRow& row : rows) {
    EXPECT_EQ(row.backend, "openai");
    EXPECT_EQ(row.model, "teacher");
    if (!row.reward.has_value()) continue;  // a masked verdict is logged with its error, never as 0
    ++rewarded;
    const nlohmann::json components = nlohmann::json::parse(row.components_json);
    ASSERT_TRUE(components.contains("p(Y)") && components.contains("p(N)")) << row.components_json;
    EXPECT_NEAR(*row.reward, components["p(Y)"].get<double>(), 1e-9);
    EXPECT_NEAR(components["p(Y)"].get<double>() + components["p(N)"].get<double>(), 1.0, 1e-9);
    EXPECT_GT(components["label_mass"].get<double>(), 0.05);
    if (*row.reward > 0 && *row.reward < 1) ++strictly_between;
  }
  EXPECT_GE(rewarded, 3 * 4 * 4) << "the learner trained on 3 steps of 4 groups of 4 rewarded samples";
  EXPECT_GT(strictly_between, 0) << "label-mode rewards are probabilities, not 0/1";
}

// A teacher that cannot start (its checkpoint directory is empty) stops the run before any actor starts, with
// the teacher's own error. (A missing directory is refused earlier, by rlj run's preflight: bad_input_test.)
TEST(TeacherRun, RunFailsCleanlyWhenTheTeacherCannotStart) {
  testing::ScratchDir dir;
  const std::string config = WriteTeacherJudgedRun(dir.path());  // no teacher checkpoint is trained
  std::filesystem::create_directories(dir.path() + "/teacher");
  const testing::Finished run = RunRlj({"run", config}, dir.file("run.out"), std::chrono::seconds(300));
  EXPECT_TRUE(FailedCleanly(run, "teacher ended"));
  EXPECT_NE(run.output.find(dir.path() + "/teacher"), std::string::npos) << run.output;  // names the checkpoint
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/runs/tiny/logs/actor-0.console")) << "no actor starts";
}

}  // namespace
}  // namespace rlj
