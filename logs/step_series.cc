// step_series.cc: per-step aggregation of reward log rows.
#include "logs/step_series.h"

#include <cmath>
#include <limits>

#include "logs/statistics.h"
#include "nlohmann/json.hpp"

namespace rlj::logs {

std::map<std::string, double> ParseComponents(const std::string& components_json) {
  std::map<std::string, double> components;
  if (components_json.empty()) return components;
  const nlohmann::json parsed = nlohmann::json::parse(components_json, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return components;
  for (const auto& [name, value] : parsed.items()) {
    if (value.is_number()) components[name] = value.get<double>();
  }
  return components;
}

std::vector<StepStats> ComputeStepSeries(const std::vector<RewardLogRow>& rows) {
  struct Accumulator {
    StepStats stats;
    std::vector<double> rewards, latencies, chars;
    std::map<std::string, std::vector<double>> components;
    bool seen = false;
  };
  std::map<int64_t, Accumulator> by_step;
  for (const RewardLogRow& row : rows) {
    Accumulator& a = by_step[row.policy_version];
    StepStats& s = a.stats;
    if (!a.seen) {
      s.step = row.policy_version;
      s.first_time_unix_s = row.time_unix_s;
      a.seen = true;
    }
    s.first_time_unix_s = std::min(s.first_time_unix_s, row.time_unix_s);
    s.last_time_unix_s = std::max(s.last_time_unix_s, row.time_unix_s);
    a.latencies.push_back(row.latency_ms);
    s.cost_usd += row.cost_usd;
    s.tokens_in += row.tokens_in;
    s.tokens_out += row.tokens_out;
    if (row.kind == row_kind::kCanary) {
      ++s.canaries;
      if (row.canary_pass.value_or(false)) ++s.canaries_passed;
      continue;
    }
    if (row.kind != row_kind::kTrain) continue;
    ++s.samples;
    if (row.cache_hit) ++s.cache_hits;
    if (!row.reward.has_value()) {
      ++s.errors;
      continue;
    }
    ++s.scored;
    a.rewards.push_back(*row.reward);
    a.chars.push_back(static_cast<double>(row.completion_chars));
    for (const auto& [name, value] : ParseComponents(row.components_json)) a.components[name].push_back(value);
  }
  std::vector<StepStats> series;
  series.reserve(by_step.size());
  for (auto& [step, a] : by_step) {
    StepStats& s = a.stats;
    s.reward_mean = Mean(a.rewards);
    s.reward_std = StdDev(a.rewards);
    s.reward_min = Quantile(a.rewards, 0);
    s.reward_p10 = Quantile(a.rewards, 0.1);
    s.reward_p50 = Quantile(a.rewards, 0.5);
    s.reward_p90 = Quantile(a.rewards, 0.9);
    s.reward_max = Quantile(a.rewards, 1);
    s.completion_chars_mean = Mean(a.chars);
    for (const auto& [name, values] : a.components) s.component_means[name] = Mean(values);
    s.latency_ms_mean = Mean(a.latencies);
    s.latency_ms_p95 = Quantile(a.latencies, 0.95);
    s.error_rate = s.samples > 0 ? static_cast<double>(s.errors) / static_cast<double>(s.samples) : 0;
    s.cache_hit_rate = s.samples > 0 ? static_cast<double>(s.cache_hits) / static_cast<double>(s.samples) : 0;
    s.canary_accuracy = s.canaries > 0 ? static_cast<double>(s.canaries_passed) / static_cast<double>(s.canaries)
                                       : std::numeric_limits<double>::quiet_NaN();
    series.push_back(std::move(s));
  }
  return series;
}

}  // namespace rlj::logs
