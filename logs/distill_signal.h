// distill_signal.h: on-policy distillation's teacher signal as `rlj logs` shows it. A distill-mode verdict
// (judge.openai.mode distill) carries the component `reverse_kl`: the mean over the sample's tokens of
// behaviour − teacher log-probability, a one-sample estimate of KL(student‖teacher). The learner logs the token
// mean over a step's trained tokens as StepMetrics.teacher_reverse_kl, meaningful only when distill_tokens > 0.
// A run without distillation has neither, and every view built from here stays out of its output.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/reward_log.h"
#include "logs/step_series.h"
#include "nlohmann/json.hpp"
#include "rlj/v1/learner.pb.h"

namespace rlj::logs {

// The verdict component holding a sample's reverse KL to the teacher.
inline constexpr char kReverseKlComponent[] = "reverse_kl";

struct ReverseKlSummary {
  int64_t samples = 0;  // scored train rows with a finite reverse_kl; 0 = no distill verdicts in the log
  double mean = NAN;    // over those samples
  double first_step_mean = NAN, last_step_mean = NAN;  // trend: the first and last step with values
};

// The step's mean reverse KL over its scored train rows that have one; NaN for a step without any.
double StepReverseKl(const StepStats& step);

// The run's reverse KL from the reward log rows and their per-step series (ComputeStepSeries of the same rows).
ReverseKlSummary SummarizeReverseKl(const std::vector<RewardLogRow>& rows, const std::vector<StepStats>& series);

// {"samples", "mean", "first_step_mean", "last_step_mean"}, NaN as null.
nlohmann::json ReverseKlToJson(const ReverseKlSummary& summary);

// The lines of `rlj logs summary`'s distillation section.
std::vector<std::pair<std::string, std::string>> ReverseKlLines(const ReverseKlSummary& summary);

// What follows the learner's last step in the summary: ", rkl 0.42" when that step had teacher tokens, else "".
std::string LearnerReverseKlText(const v1::StepMetrics& step);

// The HTML report's reverse KL chart: {"judge": [[step, mean of the verdicts]], "learner": [[step,
// teacher_reverse_kl]]} (learner steps at their policy version, like the report's other learner series); null
// when neither the reward log nor the learner has a value, so the report has no such chart.
nlohmann::json ReverseKlChartData(const std::vector<StepStats>& series, const std::vector<v1::StepMetrics>& steps);

}  // namespace rlj::logs
