// failover_backend.cc: re-scoring unreachable samples on the secondary backend.
#include "judge/backends/failover_backend.h"

#include "absl/strings/str_cat.h"

namespace rlj {

FailoverBackend::FailoverBackend(std::unique_ptr<JudgeBackend> primary, std::unique_ptr<JudgeBackend> secondary)
    : primary_(std::move(primary)), secondary_(std::move(secondary)) {}

std::vector<Judgement> FailoverBackend::Score(const std::vector<v1::Sample>& samples) {
  std::vector<Judgement> judgements = primary_->Score(samples);
  std::vector<size_t> retry;
  for (size_t i = 0; i < judgements.size(); ++i) {
    const v1::Verdict& verdict = judgements[i].verdict;
    if (verdict.has_error() && error_kind::IsAvailabilityError(verdict.error())) retry.push_back(i);
  }
  if (retry.empty() || judgements.size() != samples.size()) return judgements;
  std::vector<v1::Sample> again;
  again.reserve(retry.size());
  for (size_t i : retry) again.push_back(samples[i]);
  std::vector<Judgement> second = secondary_->Score(again);
  if (second.size() != again.size()) return judgements;
  failed_over_ += static_cast<int64_t>(retry.size());
  for (size_t k = 0; k < retry.size(); ++k) {
    Judgement& judgement = judgements[retry[k]];
    const std::string primary_error = judgement.verdict.error().message();
    Judgement& replacement = second[k];
    v1::Verdict& verdict = replacement.verdict;
    if (verdict.backend().empty()) verdict.set_backend(secondary_->name());
    if (verdict.model().empty()) verdict.set_model(secondary_->model());
    // What the primary spent on the sample still counts.
    verdict.set_tokens_in(verdict.tokens_in() + judgement.verdict.tokens_in());
    verdict.set_tokens_out(verdict.tokens_out() + judgement.verdict.tokens_out());
    verdict.set_cost_usd(verdict.cost_usd() + judgement.verdict.cost_usd());
    if (verdict.has_error()) {
      verdict.mutable_error()->set_message(absl::StrCat("failover ", secondary_->name(), ": ",
                                                        verdict.error().message(), "; primary ", primary_->name(), ": ",
                                                        primary_error));
    } else {
      (*verdict.mutable_components())["failover"] = 1;
      verdict.set_rationale(
          absl::StrCat("[failover from ", primary_->name(), ": ", primary_error, "] ", verdict.rationale()));
    }
    judgement = std::move(replacement);
  }
  return judgements;
}

void FailoverBackend::CollectStatus(v1::JudgeStatus* status) const {
  primary_->CollectStatus(status);
  secondary_->CollectStatus(status);
}

absl::Status FailoverBackend::CheckAtStart(const JudgeStartContext& context) {
  if (absl::Status primary = primary_->CheckAtStart(context); !primary.ok()) return primary;
  return secondary_->CheckAtStart(context);
}

}  // namespace rlj
