// training_ledger.h: the learner's write-ahead record of its training steps, made durable before a step's
// version is published: <run>/trained_groups.jsonl (one line per step: step, version, the ids of the groups it
// consumed; the whole run) and <run>/step_inputs/step-N.bin (the step's groups and the prompt dispatcher's
// position after it; kept back to the oldest kept checkpoint), so a learner killed past its last checkpoint
// replays those steps on resume and comes back at the version it had already published.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlj/v1/learner.pb.h"

namespace rlj {

inline constexpr const char* kTrainedGroupsFile = "trained_groups.jsonl";
inline constexpr const char* kStepInputsDir = "step_inputs";

// One group as a ledger line names it: the ids the actor sent.
struct LedgerGroup {
  std::string group_id;
  std::string prompt_id;
  std::string actor;
  std::string lease_id;  // empty for groups not made from a lease
  uint64_t item_id = 0;  // the dispatcher's item (unique within the run); 0 without a lease
  int64_t policy_version = 0;
};

// One line of trained_groups.jsonl.
struct LedgerLine {
  int64_t step = 0;
  int64_t version = 0;         // the version this step published
  bool update_applied = true;  // false when the update was skipped (non-finite loss or gradient)
  std::vector<LedgerGroup> groups;
};

// Every complete line of a trained_groups.jsonl, in order; a torn last line (a kill mid-write) is skipped.
absl::StatusOr<std::vector<LedgerLine>> ReadTrainedGroups(const std::string& path);

// What one step trained on, as needed to take the same step again.
struct StepInputs {
  int64_t step = 0;     // the step these groups produced (1-based)
  int64_t version = 0;  // the version published after it
  bool update_applied = true;
  std::vector<v1::RolloutGroup> groups;
  std::string dispatcher;  // PromptDispatcher::SaveState() after the step; empty without a dispatcher
};

class TrainingLedger {
 public:
  // A fresh run in `run_dir`: empties trained_groups.jsonl and step_inputs/ (left by an earlier run there).
  static absl::StatusOr<std::unique_ptr<TrainingLedger>> StartFresh(const std::string& run_dir);

  // A learner resuming from its checkpoint at `checkpoint_step` / `checkpoint_version` (0 / 0: none, a
  // fresh start): keeps the ledger lines up to that step and returns in `replay` the recorded inputs of
  // checkpoint_step+1, +2, … with versions following on from checkpoint_version (stopping at the first
  // missing, unreadable or non-consecutive one; it and every later record are deleted): the steps the killed
  // learner took, and published, after its checkpoint. The caller takes them again and Record()s each.
  static absl::StatusOr<std::unique_ptr<TrainingLedger>> Resume(const std::string& run_dir, int64_t checkpoint_step,
                                                                int64_t checkpoint_version,
                                                                std::vector<StepInputs>* replay);

  ~TrainingLedger();
  TrainingLedger(const TrainingLedger&) = delete;
  TrainingLedger& operator=(const TrainingLedger&) = delete;

  // Makes step `inputs.step` durable (fsync): writes its step_inputs file (unless `inputs_on_disk`, as for a
  // replayed step) and appends its line to trained_groups.jsonl. Call before publishing inputs.version.
  absl::Status Record(const StepInputs& inputs, bool inputs_on_disk = false);

  // Deletes the step inputs at or below `step` (the oldest checkpoint kept: no resume starts before it).
  void Prune(int64_t step);

  const std::string& trained_groups_path() const { return trained_groups_path_; }
  const std::string& step_inputs_dir() const { return step_inputs_dir_; }

 private:
  TrainingLedger(std::string trained_groups_path, std::string step_inputs_dir, int fd);
  static absl::StatusOr<std::unique_ptr<TrainingLedger>> Open(const std::string& run_dir);

  const std::string trained_groups_path_;
  const std::string step_inputs_dir_;
  int fd_;  // trained_groups.jsonl, O_APPEND
};

// The step_inputs file of `step` and back.
std::string StepInputsPath(const std::string& step_inputs_dir, int64_t step);
std::string EncodeStepInputs(const StepInputs& inputs);
absl::StatusOr<StepInputs> DecodeStepInputs(const std::string& bytes);

}  // namespace rlj
