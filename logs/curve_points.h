// curve_points.h: what `rlj logs curve --metric M` plots: one point per learner step of the reward log (per
// held-out evaluation for eval_accuracy and eval_reward), with a band where the metric has a spread, and the
// plot's label. Kept apart from the command so the curves can be tested without a terminal.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "logs/run_logs.h"
#include "logs/terminal_text.h"

namespace rlj::logs {

// The metrics `--metric` takes, joined by `separator` ("reward | error_rate | …" for the flag's help).
std::string CurveMetricNames(const std::string& separator);

// The points of `metric` in step order: none when the run has no value of it (reverse_kl without distillation,
// canary_accuracy without canaries). An unknown metric is InvalidArgument naming the known ones.
absl::StatusOr<std::vector<CurvePoint>> CurvePoints(const RunLogs& logs, const std::string& metric);

// The plot's label: what the line and the band of `metric` are.
std::string CurveLabel(const std::string& metric);

}  // namespace rlj::logs
