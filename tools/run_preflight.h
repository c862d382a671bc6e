// run_preflight.h: what `rlj run` checks before it does any work (evaluation, children): that this build and
// this machine can run the config as written, so a run that cannot start fails in a second with a clear error.
#pragma once

#include "absl/status/status.h"
#include "rlj/v1/config.pb.h"

namespace rlj::tools {

// Data-parallel learner ranks need a process group this build has (Gloo's headers at build time for the CPU);
// every input path the config names must be there and readable (files as files, checkpoints as directories);
// every listen address (learner, judge, teacher, /metrics) must be bindable here: "host:port" with a free port,
// or port 0. Errors name the config key.
absl::Status CheckRunCanStart(const v1::RunConfig& config);

// Whether "host:port" can be bound now (port 0 always can, where the host is an address of this machine).
absl::Status CheckListenAddress(const std::string& key, const std::string& address);

}  // namespace rlj::tools
