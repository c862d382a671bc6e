// eval_curve_test.cc: held-out accuracy while `rlj run` trains (eval.every_steps): the curve's points are
// where they are due (before RL at step 0, then one per multiple of every_steps, then after RL at the final
// step, equal to the summary's final accuracy), the best policy is kept, and every view shows the curve
// (`rlj logs curve --metric eval_accuracy`, summary, compare, TensorBoard). With eval.stop_when_no_gain_for
// the run stops early, exits 0 and names the best checkpoint.
#include "logs/eval_curve.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/run_dir.h"
#include "openai_stand_in.h"
#include "rlj_process.h"
#include "run_probes.h"
#include "test_util.h"

namespace rlj {
namespace {

constexpr int kEverySteps = 20;

std::string WriteRun(const std::string& dir, const std::string& name, int steps, const std::string& extra_eval,
                     double lr) {
  testing::WriteTinyTask(dir);
  const std::string config = absl::StrCat(testing::TinyRunConfigHead(dir, name), testing::TinySignalJudgeSection(),
                                          R"(learner:
  steps: )",
                                          steps, R"(
  groups_per_step: 2
  lr: )",
                                          lr, R"(
actor:
  count: 1
  prompts_per_batch: 2
eval:
  every_steps: )",
                                          kEverySteps, "\n", extra_eval);
  const std::string path = dir + "/" + name + ".yaml";
  EXPECT_TRUE(WriteFileAtomically(path, config).ok());
  return path;
}

TEST(EvalCurve, PeriodicEvaluationDrawsTheCurveWhileTrainingAndEveryViewShowsIt) {
  testing::ScratchDir dir;
  constexpr int kSteps = 160;  // the tiny learner does ~15 steps a second: room for several evaluations
  const RunDir run_dir(dir.path() + "/runs/curve");
  const testing::Finished run =
      testing::RunRlj({"run", WriteRun(dir.path(), "curve", kSteps, "", 1e-3)}, dir.file("run.out"));
  ASSERT_TRUE(run.exit.ok()) << run.output;
  EXPECT_NE(run.output.find("held-out"), std::string::npos) << "the progress line shows the held-out accuracy";

  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<logs::EvalPoint> curve, logs::ReadEvalCurve(run_dir.eval_curve_path()));
  ASSERT_GE(curve.size(), 3u);
  EXPECT_EQ(curve.front().kind, "before");
  EXPECT_EQ(curve.front().step, 0);
  EXPECT_EQ(curve.back().kind, "after");
  EXPECT_EQ(curve.back().step, kSteps);
  int periodic = 0;
  int64_t previous = 0;
  for (const logs::EvalPoint& p : curve) {
    EXPECT_GE(p.accuracy, 0.0);
    EXPECT_LE(p.accuracy, 1.0);
    EXPECT_EQ(p.prompts, 20) << "the tiny task's 20 held-out prompts";
    if (p.kind != "periodic") continue;
    ++periodic;
    // The first version at or after each due multiple of every_steps: one point per multiple, in order.
    EXPECT_GT(p.step / kEverySteps, previous / kEverySteps) << p.step << " after " << previous;
    EXPECT_LE(p.step, kSteps);
    previous = p.step;
  }
  EXPECT_GE(periodic, 2);

  RLJ_ASSERT_OK_AND_ASSIGN(const std::string summary_text, ReadFile(run_dir.summary_path()));
  const nlohmann::json summary = nlohmann::json::parse(summary_text);
  EXPECT_EQ(summary["eval_curve"].size(), curve.size());
  EXPECT_DOUBLE_EQ(summary["eval_after"]["accuracy"].get<double>(), curve.back().accuracy)
      << "the curve ends at the final accuracy";
  EXPECT_DOUBLE_EQ(summary["eval_before"]["accuracy"].get<double>(), curve.front().accuracy);
  ASSERT_TRUE(summary.contains("best_checkpoint")) << summary_text;
  EXPECT_TRUE(std::filesystem::exists(run_dir.best_checkpoint_dir() + "/config.json"));
  EXPECT_TRUE(std::filesystem::exists(run_dir.best_checkpoint_dir() + "/model.safetensors"));

  const testing::Finished plot =
      testing::RunRlj({"logs", run_dir.root(), "curve", "--metric", "eval_accuracy"}, dir.file("curve.out"));
  ASSERT_TRUE(plot.exit.ok()) << plot.output;
  EXPECT_EQ(plot.output.find("(no eval_accuracy values"), std::string::npos) << plot.output;
  const testing::Finished logs_summary =
      testing::RunRlj({"logs", run_dir.root(), "summary", "--json"}, dir.file("s.json"));
  ASSERT_TRUE(logs_summary.exit.ok()) << logs_summary.output;
  const nlohmann::json held_out = nlohmann::json::parse(logs_summary.output)["held_out"];
  EXPECT_EQ(held_out["points"].size(), curve.size());
  EXPECT_TRUE(held_out.contains("before") && held_out.contains("after") && held_out.contains("best"))
      << held_out.dump();
  const testing::Finished compare =
      testing::RunRlj({"logs", "compare", run_dir.root(), run_dir.root(), "--json"}, dir.file("compare.json"));
  ASSERT_TRUE(compare.exit.ok()) << compare.output;
  std::set<int64_t> steps;
  for (const logs::EvalPoint& p : curve) steps.insert(p.step);
  EXPECT_EQ(nlohmann::json::parse(compare.output)["held_out_accuracy_per_step"].size(), steps.size());
  EXPECT_NE(testing::ReadFilesUnder(run_dir.root() + "/tensorboard/run").find("eval/accuracy"), std::string::npos)
      << "no eval/accuracy scalar in TensorBoard";
}

