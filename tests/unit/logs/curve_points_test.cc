// curve_points_test.cc: the points `rlj logs curve --metric M` plots, computed by hand: the reward with its
// p10..p90 band, latency's one-sided band closed down to the line, steps without a value left out, held-out
// points from eval_curve.jsonl, and an unknown metric refused with the list of known ones.
#include "logs/curve_points.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/run_dir.h"
#include "logs/eval_curve.h"
#include "logs_fixtures.h"
#include "test_util.h"

namespace rlj::logs {
namespace {

using rlj::testing::MakeRow;
using rlj::testing::ScratchDir;

// Step 1: rewards 0 and 1 (latency 10 and 30 ms); step 2: one failed verdict only.
RunLogs TwoSteps() {
  RunLogs logs;
  logs.rows = {MakeRow(1, 0.0), MakeRow(1, 1.0), MakeRow(2, std::nullopt)};
  logs.rows[1].latency_ms = 30;
  return logs;
}

TEST(CurvePoints, RewardHasItsBandAndSkipsStepsWithoutRewards) {
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<CurvePoint> points, CurvePoints(TwoSteps(), "reward"));
  ASSERT_EQ(points.size(), 1u);
  EXPECT_DOUBLE_EQ(points[0].x, 1);
  EXPECT_DOUBLE_EQ(points[0].y, 0.5);
  EXPECT_NEAR(points[0].low, 0.1, 1e-12);  // p10 of {0, 1}
  EXPECT_NEAR(points[0].high, 0.9, 1e-12);
}

TEST(CurvePoints, LatencyBandReachesFromTheMeanToP95) {
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<CurvePoint> points, CurvePoints(TwoSteps(), "latency"));
  ASSERT_EQ(points.size(), 2u);  // every row counts for the judge's work, failed ones too
  EXPECT_DOUBLE_EQ(points[0].y, 20);
  EXPECT_DOUBLE_EQ(points[0].low, 20);
  EXPECT_NEAR(points[0].high, 29, 1e-12);  // p95 of {10, 30}
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<CurvePoint> errors, CurvePoints(TwoSteps(), "error_rate"));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_DOUBLE_EQ(errors[1].y, 1.0);
  EXPECT_TRUE(std::isnan(errors[1].low) && std::isnan(errors[1].high));
}

TEST(CurvePoints, HeldOutPointsComeFromTheEvalCurve) {
  RunLogs logs = TwoSteps();
  EvalPoint before;
  before.kind = "before";
  before.step = 0;
  before.accuracy = 0.25;
  before.reward = NAN;  // no verdict had a reward: no eval_reward point
  logs.eval_curve = {before};
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<CurvePoint> accuracy, CurvePoints(logs, "eval_accuracy"));
  ASSERT_EQ(accuracy.size(), 1u);
  EXPECT_DOUBLE_EQ(accuracy[0].y, 0.25);
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<CurvePoint> reward, CurvePoints(logs, "eval_reward"));
  EXPECT_TRUE(reward.empty());
}

TEST(CurvePoints, AnUnknownMetricNamesTheKnownOnes) {
  EXPECT_TRUE(
      testing::FailsWith(CurvePoints(TwoSteps(), "rewrad"), absl::StatusCode::kInvalidArgument,
                         "unknown --metric 'rewrad' (reward, error_rate, latency, cost, cache_hit_rate, length, "
                         "canary_accuracy, reverse_kl, eval_accuracy, eval_reward)"));
  EXPECT_EQ(CurveLabel("reward"), "reward: mean '*', p10..p90 ':'");
  EXPECT_EQ(CurveLabel("cost"), "cost");
}

}  // namespace
}  // namespace rlj::logs
