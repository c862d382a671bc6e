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

JudgeTrafficMonitor::JudgeTrafficMonitor(std::string reward_log_dir, size_t window, size_t length_window,
                                         int64_t length_min_samples, double length_threshold)
    : reward_log_dir_(std::move(reward_log_dir)),
      window_(std::max<size_t>(window, 1)),
      length_window_(std::max<size_t>(length_window, 2)),
      length_min_samples_(length_min_samples),
      length_threshold_(length_threshold) {}

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
    ObserveQuality(row);
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

void JudgeTrafficMonitor::ObserveQuality(const RewardLogRow& row) {
  if (row.kind == row_kind::kCanary) {
    ++totals_.canary.total;
    if (!row.reward.has_value()) ++totals_.canary.failed_verdicts;
    if (row.canary_pass.value_or(false)) ++totals_.canary.passed;
    return;
  }
  if (!row.reward.has_value()) return;
  if (first_rewards_.size() < length_window_) first_rewards_.push_back(*row.reward);
  recent_scored_.emplace_back(*row.reward, static_cast<double>(row.completion_chars));
  if (recent_scored_.size() > length_window_) recent_scored_.pop_front();
}

JudgeTrafficSnapshot JudgeTrafficMonitor::Snapshot() const {
  JudgeTrafficSnapshot snapshot = totals_;
  CanaryStats& canary = snapshot.canary;
  canary.accuracy = canary.total > 0 ? static_cast<double>(canary.passed) / static_cast<double>(canary.total) : NAN;
  std::vector<double> rewards, lengths;
  for (const auto& [reward, length] : recent_scored_) {
    rewards.push_back(reward);
    lengths.push_back(length);
  }
  snapshot.length.samples = static_cast<int64_t>(rewards.size());
  snapshot.length.spearman = Spearman(rewards, lengths);
  snapshot.length.enough = snapshot.length.samples >= length_min_samples_ && std::isfinite(snapshot.length.spearman);
  snapshot.length.warn = snapshot.length.enough && snapshot.length.spearman > length_threshold_;
  if (!first_rewards_.empty()) snapshot.reward_first = Mean(first_rewards_);
  if (!rewards.empty()) snapshot.reward_recent = Mean(rewards);
  snapshot.latency_samples = static_cast<int64_t>(recent_latencies_ms_.size());
  if (!recent_latencies_ms_.empty()) {
    const std::vector<double> latencies(recent_latencies_ms_.begin(), recent_latencies_ms_.end());
    snapshot.latency_p50_ms = Quantile(latencies, 0.5);
    snapshot.latency_p95_ms = Quantile(latencies, 0.95);
  }
  return snapshot;
}

}  // namespace rlj::logs
