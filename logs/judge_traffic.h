// judge_traffic.h: what the judges of a live run are doing, for `rlj run`'s progress line: teacher latency
// percentiles over the most recent calls, cache hit rate and cost so far, canary accuracy, the reward/length
// correlation and the mean reward of the first and the latest verdicts, read incrementally from the reward logs.
#pragma once

#include <cmath>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/reward_log.h"
#include "logs/quality_signals.h"

namespace rlj::logs {

struct JudgeTrafficSnapshot {
  int64_t verdicts = 0;  // train and canary rows so far
  int64_t errors = 0;    // rows without a reward
  int64_t cache_hits = 0;
  double cost_usd = 0;
  int64_t latency_samples = 0;  // teacher calls in the latency window (cache hits are not calls)
  double latency_p50_ms = 0;
  double latency_p95_ms = 0;
  CanaryStats canary;          // every canary so far
  LengthCorrelation length;    // reward against completion length over the recent window of scored train rows
  double reward_first = NAN;   // mean reward of the first window of scored train rows (NaN before any)
  double reward_recent = NAN;  // ... and of the most recent window

  double cache_hit_rate() const { return verdicts > 0 ? static_cast<double>(cache_hits) / verdicts : 0; }
};

class JudgeTrafficMonitor {
 public:
  // `reward_log_dir`: the run's reward_log/ (every judge replica's file); `window`: how many recent teacher
  // calls the latency percentiles cover; the length correlation (and the reward means) cover the last
  // `length_window` scored train rows, with a verdict from `length_min_samples` of them, warning above
  // `length_threshold` (the run's quality section).
  explicit JudgeTrafficMonitor(std::string reward_log_dir, size_t window = 2000, size_t length_window = 512,
                               int64_t length_min_samples = 64, double length_threshold = 0.5);

  // Reads the rows written since the last call. A directory without files yet is not an error.
  absl::Status Refresh();

  JudgeTrafficSnapshot Snapshot() const;

 private:
  void ObserveQuality(const RewardLogRow& row);

  std::string reward_log_dir_;
  size_t window_;
  std::map<std::string, int64_t> last_id_by_replica_;
  std::deque<double> recent_latencies_ms_;
  size_t length_window_;
  int64_t length_min_samples_;
  double length_threshold_;
  std::deque<std::pair<double, double>> recent_scored_;  // reward, completion characters
  std::vector<double> first_rewards_;                    // the first length_window_ rewards
  JudgeTrafficSnapshot totals_;
};

}  // namespace rlj::logs
