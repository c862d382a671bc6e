// judge_traffic_test.cc: the progress line's judge figures from real reward-log files of two replicas, read
// incrementally: latency percentiles over teacher calls only, cache hit rate, errors and cost.
#include "logs/judge_traffic.h"

#include <gtest/gtest.h>

#include "common/reward_log.h"
#include "logs_fixtures.h"
#include "test_util.h"

namespace rlj::logs {
namespace {

RewardLogRow Row(double latency_ms, bool cache_hit, std::optional<double> reward = 1.0, double cost = 0.001) {
  RewardLogRow row = testing::MakeRow(1, reward);
  row.latency_ms = latency_ms;
  row.cache_hit = cache_hit;
  row.cost_usd = cost;
  return row;
}

TEST(JudgeTraffic, MissingDirectoryIsAnEmptySnapshot) {
  testing::ScratchDir dir;
  JudgeTrafficMonitor monitor(dir.file("reward_log"));
  RLJ_ASSERT_OK(monitor.Refresh());
  const JudgeTrafficSnapshot snapshot = monitor.Snapshot();
  EXPECT_EQ(snapshot.verdicts, 0);
  EXPECT_EQ(snapshot.latency_p95_ms, 0);
  EXPECT_EQ(snapshot.cache_hit_rate(), 0);
}

TEST(JudgeTraffic, PercentilesCacheRateAndCostAcrossReplicasReadIncrementally) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK_AND_ASSIGN(auto judge0, RewardLogWriter::Open(dir.file("reward_log/judge-0.sqlite")));
  RLJ_ASSERT_OK_AND_ASSIGN(auto judge1, RewardLogWriter::Open(dir.file("reward_log/judge-1.sqlite")));
  // Teacher calls of 10..100 ms (10 calls), plus two cache hits (0 ms, free) and one failed call.
  std::vector<RewardLogRow> first, second;
  for (int i = 1; i <= 5; ++i) first.push_back(Row(10.0 * i, false));
  for (int i = 6; i <= 10; ++i) second.push_back(Row(10.0 * i, false));
  first.push_back(Row(0, true, 1.0, 0));
  second.push_back(Row(0, true, 0.0, 0));
  RLJ_ASSERT_OK(judge0->Append(first));
  RLJ_ASSERT_OK(judge1->Append(second));

  JudgeTrafficMonitor monitor(dir.file("reward_log"));
  RLJ_ASSERT_OK(monitor.Refresh());
  JudgeTrafficSnapshot snapshot = monitor.Snapshot();
  EXPECT_EQ(snapshot.verdicts, 12);
  EXPECT_EQ(snapshot.cache_hits, 2);
  EXPECT_DOUBLE_EQ(snapshot.cache_hit_rate(), 2.0 / 12.0);
  EXPECT_EQ(snapshot.latency_samples, 10);
  // Linear interpolation over 10,20,…,100: p50 at rank 4.5 → 55; p95 at rank 8.55 → 95.5.
  EXPECT_NEAR(snapshot.latency_p50_ms, 55.0, 1e-9);
  EXPECT_NEAR(snapshot.latency_p95_ms, 95.5, 1e-9);
  EXPECT_NEAR(snapshot.cost_usd, 0.010, 1e-12);
  EXPECT_EQ(snapshot.errors, 0);

  // A second refresh reads only what is new: one failed call on replica 0, nothing counted twice.
  RLJ_ASSERT_OK(judge0->Append({Row(1000, false, std::nullopt, 0.002)}));
  RLJ_ASSERT_OK(monitor.Refresh());
  RLJ_ASSERT_OK(monitor.Refresh());
  snapshot = monitor.Snapshot();
  EXPECT_EQ(snapshot.verdicts, 13);
  EXPECT_EQ(snapshot.errors, 1);
  EXPECT_EQ(snapshot.latency_samples, 11);
  EXPECT_NEAR(snapshot.cost_usd, 0.012, 1e-12);
  EXPECT_NEAR(snapshot.latency_p50_ms, 60.0, 1e-9);
}

TEST(JudgeTraffic, LatencyWindowKeepsTheMostRecentCalls) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK_AND_ASSIGN(auto judge0, RewardLogWriter::Open(dir.file("reward_log/judge-0.sqlite")));
  JudgeTrafficMonitor monitor(dir.file("reward_log"), /*window=*/3);
  RLJ_ASSERT_OK(judge0->Append({Row(1000, false), Row(1000, false), Row(1000, false)}));
  RLJ_ASSERT_OK(monitor.Refresh());
  EXPECT_NEAR(monitor.Snapshot().latency_p50_ms, 1000, 1e-9);
  RLJ_ASSERT_OK(judge0->Append({Row(10, false), Row(20, false), Row(30, false)}));
  RLJ_ASSERT_OK(monitor.Refresh());
  const JudgeTrafficSnapshot snapshot = monitor.Snapshot();
  EXPECT_EQ(snapshot.latency_samples, 3);
  EXPECT_NEAR(snapshot.latency_p50_ms, 20, 1e-9);
  EXPECT_NEAR(snapshot.latency_p95_ms, 29, 1e-9);
  EXPECT_EQ(snapshot.verdicts, 6);
}

}  // namespace
}  // namespace rlj::logs
