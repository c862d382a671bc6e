// ensemble_backend.h: the `ensemble` judge, built from other backends (each component names a backend kind
// or a judge.backends entry):
//   weighted    every component scores every sample (concurrently); reward = Σ weight · component reward;
//               a sample fails when any component fails on it (never a partial sum);
//   group_rank  every component must be a chat teacher (openai rubric mode, anthropic); for each group
//               (Sample.group_id) it ranks the group's completions in one call, asked twice — in the sampled
//               order and reversed — so position bias cancels; reward = Σ weight · rank reward.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "judge/backend_registry.h"
#include "judge/chat_teacher.h"
#include "judge/judge_backend.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

class EnsembleBackend final : public JudgeBackend {
 public:
  struct Component {
    std::string name;
    double weight = 1;
    std::unique_ptr<JudgeBackend> backend;
    ChatTeacher* teacher = nullptr;  // group_rank: the same backend as a chat teacher
  };

  // The checks of its section (`section` names it in messages), without starting anything; Create runs them.
  static absl::Status Validate(const v1::JudgeConfig& config, const std::string& section);
  static absl::StatusOr<std::unique_ptr<EnsembleBackend>> Create(const v1::JudgeConfig& config,
                                                                 const JudgeBackendDeps& deps);
  // From components already made (tests).
  EnsembleBackend(const v1::EnsembleJudgeConfig& config, std::vector<Component> components, std::string label,
                  std::chrono::milliseconds call_timeout);
  ~EnsembleBackend() override;

  std::string name() const override { return label_; }
  // "0.7·correct + 0.3·style" (weighted) or "rank(0.5·a + 0.5·b)" (group_rank).
  std::string model() const override { return model_; }
  absl::Status CheckAtStart(const JudgeStartContext& context) override;
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override;
  void CollectStatus(v1::JudgeStatus* status) const override;

 private:
  std::vector<Judgement> ScoreWeighted(const std::vector<v1::Sample>& samples);
  std::vector<Judgement> ScoreGroupRank(const std::vector<v1::Sample>& samples);

  v1::EnsembleJudgeConfig config_;
  std::vector<Component> components_;
  std::string label_;
  std::string model_;
  std::chrono::milliseconds call_timeout_;
};

}  // namespace rlj
