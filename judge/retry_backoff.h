// retry_backoff.h: how long to wait before retrying a teacher request: exponential backoff with full jitter,
// or the server's Retry-After (seconds or an HTTP date).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string_view>

namespace rlj {

struct BackoffPolicy {
  std::chrono::milliseconds base{250};
  std::chrono::milliseconds cap{8000};
};

// uniform(0, min(cap, base * 2^attempt)) for attempt 0, 1, 2, … drawn from `random`.
std::chrono::milliseconds BackoffDelay(int attempt, const BackoffPolicy& policy, std::mt19937_64& random);

// A Retry-After header value: delay-seconds (fractions accepted) or an HTTP-date (its distance from `now`,
// zero when past). Empty, malformed, negative or over a day: nullopt (the backoff applies).
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

}  // namespace rlj
