// retry_decision_test.cc: the dispatcher's retry classification on its own, without a server: transport
// failures (a timeout, an unreachable server: retried; a malformed URL: not), a 2xx (and one whose body is
// not JSON: retried as "parse"), 429 and 5xx (retried, with their Retry-After; what the breaker and the
// adaptive limit hear), other 4xx (failed at once, with their Status codes), and the decision that follows:
// give up when not retryable, when the retries are spent or when the wait would pass the deadline, else wait
// the Retry-After or the jittered backoff.
#include "judge/http/retry_decision.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "judge/judge_backend.h"

namespace rlj {
namespace {

using std::chrono::milliseconds;
using Result = AttemptClassification::Result;
using SteadyClock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;

constexpr char kUrl[] = "http://127.0.0.1:9/v1/chat/completions";

HttpResponse Answer(std::string body, std::string retry_after = "") {
  HttpResponse response;
  response.body = std::move(body);
  if (!retry_after.empty()) response.headers["retry-after"] = std::move(retry_after);
  return response;
}

AttemptClassification Classify(long status, const HttpResponse& response, bool require_json_body = false) {
  return ClassifyAttempt(absl::OkStatus(), status, response, kUrl, require_json_body, WallClock::now());
}

AttemptClassification Transport(const absl::Status& failure) {
  return ClassifyAttempt(failure, 0, HttpResponse(), kUrl, /*require_json_body=*/true, WallClock::now());
}

TEST(ClassifyAttempt, TransportTimeoutIsRetriedAsATimeout) {
  const AttemptClassification attempt = Transport(absl::DeadlineExceededError("POST x: Timeout was reached"));
  EXPECT_EQ(attempt.result, Result::kRetryable);
  EXPECT_EQ(attempt.code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(attempt.kind, error_kind::kTimeout);
  EXPECT_EQ(attempt.message, "POST x: Timeout was reached");
  EXPECT_FALSE(attempt.server_answered);
  EXPECT_FALSE(attempt.rate_limited);
  EXPECT_FALSE(attempt.malformed);
  EXPECT_FALSE(attempt.retry_after.has_value());
}

TEST(ClassifyAttempt, UnreachableServerIsRetriedAsAnHttpError) {
  const AttemptClassification attempt = Transport(absl::UnavailableError("POST x: Couldn't connect to server"));
  EXPECT_EQ(attempt.result, Result::kRetryable);
  EXPECT_EQ(attempt.code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(attempt.kind, error_kind::kHttpError);
  EXPECT_FALSE(attempt.server_answered);
}

TEST(ClassifyAttempt, MalformedUrlIsNotRetried) {
  const AttemptClassification attempt = Transport(absl::InvalidArgumentError("POST x: URL using bad/illegal format"));
  EXPECT_EQ(attempt.result, Result::kFailed);
  EXPECT_EQ(attempt.code, absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(attempt.kind, error_kind::kHttpError);
  EXPECT_EQ(attempt.message, "POST x: URL using bad/illegal format");
  EXPECT_FALSE(attempt.server_answered);
}

TEST(ClassifyAttempt, TwoHundredsSucceed) {
  for (const long status : {200L, 201L, 204L, 299L}) {
    const AttemptClassification attempt = Classify(status, Answer(R"({"ok":1})", "5"), /*require_json_body=*/true);
    EXPECT_EQ(attempt.result, Result::kSucceeded) << status;
    EXPECT_EQ(attempt.code, absl::StatusCode::kOk) << status;
    EXPECT_TRUE(attempt.kind.empty()) << status;
    EXPECT_TRUE(attempt.message.empty()) << status;
    EXPECT_TRUE(attempt.server_answered) << status;
    EXPECT_FALSE(attempt.retry_after.has_value()) << status;
  }
  // Without require_json_body any body will do.
  EXPECT_EQ(Classify(200, Answer("<html>oops</html>")).result, Result::kSucceeded);
}

TEST(ClassifyAttempt, BodyThatIsNotJsonIsRetriedAsParse) {
  const AttemptClassification attempt = Classify(200, Answer("<html>oops</html>", "1"), /*require_json_body=*/true);
  EXPECT_EQ(attempt.result, Result::kRetryable);
  EXPECT_EQ(attempt.code, absl::StatusCode::kDataLoss);
  EXPECT_EQ(attempt.kind, error_kind::kParse);
  EXPECT_EQ(attempt.message, absl::StrCat("HTTP 200 from ", kUrl, " with a body that is not JSON: <html>oops</html>"));
  EXPECT_TRUE(attempt.malformed);
  EXPECT_FALSE(attempt.server_answered);  // counts toward the breaker like a 5xx
  EXPECT_FALSE(attempt.rate_limited);
  EXPECT_FALSE(attempt.retry_after.has_value());  // a 2xx's Retry-After is not read
}

TEST(ClassifyAttempt, RateLimitedIsRetriedAfterItsRetryAfter) {
  const AttemptClassification attempt = Classify(429, Answer(R"({"error":"slow down"})", "2.5"));
  EXPECT_EQ(attempt.result, Result::kRetryable);
  EXPECT_EQ(attempt.code, absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(attempt.kind, error_kind::kRateLimited);
  EXPECT_EQ(attempt.message, absl::StrCat("HTTP 429 from ", kUrl, R"(: {"error":"slow down"})"));
  EXPECT_TRUE(attempt.rate_limited);
  EXPECT_TRUE(attempt.server_answered);  // a 429 closes the breaker: the server answers
  EXPECT_FALSE(attempt.malformed);
  ASSERT_TRUE(attempt.retry_after.has_value());
  EXPECT_EQ(*attempt.retry_after, milliseconds(2500));

  EXPECT_FALSE(Classify(429, Answer("")).retry_after.has_value());
  EXPECT_FALSE(Classify(429, Answer("", "soon")).retry_after.has_value());  // malformed: the backoff applies
}

TEST(ClassifyAttempt, ServerErrorsAreRetriedAndCountAgainstTheBreaker) {
  for (const long status : {500L, 502L, 503L, 504L}) {
    const AttemptClassification attempt = Classify(status, Answer(""));
    EXPECT_EQ(attempt.result, Result::kRetryable) << status;
    EXPECT_EQ(attempt.code, absl::StatusCode::kUnavailable) << status;
    EXPECT_EQ(attempt.kind, error_kind::kHttpError) << status;
    EXPECT_EQ(attempt.message, absl::StrCat("HTTP ", status, " from ", kUrl)) << status;  // no body: no colon
    EXPECT_FALSE(attempt.server_answered) << status;
    EXPECT_FALSE(attempt.rate_limited) << status;
    EXPECT_FALSE(attempt.retry_after.has_value()) << status;
  }
  // A Retry-After as an HTTP date: its distance from the wall clock's now.
  const WallClock::time_point now = WallClock::from_time_t(1445412480) - std::chrono::seconds(30);
  const AttemptClassification dated =
      ClassifyAttempt(absl::OkStatus(), 503, Answer("down", "Wed, 21 Oct 2015 07:28:00 GMT"), kUrl, false, now);
  ASSERT_TRUE(dated.retry_after.has_value());
  EXPECT_EQ(*dated.retry_after, milliseconds(30000));
}

TEST(ClassifyAttempt, OtherStatusesFailAtOnceWithTheirCodes) {
  const std::pair<long, absl::StatusCode> cases[] = {
      {400, absl::StatusCode::kInvalidArgument},   {401, absl::StatusCode::kUnauthenticated},
      {403, absl::StatusCode::kPermissionDenied},  {404, absl::StatusCode::kNotFound},
      {422, absl::StatusCode::kInvalidArgument},   {409, absl::StatusCode::kFailedPrecondition},
      {302, absl::StatusCode::kFailedPrecondition}};
  for (const auto& [status, code] : cases) {
    const AttemptClassification attempt = Classify(status, Answer("no", "1"));
    EXPECT_EQ(attempt.result, Result::kFailed) << status;
    EXPECT_EQ(attempt.code, code) << status;
    EXPECT_EQ(attempt.kind, error_kind::kHttpError) << status;
    EXPECT_EQ(attempt.message, absl::StrCat("HTTP ", status, " from ", kUrl, ": no")) << status;
    EXPECT_TRUE(attempt.server_answered) << status;  // the server answers; the request was wrong
    EXPECT_FALSE(attempt.retry_after.has_value()) << status;
  }
}

TEST(ClassifyAttempt, QuotesAtMostTheStartOfALongBody) {
  const AttemptClassification attempt = Classify(500, Answer(std::string(5000, 'x')));
  const std::string prefix = absl::StrCat("HTTP 500 from ", kUrl, ": ");
  ASSERT_EQ(attempt.message.size(), prefix.size() + kMaxQuotedBodyBytes);
  EXPECT_EQ(attempt.message.substr(0, prefix.size()), prefix);
}

AttemptClassification Retryable(std::optional<milliseconds> retry_after = std::nullopt) {
  AttemptClassification attempt;
  attempt.result = Result::kRetryable;
  attempt.code = absl::StatusCode::kUnavailable;
  attempt.kind = error_kind::kHttpError;
  attempt.message = "HTTP 503 from u";
  attempt.retry_after = retry_after;
  return attempt;
}

const BackoffPolicy kBackoff{milliseconds(100), milliseconds(1000)};

TEST(DecideRetry, WhatWouldFailAgainIsGivenUpWithItsMessage) {
  std::mt19937_64 random(1);
  AttemptClassification attempt = Retryable();
  attempt.result = Result::kFailed;
  attempt.message = "HTTP 401 from u: bad key";
  const auto now = SteadyClock::now();
  const RetryDecision decision = DecideRetry(attempt, 1, 3, kBackoff, random, now, now + std::chrono::hours(1));
  EXPECT_FALSE(decision.retry);
  EXPECT_EQ(decision.message, "HTTP 401 from u: bad key");
}

TEST(DecideRetry, StopsWhenTheRetriesAreSpent) {
  std::mt19937_64 random(1);
  const auto now = SteadyClock::now();
  const auto deadline = now + std::chrono::hours(1);
  EXPECT_TRUE(DecideRetry(Retryable(), 3, 3, kBackoff, random, now, deadline).retry);
  const RetryDecision spent = DecideRetry(Retryable(), 4, 3, kBackoff, random, now, deadline);
  EXPECT_FALSE(spent.retry);
  EXPECT_EQ(spent.message, "HTTP 503 from u (4 attempts)");
  const RetryDecision none = DecideRetry(Retryable(), 1, 0, kBackoff, random, now, deadline);
  EXPECT_FALSE(none.retry);
  EXPECT_EQ(none.message, "HTTP 503 from u (1 attempt)");
}

TEST(DecideRetry, WaitsTheRetryAfterElseTheJitteredBackoff) {
  std::mt19937_64 random(7);
  const auto now = SteadyClock::now();
  const auto deadline = now + std::chrono::hours(1);
  const RetryDecision told = DecideRetry(Retryable(milliseconds(4321)), 1, 3, kBackoff, random, now, deadline);
  EXPECT_TRUE(told.retry);
  EXPECT_EQ(told.wait, milliseconds(4321));  // above the backoff's cap: the server's word wins
  for (int attempts = 1; attempts <= 6; ++attempts) {
    const milliseconds ceiling = std::min(kBackoff.cap, kBackoff.base * (1 << (attempts - 1)));
    for (int draw = 0; draw < 50; ++draw) {
      const RetryDecision decision = DecideRetry(Retryable(), attempts, 10, kBackoff, random, now, deadline);
      ASSERT_TRUE(decision.retry);
      EXPECT_GE(decision.wait, milliseconds(0));
      EXPECT_LE(decision.wait, ceiling) << attempts;
    }
  }
}

TEST(DecideRetry, GivesUpWhenTheWaitWouldPassTheDeadline) {
  std::mt19937_64 random(1);
  const auto now = SteadyClock::now();
  const RetryDecision late =
      DecideRetry(Retryable(milliseconds(5000)), 2, 3, kBackoff, random, now, now + milliseconds(1000));
  EXPECT_FALSE(late.retry);
  EXPECT_EQ(late.message, "HTTP 503 from u (2 attempts; waiting 5000 ms more would pass the request's deadline)");
  // Ending exactly at the deadline is too late as well.
  EXPECT_FALSE(DecideRetry(Retryable(milliseconds(1000)), 1, 3, kBackoff, random, now, now + milliseconds(1000)).retry);
  EXPECT_TRUE(DecideRetry(Retryable(milliseconds(999)), 1, 3, kBackoff, random, now, now + milliseconds(1000)).retry);
}

TEST(AttemptsText, SingularAndPlural) {
  EXPECT_EQ(AttemptsText(1), "1 attempt");
  EXPECT_EQ(AttemptsText(2), "2 attempts");
  EXPECT_EQ(AttemptsText(0), "0 attempts");
}

}  // namespace
}  // namespace rlj
