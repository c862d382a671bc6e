// judge_traffic.cc: incremental reading of the reward logs into latency percentiles, cache hit rate and cost.
#include "logs/judge_traffic.h"

#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include "common/reward_log.h"
#include "common/status.h"
#include "logs/statistics.h"

namespace rlj::logs {

JudgeTrafficMonitor::JudgeTrafficMonitor(std::string reward_log_dir, size_t window)
    : reward_log_dir_(std::move(reward_log_dir)), window_(std::max<size_t>(window, 1)) {}

absl::Status JudgeTrafficMonitor::Refresh() {
  std::error_code ec;
  if (!std::filesystem::is_directory(reward_log_dir_, ec)) return absl::OkStatus();  // no judge has written yet
  RewardLogReadOptions options;
  options.with_text = false;
  options.after_id = last_id_by_replica_;
  RLJ_ASSIGN_OR_RETURN(std::vector<RewardLogRow> rows, ReadRewardLog(reward_log_dir_, options));
  for (const RewardLogRow& row : rows) {
    int64_t& last = last_id_by_replica_[row.replica];
    last = std::max(last, row.id);
    if (row.kind == row_kind::kConsistency) continue;  // a re-scoring, not a verdict the run asked for
    ++totals_.verdicts;
    if (!row.reward.has_value()) ++totals_.errors;
    totals_.cost_usd += row.cost_usd;
    if (row.cache_hit) {
      ++totals_.cache_hits;
      continue;
    }
    recent_latencies_ms_.push_back(row.latency_ms);
    if (recent_latencies_ms_.size() > window_) recent_latencies_ms_.pop_front();
  }
  return absl::OkStatus();
}

JudgeTrafficSnapshot JudgeTrafficMonitor::Snapshot() const {
  JudgeTrafficSnapshot snapshot = totals_;
  snapshot.latency_samples = static_cast<int64_t>(recent_latencies_ms_.size());
  if (!recent_latencies_ms_.empty()) {
    const std::vector<double> latencies(recent_latencies_ms_.begin(), recent_latencies_ms_.end());
    snapshot.latency_p50_ms = Quantile(latencies, 0.5);
    snapshot.latency_p95_ms = Quantile(latencies, 0.95);
  }
  return snapshot;
}

}  // namespace rlj::logs
