// quality_signals.h: judge quality read back from the reward log: canary accuracy, self-consistency of
// samples scored twice, and the correlation of reward with completion length (reward hacking by verbosity).
#pragma once

#include <cstdint>
#include <vector>

#include "common/reward_log.h"

namespace rlj::logs {

struct CanaryStats {
  int64_t total = 0;
  int64_t passed = 0;
  int64_t failed_verdicts = 0;  // canaries whose verdict was an error (counted as not passed)
  double accuracy = 0;          // passed / total; NaN without canaries
};
CanaryStats CanaryAccuracy(const std::vector<RewardLogRow>& rows);

struct ConsistencyStats {
  int64_t pairs = 0;          // train rows with a successful second scoring (both rewards present)
  int64_t agreeing = 0;       // |r1 - r2| <= tolerance
  double agreement_rate = 0;  // NaN without pairs
  double mean_abs_diff = 0;
  double spearman = 0;  // over the pairs; NaN when undefined (fewer than 2, or constant)
};
// Pairs each consistency row with the train row of the same replica and sample_id.
ConsistencyStats SelfConsistency(const std::vector<RewardLogRow>& rows, double tolerance);

struct LengthCorrelation {
  int64_t samples = 0;  // scored train rows considered
  double spearman = 0;  // Spearman(reward, completion length in characters); NaN when undefined
  bool enough = false;  // samples >= min_samples and the correlation is defined
  bool warn = false;    // enough and spearman > threshold
};
// Over the scored train rows; `last` > 0 keeps only the most recent that many.
LengthCorrelation RewardLengthCorrelation(const std::vector<RewardLogRow>& rows, double threshold, int64_t min_samples,
                                          int64_t last = 0);

}  // namespace rlj::logs
