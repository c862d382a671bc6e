// rule_backend.cc: exact / numeric / regex / contains checks and the length penalty, turned into verdicts
// with a one-line rationale.
#include "judge/backends/rule_backend.h"

#include <re2/re2.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/answer_match.h"
#include "common/status.h"
#include "common/utf8.h"
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

using Check = v1::RuleJudgeConfig::Check;

const std::string& CheckName(Check check) { return v1::RuleJudgeConfig::Check_Name(check); }

std::string Lower(std::string_view text) { return absl::AsciiStrToLower(AsAbsl(text)); }

}  // namespace

absl::Status RuleBackend::Validate(const v1::RuleJudgeConfig& config, const std::string& section) {
  const RuleBackend backend(config);
  if (backend.config_error_.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(section, ": ", backend.config_error_));
}

absl::StatusOr<std::unique_ptr<RuleBackend>> RuleBackend::Create(const v1::RuleJudgeConfig& config,
                                                                 const JudgeBackendDeps& deps) {
  RLJ_RETURN_IF_ERROR(Validate(config, deps.section.empty() ? "judge.rule" : deps.section));
  return std::make_unique<RuleBackend>(config, deps.label.empty() ? "rule" : deps.label);
}

RuleBackend::RuleBackend(const v1::RuleJudgeConfig& config, std::string label)
    : config_(config), label_(std::move(label)) {
  if (config_.checks().empty()) {
    checks_.push_back(config_.mode());
  } else {
    for (int check : config_.checks()) checks_.push_back(static_cast<Check>(check));
  }
  for (Check check : checks_) {
    if (check == v1::RuleJudgeConfig::regex) {
      if (config_.pattern().empty()) {
        config_error_ = "the regex check needs a pattern";
        return;
      }
      const std::string probe = absl::StrReplaceAll(config_.pattern(), {{"{reference}", "x"}});
      RE2 compiled(probe, RE2::Quiet);
      if (!compiled.ok()) {
        config_error_ = absl::StrCat("pattern does not compile: ", compiled.error());
        return;
      }
    }
  }
  if (config_.length_penalty_per_char() < 0 || config_.length_free_chars() < 0 || config_.length_penalty_max() < 0) {
    config_error_ = "length_penalty_per_char, length_free_chars and length_penalty_max must be >= 0";
  }
}

RuleBackend::~RuleBackend() = default;

std::string RuleBackend::model() const {
  return absl::StrJoin(checks_, "+", [](std::string* out, Check check) { out->append(CheckName(check)); });
}

std::vector<Judgement> RuleBackend::Score(const std::vector<v1::Sample>& samples) {
  std::vector<Judgement> judgements;
  judgements.reserve(samples.size());
  for (const v1::Sample& sample : samples) judgements.push_back(ScoreOne(sample));
  return judgements;
}

double RuleBackend::LengthPenalty(std::string_view completion) const {
  if (config_.length_penalty_per_char() <= 0) return 0;
  const int64_t over = static_cast<int64_t>(Utf8CodePoints(TrimAnswer(completion))) - config_.length_free_chars();
  if (over <= 0) return 0;
  double penalty = static_cast<double>(over) * config_.length_penalty_per_char();
  if (config_.length_penalty_max() > 0) penalty = std::min(penalty, config_.length_penalty_max());
  return penalty;
}

Judgement RuleBackend::ScoreOne(const v1::Sample& sample) const {
  Judgement judgement;
  v1::Verdict& verdict = judgement.verdict;
  verdict.set_sample_id(sample.id());
  if (!config_error_.empty()) {
    SetVerdictError(&verdict, absl::StatusCode::kInvalidArgument, error_kind::kInvalid, config_error_);
    return judgement;
  }
  const std::string_view reference = TrimAnswer(sample.reference());
  const std::string_view completion = sample.completion();
  bool all_pass = true;
  std::vector<std::string> rationales;
  std::map<std::string, double> passes;
  for (Check check : checks_) {
    const bool needs_reference =
        check != v1::RuleJudgeConfig::regex || config_.pattern().find("{reference}") != std::string::npos;
    if (needs_reference && reference.empty()) {
      SetVerdictError(
          &verdict, absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
          absl::StrCat("the sample has no reference answer; the rule check '", CheckName(check), "' needs one"));
      return judgement;
    }
    bool pass = false;
    if (check == v1::RuleJudgeConfig::exact) {
      pass = config_.case_sensitive() ? ExactMatch(completion, reference)
                                      : Lower(TrimAnswer(completion)) == Lower(reference);
      rationales.push_back(absl::StrCat("expected ", Quote(reference), ", got ", Quote(TrimAnswer(completion))));
    } else if (check == v1::RuleJudgeConfig::numeric) {
      const std::optional<double> expected = LastNumber(reference);
      if (!expected) {
        SetVerdictError(&verdict, absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
                        absl::StrCat("reference ", Quote(reference), " has no number; numeric mode needs one"));
        return judgement;
      }
      const std::optional<double> got = LastNumber(completion);
      pass = got.has_value() && NumericMatch(completion, reference, config_.tolerance());
      rationales.push_back(got ? absl::StrCat("expected ", FormatNumber(*expected), ", got ", FormatNumber(*got))
                               : "no number in completion");
    } else if (check == v1::RuleJudgeConfig::regex) {
      const std::string pattern = absl::StrReplaceAll(
          config_.pattern(), {{"{reference}", RE2::QuoteMeta(re2::StringPiece(reference.data(), reference.size()))}});
      RE2 compiled(pattern, RE2::Quiet);
      if (!compiled.ok()) {
        SetVerdictError(&verdict, absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
                        absl::StrCat("pattern does not compile: ", compiled.error()));
        return judgement;
      }
      pass = RE2::PartialMatch(re2::StringPiece(completion.data(), completion.size()), compiled);
      rationales.push_back(absl::StrCat(pass ? "matches " : "does not match ", Quote(pattern)));
    } else {  // contains
      pass = config_.case_sensitive() ? completion.find(reference) != std::string_view::npos
                                      : Lower(completion).find(Lower(reference)) != std::string::npos;
      rationales.push_back(absl::StrCat(pass ? "contains " : "does not contain ", Quote(reference)));
    }
    passes[CheckName(check)] = pass ? 1.0 : 0.0;
    all_pass = all_pass && pass;
  }
  const double penalty = LengthPenalty(completion);
  verdict.set_reward((all_pass ? config_.correct_reward() : config_.wrong_reward()) - penalty);
  auto& components = *verdict.mutable_components();
  components["correct"] = all_pass ? 1.0 : 0.0;
  if (checks_.size() > 1) {
    for (const auto& [check, pass] : passes) components[check] = pass;
  }
  if (config_.length_penalty_per_char() > 0) {
    components["length_penalty"] = -penalty;
    if (penalty > 0) rationales.push_back(absl::StrFormat("length penalty %.4g", penalty));
  }
  verdict.set_rationale(absl::StrJoin(rationales, "; "));
  return judgement;
}

}  // namespace rlj
