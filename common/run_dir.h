// run_dir.h: the layout of a run directory (runs/<name>/): where every process writes what.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlj {

class RunDir {
 public:
  explicit RunDir(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }
  std::string config_path() const { return root_ + "/config.yaml"; }  // the resolved config
  std::string summary_path() const { return root_ + "/summary.json"; }
  std::string metrics_path() const { return root_ + "/metrics.jsonl"; }  // one line per learner step
  // The judges' teacher backends (HTTP machinery), rewritten by `rlj run` every few seconds.
  std::string judge_backends_path() const { return root_ + "/judge_backends.json"; }
  // Held-out evaluations over the steps (logs/eval_curve.h), and the best policy they found.
  std::string eval_curve_path() const { return root_ + "/eval_curve.jsonl"; }
  std::string best_checkpoint_dir() const { return root_ + "/best"; }
  std::string checkpoints_dir() const { return root_ + "/checkpoints"; }
  std::string sft_dir() const { return root_ + "/sft"; }
  std::string logs_dir() const { return root_ + "/logs"; }
  std::string log_path(const std::string& process) const { return logs_dir() + "/" + process + ".log"; }
  std::string reward_log_dir() const { return root_ + "/reward_log"; }
  std::string reward_log_path(const std::string& replica) const { return reward_log_dir() + "/" + replica + ".sqlite"; }
  std::string endpoints_dir() const { return root_ + "/endpoints"; }
  std::string endpoint_path(const std::string& service) const { return endpoints_dir() + "/" + service; }

  // Creates the directory and its subdirectories.
  absl::Status Create() const;

  // Writes "host:port" for `service` (learner, judge-0, …) atomically, for launchers and peers.
  absl::Status WriteEndpoint(const std::string& service, const std::string& address) const;
  absl::StatusOr<std::string> ReadEndpoint(const std::string& service) const;

 private:
  std::string root_;
};

}  // namespace rlj
