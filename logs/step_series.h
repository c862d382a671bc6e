// step_series.h: the reward log folded per learner step (a row's step is the policy version that sampled it):
// reward spread, components, judge latency, cost, errors, cache hits and canary accuracy of each step. The
// curves of `rlj logs curve`, the HTML report and `compare` are drawn from this.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/reward_log.h"

namespace rlj::logs {

struct StepStats {
  int64_t step = 0;
  int64_t samples = 0;  // train rows, failed ones included
  int64_t scored = 0;   // train rows with a reward
  int64_t errors = 0;   // train rows whose verdict failed
  // Over the scored train rows (NaN when there are none).
  double reward_mean = 0, reward_std = 0, reward_min = 0, reward_p10 = 0, reward_p50 = 0, reward_p90 = 0,
         reward_max = 0;
  std::map<std::string, double> component_means;  // over the scored train rows that have the component
  double completion_chars_mean = 0;
  // The judge's work for this step: every row (canaries and re-scorings cost too).
  double latency_ms_mean = 0, latency_ms_p95 = 0;
  double cost_usd = 0;
  int64_t tokens_in = 0, tokens_out = 0;
  int64_t cache_hits = 0;     // train rows answered from the cache
  double error_rate = 0;      // errors / samples
  double cache_hit_rate = 0;  // cache_hits / samples
  int64_t canaries = 0, canaries_passed = 0;
  double canary_accuracy = 0;  // NaN without canaries
  double first_time_unix_s = 0, last_time_unix_s = 0;
};

// One entry per step that has rows, in step order.
std::vector<StepStats> ComputeStepSeries(const std::vector<RewardLogRow>& rows);

// The components of a row ({"name": value}); an unparsable or empty field gives none.
std::map<std::string, double> ParseComponents(const std::string& components_json);

}  // namespace rlj::logs
