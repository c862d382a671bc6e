// command_backend.h: the `command` judge: an external program (judge.command.argv, run without a shell)
// speaking JSON lines: one request line per sample on its stdin, one answer line on its stdout. Started
// once and kept alive (judge.command.processes copies answering in parallel); a copy that dies, times out
// or answers out of step is replaced. Plug in a Python judge without recompiling.
//
// Request:  {"id", "prompt", "completion", "reference", "prompt_id", "group_id", "index_in_group",
//            "policy_version", "metadata"}
// Answer:   {"reward": 0.8, "components": {...}, "rationale": "...", "tokens_in": 0, "tokens_out": 0,
//            "cost_usd": 0}  or  {"error": "why", "kind": "refusal"}   ("id", if present, must match)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "judge/backend_registry.h"
#include "judge/judge_backend.h"
#include "judge/line_process.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

class CommandBackend final : public JudgeBackend {
 public:
  // The checks of its section (`section` names it in messages), without starting anything; Create runs them.
  static absl::Status Validate(const v1::CommandJudgeConfig& config, const std::string& section);
  // Starts the programs; one that cannot be executed is an error naming it.
  static absl::StatusOr<std::unique_ptr<CommandBackend>> Create(const v1::CommandJudgeConfig& config,
                                                                const JudgeBackendDeps& deps);
  ~CommandBackend() override;

  std::string name() const override { return label_; }
  std::string model() const override { return model_; }
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override;
  void CollectStatus(v1::JudgeStatus* status) const override;

  int64_t restarts() const;

 private:
  CommandBackend(const v1::CommandJudgeConfig& config, std::string label, UsageLedger* ledger);
  Judgement ScoreOne(const v1::Sample& sample);
  // A free slot's process (started if it is not running); waits while every slot is busy.
  size_t AcquireSlot();
  void ReleaseSlot(size_t slot);

  v1::CommandJudgeConfig config_;
  std::string label_;
  std::string model_;
  UsageLedger* ledger_;
  mutable absl::Mutex mutex_;
  std::vector<std::unique_ptr<LineProcess>> processes_ ABSL_GUARDED_BY(mutex_);  // null: to be (re)started
  std::vector<bool> busy_ ABSL_GUARDED_BY(mutex_);
  int64_t restarts_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t in_flight_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace rlj
