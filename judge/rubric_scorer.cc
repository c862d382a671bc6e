// rubric_scorer.cc: rubric questions and the reading of scores into verdicts.
#include "judge/rubric_scorer.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "judge/rubric_template.h"

namespace rlj {

absl::StatusOr<RubricScorer> RubricScorer::Create(const std::string& section, std::string rubric,
                                                  std::string system_prompt, const std::string& score_key,
                                                  const std::string& score_pattern, ScoreScale scale) {
  if (rubric.empty()) return absl::InvalidArgumentError(absl::StrCat(section, ".rubric is required"));
  if (!(scale.score_max > scale.score_min)) {
    return absl::InvalidArgumentError(absl::StrCat(section, ".score_max must be > ", section, ".score_min"));
  }
  auto parser = ScoreParser::Create(score_key, score_pattern);
  if (!parser.ok()) return Annotate(parser.status(), section);
  return RubricScorer(std::move(rubric), std::move(system_prompt), std::move(parser).value(), scale);
}

RubricScorer::RubricScorer(std::string rubric, std::string system_prompt, ScoreParser parser, ScoreScale scale)
    : rubric_(std::move(rubric)), system_prompt_(std::move(system_prompt)), parser_(std::move(parser)), scale_(scale) {
  identity_ = absl::StrCat("rubric|", parser_.Describe(), "|", scale_.score_min, "|", scale_.score_max);
}

ChatQuestion RubricScorer::Question(const v1::Sample& sample) const {
  return ChatQuestion{system_prompt_, RenderRubric(rubric_, {sample.prompt(), sample.completion(), sample.reference()}),
                      BypassesCache(sample)};
}

std::string RubricScorer::Identity() const { return identity_; }

bool RubricScorer::Read(const ChatAnswer& answer, Judgement* judgement) const {
  v1::Verdict& verdict = judgement->verdict;
  verdict.set_tokens_in(answer.tokens_in);
  verdict.set_tokens_out(answer.tokens_out);
  verdict.set_cost_usd(answer.cost_usd);
  verdict.set_cache_hit(answer.cache_hit);
  verdict.set_latency_ms(answer.latency_ms);
  judgement->raw_response = answer.raw;
  if (!answer.ok) {
    if (answer.kind == "refusal") verdict.set_rationale(TruncateUtf8(answer.raw, kMaxRationaleBytes));
    SetVerdictError(&verdict, answer.code, answer.kind, answer.message);
    return false;
  }
  const ParsedScore parsed = parser_.Parse(answer.content);
  verdict.set_rationale(parsed.rationale);
  if (!parsed.score) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    absl::StrCat("no score in the teacher's answer (looked for ", parser_.Describe(), ")"));
    return false;
  }
  absl::StatusOr<double> reward = ScaleScore(*parsed.score, scale_);
  if (!reward.ok()) {
    SetVerdictError(&verdict, absl::StatusCode::kOutOfRange, error_kind::kOutOfRange,
                    std::string(reward.status().message()));
    return false;
  }
  verdict.set_reward(*reward);
  (*verdict.mutable_components())["score"] = *parsed.score;
  return true;
}

}  // namespace rlj
