// retry_policy.h: rlj's one retry policy: which failures are transient, how long to wait before the next
// attempt (exponential backoff with full jitter), and the loop that retries an RPC until it succeeds, fails
// for good, runs out of its time budget or the process is asked to stop. The actor's learner calls use the
// loop; the actor's Judge.Score client and the judge's HTTP dispatcher use the same backoff and transience
// rules inside their own loops (which also count and classify what they see).
#pragma once

#include <chrono>
#include <functional>
#include <random>
#include <string>

#include "absl/status/status.h"

namespace rlj {

struct BackoffPolicy {
  std::chrono::milliseconds base{250};
  std::chrono::milliseconds cap{8000};
};

// uniform(0, min(cap, base * 2^attempt)) for attempt 0, 1, 2, … drawn from `random`.
std::chrono::milliseconds BackoffDelay(int attempt, const BackoffPolicy& policy, std::mt19937_64& random);

// UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and ABORTED: conditions that may pass. Others (INTERNAL,
// INVALID_ARGUMENT, ...) would fail again.
bool IsTransient(absl::StatusCode code);

// Calls `attempt` until it succeeds, fails with a code that is not transient, shutdown is requested
// (CANCELLED) or waiting once more would pass `budget` (its last error). Logs the retries it makes as `what`.
absl::Status RetryWithBackoff(const std::string& what, std::chrono::milliseconds budget, const BackoffPolicy& policy,
                              const std::function<absl::Status()>& attempt);

}  // namespace rlj
