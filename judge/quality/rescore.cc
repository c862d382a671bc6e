// rescore.cc: batches of logged samples through a judge backend, and the agreement of old and new rewards.
#include "judge/quality/rescore.h"

#include <algorithm>
#include <cmath>
#include <exception>

#include "absl/strings/str_cat.h"
#include "judge/quality/judge_quality.h"

namespace rlj {

absl::StatusOr<RescoreResult> Rescore(const std::vector<RewardLogRow>& rows, JudgeBackend& backend,
                                      const RescoreOptions& options) {
  RescoreResult result;
  for (const RewardLogRow& row : rows) {
    if (row.kind != row_kind::kTrain || !row.reward.has_value()) continue;
    if (options.limit > 0 && result.rows.size() >= options.limit) break;
    result.rows.push_back({&row, std::nullopt, ""});
  }
  const size_t batch = std::max<size_t>(1, options.batch_size);
  for (size_t begin = 0; begin < result.rows.size(); begin += batch) {
    const size_t end = std::min(result.rows.size(), begin + batch);
    std::vector<v1::Sample> samples;
    for (size_t i = begin; i < end; ++i) {
      const RewardLogRow& row = *result.rows[i].row;
      v1::Sample sample;
      sample.set_id(absl::StrCat(row.replica, ":", row.id));  // unique even when sample ids repeat
      sample.set_prompt_id(row.prompt_id);
      sample.set_prompt(row.prompt);
      sample.set_completion(row.completion);
      sample.set_reference(row.reference);
      sample.set_group_id(row.group_id);
      sample.set_index_in_group(row.index_in_group);
      sample.set_run(row.run);
      sample.set_actor(row.actor);
      sample.set_policy_version(row.policy_version);
      AskForSecondOpinion(&sample);
      samples.push_back(std::move(sample));
    }
    std::vector<Judgement> judgements;
    try {
      judgements = backend.Score(samples);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("the ", backend.name(), " backend failed: ", e.what()));
    }
    if (judgements.size() != samples.size()) {
      return absl::InternalError(absl::StrCat("the ", backend.name(), " backend returned ", judgements.size(),
                                              " verdicts for ", samples.size(), " samples"));
    }
    for (size_t k = 0; k < judgements.size(); ++k) {
      RescoredRow& out = result.rows[begin + k];
      const v1::Verdict& verdict = judgements[k].verdict;
      if (verdict.has_error() || !std::isfinite(verdict.reward())) {
        ++result.failed;
        out.error = verdict.has_error() ? absl::StrCat(verdict.error().kind(), ": ", verdict.error().message())
                                        : "non-finite reward";
      } else {
        out.reward = verdict.reward();
      }
    }
    if (options.progress) options.progress(end, result.rows.size());
  }
  std::vector<logs::ScorePair> pairs;
  for (const RescoredRow& row : result.rows) {
    if (!row.reward.has_value()) continue;
    pairs.push_back({*row.row->reward, *row.reward, logs::ReferenceCorrect(row.row->completion, row.row->reference)});
  }
  result.agreement = logs::ComputeAgreement(pairs, options.pass_threshold);
  return result;
}

}  // namespace rlj
