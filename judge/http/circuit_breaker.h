// circuit_breaker.h: stops sending to a teacher that keeps failing. Closed: requests go; `failure_threshold`
// consecutive failures open it. Open: requests fail at once (a failover backend takes them) until
// `cooldown` has passed. Half-open: one probe goes; its success closes the breaker, its failure opens it
// again. Time is passed in. Not thread-safe (the dispatcher's loop owns it).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace rlj {

class CircuitBreaker {
 public:
  using Time = std::chrono::steady_clock::time_point;
  enum class State { kClosed, kOpen, kHalfOpen };

  // threshold 0: never opens.
  CircuitBreaker(int failure_threshold, std::chrono::nanoseconds cooldown);

  // May a request be sent now? In half-open, true once (the probe) until that probe reports.
  bool Allow(Time now);
  void OnSuccess();
  void OnFailure(Time now);

  State state(Time now) const;
  int64_t times_opened() const { return times_opened_; }
  static std::string StateName(State state);

 private:
  void Open(Time now);
  int threshold_;
  std::chrono::nanoseconds cooldown_;
  State state_ = State::kClosed;
  int consecutive_failures_ = 0;
  Time open_until_{};
  bool probe_in_flight_ = false;
  int64_t times_opened_ = 0;
};

}  // namespace rlj
