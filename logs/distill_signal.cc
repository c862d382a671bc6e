// distill_signal.cc: the reverse KL to the teacher summarised from the reward log and the learner's metrics.
#include "logs/distill_signal.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "logs/statistics.h"
#include "logs/summary.h"
#include "logs/terminal_text.h"

namespace rlj::logs {

double StepReverseKl(const StepStats& step) {
  const auto it = step.component_means.find(kReverseKlComponent);
  return it == step.component_means.end() ? NAN : it->second;
}

ReverseKlSummary SummarizeReverseKl(const std::vector<RewardLogRow>& rows, const std::vector<StepStats>& series) {
  ReverseKlSummary summary;
  std::vector<double> values;
  const std::string quoted = absl::StrCat("\"", kReverseKlComponent, "\"");
  for (const RewardLogRow& row : rows) {
    // The same rows as the per-step component means: scored train rows. The substring test spares parsing the
    // components of every row of a run without distillation.
    if (row.kind != row_kind::kTrain || !row.reward.has_value()) continue;
    if (!absl::StrContains(row.components_json, quoted)) continue;
    const auto components = ParseComponents(row.components_json);
    const auto it = components.find(kReverseKlComponent);
    if (it != components.end() && std::isfinite(it->second)) values.push_back(it->second);
  }
  summary.samples = static_cast<int64_t>(values.size());
  summary.mean = Mean(values);
  for (const StepStats& step : series) {
    const double value = StepReverseKl(step);
    if (!std::isfinite(value)) continue;
    if (std::isnan(summary.first_step_mean)) summary.first_step_mean = value;
    summary.last_step_mean = value;
  }
  return summary;
}

nlohmann::json ReverseKlToJson(const ReverseKlSummary& summary) {
  return {{"samples", summary.samples},
          {"mean", JsonNumber(summary.mean)},
          {"first_step_mean", JsonNumber(summary.first_step_mean)},
          {"last_step_mean", JsonNumber(summary.last_step_mean)}};
}

std::vector<std::pair<std::string, std::string>> ReverseKlLines(const ReverseKlSummary& summary) {
  return {
      {"reverse KL to teacher", absl::StrCat(FormatNumber(summary.mean), " (mean of ", summary.samples, " samples)")},
      {"reverse KL first → last step",
       absl::StrCat(FormatNumber(summary.first_step_mean), " → ", FormatNumber(summary.last_step_mean))}};
}

std::string LearnerReverseKlText(const v1::StepMetrics& step) {
  if (step.distill_tokens() <= 0) return "";
  return absl::StrCat(", rkl ", FormatNumber(step.teacher_reverse_kl()));
}

nlohmann::json ReverseKlChartData(const std::vector<StepStats>& series, const std::vector<v1::StepMetrics>& steps) {
  nlohmann::json judge = nlohmann::json::array();
  for (const StepStats& step : series) {
    if (const double value = StepReverseKl(step); std::isfinite(value)) judge.push_back({step.step, value});
  }
  nlohmann::json learner = nlohmann::json::array();
  for (const v1::StepMetrics& m : steps) {
    // Without teacher tokens the field is 0 by default, not a measured agreement with the teacher.
    if (m.distill_tokens() <= 0 || !std::isfinite(m.teacher_reverse_kl())) continue;
    learner.push_back({m.version() > 0 ? m.version() : m.step(), m.teacher_reverse_kl()});
  }
  if (judge.empty() && learner.empty()) return nullptr;
  return {{"judge", judge}, {"learner", learner}};
}

}  // namespace rlj::logs
