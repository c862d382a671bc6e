// judge_alarms.cc: when each judge alarm fires, and what it says.
#include "logs/judge_alarms.h"

#include <cmath>

#include "absl/strings/str_format.h"

namespace rlj::logs {
namespace {

bool CanaryFires(const CanaryStats& canary) {
  return canary.total >= kCanaryAlarmMinimum && canary.accuracy < kCanaryAlarmBelow;
}

// The "before" point and the latest later one, when the held-out accuracy fell by the alarm's drop or more.
std::optional<std::pair<EvalPoint, EvalPoint>> HeldOutFall(const std::vector<EvalPoint>& curve) {
  const EvalPoint* before = nullptr;
  for (const EvalPoint& point : curve) {
    if (point.kind == "before") before = &point;
  }
  if (before == nullptr || curve.empty()) return std::nullopt;
  const EvalPoint& latest = curve.back();
  if (&latest == before || latest.step <= before->step) return std::nullopt;
  if (latest.accuracy > before->accuracy - kHeldOutAlarmDrop) return std::nullopt;
  return std::make_pair(*before, latest);
}

}  // namespace

std::optional<std::string> CanaryAlarm(const CanaryStats& canary) {
  if (!CanaryFires(canary)) return std::nullopt;
  return absl::StrFormat("canary accuracy %.1f%% (%d of %d): the judge misgrades known answers", 100 * canary.accuracy,
                         canary.passed, canary.total);
}

std::optional<std::string> LengthAlarm(const LengthCorrelation& length, double threshold, const std::string& which) {
  if (!length.warn) return std::nullopt;
  return absl::StrFormat(
      "reward correlates with completion length (Spearman %.2f over the %s %d scored samples > threshold %.2f): "
      "possible reward hacking by verbosity",
      length.spearman, which, length.samples, threshold);
}

std::optional<std::string> HeldOutAlarm(const std::vector<EvalPoint>& curve, double reward_first, double reward_last) {
  const auto fall = HeldOutFall(curve);
  if (!fall) return std::nullopt;
  const auto& [before, latest] = *fall;
  std::string message = absl::StrFormat("held-out accuracy fell from %.1f%% before RL to %.1f%% at step %d",
                                        100 * before.accuracy, 100 * latest.accuracy, latest.step);
  if (std::isfinite(reward_first) && std::isfinite(reward_last) && reward_last > reward_first) {
    return message + absl::StrFormat(
                         " while the judge's mean reward rose from %.3f to %.3f: the student is likely exploiting the "
                         "judge (reward hacking)",
                         reward_first, reward_last);
  }
  if (std::isfinite(reward_first) && std::isfinite(reward_last)) {
    message += absl::StrFormat(" (the judge's mean reward went from %.3f to %.3f)", reward_first, reward_last);
  }
  return message +
         ": the student is getting worse on problems with known answers; the judge may misgrade them or "
         "be exploited";
}

std::string AlarmTags(const CanaryStats& canary, const LengthCorrelation& length, const std::vector<EvalPoint>& curve,
                      double reward_first, double reward_last) {
  std::string tags;
  if (CanaryFires(canary)) tags += absl::StrFormat(" | ALARM canary %.0f%%", 100 * canary.accuracy);
  if (length.warn) tags += absl::StrFormat(" | ALARM reward~length %.2f", length.spearman);
  if (const auto fall = HeldOutFall(curve)) {
    tags += absl::StrFormat(" | ALARM held-out %.3f < %.3f before RL", fall->second.accuracy, fall->first.accuracy);
  }
  return tags;
}

}  // namespace rlj::logs
