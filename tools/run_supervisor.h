// run_supervisor.h: `rlj run`: one whole run on this machine: evaluate the starting student, start learner,
// judge and actors as separate processes on loopback, show progress, restart crashed workers, stop
// everything when the learner is done (or on Ctrl-C), evaluate again and write summary.json.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "rlj/v1/config.pb.h"

namespace rlj::tools {

struct SupervisorOptions {
  std::string run_dir;
  std::string config_source;  // the file the config came from, for messages
  bool progress_tty = false;  // redraw one progress line instead of printing lines
  // Continue a stopped run in the same directory: the learner resumes from its newest good checkpoint
  // (learner --resume), the before-RL evaluation is reused, metrics.jsonl keeps growing.
  bool resume = false;
};

// Runs to the end; OK also when stopped by a signal (children stopped, learner checkpointed).
absl::Status SuperviseRun(const v1::RunConfig& config, const SupervisorOptions& options);

// Makes data and checkpoint paths absolute (relative to the working directory), so children started
// elsewhere and the resolved config.yaml mean the same files.
void MakePathsAbsolute(v1::RunConfig* config);

}  // namespace rlj::tools
