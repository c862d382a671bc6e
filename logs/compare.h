// compare.h: two runs side by side (`rlj logs compare RUN_A RUN_B`): the summary figures with their
// differences, the held-out accuracy curves of both, and the reward per step of both where their steps overlap.
#pragma once

#include <string>
#include <vector>

#include "logs/step_series.h"
#include "logs/summary.h"
#include "nlohmann/json.hpp"

namespace rlj::logs {

struct RunForComparison {
  std::string name;  // how it is labelled (the path given)
  RunSummary summary;
  std::vector<StepStats> series;
};

struct ComparedFigure {
  std::string name;
  double a = 0, b = 0;  // NaN when a run has none
  double delta() const { return b - a; }
};

// The figures compared, in print order.
std::vector<ComparedFigure> CompareFigures(const RunSummary& a, const RunSummary& b);

nlohmann::json ComparisonToJson(const RunForComparison& a, const RunForComparison& b);

// A table of figures, then the reward per step of both runs (at most `max_step_rows` steps, evenly
// spaced over the steps both have).
std::string FormatComparison(const RunForComparison& a, const RunForComparison& b, int width, int max_step_rows = 20);

}  // namespace rlj::logs
