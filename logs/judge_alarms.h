// judge_alarms.h: the alarms that say a judge misgrades or is being gamed, one set of rules for `rlj run` (its
// progress line, its final report and summary.json) and `rlj logs summary`: canaries graded wrong, the reward
// rising with completion length, and held-out accuracy falling below where it started (with the judge's reward
// rising: the student exploits the judge; flat: it drifts to answers the judge likes no less).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "logs/eval_curve.h"
#include "logs/quality_signals.h"

namespace rlj::logs {

inline constexpr double kCanaryAlarmBelow = 0.8;    // canary accuracy under this: the judge misgrades known answers
inline constexpr int64_t kCanaryAlarmMinimum = 20;  // fewer canaries scored: no verdict yet
inline constexpr double kHeldOutAlarmDrop = 0.1;    // held-out this far below its start while the reward rises

// Each returns the alarm's message, or nothing when it does not fire.
std::optional<std::string> CanaryAlarm(const CanaryStats& canary);
// `which`: "all" or "last" (the window `length` covers).
std::optional<std::string> LengthAlarm(const LengthCorrelation& length, double threshold, const std::string& which);
// `curve`: the held-out points so far in order (the "before" point first); `reward_first`, `reward_last`: the
// judge's mean reward at the start of training and now (NaN when unknown), which say why it fell.
std::optional<std::string> HeldOutAlarm(const std::vector<EvalPoint>& curve, double reward_first, double reward_last);

// The short form of the alarms for a progress line: " | ALARM canary 30% | ALARM held-out 0.000 < 0.558"; "" when
// none fires.
std::string AlarmTags(const CanaryStats& canary, const LengthCorrelation& length, const std::vector<EvalPoint>& curve,
                      double reward_first, double reward_last);

}  // namespace rlj::logs
