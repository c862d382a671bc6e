// grpo_trainer.h: one policy-gradient optimisation step over scored rollout groups: advantages (GRPO,
// Dr. GRPO, RLOO), the clipped, KL-penalised, importance-corrected loss over token-budget micro-batches,
// gradient all-reduce across data-parallel ranks, clipping and AdamW with a warmup/cosine schedule.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/learner.pb.h"

namespace rlj {

class RankGroup;
class Transformer;

// Fault injection for tests of the non-finite path end to end (`rlj run` included): when this environment
// variable holds a step number N, every Step() from trainer step N (0-based) on sees a NaN loss and is
// skipped like a real one. Logged as a warning when set; never set in normal runs.
inline constexpr char kInjectNonFiniteLossEnv[] = "RLJ_FAULT_NONFINITE_LOSS_FROM_STEP";

// learner.lr at optimiser step `step` (0-based): linear warmup over warmup_steps, then constant or a cosine
// decay to min_lr_ratio · lr at total_steps.
double ScheduledLearningRate(const v1::LearnerConfig& learner, int64_t step, int64_t total_steps);

// Everything a resumed trainer needs besides the weights (which live in the checkpoint's safetensors).
struct TrainerState {
  int64_t steps = 0;  // Step() calls that trained (the schedule's position)
  int64_t optimizer_steps = 0;
  int64_t nonfinite_steps_skipped = 0;
  int64_t groups_skipped_no_signal = 0;
  int64_t samples_masked = 0;
  int64_t batches_skipped_all_masked = 0;  // Step() calls that trained nothing: no valid verdict
  int64_t batches_skipped_no_signal = 0;   // Step() calls that trained nothing: no reward difference in any group
  std::string optimizer;                   // AdamW's moments and step counts (LibTorch's archive format)
  std::string rng;                         // LibTorch's default CPU generator state
};

class GrpoTrainer {
 public:
  // Trains `policy` (the module is shared, not copied) on config.learner().device(), else runtime.device.
  // A frozen reference copy is made only when learner.kl_coef > 0. With `ranks` (world size > 1), every
  // rank calls Step with the same groups: each trains on its share of the rows and the gradients are
  // summed across ranks before clipping, so every rank applies the same update.
  static absl::StatusOr<std::unique_ptr<GrpoTrainer>> Create(const v1::RunConfig& config, const Transformer& policy,
                                                             RankGroup* ranks = nullptr);
  ~GrpoTrainer();

  GrpoTrainer(const GrpoTrainer&) = delete;
  GrpoTrainer& operator=(const GrpoTrainer&) = delete;

  // One step (learner.ppo_epochs optimiser passes) over `groups`. Groups without signal are skipped and
  // counted; invalid rollouts are excluded. A non-finite loss or gradient norm skips the optimiser step
  // (gradients zeroed, nothing applied): the metrics then carry the non-finite value and
  // nonfinite_steps_skipped() grows. Fills every StepMetrics field except step, version, staleness_*,
  // judge_ms_mean, idle_fraction, step_s and time_unix_s (the training loop's).
  absl::StatusOr<v1::StepMetrics> Step(const std::vector<v1::RolloutGroup>& groups);

  Transformer& policy();
  std::string device() const;

  int64_t steps() const;                    // trained steps so far (drives the learning-rate schedule)
  int64_t optimizer_steps() const;          // optimiser updates applied (ppo_epochs per step at most)
  int64_t nonfinite_steps_skipped() const;  // steps whose update was dropped for a non-finite loss/norm
  int64_t groups_skipped_no_signal() const;
  int64_t batches_skipped_all_masked() const;
  int64_t batches_skipped_no_signal() const;
  int64_t samples_masked() const;  // invalid rollouts seen

  // The optimiser, RNG and counters, for a checkpoint; ImportState restores them exactly (the policy's
  // weights are restored separately, before).
  absl::StatusOr<TrainerState> ExportState() const;
  absl::Status ImportState(const TrainerState& state);

  // Data-parallel start: every rank takes rank 0's parameters and trainer state.
  absl::Status SynchronizeFromRankZero();

 private:
  struct State;
  explicit GrpoTrainer(std::unique_ptr<State> state);
  // Step's body (Step turns LibTorch exceptions into a status), in stages: score the groups, choose and
  // weigh the rows, pack this rank's share into micro-batches, then the optimiser passes (forward/backward,
  // all-reduce, ClipGradients, StepUnlessNonFinite) and the loss metrics.
  absl::StatusOr<v1::StepMetrics> StepUnchecked(const std::vector<v1::RolloutGroup>& groups);

  std::unique_ptr<State> state_;
};

}  // namespace rlj
