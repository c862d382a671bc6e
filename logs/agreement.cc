// agreement.cc: agreement statistics between an original and a re-scoring judge.
#include "logs/agreement.h"

#include <cmath>
#include <limits>

#include "common/answer_match.h"
#include "logs/statistics.h"

namespace rlj::logs {

AgreementStats ComputeAgreement(const std::vector<ScorePair>& pairs, double pass_threshold) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  AgreementStats stats;
  stats.pairs = static_cast<int64_t>(pairs.size());
  std::vector<double> a, b;
  double diff = 0;
  int64_t same_decision = 0, original_right = 0, rescored_right = 0;
  for (const ScorePair& pair : pairs) {
    a.push_back(pair.original);
    b.push_back(pair.rescored);
    diff += std::abs(pair.original - pair.rescored);
    const bool original_pass = pair.original >= pass_threshold;
    const bool rescored_pass = pair.rescored >= pass_threshold;
    if (original_pass == rescored_pass) ++same_decision;
    if (pair.reference_correct.has_value()) {
      ++stats.with_reference;
      if (original_pass == *pair.reference_correct) ++original_right;
      if (rescored_pass == *pair.reference_correct) ++rescored_right;
    }
  }
  const double n = static_cast<double>(stats.pairs);
  stats.spearman = Spearman(a, b);
  stats.pearson = Pearson(a, b);
  stats.mean_abs_diff = stats.pairs > 0 ? diff / n : kNaN;
  stats.decision_agreement = stats.pairs > 0 ? static_cast<double>(same_decision) / n : kNaN;
  const double r = static_cast<double>(stats.with_reference);
  stats.original_accuracy = stats.with_reference > 0 ? static_cast<double>(original_right) / r : kNaN;
  stats.rescored_accuracy = stats.with_reference > 0 ? static_cast<double>(rescored_right) / r : kNaN;
  return stats;
}

std::optional<bool> ReferenceCorrect(std::string_view completion, std::string_view reference) {
  if (TrimAnswer(reference).empty()) return std::nullopt;
  if (LastNumber(reference).has_value()) return NumericMatch(completion, reference, 1e-6);
  return ExactMatch(completion, reference);
}

}  // namespace rlj::logs
