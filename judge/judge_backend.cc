// judge_backend.cc: helpers shared by every backend: status entries by name, the availability error kinds.
#include "judge/judge_backend.h"

namespace rlj {

v1::JudgeBackendStatus* BackendStatusEntry(v1::JudgeStatus* status, const std::string& name) {
  for (v1::JudgeBackendStatus& entry : *status->mutable_backends()) {
    if (entry.name() == name) return &entry;
  }
  v1::JudgeBackendStatus* entry = status->add_backends();
  entry->set_name(name);
  return entry;
}

namespace error_kind {

bool IsAvailabilityError(const std::string& kind) {
  return kind == kTimeout || kind == kHttpError || kind == kRateLimited || kind == kCircuitOpen ||
         kind == kUnavailable;
}

}  // namespace error_kind
}  // namespace rlj
