// rule_backend.h: the `rule` judge, verifiable rewards without a teacher: checks a completion against the
// sample's reference with one or several checks (exact, numeric within a tolerance, regex, contains; all
// must pass), and subtracts an optional length penalty.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "judge/backend_registry.h"
#include "judge/judge_backend.h"
#include "rlj/v1/config.pb.h"

namespace re2 {
class RE2;
}

namespace rlj {

class RuleBackend final : public JudgeBackend {
 public:
  // The checks of its section (`section` names it in messages), without starting anything; Create runs them.
  static absl::Status Validate(const v1::RuleJudgeConfig& config, const std::string& section);
  // Checks the configuration (known checks, a pattern for regex that compiles) first.
  static absl::StatusOr<std::unique_ptr<RuleBackend>> Create(const v1::RuleJudgeConfig& config,
                                                             const JudgeBackendDeps& deps = {});
  // Without the checks of Create: a bad pattern makes every verdict an "invalid" error.
  explicit RuleBackend(const v1::RuleJudgeConfig& config, std::string label = "rule");
  ~RuleBackend() override;

  std::string name() const override { return label_; }
  // The checks, joined with '+': "numeric", "regex+contains".
  std::string model() const override;

  // correct_reward or wrong_reward minus the length penalty; components: one per check (1 or 0), "correct",
  // and "length_penalty" (negative) when one is configured. A missing reference where a check needs one, a
  // non-numeric reference in numeric mode or a bad configuration is an "invalid" error, never a reward.
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override;

 private:
  Judgement ScoreOne(const v1::Sample& sample) const;
  double LengthPenalty(std::string_view completion) const;

  v1::RuleJudgeConfig config_;
  std::string label_;
  std::vector<v1::RuleJudgeConfig::Check> checks_;
  std::string config_error_;  // non-empty: the configuration is unusable
};

}  // namespace rlj
