// metrics_log_test.cc: per-step metrics as JSON lines: appended, read back in order, torn lines skipped.
#include "common/metrics_log.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/file_util.h"
#include "test_util.h"

namespace rlj {
namespace {

TEST(MetricsLog, AppendsAndReadsBackEveryStep) {
  testing::ScratchDir dir;
  const std::string path = dir.file("metrics.jsonl");
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto writer, MetricsLogWriter::Open(path));
    for (int step = 1; step <= 3; ++step) {
      v1::StepMetrics metrics;
      metrics.set_step(step);
      metrics.set_reward_mean(0.25 * step);
      metrics.set_update_skipped_nonfinite(step == 2);
      RLJ_ASSERT_OK(writer->Append(metrics));
    }
  }
  RLJ_ASSERT_OK_AND_ASSIGN(std::string text, ReadFile(path));
  EXPECT_NE(text.find("\"reward_mean\":0.25"), std::string::npos) << text;  // snake_case names for people
  RLJ_ASSERT_OK_AND_ASSIGN(auto steps, ReadMetricsLog(path));
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[2].step(), 3);
  EXPECT_DOUBLE_EQ(steps[2].reward_mean(), 0.75);
  EXPECT_TRUE(steps[1].update_skipped_nonfinite());

  // A second writer appends; a torn last line (a kill mid-write) is skipped, not fatal.
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto writer, MetricsLogWriter::Open(path));
    v1::StepMetrics metrics;
    metrics.set_step(4);
    RLJ_ASSERT_OK(writer->Append(metrics));
  }
  std::ofstream(path, std::ios::app) << "{\"step\": 5, \"reward_me";
  RLJ_ASSERT_OK_AND_ASSIGN(steps, ReadMetricsLog(path));
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[3].step(), 4);
}

TEST(MetricsLog, ErrorsNameThePath) {
  EXPECT_TRUE(testing::FailsWith(MetricsLogWriter::Open("/nonexistent-dir/m.jsonl"), absl::StatusCode::kUnavailable,
                                 "/nonexistent-dir/m.jsonl"));
  EXPECT_TRUE(testing::FailsWith(ReadMetricsLog("/nonexistent-dir/m.jsonl"), absl::StatusCode::kNotFound,
                                 "/nonexistent-dir/m.jsonl"));
}

}  // namespace
}  // namespace rlj
