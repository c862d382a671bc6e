// agreement.h: how far two judges agree on the same samples (`rlj logs rescore`): rank correlation of
// their rewards, mean absolute difference, pass/fail agreement, and each one's accuracy against the
// reference answers where the samples have them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace rlj::logs {

struct ScorePair {
  double original = 0;
  double rescored = 0;
  std::optional<bool> reference_correct;  // the completion matches its reference; empty without a reference
};

struct AgreementStats {
  int64_t pairs = 0;
  double spearman = 0;  // NaN when undefined
  double pearson = 0;
  double mean_abs_diff = 0;
  double decision_agreement = 0;  // both >= threshold or both below
  int64_t with_reference = 0;
  double original_accuracy = 0;  // (reward >= threshold) == reference_correct, over rows with a reference
  double rescored_accuracy = 0;  // NaN without references
};

AgreementStats ComputeAgreement(const std::vector<ScorePair>& pairs, double pass_threshold);

// Whether a completion is right by its reference: the last number matches (1e-6), else the trimmed
// texts are equal. Empty when there is no reference.
std::optional<bool> ReferenceCorrect(std::string_view completion, std::string_view reference);

}  // namespace rlj::logs
