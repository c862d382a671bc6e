// log.h: the one logging header: thin wrappers over spdlog plus a rate limiter for logs inside loops.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace rlj::log {

// Sets the process-wide logger: "[time] [level] [process] message" to stderr, and to `file_path` too when
// it is not empty. `level` is trace|debug|info|warn|error|off; an unknown level is an error.
absl::Status Init(std::string_view process_name, std::string_view level, const std::string& file_path = "");

template <typename... Args>
void Debug(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::debug(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Info(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::info(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Warn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::warn(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Error(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::error(fmt, std::forward<Args>(args)...);
}

// True at most once per `period` for one call site; use through RLJ_EVERY.
class RateLimit {
 public:
  explicit RateLimit(std::chrono::milliseconds period) : period_ns_(period.count() * 1000000LL) {}
  bool Allow() {
    const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
    int64_t last = last_ns_.load(std::memory_order_relaxed);
    if (last != 0 && now - last < period_ns_) return false;
    return last_ns_.compare_exchange_strong(last, now, std::memory_order_relaxed);
  }

 private:
  const int64_t period_ns_;
  std::atomic<int64_t> last_ns_{0};
};

}  // namespace rlj::log

// Runs the statement at most once per `seconds` from this call site:  RLJ_EVERY(5, rlj::log::Warn("x"));
#define RLJ_EVERY(seconds, statement)                                                                              \
  do {                                                                                                             \
    static ::rlj::log::RateLimit rlj_rate_limit_(std::chrono::milliseconds(static_cast<int64_t>((seconds)*1000))); \
    if (rlj_rate_limit_.Allow()) {                                                                                 \
      statement;                                                                                                   \
    }                                                                                                              \
  } while (0)
