// curve_points.cc: each metric of `rlj logs curve` as a rule from a step's statistics (or a held-out point) to a
// plot point.
#include "logs/curve_points.h"

#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "logs/distill_signal.h"
#include "logs/step_series.h"

namespace rlj::logs {
namespace {

constexpr double kNoBand = NAN;

// A step's point of one metric; none where the step has no value (a step without scored rows has no reward).
using StepPoint = std::optional<CurvePoint> (*)(const StepStats& s);

struct StepMetric {
  const char* name;
  StepPoint point;
};

double X(const StepStats& s) { return static_cast<double>(s.step); }

const StepMetric kStepMetrics[] = {
    {"reward",
     [](const StepStats& s) -> std::optional<CurvePoint> {
       if (s.scored == 0) return std::nullopt;
       return CurvePoint{X(s), s.reward_mean, s.reward_p10, s.reward_p90};
     }},
    {"error_rate",
     [](const StepStats& s) -> std::optional<CurvePoint> {
       return CurvePoint{X(s), s.error_rate, kNoBand, kNoBand};
     }},
    {"latency",
     [](const StepStats& s) -> std::optional<CurvePoint> {
       return CurvePoint{X(s), s.latency_ms_mean, kNoBand, s.latency_ms_p95};
     }},
    {"cost",
     [](const StepStats& s) -> std::optional<CurvePoint> {
       return CurvePoint{X(s), s.cost_usd, kNoBand, kNoBand};
     }},
    {"cache_hit_rate",
     [](const StepStats& s) -> std::optional<CurvePoint> {
       return CurvePoint{X(s), s.cache_hit_rate, kNoBand, kNoBand};
     }},
    {"length",
     [](const StepStats& s) -> std::optional<CurvePoint> {
       if (s.scored == 0) return std::nullopt;
       return CurvePoint{X(s), s.completion_chars_mean, kNoBand, kNoBand};
     }},
    {"canary_accuracy",
     [](const StepStats& s) -> std::optional<CurvePoint> {
       if (s.canaries == 0) return std::nullopt;
       return CurvePoint{X(s), s.canary_accuracy, kNoBand, kNoBand};
     }},
    // Distill verdicts only: a step whose rows carry no reverse_kl component has no point.
    {"reverse_kl",
     [](const StepStats& s) -> std::optional<CurvePoint> {
       const double value = StepReverseKl(s);
       if (!std::isfinite(value)) return std::nullopt;
       return CurvePoint{X(s), value, kNoBand, kNoBand};
     }},
};

// Held-out evaluations come from eval_curve.jsonl, not from reward log rows.
constexpr const char* kEvalMetrics[] = {"eval_accuracy", "eval_reward"};

bool IsEvalMetric(const std::string& metric) { return metric == kEvalMetrics[0] || metric == kEvalMetrics[1]; }

std::vector<CurvePoint> EvalPoints(const std::vector<EvalPoint>& curve, const std::string& metric) {
  std::vector<CurvePoint> points;
  for (const EvalPoint& p : curve) {
    const double y = metric == "eval_accuracy" ? p.accuracy : p.reward;
    if (std::isfinite(y)) points.push_back({static_cast<double>(p.step), y, kNoBand, kNoBand});
  }
  return points;
}

// A band needs both ends: a metric with only an upper one (latency's p95) reaches down to the line.
void CloseBands(std::vector<CurvePoint>* points) {
  for (CurvePoint& p : *points) {
    if (std::isnan(p.low) == std::isnan(p.high)) continue;
    if (std::isnan(p.low)) p.low = p.y;
    if (std::isnan(p.high)) p.high = p.y;
  }
}

}  // namespace

std::string CurveMetricNames(const std::string& separator) {
  std::string names;
  for (const StepMetric& metric : kStepMetrics) absl::StrAppend(&names, names.empty() ? "" : separator, metric.name);
  for (const char* metric : kEvalMetrics) absl::StrAppend(&names, separator, metric);
  return names;
}

absl::StatusOr<std::vector<CurvePoint>> CurvePoints(const RunLogs& logs, const std::string& metric) {
  std::vector<CurvePoint> points;
  if (IsEvalMetric(metric)) {
    points = EvalPoints(logs.eval_curve, metric);
  } else {
    const StepMetric* chosen = nullptr;
    for (const StepMetric& m : kStepMetrics) {
      if (metric == m.name) chosen = &m;
    }
    if (chosen == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown --metric '", metric, "' (", CurveMetricNames(", "), ")"));
    }
    for (const StepStats& s : ComputeStepSeries(logs.rows)) {
      if (std::optional<CurvePoint> point = chosen->point(s)) points.push_back(*point);
    }
  }
  CloseBands(&points);
  return points;
}

std::string CurveLabel(const std::string& metric) {
  if (metric == "reward") return "reward: mean '*', p10..p90 ':'";
  if (metric == "latency") return "judge latency ms: mean '*', up to p95 ':'";
  if (metric == "reverse_kl") return "reverse KL to the teacher (mean of the step's samples)";
  return metric;
}

}  // namespace rlj::logs
