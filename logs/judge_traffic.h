// judge_traffic.h: what the judges of a live run are doing, for `rlj run`'s progress line: teacher latency
// percentiles over the most recent calls, cache hit rate and cost so far, read incrementally from the reward logs.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "absl/status/status.h"

namespace rlj::logs {

struct JudgeTrafficSnapshot {
  int64_t verdicts = 0;  // train and canary rows so far
  int64_t errors = 0;    // rows without a reward
  int64_t cache_hits = 0;
  double cost_usd = 0;
  int64_t latency_samples = 0;  // teacher calls in the latency window (cache hits are not calls)
  double latency_p50_ms = 0;
  double latency_p95_ms = 0;

  double cache_hit_rate() const { return verdicts > 0 ? static_cast<double>(cache_hits) / verdicts : 0; }
};

class JudgeTrafficMonitor {
 public:
  // `reward_log_dir`: the run's reward_log/ (every judge replica's file); `window`: how many recent teacher
  // calls the latency percentiles cover.
  explicit JudgeTrafficMonitor(std::string reward_log_dir, size_t window = 2000);

  // Reads the rows written since the last call. A directory without files yet is not an error.
  absl::Status Refresh();

  JudgeTrafficSnapshot Snapshot() const;

 private:
  std::string reward_log_dir_;
  size_t window_;
  std::map<std::string, int64_t> last_id_by_replica_;
  std::deque<double> recent_latencies_ms_;
  JudgeTrafficSnapshot totals_;
};

}  // namespace rlj::logs
