// retry_decision.h: what the HTTP dispatcher makes of one finished attempt (a 2xx to hand back, a failure
// worth retrying, or one that would fail again, and what it tells the circuit breaker and the adaptive
// limit), then whether a failure is retried and after how long, or given up with which message. Pure
// functions of what the attempt saw, so tests call them without a server.
#pragma once

#include <chrono>
#include <optional>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "common/retry_policy.h"
#include "judge/http/http_client.h"

namespace rlj {

// Bytes of an error response body quoted in an error message.
inline constexpr size_t kMaxQuotedBodyBytes = 300;

// One attempt, classified.
struct AttemptClassification {
  enum class Result {
    kSucceeded,  // a 2xx (with a JSON body when one is required): the request's answer
    kRetryable,  // 429, 5xx, a 2xx whose body is not JSON, a transport failure other than a malformed URL
    kFailed,     // would fail again: another HTTP status, a malformed URL
  };
  Result result = Result::kFailed;
  // A failure's Status code, error kind (error_kind) and message; kOk and empty for a success.
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string kind;
  std::string message;
  // For the circuit breaker: the server answered (a 2xx, a 429, another 4xx: the request was wrong), or it
  // did not (a transport failure, a 5xx, a 2xx whose body is not JSON).
  bool server_answered = false;
  bool rate_limited = false;  // a 429: the adaptive limit is cut
  bool malformed = false;     // a 2xx whose body is not JSON (require_json_body)
  // A retryable HTTP error's Retry-After (429 or 5xx); nullopt: none, or not usable (the backoff applies).
  std::optional<std::chrono::milliseconds> retry_after;
};

// The attempt of a request to `url` ended with `transport` (not OK: no HTTP answer, as curl::TransportError
// maps it) or with HTTP `status` and `response`. `require_json_body`: a 2xx whose body is not JSON is a
// retryable failure of kind "parse". `wall_now` dates a Retry-After given as an HTTP date.
AttemptClassification ClassifyAttempt(const absl::Status& transport, long status, const HttpResponse& response,
                                      const std::string& url, bool require_json_body,
                                      std::chrono::system_clock::time_point wall_now);

// Retry a failed attempt after `wait`, or give up with `message`.
struct RetryDecision {
  bool retry = false;
  std::chrono::milliseconds wait{0};  // retry: the attempt's Retry-After, else the jittered backoff
  std::string message;                // give up: the attempt's message, with why the retries stop
};

// The `attempts`-th attempt of a request failed as `attempt` says at `now`. It is retried when it is
// retryable, at most `max_retries` times (attempts <= max_retries), and only when its wait (its Retry-After,
// else BackoffDelay(attempts - 1) drawn from `random`) ends before the request's `deadline`.
RetryDecision DecideRetry(const AttemptClassification& attempt, int attempts, int max_retries,
                          const BackoffPolicy& backoff, std::mt19937_64& random,
                          std::chrono::steady_clock::time_point now, std::chrono::steady_clock::time_point deadline);

// "1 attempt", "3 attempts": how error messages count a request's attempts.
std::string AttemptsText(int n);

}  // namespace rlj
