// judge_backend.cc: helpers shared by every backend: status entries by name, the verdict contract, the
// availability error kinds.
#include "judge/judge_backend.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace rlj {

v1::JudgeBackendStatus* BackendStatusEntry(v1::JudgeStatus* status, const std::string& name) {
  for (v1::JudgeBackendStatus& entry : *status->mutable_backends()) {
    if (entry.name() == name) return &entry;
  }
  v1::JudgeBackendStatus* entry = status->add_backends();
  entry->set_name(name);
  return entry;
}

void NormalizeVerdict(v1::Verdict* verdict) {
  if (!verdict->has_error() && !std::isfinite(verdict->reward())) {
    SetVerdictError(verdict, absl::StatusCode::kInternal, error_kind::kInvalid,
                    absl::StrCat("the backend returned a non-finite reward (", verdict->reward(), ")"));
  }
  if (!verdict->has_error() && std::abs(verdict->reward()) > kMaxAbsReward) {
    SetVerdictError(verdict, absl::StatusCode::kOutOfRange, error_kind::kOutOfRange,
                    absl::StrCat("the backend returned reward ", verdict->reward(), ", outside [-", kMaxAbsReward, ", ",
                                 kMaxAbsReward, "]"));
  }
  // Nothing non-finite goes on the wire: a bad component fails a verdict that was a success, and is
  // dropped from one that already failed.
  for (auto it = verdict->mutable_components()->begin(); it != verdict->mutable_components()->end();) {
    if (std::isfinite(it->second)) {
      ++it;
      continue;
    }
    if (!verdict->has_error()) {
      SetVerdictError(verdict, absl::StatusCode::kInternal, error_kind::kInvalid,
                      absl::StrCat("the backend returned a non-finite component '", it->first, "' (", it->second, ")"));
    }
    it = verdict->mutable_components()->erase(it);
  }
  if (!std::isfinite(verdict->cost_usd()) || verdict->cost_usd() < 0) verdict->set_cost_usd(0);
  if (!std::isfinite(verdict->latency_ms())) verdict->set_latency_ms(0);
  if (verdict->has_error()) {
    verdict->set_reward(0);
    v1::SampleError* error = verdict->mutable_error();
    if (error->code() == 0) error->set_code(static_cast<int32_t>(absl::StatusCode::kUnknown));
    if (error->kind().empty()) error->set_kind(error_kind::kBackend);
  }
}

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's copy when a map key is built from a C string
// here (a known GCC 12 false positive); the code is a plain map assignment.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
void AskForSecondOpinion(v1::Sample* sample) { (*sample->mutable_metadata())[kBypassCacheMetadataKey] = "1"; }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace error_kind {

bool IsAvailabilityError(const std::string& kind) {
  return kind == kTimeout || kind == kHttpError || kind == kRateLimited || kind == kCircuitOpen || kind == kUnavailable;
}

bool IsAvailabilityError(const v1::SampleError& error) {
  if (!IsAvailabilityError(error.kind())) return false;
  if (error.kind() != kHttpError) return true;
  const auto code = static_cast<absl::StatusCode>(error.code());
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
}

}  // namespace error_kind
}  // namespace rlj
