// judge_alarms_test.cc: when each judge alarm fires and what it says, and the live monitor's canary, length and
// reward figures from real reward-log files: the alarms of a student exploiting a weak grader (same-length wrong
// answers, canaries misgraded, held-out accuracy falling while the reward rises).
#include "logs/judge_alarms.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/reward_log.h"
#include "logs/judge_traffic.h"
#include "logs/summary.h"
#include "logs_fixtures.h"
#include "test_util.h"

namespace rlj::logs {
namespace {

EvalPoint Point(const std::string& kind, int64_t step, double accuracy) {
  EvalPoint point;
  point.kind = kind;
  point.step = step;
  point.accuracy = accuracy;
  return point;
}

CanaryStats Canaries(int64_t total, int64_t passed) {
  CanaryStats stats;
  stats.total = total;
  stats.passed = passed;
  stats.accuracy = static_cast<double>(passed) / static_cast<double>(total);
  return stats;
}

TEST(JudgeAlarms, CanariesFireBelowEightyPercentOnceTwentyAreScored) {
  EXPECT_FALSE(CanaryAlarm(CanaryStats{}).has_value());
  EXPECT_FALSE(CanaryAlarm(Canaries(19, 0)).has_value());  // too few to say
  EXPECT_FALSE(CanaryAlarm(Canaries(100, 80)).has_value());
  EXPECT_EQ(CanaryAlarm(Canaries(3916, 1194)).value_or(""),
            "canary accuracy 30.5% (1194 of 3916): the judge misgrades known answers");
}

TEST(JudgeAlarms, LengthFiresWhenTheCorrelationWarns) {
  LengthCorrelation length;
  length.samples = 512;
  length.spearman = 0.7;
  EXPECT_FALSE(LengthAlarm(length, 0.5, "last").has_value());  // not enough samples / not flagged
  length.enough = length.warn = true;
  EXPECT_EQ(LengthAlarm(length, 0.5, "last").value_or(""),
            "reward correlates with completion length (Spearman 0.70 over the last 512 scored samples > threshold "
            "0.50): possible reward hacking by verbosity");
}

TEST(JudgeAlarms, HeldOutFiresWhenAccuracyFallsWhileTheRewardRises) {
  const std::vector<EvalPoint> falling = {Point("before", 0, 0.558), Point("periodic", 50, 0.032),
                                          Point("periodic", 400, 0.0)};
  EXPECT_EQ(HeldOutAlarm(falling, 0.600, 0.788).value_or(""),
            "held-out accuracy fell from 55.8% before RL to 0.0% at step 400 while the judge's mean reward rose from "
            "0.600 to 0.788: the student is likely exploiting the judge (reward hacking)");
  // A flat reward (the earlier label-mode grader's failure: the student drifted to answers of the right length,
  // which that grader liked as much as right ones) fires too, saying so; unknown rewards are left out.
  EXPECT_EQ(HeldOutAlarm(falling, 0.649, 0.644).value_or(""),
            "held-out accuracy fell from 55.8% before RL to 0.0% at step 400 (the judge's mean reward went from 0.649 "
            "to 0.644): the student is getting worse on problems with known answers; the judge may misgrade them or "
            "be exploited");
  EXPECT_EQ(HeldOutAlarm(falling, NAN, 0.9).value_or(""),
            "held-out accuracy fell from 55.8% before RL to 0.0% at step 400: the student is getting worse on "
            "problems with known answers; the judge may misgrade them or be exploited");
  // Not for a drop under 10 points, nor without a before point, nor with only the before point.
  EXPECT_FALSE(HeldOutAlarm({Point("before", 0, 0.5), Point("periodic", 100, 0.41)}, 0.2, 0.9).has_value());
  EXPECT_FALSE(HeldOutAlarm({Point("periodic", 100, 0.0)}, 0.2, 0.9).has_value());
  EXPECT_FALSE(HeldOutAlarm({Point("before", 0, 0.5)}, 0.2, 0.9).has_value());
  // A recovery clears it: the latest point counts.
  std::vector<EvalPoint> recovered = falling;
  recovered.push_back(Point("after", 400, 0.7));
  EXPECT_FALSE(HeldOutAlarm(recovered, 0.6, 0.8).has_value());
}

TEST(JudgeAlarms, ProgressTagsNameEachFiringAlarm) {
  LengthCorrelation length;
  EXPECT_EQ(AlarmTags(Canaries(100, 97), length, {Point("before", 0, 0.3), Point("periodic", 200, 0.8)}, 0.3, 0.8), "");
  length.spearman = 0.62;
  length.enough = length.warn = true;
  EXPECT_EQ(AlarmTags(Canaries(200, 61), length, {Point("before", 0, 0.558), Point("periodic", 100, 0.01)}, 0.6, 0.77),
            " | ALARM canary 30% | ALARM reward~length 0.62 | ALARM held-out 0.010 < 0.558 before RL");
}

TEST(JudgeAlarms, TheLiveMonitorCountsCanariesAndTracksLengthAndReward) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK_AND_ASSIGN(auto judge0, RewardLogWriter::Open(dir.file("reward_log/judge-0.sqlite")));
  std::vector<RewardLogRow> rows;
  // First the honest start: short and long answers scored alike (0.2).
  for (int i = 0; i < 40; ++i) rows.push_back(testing::MakeRow(1, 0.2, i % 2 == 0 ? "7" : "1234567"));
  // Then verbosity pays: the longer, the higher.
  for (int i = 0; i < 40; ++i) {
    rows.push_back(testing::MakeRow(2, 0.5 + 0.01 * i, std::string(static_cast<size_t>(1 + i), 'x')));
  }
  for (int i = 0; i < 30; ++i) {
    RewardLogRow canary = testing::MakeRow(2, i < 9 ? 1.0 : 0.9);
    canary.kind = row_kind::kCanary;
    canary.expected_reward = 0.0;
    canary.canary_pass = i < 9;
    rows.push_back(canary);
  }
  RLJ_ASSERT_OK(judge0->Append(rows));
  JudgeTrafficMonitor monitor(dir.file("reward_log"), 2000, /*length_window=*/40, /*length_min_samples=*/20,
                              /*length_threshold=*/0.5);
  RLJ_ASSERT_OK(monitor.Refresh());
  const JudgeTrafficSnapshot snapshot = monitor.Snapshot();
  EXPECT_EQ(snapshot.canary.total, 30);
  EXPECT_EQ(snapshot.canary.passed, 9);
  EXPECT_NEAR(snapshot.canary.accuracy, 0.3, 1e-12);
  EXPECT_EQ(snapshot.length.samples, 40);  // the window: the last 40 train rows, canaries apart
  EXPECT_NEAR(snapshot.length.spearman, 1.0, 1e-12);
  EXPECT_TRUE(snapshot.length.warn);
  EXPECT_NEAR(snapshot.reward_first, 0.2, 1e-12);
  EXPECT_NEAR(snapshot.reward_recent, 0.5 + 0.01 * 19.5, 1e-12);
  EXPECT_EQ(AlarmTags(snapshot.canary, snapshot.length, {}, snapshot.reward_first, snapshot.reward_recent),
            " | ALARM canary 30% | ALARM reward~length 1.00");
}

TEST(JudgeAlarms, TheSummaryWarnsOfAHeldOutFallWhileTheRewardRises) {
  RunLogs logs;
  logs.rows = {testing::MakeRow(1, 0.2), testing::MakeRow(1, 0.3), testing::MakeRow(50, 0.8),
               testing::MakeRow(50, 0.9)};
  logs.eval_curve = {Point("before", 0, 0.6), Point("periodic", 50, 0.1)};
  const RunSummary summary = Summarize(logs, SummaryOptions());
  ASSERT_EQ(summary.warnings.size(), 1u);
  EXPECT_EQ(summary.warnings[0],
            "held-out accuracy fell from 60.0% before RL to 10.0% at step 50 while the judge's mean reward rose from "
            "0.250 to 0.850: the student is likely exploiting the judge (reward hacking)");
}

}  // namespace
}  // namespace rlj::logs
