// rescore.h: `rlj logs rescore`: the logged samples scored again, offline, by another judge backend (built
// in-process from a judge config), and how far the two judges agree.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/reward_log.h"
#include "judge/judge_backend.h"
#include "logs/agreement.h"

namespace rlj {

struct RescoreOptions {
  size_t batch_size = 32;       // samples per backend call
  size_t limit = 0;             // 0 = every train row with a reward
  double pass_threshold = 0.5;  // reward >= this counts as "pass" for decision agreement and accuracy
  std::function<void(size_t done, size_t total)> progress;  // after each batch
};

struct RescoredRow {
  const RewardLogRow* row = nullptr;
  std::optional<double> reward;  // empty when the new judge failed on it
  std::string error;             // kind: message
};

struct RescoreResult {
  std::vector<RescoredRow> rows;
  int64_t failed = 0;  // rows the new judge could not score
  logs::AgreementStats agreement;
};

// Scores every train row of `rows` that has a reward (the first `limit`), with the cache bypassed.
absl::StatusOr<RescoreResult> Rescore(const std::vector<RewardLogRow>& rows, JudgeBackend& backend,
                                      const RescoreOptions& options);

}  // namespace rlj
