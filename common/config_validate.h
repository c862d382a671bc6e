// config_validate.h: the rules of a run config beyond its syntax: every numeric key in the range its schema
// field states (config_ranges), the values string keys accept, agreements between keys. Errors name the key
// path.
#pragma once

#include "absl/status/status.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

absl::Status ValidateRunConfig(const v1::RunConfig& config);

// The number of torch intra-op threads a process should use: `role_threads`, else runtime.threads,
// else every core.
int ResolveThreads(const v1::RunConfig& config, int role_threads);

}  // namespace rlj
