// rate_limiter.h: requests-per-minute and tokens-per-minute limits of one teacher backend, as token buckets.
// Time is passed in (no clock inside), so the arithmetic is deterministic and testable.
#pragma once

#include <chrono>
#include <memory>

#include "absl/synchronization/mutex.h"

namespace rlj {

using SteadyTime = std::chrono::steady_clock::time_point;

// `capacity` tokens, refilled continuously at `per_second`; starts full. A take larger than the capacity is
// allowed once the bucket is full and leaves it in debt (negative), so an oversized request is slowed, not
// refused forever.
class TokenBucket {
 public:
  TokenBucket(double capacity, double per_second, SteadyTime start);

  // Takes `n` tokens when they are there now; false (and nothing taken) otherwise.
  bool TryTake(double n, SteadyTime now);

  // How long until TryTake(n) would succeed; zero when it would now.
  std::chrono::nanoseconds TimeUntil(double n, SteadyTime now);

  // Adds `delta` to the level (negative: takes more, possibly into debt), capped at the capacity. For
  // correcting an estimate once the real count is known.
  void Adjust(double delta, SteadyTime now);

  double level(SteadyTime now);
  double capacity() const { return capacity_; }

 private:
  void Refill(SteadyTime now);
  double capacity_;
  double per_second_;
  double level_;
  SteadyTime last_;
};

// RPM and TPM together; a limit of 0 is no limit. Thread-safe.
class RateLimiter {
 public:
  // Buckets hold one minute of each rate (a full minute's burst), and start full.
  RateLimiter(double requests_per_minute, double tokens_per_minute, SteadyTime start);

  // Takes one request and `tokens` tokens when both buckets have them, returning zero; otherwise takes
  // nothing and returns how long to wait before trying again.
  std::chrono::nanoseconds Reserve(double tokens, SteadyTime now);

  // The request that reserved `estimated` tokens used `actual`: the token bucket is corrected by the difference.
  void Correct(double estimated, double actual, SteadyTime now);

  bool limits_requests() const { return requests_ != nullptr; }
  bool limits_tokens() const { return tokens_ != nullptr; }

 private:
  absl::Mutex mutex_;
  std::unique_ptr<TokenBucket> requests_ ABSL_GUARDED_BY(mutex_);
  std::unique_ptr<TokenBucket> tokens_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace rlj
