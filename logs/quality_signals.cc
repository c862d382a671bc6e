// quality_signals.cc: canary accuracy, self-consistency pairs and the reward/length correlation.
#include "logs/quality_signals.h"

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <utility>

#include "logs/statistics.h"

namespace rlj::logs {
namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

CanaryStats CanaryAccuracy(const std::vector<RewardLogRow>& rows) {
  CanaryStats stats;
  for (const RewardLogRow& row : rows) {
    if (row.kind != row_kind::kCanary) continue;
    ++stats.total;
    if (!row.reward.has_value()) ++stats.failed_verdicts;
    if (row.canary_pass.value_or(false)) ++stats.passed;
  }
  stats.accuracy = stats.total > 0 ? static_cast<double>(stats.passed) / static_cast<double>(stats.total) : kNaN;
  return stats;
}

ConsistencyStats SelfConsistency(const std::vector<RewardLogRow>& rows, double tolerance) {
  std::map<std::pair<std::string, std::string>, const RewardLogRow*> first;
  for (const RewardLogRow& row : rows) {
    if (row.kind == row_kind::kTrain) first.emplace(std::make_pair(row.replica, row.sample_id), &row);
  }
  ConsistencyStats stats;
  std::vector<double> a, b;
  double diff_sum = 0;
  for (const RewardLogRow& row : rows) {
    if (row.kind != row_kind::kConsistency || !row.reward.has_value()) continue;
    const auto original = first.find({row.replica, row.sample_id});
    if (original == first.end() || !original->second->reward.has_value()) continue;
    const double diff = std::abs(*original->second->reward - *row.reward);
    ++stats.pairs;
    if (diff <= tolerance) ++stats.agreeing;
    diff_sum += diff;
    a.push_back(*original->second->reward);
    b.push_back(*row.reward);
  }
  const double n = static_cast<double>(stats.pairs);
  stats.agreement_rate = stats.pairs > 0 ? static_cast<double>(stats.agreeing) / n : kNaN;
  stats.mean_abs_diff = stats.pairs > 0 ? diff_sum / n : kNaN;
  stats.spearman = Spearman(a, b);
  return stats;
}

LengthCorrelation RewardLengthCorrelation(const std::vector<RewardLogRow>& rows, double threshold, int64_t min_samples,
                                          int64_t last) {
  std::vector<double> rewards, lengths;
  for (const RewardLogRow& row : rows) {
    if (row.kind != row_kind::kTrain || !row.reward.has_value()) continue;
    rewards.push_back(*row.reward);
    lengths.push_back(static_cast<double>(row.completion_chars));
  }
  if (last > 0 && static_cast<int64_t>(rewards.size()) > last) {
    const auto drop = static_cast<std::ptrdiff_t>(rewards.size()) - static_cast<std::ptrdiff_t>(last);
    rewards.erase(rewards.begin(), rewards.begin() + drop);
    lengths.erase(lengths.begin(), lengths.begin() + drop);
  }
  LengthCorrelation result;
  result.samples = static_cast<int64_t>(rewards.size());
  result.spearman = Spearman(rewards, lengths);
  result.enough = result.samples >= min_samples && std::isfinite(result.spearman);
  result.warn = result.enough && result.spearman > threshold;
  return result;
}

}  // namespace rlj::logs
