// machinery_test.cc: the deterministic arithmetic of the shared HTTP machinery, with time passed in:
// token buckets and the RPM/TPM limiter, Retry-After, the circuit breaker, AIMD (the backoff:
// common/retry_policy_test).
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "judge/http/adaptive_concurrency.h"
#include "judge/http/circuit_breaker.h"
#include "judge/http/rate_limiter.h"
#include "judge/http/retry_after.h"

namespace rlj {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

const SteadyTime kT0 = SteadyTime() + std::chrono::hours(1);

TEST(TokenBucket, TakesRefillsAndSaysHowLongToWait) {
  TokenBucket bucket(/*capacity=*/10, /*per_second=*/2, kT0);
  EXPECT_DOUBLE_EQ(bucket.level(kT0), 10);
  EXPECT_TRUE(bucket.TryTake(4, kT0));
  EXPECT_DOUBLE_EQ(bucket.level(kT0), 6);
  EXPECT_FALSE(bucket.TryTake(7, kT0));  // nothing taken
  EXPECT_DOUBLE_EQ(bucket.level(kT0), 6);
  EXPECT_EQ(bucket.TimeUntil(7, kT0), milliseconds(500));  // (7 - 6) / 2 per second
  EXPECT_EQ(bucket.TimeUntil(6, kT0), nanoseconds(0));
  EXPECT_TRUE(bucket.TryTake(7, kT0 + milliseconds(500)));
  EXPECT_NEAR(bucket.level(kT0 + milliseconds(500)), 0, 1e-9);
  // Refill stops at the capacity.
  EXPECT_DOUBLE_EQ(bucket.level(kT0 + seconds(100)), 10);
}

TEST(TokenBucket, OversizedTakeWaitsForAFullBucketAndLeavesDebt) {
  TokenBucket bucket(10, 2, kT0);
  EXPECT_TRUE(bucket.TryTake(10, kT0));
  EXPECT_FALSE(bucket.TryTake(15, kT0));
  EXPECT_EQ(bucket.TimeUntil(15, kT0), seconds(5));  // needs min(15, capacity) = 10 at 2/s
  EXPECT_TRUE(bucket.TryTake(15, kT0 + seconds(5)));
  EXPECT_DOUBLE_EQ(bucket.level(kT0 + seconds(5)), -5);
  EXPECT_EQ(bucket.TimeUntil(1, kT0 + seconds(5)), seconds(3));  // (1 - (-5)) / 2
}

TEST(TokenBucket, AdjustCorrectsAndIsCappedAtCapacity) {
  TokenBucket bucket(100, 1, kT0);
  bucket.Adjust(-150, kT0);
  EXPECT_DOUBLE_EQ(bucket.level(kT0), -50);
  bucket.Adjust(1000, kT0);
  EXPECT_DOUBLE_EQ(bucket.level(kT0), 100);
}

TEST(RateLimiter, TokensPerMinuteAndTheCorrectionOfEstimates) {
  RateLimiter limiter(/*requests_per_minute=*/60, /*tokens_per_minute=*/600, kT0);  // 1 request/s, 10 tokens/s
  ASSERT_TRUE(limiter.limits_requests());
  ASSERT_TRUE(limiter.limits_tokens());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(limiter.Reserve(100, kT0), nanoseconds(0)) << i;
  EXPECT_EQ(limiter.Reserve(100, kT0), seconds(10));  // token bucket empty: 100 tokens at 10/s
  // The six requests used 40 tokens each, not 100: 360 come back.
  for (int i = 0; i < 6; ++i) limiter.Correct(100, 40, kT0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Reserve(100, kT0), nanoseconds(0)) << i;
  EXPECT_EQ(limiter.Reserve(100, kT0), seconds(4));  // 60 left: (100 - 60) / 10
  EXPECT_EQ(limiter.Reserve(100, kT0 + seconds(4)), nanoseconds(0));
}

TEST(RateLimiter, RequestsPerMinuteAlone) {
  RateLimiter limiter(/*requests_per_minute=*/2, /*tokens_per_minute=*/0, kT0);
  EXPECT_FALSE(limiter.limits_tokens());
  EXPECT_EQ(limiter.Reserve(1e9, kT0), nanoseconds(0));  // tokens are not limited
  EXPECT_EQ(limiter.Reserve(1e9, kT0), nanoseconds(0));
  EXPECT_EQ(limiter.Reserve(1, kT0), seconds(30));  // 2 per minute: one every 30 s
  EXPECT_EQ(limiter.Reserve(1, kT0 + seconds(15)), seconds(15));
  EXPECT_EQ(limiter.Reserve(1, kT0 + seconds(30)), nanoseconds(0));
}

TEST(RateLimiter, NoLimitsNeverWait) {
  RateLimiter limiter(0, 0, kT0);
  EXPECT_FALSE(limiter.limits_requests());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(limiter.Reserve(1e6, kT0), nanoseconds(0));
}

TEST(ParseRetryAfter, SecondsAndHttpDates) {
  // Wed, 21 Oct 2015 07:28:00 GMT
  const auto now = std::chrono::system_clock::from_time_t(1445412480);
  EXPECT_EQ(ParseRetryAfter("2", now), milliseconds(2000));
  EXPECT_EQ(ParseRetryAfter(" 0.25 ", now), milliseconds(250));
  EXPECT_EQ(ParseRetryAfter("0", now), milliseconds(0));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now), milliseconds(30000));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:00:00 GMT", now), milliseconds(0));  // in the past
  EXPECT_EQ(ParseRetryAfter("", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-1", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("100000", now), std::nullopt);  // over a day
  EXPECT_EQ(ParseRetryAfter("Fri, 21 Oct 2016 07:28:00 GMT", now), std::nullopt);
}

TEST(CircuitBreaker, OpensAfterConsecutiveFailuresAndProbesAfterTheCooldown) {
  CircuitBreaker breaker(/*failure_threshold=*/3, seconds(10));
  EXPECT_TRUE(breaker.Allow(kT0));
  breaker.OnFailure(kT0);
  breaker.OnFailure(kT0);
  breaker.OnSuccess();  // resets the count
  breaker.OnFailure(kT0);
  breaker.OnFailure(kT0);
  EXPECT_EQ(breaker.state(kT0), CircuitBreaker::State::kClosed);
  breaker.OnFailure(kT0);
  EXPECT_EQ(breaker.state(kT0), CircuitBreaker::State::kOpen);
  EXPECT_EQ(breaker.times_opened(), 1);
  EXPECT_FALSE(breaker.Allow(kT0 + seconds(9)));
  breaker.OnFailure(kT0 + seconds(9));  // a request sent before it opened: no effect
  EXPECT_EQ(breaker.state(kT0 + seconds(10)), CircuitBreaker::State::kHalfOpen);
  EXPECT_TRUE(breaker.Allow(kT0 + seconds(10)));   // the probe
  EXPECT_FALSE(breaker.Allow(kT0 + seconds(10)));  // only one
  breaker.OnFailure(kT0 + seconds(11));            // the probe failed: open again for a cooldown
  EXPECT_EQ(breaker.times_opened(), 2);
  EXPECT_FALSE(breaker.Allow(kT0 + seconds(20)));
  EXPECT_TRUE(breaker.Allow(kT0 + seconds(21)));
  breaker.OnSuccess();  // the probe succeeded
  EXPECT_EQ(breaker.state(kT0 + seconds(21)), CircuitBreaker::State::kClosed);
  EXPECT_TRUE(breaker.Allow(kT0 + seconds(21)));
  EXPECT_TRUE(breaker.Allow(kT0 + seconds(21)));
  EXPECT_EQ(CircuitBreaker::StateName(CircuitBreaker::State::kHalfOpen), "half_open");
}

TEST(CircuitBreaker, ThresholdZeroNeverOpens) {
  CircuitBreaker breaker(0, seconds(10));
  for (int i = 0; i < 100; ++i) breaker.OnFailure(kT0);
  EXPECT_EQ(breaker.state(kT0), CircuitBreaker::State::kClosed);
  EXPECT_TRUE(breaker.Allow(kT0));
}

TEST(AdaptiveConcurrency, HalvesWhen429sAreAFifthOfAWindowOncePerEpochAndGrowsBackAdditively) {
  AdaptiveConcurrency concurrency({.min_limit = 2, .max_limit = 16, .adaptive = true, .latency_factor = 3});
  EXPECT_EQ(concurrency.limit(), 16);
  const int64_t first = concurrency.epoch();
  // The window is 16 answers: 3 429s are not a fifth of it, the 4th is.
  for (int i = 0; i < 3; ++i) concurrency.OnRateLimited(first);
  EXPECT_EQ(concurrency.limit(), 16);
  concurrency.OnRateLimited(first);
  EXPECT_EQ(concurrency.limit(), 8);
  for (int i = 0; i < 10; ++i) concurrency.OnRateLimited(first);  // sent under the old limit: already cut
  EXPECT_EQ(concurrency.limit(), 8);
  EXPECT_FALSE(concurrency.at_floor());
  // A window of 8 (kMinWindow): 2 429s are a fifth.
  concurrency.OnRateLimited(concurrency.epoch());
  EXPECT_EQ(concurrency.limit(), 8);
  concurrency.OnRateLimited(concurrency.epoch());
  EXPECT_EQ(concurrency.limit(), 4);
  concurrency.OnRateLimited(concurrency.epoch());
  concurrency.OnRateLimited(concurrency.epoch());
  EXPECT_EQ(concurrency.limit(), 2);  // the floor
  EXPECT_TRUE(concurrency.at_floor());
  // +1/limit per success: 2 → 2.5 → 2.9 → 3.24…
  concurrency.OnSuccess(concurrency.epoch(), 100);
  concurrency.OnSuccess(concurrency.epoch(), 100);
  EXPECT_EQ(concurrency.limit(), 2);
  concurrency.OnSuccess(concurrency.epoch(), 100);
  EXPECT_EQ(concurrency.limit(), 3);
  for (int i = 0; i < 1000; ++i) concurrency.OnSuccess(concurrency.epoch(), 100);
  EXPECT_EQ(concurrency.limit(), 16);  // the ceiling
}

TEST(AdaptiveConcurrency, BacksOffWhenMostOfAWindowIsSlowerThanTheBaseline) {
  AdaptiveConcurrency concurrency({.min_limit = 1, .max_limit = 16, .adaptive = true, .latency_factor = 3});
  concurrency.OnSuccess(concurrency.epoch(), 10);
  EXPECT_DOUBLE_EQ(concurrency.baseline_ms(), 10);
  // The window is 16 successes (the limit). The baseline drifts up 1% of the gap per success: 10 → 19.9 →
  // 29.701 → … → 148.54 after 15 answers of 1000 ms, each still above 3 × the baseline.
  for (int i = 0; i < 14; ++i) concurrency.OnSuccess(concurrency.epoch(), 1000);
  EXPECT_EQ(concurrency.limit(), 16);  // 15 of 16: the window is not complete yet
  concurrency.OnSuccess(concurrency.epoch(), 1000);
  EXPECT_EQ(concurrency.limit(), 12);  // 15 slow of 16: cut by a quarter
  EXPECT_NEAR(concurrency.baseline_ms(), 148.54222890512435, 1e-9);
  EXPECT_NEAR(concurrency.smoothed_latency_ms(), 148.54222890512435, 1e-9);  // restarted from the baseline
  const int64_t cut = concurrency.epoch();
  EXPECT_EQ(cut, 1);
  // Answers to requests sent under the old limit do not count towards the new limit's window.
  for (int i = 0; i < 40; ++i) concurrency.OnSuccess(0, 100000);
  EXPECT_EQ(concurrency.epoch(), cut);
  EXPECT_EQ(concurrency.limit(), 14);  // they are successes all the same: +1/limit each, 12 → 14.97
}

TEST(AdaptiveConcurrency, AFewSlowAnswersDoNotCutTheLimit) {
  AdaptiveConcurrency concurrency({.min_limit = 1, .max_limit = 16, .adaptive = true, .latency_factor = 3});
  // A stalled thread or one slow request: 7 answers of 1000 ms among 16 (the others at the 10 ms baseline).
  // Each slow one is above 3 × the baseline (which a 10 ms answer resets to 10), but they are not most of
  // the window.
  concurrency.OnSuccess(concurrency.epoch(), 10);
  for (int i = 0; i < 7; ++i) {
    concurrency.OnSuccess(concurrency.epoch(), 1000);
    concurrency.OnSuccess(concurrency.epoch(), 10);
  }
  concurrency.OnSuccess(concurrency.epoch(), 10);
  EXPECT_EQ(concurrency.limit(), 16);
  EXPECT_EQ(concurrency.epoch(), 0);
  EXPECT_DOUBLE_EQ(concurrency.baseline_ms(), 10);
  // A window where 9 of 16 are slow is a lasting slowdown: cut.
  for (int i = 0; i < 9; ++i) concurrency.OnSuccess(concurrency.epoch(), 1000);
  for (int i = 0; i < 7; ++i) concurrency.OnSuccess(concurrency.epoch(), 10);
  EXPECT_EQ(concurrency.limit(), 12);
}

// A hosted API's sporadic 429s (one answer in 20, Retry-After on each) are not congestion: the limit stays.
TEST(AdaptiveConcurrency, SporadicRateLimitsDoNotCutTheLimit) {
  AdaptiveConcurrency concurrency({.min_limit = 1, .max_limit = 16, .adaptive = true, .latency_factor = 3});
  for (int i = 1; i <= 2000; ++i) {
    if (i % 20 == 0) {
      concurrency.OnRateLimited(concurrency.epoch());
    } else {
      concurrency.OnSuccess(concurrency.epoch(), 100);
    }
  }
  EXPECT_EQ(concurrency.limit(), 16);
  EXPECT_EQ(concurrency.epoch(), 0);
}

TEST(AdaptiveConcurrency, FixedWhenNotAdaptive) {
  AdaptiveConcurrency concurrency({.min_limit = 1, .max_limit = 7, .adaptive = false});
  concurrency.OnRateLimited(concurrency.epoch());
  concurrency.OnSuccess(concurrency.epoch(), 5);
  concurrency.OnSuccess(concurrency.epoch(), 5000);
  EXPECT_EQ(concurrency.limit(), 7);
}

}  // namespace
}  // namespace rlj
