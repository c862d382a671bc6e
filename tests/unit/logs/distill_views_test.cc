// distill_views_test.cc: the reverse KL to the teacher of an on-policy distillation run in `rlj logs` summary
// (text and JSON), curve and report data, against values computed by hand; and a run without distillation,
// whose views gain nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "logs/curve_points.h"
#include "logs/distill_signal.h"
#include "logs/run_logs.h"
#include "logs/step_series.h"
#include "logs/summary.h"
#include "logs/terminal_text.h"
#include "logs_fixtures.h"
#include "test_util.h"

namespace rlj::logs {
namespace {

using rlj::testing::MakeRow;
using rlj::testing::ScratchDir;

// A distill-mode verdict: the teacher's log-probabilities summed and averaged, and the sample's reverse KL.
RewardLogRow DistillRow(int64_t step, double reward, double reverse_kl) {
  RewardLogRow row = MakeRow(step, reward);
  row.backend = "openai";
  row.model = "teacher";
  row.components_json = absl::StrCat("{\"teacher_logprob_sum\":", -10 * reverse_kl,
                                     ",\"teacher_logprob_mean\":", -reverse_kl, ",\"reverse_kl\":", reverse_kl, "}");
  return row;
}

// Steps 1..3. Train verdicts' reverse KL: step 1 {0.5, 0.7}, step 2 {0.3, 0.1} and a failed verdict, step 3 {0.2}
// and a verdict without the component. A canary with reverse KL 9 is not a train sample and counts nowhere.
// The learner's steps 1..3: teacher_reverse_kl 0.5, 0.25, 0.125 over 100 tokens each.
void WriteDistillRun(const std::string& run_dir) {
  RewardLogRow canary = DistillRow(2, 1.0, 9.0);
  canary.kind = row_kind::kCanary;
  canary.expected_reward = 1.0;
  canary.canary_pass = true;
  testing::WriteRows(
      run_dir, "judge-0",
      {DistillRow(1, 0.2, 0.5), DistillRow(1, 0.4, 0.7), DistillRow(2, 0.6, 0.3), DistillRow(2, 0.8, 0.1),
       MakeRow(2, std::nullopt), canary, DistillRow(3, 0.9, 0.2), MakeRow(3, 1.0)});
  std::vector<v1::StepMetrics> steps;
  for (int step = 1; step <= 3; ++step) {
    v1::StepMetrics m;
    m.set_step(step);
    m.set_version(step);
    m.set_teacher_reverse_kl(1.0 / (1 << step));
    m.set_distill_tokens(100);
    steps.push_back(m);
  }
  testing::WriteMetrics(run_dir, steps);
}

// The same shape without distillation: rule verdicts and a learner without teacher tokens.
void WritePlainRun(const std::string& run_dir) {
  testing::WriteRows(run_dir, "judge-0", {MakeRow(1, 0.0), MakeRow(1, 1.0), MakeRow(2, std::nullopt), MakeRow(3, 1.0)});
  v1::StepMetrics m;
  m.set_step(1);
  m.set_reward_mean(0.5);
  testing::WriteMetrics(run_dir, {m});
}

TEST(DistillSummary, ReportsTheMeanReverseKlOfTheDistillVerdicts) {
  ScratchDir dir;
  WriteDistillRun(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  const RunSummary s = Summarize(logs, SummaryOptions());
  // (0.5 + 0.7 + 0.3 + 0.1 + 0.2) / 5 = 0.36; step 1 averages 0.6, step 3 (the last with values) 0.2.
  EXPECT_EQ(s.reverse_kl.samples, 5);
  EXPECT_NEAR(s.reverse_kl.mean, 0.36, 1e-12);
  EXPECT_NEAR(s.reverse_kl.first_step_mean, 0.6, 1e-12);
  EXPECT_NEAR(s.reverse_kl.last_step_mean, 0.2, 1e-12);

  const nlohmann::json json = SummaryToJson(s);
  ASSERT_TRUE(json.contains("teacher_reverse_kl")) << json.dump(2);
  EXPECT_EQ(json["teacher_reverse_kl"]["samples"], 5);
  EXPECT_NEAR(json["teacher_reverse_kl"]["mean"].get<double>(), 0.36, 1e-12);
  EXPECT_NEAR(json["teacher_reverse_kl"]["first_step_mean"].get<double>(), 0.6, 1e-12);
  EXPECT_NEAR(json["teacher_reverse_kl"]["last_step_mean"].get<double>(), 0.2, 1e-12);
  EXPECT_DOUBLE_EQ(json["learner"]["last"]["teacher_reverse_kl"].get<double>(), 0.125);
  EXPECT_EQ(json["learner"]["last"]["distill_tokens"], 100);

  const std::string text = FormatSummary(s, 80);
  EXPECT_TRUE(absl::StrContains(text, "distillation")) << text;
  EXPECT_TRUE(absl::StrContains(text, "0.360 (mean of 5 samples)")) << text;
  EXPECT_TRUE(absl::StrContains(text, "0.600 → 0.200")) << text;
  EXPECT_TRUE(absl::StrContains(text, ", rkl 0.125")) << text;  // the learner's last step
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    EXPECT_LE(DisplayWidth(std::string_view(line.data(), line.size())), 80u) << line;
  }
}

TEST(DistillSummary, ARunWithoutDistillationShowsNothingNew) {
  ScratchDir dir;
  WritePlainRun(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  const RunSummary s = Summarize(logs, SummaryOptions());
  EXPECT_EQ(s.reverse_kl.samples, 0);
  EXPECT_TRUE(std::isnan(s.reverse_kl.mean));
  const nlohmann::json json = SummaryToJson(s);
  EXPECT_FALSE(json.contains("teacher_reverse_kl")) << json.dump(2);
  EXPECT_FALSE(json["learner"]["last"].contains("teacher_reverse_kl")) << json.dump(2);
  EXPECT_FALSE(json["learner"]["last"].contains("distill_tokens")) << json.dump(2);
  const std::string text = FormatSummary(s, 80);
  EXPECT_FALSE(absl::StrContains(text, "distillation")) << text;
  EXPECT_FALSE(absl::StrContains(text, "rkl")) << text;
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<CurvePoint> points, CurvePoints(logs, "reverse_kl"));
  EXPECT_TRUE(points.empty());
  EXPECT_TRUE(ReverseKlChartData(ComputeStepSeries(logs.rows), logs.steps).is_null());
}

TEST(DistillCurve, PlotsTheStepMeansOfTheReverseKl) {
  ScratchDir dir;
  WriteDistillRun(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<CurvePoint> points, CurvePoints(logs, "reverse_kl"));
  ASSERT_EQ(points.size(), 3u);
  const double expected[][2] = {{1, 0.6}, {2, 0.2}, {3, 0.2}};
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_DOUBLE_EQ(points[i].x, expected[i][0]);
    EXPECT_NEAR(points[i].y, expected[i][1], 1e-12) << "step " << points[i].x;
    EXPECT_TRUE(std::isnan(points[i].low) && std::isnan(points[i].high));  // no band
  }
  EXPECT_NE(CurveLabel("reverse_kl").find("reverse KL"), std::string::npos);
  EXPECT_NE(CurveMetricNames(" | ").find("reverse_kl"), std::string::npos);
}

TEST(DistillReport, ChartsTheVerdictsAndTheLearnersReverseKlPerStep) {
  ScratchDir dir;
  WriteDistillRun(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  const nlohmann::json data = ReverseKlChartData(ComputeStepSeries(logs.rows), logs.steps);
  ASSERT_FALSE(data.is_null());
  ASSERT_EQ(data["judge"].size(), 3u);
  EXPECT_EQ(data["judge"][0][0], 1);
  EXPECT_NEAR(data["judge"][0][1].get<double>(), 0.6, 1e-12);
  EXPECT_EQ(data["learner"], nlohmann::json::parse("[[1, 0.5], [2, 0.25], [3, 0.125]]"));
}

}  // namespace
}  // namespace rlj::logs
