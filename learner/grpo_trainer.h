// grpo_trainer.h: one GRPO optimisation step over scored rollout groups: advantages, the clipped policy
// loss with an optional KL penalty to a frozen reference, gradient clipping and AdamW.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/learner.pb.h"

namespace rlj {

class Transformer;

class GrpoTrainer {
 public:
  // Trains `policy` (the module is shared, not copied) on config.learner().device(), else runtime.device.
  // A frozen reference copy is made only when learner.kl_coef > 0.
  static absl::StatusOr<std::unique_ptr<GrpoTrainer>> Create(const v1::RunConfig& config, const Transformer& policy);
  ~GrpoTrainer();

  GrpoTrainer(const GrpoTrainer&) = delete;
  GrpoTrainer& operator=(const GrpoTrainer&) = delete;

  // One step (learner.ppo_epochs optimiser passes) over `groups`. Groups without signal are skipped and
  // counted; invalid rollouts are excluded. A non-finite loss or gradient norm skips the optimiser step
  // (gradients zeroed, nothing applied): the metrics then carry the non-finite value and
  // nonfinite_steps_skipped() grows. Fills every StepMetrics field except step, staleness_mean,
  // idle_fraction and step_s (the training loop's).
  absl::StatusOr<v1::StepMetrics> Step(const std::vector<v1::RolloutGroup>& groups);

  Transformer& policy();
  std::string device() const;

  int64_t optimizer_steps() const;          // optimiser updates applied (ppo_epochs per step at most)
  int64_t nonfinite_steps_skipped() const;  // steps whose update was dropped for a non-finite loss/norm
  int64_t groups_skipped_no_signal() const;
  int64_t samples_masked() const;           // invalid rollouts seen

 private:
  struct State;
  explicit GrpoTrainer(std::unique_ptr<State> state);
  absl::StatusOr<v1::StepMetrics> StepUnchecked(const std::vector<v1::RolloutGroup>& groups);

  std::unique_ptr<State> state_;
};

}  // namespace rlj
