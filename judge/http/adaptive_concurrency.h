// adaptive_concurrency.h: how many requests one teacher backend may have in flight, adapted by AIMD. It
// starts at the configured maximum and grows back by one per window of answers; it is cut at most once per
// window, and only on a congestion signal: halved when 429s are a fifth of a window's answers (so a sporadic
// 429 of a hosted API does not cut it, a real rate limit does at once), cut by a quarter when most of a
// window's answers took longer than latency_factor x the baseline (a few slow answers, a stalled thread or
// one slow request, do not cut it; a lasting slowdown does). A window is as many answers as the limit, at
// least kMinWindow. Each request carries the epoch it started in; only answers from the current epoch count,
// so one burst of 429s (all from requests sent under the old limit) cuts it once. Not thread-safe (the
// dispatcher's loop owns it).
#pragma once

#include <cstdint>

namespace rlj {

class AdaptiveConcurrency {
 public:
  struct Options {
    int min_limit = 1;
    int max_limit = 16;
    bool adaptive = true;       // false: the limit stays at max_limit
    double latency_factor = 3;  // latency above factor x baseline is "growth"; <= 1 turns the signal off
    double rate_limited_decrease = 0.5;
    double latency_decrease = 0.75;
  };
  // Successes in the smallest window latency growth is judged on.
  static constexpr int kMinWindow = 8;

  explicit AdaptiveConcurrency(Options options);

  int limit() const { return static_cast<int>(limit_); }
  // Stamp for a request about to start.
  int64_t epoch() const { return epoch_; }

  // A request started in `epoch` succeeded after `latency_ms`.
  void OnSuccess(int64_t epoch, double latency_ms);
  // A request started in `epoch` was answered 429.
  void OnRateLimited(int64_t epoch);
  // True when the limit can be cut no further (a Retry-After then pauses every request, not just one).
  bool at_floor() const { return !options_.adaptive || limit() <= options_.min_limit; }

  double baseline_ms() const { return baseline_ms_; }
  double smoothed_latency_ms() const { return smoothed_ms_; }

 private:
  void Decrease(int64_t epoch, double factor);
  int WindowSize() const;
  void EndWindowIfFull();
  Options options_;
  double limit_;
  int64_t epoch_ = 0;
  double baseline_ms_ = 0;  // the lowest recent latency; drifts up 1% of the gap per success
  double smoothed_ms_ = 0;  // EWMA of latency (alpha 0.1), for Judge.Status and logs
  // The window being judged: answers of the current epoch, how many were slow successes, how many 429s.
  int window_count_ = 0;
  int window_slow_ = 0;
  int window_rate_limited_ = 0;
};

}  // namespace rlj
