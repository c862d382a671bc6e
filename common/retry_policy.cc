// retry_policy.cc: the backoff arithmetic and the retry loop.
#include "common/retry_policy.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/shutdown.h"

namespace rlj {

std::chrono::milliseconds BackoffDelay(int attempt, const BackoffPolicy& policy, std::mt19937_64& random) {
  const int64_t base = std::max<int64_t>(0, policy.base.count());
  const int64_t cap = std::max<int64_t>(0, policy.cap.count());
  const int64_t ceiling = attempt >= 30 ? cap : std::min<int64_t>(cap, base << std::max(0, attempt));
  std::uniform_int_distribution<int64_t> uniform(0, ceiling);
  return std::chrono::milliseconds(uniform(random));
}

bool IsTransient(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kResourceExhausted || code == absl::StatusCode::kAborted;
}

absl::Status RetryWithBackoff(const std::string& what, std::chrono::milliseconds budget, const BackoffPolicy& policy,
                              const std::function<absl::Status()>& attempt) {
  using Clock = std::chrono::steady_clock;
  const auto give_up = Clock::now() + budget;
  std::mt19937_64 random(std::random_device{}());
  for (int failures = 0;; ++failures) {
    absl::Status status = attempt();
    if (status.ok() || !IsTransient(status.code())) return status;
    if (ShutdownRequested()) return absl::CancelledError(absl::StrCat(what, ": stopping"));
    const std::chrono::milliseconds wait = BackoffDelay(failures, policy, random);
    if (Clock::now() + wait > give_up) return status;
    RLJ_EVERY(10, log::Warn("{} failed, retrying: {}", what, std::string(status.message())));
    if (WaitForShutdown(wait)) return absl::CancelledError(absl::StrCat(what, ": stopping"));
  }
}

}  // namespace rlj
