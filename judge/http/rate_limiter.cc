// rate_limiter.cc: token bucket arithmetic and the RPM/TPM pair.
#include "judge/http/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace rlj {

TokenBucket::TokenBucket(double capacity, double per_second, SteadyTime start)
    : capacity_(capacity), per_second_(per_second), level_(capacity), last_(start) {}

void TokenBucket::Refill(SteadyTime now) {
  if (now <= last_) return;
  const double seconds = std::chrono::duration<double>(now - last_).count();
  level_ = std::min(capacity_, level_ + seconds * per_second_);
  last_ = now;
}

bool TokenBucket::TryTake(double n, SteadyTime now) {
  Refill(now);
  const double needed = std::min(n, capacity_);  // an oversized take waits for a full bucket
  if (level_ + 1e-9 < needed) return false;
  level_ -= n;
  return true;
}

std::chrono::nanoseconds TokenBucket::TimeUntil(double n, SteadyTime now) {
  Refill(now);
  const double needed = std::min(n, capacity_);
  if (level_ + 1e-9 >= needed) return std::chrono::nanoseconds(0);
  if (per_second_ <= 0) return std::chrono::hours(24);
  const double seconds = (needed - level_) / per_second_;
  return std::chrono::nanoseconds(static_cast<int64_t>(std::ceil(seconds * 1e9)));
}

void TokenBucket::Adjust(double delta, SteadyTime now) {
  Refill(now);
  level_ = std::min(capacity_, level_ + delta);
}

double TokenBucket::level(SteadyTime now) {
  Refill(now);
  return level_;
}

RateLimiter::RateLimiter(double requests_per_minute, double tokens_per_minute, SteadyTime start) {
  if (requests_per_minute > 0) {
    requests_ = std::make_unique<TokenBucket>(requests_per_minute, requests_per_minute / 60.0, start);
  }
  if (tokens_per_minute > 0) {
    tokens_ = std::make_unique<TokenBucket>(tokens_per_minute, tokens_per_minute / 60.0, start);
  }
}

std::chrono::nanoseconds RateLimiter::Reserve(double tokens, SteadyTime now) {
  absl::MutexLock lock(&mutex_);
  std::chrono::nanoseconds wait(0);
  if (requests_) wait = std::max(wait, requests_->TimeUntil(1, now));
  if (tokens_) wait = std::max(wait, tokens_->TimeUntil(tokens, now));
  if (wait.count() > 0) return wait;
  if (requests_) requests_->TryTake(1, now);
  if (tokens_) tokens_->TryTake(tokens, now);
  return wait;
}

void RateLimiter::Correct(double estimated, double actual, SteadyTime now) {
  absl::MutexLock lock(&mutex_);
  if (tokens_) tokens_->Adjust(estimated - actual, now);
}

}  // namespace rlj