// A policy that cannot change (lr 1e-9): the second periodic evaluation finds no gain, so with
// stop_when_no_gain_for 1 the run stops there, exits 0, and keeps the first evaluation's policy as the best.
TEST(EvalCurve, NoGainStopsTheRunEarlyAndKeepsTheBestCheckpoint) {
  testing::ScratchDir dir;
  constexpr int kSteps = 2000;
  const RunDir run_dir(dir.path() + "/runs/early");
  const testing::Finished run = testing::RunRlj(
      {"run", WriteRun(dir.path(), "early", kSteps, "  stop_when_no_gain_for: 1\n", 1e-9)}, dir.file("run.out"));
  ASSERT_TRUE(run.exit.ok()) << run.output;
  EXPECT_NE(run.output.find("stopping early: no held-out gain"), std::string::npos) << run.output;
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string summary_text, ReadFile(run_dir.summary_path()));
  const nlohmann::json summary = nlohmann::json::parse(summary_text);
  EXPECT_LT(summary["steps"].get<int64_t>(), kSteps) << summary_text;
  EXPECT_NE(summary.value("stop_reason", "").find("eval.stop_when_no_gain_for"), std::string::npos) << summary_text;
  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<logs::EvalPoint> curve, logs::ReadEvalCurve(run_dir.eval_curve_path()));
  const logs::EvalPoint* first_periodic = nullptr;
  for (const logs::EvalPoint& p : curve) {
    if (p.kind == "periodic" && first_periodic == nullptr) first_periodic = &p;
  }
  ASSERT_NE(first_periodic, nullptr);
  ASSERT_TRUE(summary.contains("best_checkpoint")) << summary_text;
  EXPECT_EQ(summary["best_checkpoint"]["step"], first_periodic->step) << "equal accuracy later is no gain";
  EXPECT_EQ(summary["best_checkpoint"]["path"], run_dir.best_checkpoint_dir());
  EXPECT_TRUE(std::filesystem::exists(run_dir.best_checkpoint_dir() + "/model.safetensors"));
}

// eval.judge: a teacher behind the OpenAI API grades the greedy answers; the curve's reward is its (1..10 of
// 10, never the rule's 0 or 1) and each point counts what it spent.
TEST(EvalCurve, AConfiguredJudgeScoresTheAnswersAndItsSpendIsCounted) {
  testing::ScratchDir dir;
  testing::OpenAiStandIn teacher;
  ASSERT_NO_FATAL_FAILURE(teacher.Start());
  const RunDir run_dir(dir.path() + "/runs/judged");
  // The run's own judge stays the rule of TinySignalJudgeSection; only the evaluation asks the teacher.
  std::string config_text = ReadFile(WriteRun(dir.path(), "judged", 40, "", 1e-3)).value_or("");
  const size_t judge_at = config_text.find("judge:\n  rule:");
  ASSERT_NE(judge_at, std::string::npos) << config_text;
  config_text.insert(judge_at + std::string("judge:\n").size(),
                     absl::StrCat("  backends:\n    grader:\n      backend: openai\n      openai:\n",
                                  "        base_url: http://127.0.0.1:", teacher.port(), "/v1\n",
                                  "        model: teacher\n        rubric: \"Grade {completion} for {prompt}\"\n",
                                  "        price_input_per_1k: 1.0\n        cache: false\n"));
  config_text += "  judge: grader\n";
  const std::string config = dir.file("judged.yaml");
  ASSERT_TRUE(WriteFileAtomically(config, config_text).ok());
  const testing::Finished run = testing::RunRlj({"run", config}, dir.file("run.out"));
  ASSERT_TRUE(run.exit.ok()) << run.output << "\n" << config_text;
  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<logs::EvalPoint> curve, logs::ReadEvalCurve(run_dir.eval_curve_path()));
  ASSERT_GE(curve.size(), 3u);
  for (const logs::EvalPoint& p : curve) {
    EXPECT_GE(p.reward, 0.1 - 1e-9) << p.kind << " at " << p.step << ": the teacher scores 1..10 of 10";
    EXPECT_LE(p.reward, 1.0 + 1e-9);
    EXPECT_GT(p.cost_usd, 0.0) << p.kind << " at " << p.step << ": the teacher's spend is counted";
  }
  EXPECT_GE(teacher.requests(), static_cast<int64_t>(curve.size()) * 20)
      << "every answer of every evaluation was graded";
}

}  // namespace
}  // namespace rlj
