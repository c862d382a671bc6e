// retry_policy_test.cc: the one retry policy on its own: which codes are transient, the jittered exponential
// backoff's bounds, and the retry loop (succeeds after transient failures, stops at once on a lasting one,
// gives up with the last error when its budget would pass).
#include "common/retry_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>

namespace rlj {
namespace {

using std::chrono::milliseconds;

TEST(RetryPolicy, TransientCodes) {
  for (const absl::StatusCode code : {absl::StatusCode::kUnavailable, absl::StatusCode::kDeadlineExceeded,
                                      absl::StatusCode::kResourceExhausted, absl::StatusCode::kAborted}) {
    EXPECT_TRUE(IsTransient(code)) << absl::StatusCodeToString(code);
  }
  for (const absl::StatusCode code :
       {absl::StatusCode::kOk, absl::StatusCode::kInvalidArgument, absl::StatusCode::kInternal,
        absl::StatusCode::kDataLoss, absl::StatusCode::kCancelled, absl::StatusCode::kPermissionDenied,
        absl::StatusCode::kNotFound}) {
    EXPECT_FALSE(IsTransient(code)) << absl::StatusCodeToString(code);
  }
}

TEST(BackoffDelay, FullJitterUnderTheExponentialCeiling) {
  const BackoffPolicy policy{milliseconds(100), milliseconds(1000)};
  std::mt19937_64 random(7);
  // Ceilings: 100, 200, 400, 800, then the cap 1000.
  const int64_t ceilings[] = {100, 200, 400, 800, 1000, 1000};
  for (int attempt = 0; attempt < 6; ++attempt) {
    int64_t lowest = 1 << 30, highest = -1;
    for (int i = 0; i < 2000; ++i) {
      const int64_t delay = BackoffDelay(attempt, policy, random).count();
      lowest = std::min(lowest, delay);
      highest = std::max(highest, delay);
    }
    EXPECT_GE(lowest, 0) << attempt;
    EXPECT_LE(highest, ceilings[attempt]) << attempt;
    // 2000 uniform draws: the extremes come within 2% of both ends.
    EXPECT_LE(lowest, ceilings[attempt] / 50 + 1) << attempt;
    EXPECT_GE(highest, ceilings[attempt] * 49 / 50) << attempt;
  }
  EXPECT_LE(BackoffDelay(63, policy, random).count(), 1000);  // no overflow for huge attempts
}

TEST(RetryPolicy, RetriesTransientFailuresUntilSuccess) {
  int calls = 0;
  const absl::Status status =
      RetryWithBackoff("test call", std::chrono::seconds(60), {milliseconds(1), milliseconds(2)},
                       [&] { return ++calls < 4 ? absl::UnavailableError("not yet") : absl::OkStatus(); });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(calls, 4);
}

TEST(RetryPolicy, StopsAtOnceOnALastingFailure) {
  int calls = 0;
  const absl::Status status =
      RetryWithBackoff("test call", std::chrono::seconds(60), {milliseconds(1), milliseconds(2)}, [&] {
        ++calls;
        return absl::InvalidArgumentError("bad request");
      });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(calls, 1);
}

TEST(RetryPolicy, GivesUpWithTheLastErrorWhenTheBudgetWouldPass) {
  int calls = 0;
  const absl::Status status =
      RetryWithBackoff("test call", milliseconds(50), {milliseconds(20), milliseconds(20)}, [&] {
        ++calls;
        return absl::DeadlineExceededError("slow " + std::to_string(calls));
      });
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(status.message(), "slow " + std::to_string(calls)) << "the last error, not the first";
  EXPECT_GE(calls, 1);
}

}  // namespace
}  // namespace rlj
