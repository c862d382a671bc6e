// sft_trainer.h: supervised warm start: next-token cross-entropy on prompt → reference (+ <eos>), AdamW
// with linear warmup, before RL.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dataset.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

class Tokenizer;
class Transformer;

// One training sequence: EncodePrompt(prompt) + Encode(reference) + [eos]; the loss covers the tokens
// from prompt_length on.
struct SftExample {
  std::vector<int32_t> tokens;
  int32_t prompt_length = 0;
};

struct SftExamples {
  std::vector<SftExample> examples;
  int64_t skipped_too_long = 0;      // longer than max_seq_len
  int64_t skipped_no_reference = 0;  // nothing to imitate
};

SftExamples BuildSftExamples(const std::vector<PromptRow>& rows, const Tokenizer& tokenizer, int max_seq_len);

class SftTrainer {
 public:
  // Trains `model` (shared, not copied) on runtime.device with sft.lr, sft.weight_decay, sft.warmup_steps.
  static absl::StatusOr<std::unique_ptr<SftTrainer>> Create(const v1::RunConfig& config, const Transformer& model);
  ~SftTrainer();

  SftTrainer(const SftTrainer&) = delete;
  SftTrainer& operator=(const SftTrainer&) = delete;

  // One AdamW step at the scheduled learning rate (grad norm clipped to 1.0); returns the batch's mean
  // token cross-entropy before the update. As in GrpoTrainer, a non-finite loss or gradient norm skips the
  // update (gradients zeroed, nothing applied; see StepUnlessNonFinite): the step still counts in steps(),
  // the returned loss may then be NaN/inf, and nonfinite_steps_skipped() grows.
  absl::StatusOr<double> Step(const std::vector<const SftExample*>& batch);
  // The mean token cross-entropy of `batch`, without training.
  absl::StatusOr<double> Loss(const std::vector<const SftExample*>& batch);

  // lr × min(1, (step + 1) / warmup_steps) for the next step: linear warmup, then constant.
  double scheduled_lr() const;
  int64_t steps() const;
  int64_t nonfinite_steps_skipped() const;  // steps whose update was dropped for a non-finite loss/norm
  std::string device() const;
  Transformer& model();

 private:
  struct State;
  explicit SftTrainer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

struct SftOptions {
  std::string output_dir;  // empty → sft.output, else <run_dir>/sft
  std::string run_dir;
  std::function<void(int64_t step, double loss)> on_step;  // after every step (progress, tests)
  // Asked before every step; true stops the run there without writing a checkpoint (`rlj sft` passes
  // ShutdownRequested, so SIGINT/SIGTERM stop it within a step).
  std::function<bool()> stop_requested;
};

// Loads data.train_path, the tokenizer and the model (model.init_checkpoint or a seeded random init),
// trains sft.steps steps of sft.batch_size rows, and saves the checkpoint (state step = sft.steps,
// policy_version 0) to the output directory. A stop requested before the last step is a Cancelled error
// naming the steps done; nothing is written, so the output never holds a model short of its steps. A step
// with a non-finite loss or gradient norm is skipped with a warning; learner.max_nonfinite_steps_in_a_row
// of them in a row (0 = never) end the run with an Aborted error naming the step, and nothing is written.
absl::Status RunSft(const v1::RunConfig& config, const SftOptions& options);

}  // namespace rlj
