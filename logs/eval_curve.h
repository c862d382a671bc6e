// eval_curve.h: held-out evaluations of a run over its steps (<run>/eval_curve.jsonl, one JSON object a
// line): the starting student ("before"), the policy every eval.every_steps steps ("periodic") and the final
// checkpoint ("after"), each with its accuracy, the mean reward of its greedy answers and what it cost.
// `rlj run` appends; `rlj logs` (curve, summary, compare, report) reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace rlj::logs {

struct EvalPoint {
  std::string kind = "periodic";  // before | periodic | after
  int64_t step = 0;               // the policy version evaluated
  double accuracy = 0;
  double reward = 0;  // mean reward of the greedy answers; NaN when no verdict had one
  int64_t prompts = 0;
  double seconds = 0;   // wall time of this evaluation
  double cost_usd = 0;  // what the eval judge spent on it
  double unix_s = 0;    // when it ended
};

nlohmann::json EvalPointToJson(const EvalPoint& point);

// Appends one line (and syncs it): a crash loses at most the line being written.
absl::Status AppendEvalPoint(const std::string& path, const EvalPoint& point);

// Every point in file order; a line that is not a point (a torn last line) is skipped. A missing file is an
// empty curve.
absl::StatusOr<std::vector<EvalPoint>> ReadEvalCurve(const std::string& path);

// The point with the highest accuracy among the periodic ones (the first of equals); null when none.
const EvalPoint* BestPeriodicPoint(const std::vector<EvalPoint>& curve);

}  // namespace rlj::logs
