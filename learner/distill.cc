// distill.cc: on-policy distillation's per-token advantages from the teacher's log-prob of each sampled token.
#include "learner/distill.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace rlj {

DistillOptions DistillOptionsFromConfig(const v1::LearnerConfig& learner) {
  return DistillOptions{learner.distill().coef(), learner.distill().discount()};
}

absl::StatusOr<TokenAdvantages> DistillAdvantages(const v1::RolloutGroup& group, int rollout_index,
                                                  float sequence_advantage, const DistillOptions& options) {
  const v1::Rollout& rollout = group.rollouts(rollout_index);
  const int tokens = rollout.completion_tokens_size();
  TokenAdvantages out;
  out.advantages.assign(tokens, sequence_advantage);
  out.valid.assign(tokens, true);
  out.valid_tokens = tokens;
  if (rollout.teacher_logprobs().empty()) return out;  // no per-token signal: the sequence advantage alone
  const auto malformed = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("group '", group.group_id(), "' rollout ", rollout_index, ": ", what,
                                                   " (", tokens, " completion tokens)"));
  };
  if (rollout.teacher_logprobs_size() != tokens) {
    return malformed(absl::StrCat(rollout.teacher_logprobs_size(), " teacher log-probs"));
  }
  if (rollout.behaviour_logprobs_size() != tokens) return malformed("behaviour log-probs of another length");
  // tail = Σ_{k ≥ t, k valid} discount^(k − t) · gap_k, built from the last token back.
  double tail = 0;
  for (int t = tokens - 1; t >= 0; --t) {
    // discount 0 keeps only the token's own gap (0^0 = 1) without computing 0 · the later tail.
    tail = options.discount > 0 ? options.discount * tail : 0.0;
    const double teacher = rollout.teacher_logprobs(t);
    if (std::isfinite(teacher)) {
      const double gap = teacher - rollout.behaviour_logprobs(t);
      tail += gap;
      out.reverse_kl_sum -= gap;
      ++out.teacher_tokens;
    } else {  // no teacher value: the token is masked, and adds nothing to the tails before it
      out.valid[t] = false;
      --out.valid_tokens;
    }
    out.advantages[t] = static_cast<float>(sequence_advantage + options.coef * tail);
  }
  return out;
}

}  // namespace rlj
