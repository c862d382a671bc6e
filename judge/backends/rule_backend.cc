// rule_backend.cc: exact / numeric answer checks turned into verdicts with a one-line rationale.
#include "judge/backends/rule_backend.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/answer_match.h"
#include "common/status.h"
#include "judge/score_parser.h"

namespace rlj {
namespace {

// Completions quoted in rationales are cut to this many bytes.
constexpr size_t kMaxQuotedBytes = 200;

std::string Quote(std::string_view text) {
  std::string quoted = TruncateUtf8(text, kMaxQuotedBytes);
  return absl::StrCat("\"", quoted, quoted.size() < text.size() ? "…" : "", "\"");
}

// 46 → "46", 3.5 → "3.5", 1234567 → "1234567" (absl::StrCat would print 1.23457e+06).
std::string FormatNumber(double value) { return absl::StrFormat("%.15g", value); }

}  // namespace

RuleBackend::RuleBackend(const v1::RuleJudgeConfig& config) : config_(config) {}

std::vector<Judgement> RuleBackend::Score(const std::vector<v1::Sample>& samples) {
  std::vector<Judgement> judgements;
  judgements.reserve(samples.size());
  for (const v1::Sample& sample : samples) judgements.push_back(ScoreOne(sample));
  return judgements;
}

Judgement RuleBackend::ScoreOne(const v1::Sample& sample) const {
  Judgement judgement;
  v1::Verdict& verdict = judgement.verdict;
  verdict.set_sample_id(sample.id());
  const std::string_view reference = TrimAnswer(sample.reference());
  const std::string_view completion = sample.completion();
  if (reference.empty()) {
    SetVerdictError(&verdict, absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
                    "the sample has no reference answer; the rule judge needs one");
    return judgement;
  }
  bool correct = false;
  if (config_.mode() == "exact") {
    correct = ExactMatch(completion, reference);
    verdict.set_rationale(absl::StrCat("expected ", Quote(reference), ", got ", Quote(TrimAnswer(completion))));
  } else if (config_.mode() == "numeric") {
    const std::optional<double> expected = LastNumber(reference);
    if (!expected) {
      SetVerdictError(&verdict, absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
                      absl::StrCat("reference ", Quote(reference), " has no number; numeric mode needs one"));
      return judgement;
    }
    const std::optional<double> got = LastNumber(completion);
    correct = got.has_value() && NumericMatch(completion, reference, config_.tolerance());
    verdict.set_rationale(got ? absl::StrCat("expected ", FormatNumber(*expected), ", got ", FormatNumber(*got)) : "no number in completion");
  } else {
    SetVerdictError(&verdict, absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
                    absl::StrCat("unknown rule mode '", config_.mode(), "' (exact | numeric)"));
    return judgement;
  }
  verdict.set_reward(correct ? config_.correct_reward() : config_.wrong_reward());
  (*verdict.mutable_components())["correct"] = correct ? 1.0 : 0.0;
  return judgement;
}

}  // namespace rlj
