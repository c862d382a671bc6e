// retry_after.cc: Retry-After parsing (curl_getdate for HTTP dates).
#include "judge/http/retry_after.h"

#include <curl/curl.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "common/status.h"

namespace rlj {

std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now) {
  const std::string text(absl::StripAsciiWhitespace(AsAbsl(value)));
  if (text.empty()) return std::nullopt;
  constexpr double kMaxSeconds = 86400;
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    if (!(seconds >= 0) || seconds > kMaxSeconds) return std::nullopt;
    return std::chrono::milliseconds(static_cast<int64_t>(std::ceil(seconds * 1000)));
  }
  const time_t when = curl_getdate(text.c_str(), nullptr);
  if (when < 0) return std::nullopt;
  const auto at = std::chrono::system_clock::from_time_t(when);
  if (at <= now) return std::chrono::milliseconds(0);
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
  if (wait > std::chrono::seconds(static_cast<int64_t>(kMaxSeconds))) return std::nullopt;
  return wait;
}

}  // namespace rlj
