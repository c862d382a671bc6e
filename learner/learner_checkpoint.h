// learner_checkpoint.h: the learner's resumable checkpoints: a Hugging Face model directory
// (checkpoints/step-N/) plus the optimiser state and learner_state.json (step, version, dispatcher
// position, per-file sizes and CRC-32C), written into a temporary directory and renamed into place; the
// newest K are kept; a resume takes the newest checkpoint that verifies and names the ones it refuses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "learner/grpo_trainer.h"
#include "model/checkpoint/safetensors.h"

namespace rlj {

class Transformer;

inline constexpr const char* kLearnerStateFile = "learner_state.json";
inline constexpr const char* kOptimizerFile = "optimizer.pt";

struct LearnerCheckpointContents {
  int64_t step = 0;
  int64_t version = 0;
  TrainerState trainer;
  std::string dispatcher;  // PromptDispatcher::SaveState(); empty without a dispatcher
};

// Writes <checkpoints_dir>/step-<step>/ atomically, points <checkpoints_dir>/latest at it, and deletes the
// oldest step-* directories beyond `keep` (0 = keep all). Returns the directory.
absl::StatusOr<std::string> WriteLearnerCheckpoint(const std::string& checkpoints_dir, Transformer& policy,
                                                   const LearnerCheckpointContents& contents, int keep);

struct ResumePoint {
  std::string dir;
  LearnerCheckpointContents contents;
  NamedTensors weights;              // the policy's parameters, CPU float32
  std::vector<std::string> refused;  // "<dir>: <why>" for every newer checkpoint that did not verify
};

// The newest checkpoint under `checkpoints_dir` whose files all verify (sizes and CRC-32C recorded in
// learner_state.json, then the safetensors and optimiser parse): step-* by step, newest first (a step-N
// directory appears only complete, by rename; `latest` is written after it and can lag behind when the
// learner is killed in between), then what `latest` names if it is none of those. nullopt when there is
// none at all (a run killed before its first checkpoint); an error when checkpoints exist but none verifies.
absl::StatusOr<std::optional<ResumePoint>> FindResumePoint(const std::string& checkpoints_dir);

// The step-* checkpoint directories under `checkpoints_dir`, oldest first.
std::vector<std::pair<int64_t, std::string>> ListStepCheckpoints(const std::string& checkpoints_dir);

}  // namespace rlj
