// adaptive_concurrency.cc: the AIMD arithmetic of the in-flight limit.
#include "judge/http/adaptive_concurrency.h"

#include <algorithm>

namespace rlj {

AdaptiveConcurrency::AdaptiveConcurrency(Options options) : options_(options) {
  options_.min_limit = std::max(1, options_.min_limit);
  options_.max_limit = std::max(options_.min_limit, options_.max_limit);
  limit_ = options_.max_limit;
}

int AdaptiveConcurrency::WindowSize() const { return std::max<int>(kMinWindow, static_cast<int>(limit_)); }

void AdaptiveConcurrency::OnSuccess(int64_t epoch, double latency_ms) {
  if (!options_.adaptive) return;
  if (baseline_ms_ <= 0 || latency_ms < baseline_ms_) {
    baseline_ms_ = latency_ms;
  } else {
    baseline_ms_ += (latency_ms - baseline_ms_) * 0.01;  // follows a lasting slowdown, slowly
  }
  smoothed_ms_ = smoothed_ms_ <= 0 ? latency_ms : smoothed_ms_ * 0.9 + latency_ms * 0.1;
  // Additive increase: +1 per limit successes (one window).
  limit_ = std::min<double>(options_.max_limit, limit_ + 1.0 / std::max(1.0, limit_));
  if (epoch != epoch_) return;
  ++window_count_;
  if (latency_ms > options_.latency_factor * baseline_ms_) ++window_slow_;
  EndWindowIfFull();
}

void AdaptiveConcurrency::OnRateLimited(int64_t epoch) {
  if (!options_.adaptive || epoch != epoch_) return;
  ++window_count_;
  ++window_rate_limited_;
  if (5 * window_rate_limited_ >= WindowSize()) {
    Decrease(epoch, options_.rate_limited_decrease);
    return;
  }
  EndWindowIfFull();
}

void AdaptiveConcurrency::EndWindowIfFull() {
  if (window_count_ < WindowSize()) return;
  const bool mostly_slow = options_.latency_factor > 1 && 2 * window_slow_ > window_count_;
  window_count_ = 0;
  window_slow_ = 0;
  window_rate_limited_ = 0;
  if (mostly_slow) Decrease(epoch_, options_.latency_decrease);
}

void AdaptiveConcurrency::Decrease(int64_t epoch, double factor) {
  if (epoch != epoch_) return;  // started under an older limit: that limit was already cut
  limit_ = std::max<double>(options_.min_limit, static_cast<int>(limit_ * factor));
  ++epoch_;
  smoothed_ms_ = baseline_ms_;  // judge the new limit on fresh measurements
  window_count_ = 0;
  window_slow_ = 0;
  window_rate_limited_ = 0;
}

}  // namespace rlj
