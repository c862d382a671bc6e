// rule_backend.h: the `rule` judge: checks a completion against the sample's reference answer (exact text,
// or the last number within a tolerance) with common/answer_match; no teacher model involved.
#pragma once

#include <string>
#include <vector>

#include "judge/judge_backend.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

class RuleBackend final : public JudgeBackend {
 public:
  explicit RuleBackend(const v1::RuleJudgeConfig& config);

  std::string name() const override { return "rule"; }
  std::string model() const override { return config_.mode(); }

  // correct_reward or wrong_reward, components {"correct": 1 or 0}; an empty reference, a non-numeric
  // reference in numeric mode or an unknown mode is an "invalid" error, never a reward.
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override;

 private:
  Judgement ScoreOne(const v1::Sample& sample) const;
  v1::RuleJudgeConfig config_;
};

}  // namespace rlj
