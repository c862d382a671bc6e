// compare.cc: figures of two runs side by side, and their per-step reward.
#include "logs/compare.h"

#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "logs/terminal_text.h"

namespace rlj::logs {

namespace {

// The accuracy of a run's last held-out evaluation (after RL, else the latest periodic one); NaN without any.
double LastAccuracy(const std::vector<EvalPoint>& curve) {
  return curve.empty() ? std::nan("") : curve.back().accuracy;
}

// Held-out accuracy by step of both runs (a step either has), NaN where one has none.
std::map<int64_t, std::pair<double, double>> EvalBySteps(const RunSummary& a, const RunSummary& b) {
  std::map<int64_t, std::pair<double, double>> steps;
  for (const EvalPoint& p : a.eval_curve)
    steps.try_emplace(p.step, std::nan(""), std::nan("")).first->second.first = p.accuracy;
  for (const EvalPoint& p : b.eval_curve)
    steps.try_emplace(p.step, std::nan(""), std::nan("")).first->second.second = p.accuracy;
  return steps;
}

}  // namespace

std::vector<ComparedFigure> CompareFigures(const RunSummary& a, const RunSummary& b) {
  const auto figure = [](const std::string& name, double x, double y) { return ComparedFigure{name, x, y}; };
  const auto count = [](int64_t n) { return static_cast<double>(n); };
  return {
      figure("verdicts (train rows)", count(a.train_rows), count(b.train_rows)),
      figure("steps with rewards", count(a.steps_with_rows), count(b.steps_with_rows)),
      figure("reward mean", a.reward_mean, b.reward_mean),
      figure("reward std", a.reward_std, b.reward_std),
      figure("reward first step", a.reward_first_step_mean, b.reward_first_step_mean),
      figure("reward last step", a.reward_last_step_mean, b.reward_last_step_mean),
      figure("error rate", a.error_rate, b.error_rate),
      figure("latency p50 ms", a.latency_ms_p50, b.latency_ms_p50),
      figure("latency p95 ms", a.latency_ms_p95, b.latency_ms_p95),
      figure("cost usd", a.cost_usd, b.cost_usd),
      figure("cache hit rate", a.cache_hit_rate, b.cache_hit_rate),
      figure("completion chars", a.completion_chars_mean, b.completion_chars_mean),
      figure("canary accuracy", a.canary.accuracy, b.canary.accuracy),
      figure("self-consistency", a.consistency.agreement_rate, b.consistency.agreement_rate),
      figure("reward~length spearman", a.length_all.spearman, b.length_all.spearman),
      figure("learner steps", count(a.learner_steps), count(b.learner_steps)),
      figure("held-out accuracy (last)", LastAccuracy(a.eval_curve), LastAccuracy(b.eval_curve)),
      figure("held-out accuracy (best)", a.eval_best ? a.eval_best->accuracy : std::nan(""),
             b.eval_best ? b.eval_best->accuracy : std::nan("")),
  };
}

nlohmann::json ComparisonToJson(const RunForComparison& a, const RunForComparison& b) {
  nlohmann::json figures = nlohmann::json::array();
  for (const ComparedFigure& f : CompareFigures(a.summary, b.summary)) {
    figures.push_back(
        {{"name", f.name}, {"a", JsonNumber(f.a)}, {"b", JsonNumber(f.b)}, {"delta", JsonNumber(f.delta())}});
  }
  std::map<int64_t, std::pair<double, double>> steps;
  for (const StepStats& s : a.series) steps[s.step].first = s.reward_mean;
  for (const StepStats& s : b.series) steps[s.step].second = s.reward_mean;
  nlohmann::json per_step = nlohmann::json::array();
  std::map<int64_t, bool> in_a, in_b;
  for (const StepStats& s : a.series) in_a[s.step] = true;
  for (const StepStats& s : b.series) in_b[s.step] = true;
  for (const auto& [step, rewards] : steps) {
    per_step.push_back({{"step", step},
                        {"a", in_a.count(step) ? JsonNumber(rewards.first) : nlohmann::json()},
                        {"b", in_b.count(step) ? JsonNumber(rewards.second) : nlohmann::json()}});
  }
  nlohmann::json eval_per_step = nlohmann::json::array();
  for (const auto& [step, accuracy] : EvalBySteps(a.summary, b.summary)) {
    eval_per_step.push_back({{"step", step}, {"a", JsonNumber(accuracy.first)}, {"b", JsonNumber(accuracy.second)}});
  }
  return {{"a", a.name},
          {"b", b.name},
          {"figures", figures},
          {"reward_per_step", per_step},
          {"held_out_accuracy_per_step", eval_per_step}};
}

std::string FormatComparison(const RunForComparison& a, const RunForComparison& b, int width, int max_step_rows) {
  TextTable figures;
  figures.AddColumn("figure");
  figures.AddColumn("A", true);
  figures.AddColumn("B", true);
  figures.AddColumn("B - A", true);
  for (const ComparedFigure& f : CompareFigures(a.summary, b.summary)) {
    figures.AddRow({f.name, FormatNumber(f.a), FormatNumber(f.b), FormatNumber(f.delta())});
  }
  std::string out = absl::StrCat("A: ", a.name, "\nB: ", b.name, "\n\n", figures.Render(width));
  if (const auto eval = EvalBySteps(a.summary, b.summary); !eval.empty()) {
    TextTable held_out;
    held_out.AddColumn("step", true);
    held_out.AddColumn("held-out A", true);
    held_out.AddColumn("held-out B", true);
    for (const auto& [step, accuracy] : eval) {
      held_out.AddRow({absl::StrCat(step), FormatNumber(accuracy.first), FormatNumber(accuracy.second)});
    }
    out += "\n" + held_out.Render(width);
  }

  std::map<int64_t, const StepStats*> by_step_a, by_step_b;
  for (const StepStats& s : a.series) by_step_a[s.step] = &s;
  for (const StepStats& s : b.series) by_step_b[s.step] = &s;
  std::vector<int64_t> common;
  for (const auto& [step, stats] : by_step_a) {
    if (by_step_b.count(step) > 0) common.push_back(step);
  }
  if (common.empty()) return out + "\n(no step in common)\n";
  TextTable steps;
  steps.AddColumn("step", true);
  steps.AddColumn("reward A", true);
  steps.AddColumn("reward B", true);
  steps.AddColumn("B - A", true);
  const size_t rows = std::min(common.size(), static_cast<size_t>(std::max(2, max_step_rows)));
  for (size_t i = 0; i < rows; ++i) {
    const size_t index = rows == 1 ? 0 : i * (common.size() - 1) / (rows - 1);
    const int64_t step = common[index];
    const double ra = by_step_a[step]->reward_mean, rb = by_step_b[step]->reward_mean;
    steps.AddRow({absl::StrCat(step), FormatNumber(ra), FormatNumber(rb), FormatNumber(rb - ra)});
  }
  return out + "\n" + steps.Render(width);
}

}  // namespace rlj::logs
