// teacher_probe.h: a client's check that an `rlj teacher` (or any server with GET /health) is up, for
// launchers such as `rlj run` that start one and must wait for it.
#pragma once

#include <chrono>
#include <string>

#include "absl/status/status.h"

namespace rlj::teacher {

// One GET http://<address>/health within `timeout`: OK when it answers 200, Unavailable otherwise (with why).
absl::Status ProbeTeacherHealth(const std::string& address, std::chrono::milliseconds timeout);

}  // namespace rlj::teacher
