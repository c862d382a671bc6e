// retry_after.h: a teacher's Retry-After header (seconds or an HTTP date) as a wait. The backoff itself is
// the one retry policy's (common/retry_policy).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace rlj {

// A Retry-After header value: delay-seconds (fractions accepted) or an HTTP-date (its distance from `now`,
// zero when past). Empty, malformed, negative or over a day: nullopt (the backoff applies).
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

}  // namespace rlj
