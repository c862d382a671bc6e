// retry_decision.cc: an attempt's classification (transport failure, body that is not JSON, 2xx, HTTP
// error) and the retry-or-give-up rule that follows it.
#include "judge/http/retry_decision.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "judge/http/retry_after.h"
#include "judge/judge_backend.h"
#include "judge/score_parser.h"

namespace rlj {
namespace {

using Result = AttemptClassification::Result;

// The Status code a final HTTP error status stands for.
absl::StatusCode CodeForHttpStatus(int status) {
  switch (status) {
    case 400:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    default:
      return status >= 500 ? absl::StatusCode::kUnavailable : absl::StatusCode::kFailedPrecondition;
  }
}

AttemptClassification TransportFailure(const absl::Status& transport) {
  AttemptClassification attempt;
  attempt.code = transport.code();
  attempt.kind =
      transport.code() == absl::StatusCode::kDeadlineExceeded ? error_kind::kTimeout : error_kind::kHttpError;
  attempt.message = std::string(transport.message());
  attempt.result = transport.code() != absl::StatusCode::kInvalidArgument ? Result::kRetryable : Result::kFailed;
  return attempt;
}

AttemptClassification MalformedBody(long status, const HttpResponse& response, const std::string& url) {
  AttemptClassification attempt;
  const std::string quoted = TruncateUtf8(response.body, kMaxQuotedBodyBytes);
  attempt.code = absl::StatusCode::kDataLoss;
  attempt.kind = error_kind::kParse;
  attempt.message = absl::StrCat("HTTP ", status, " from ", url, " with a body that is not JSON: ", quoted);
  attempt.result = Result::kRetryable;
  attempt.malformed = true;
  return attempt;
}

AttemptClassification HttpError(long status, const HttpResponse& response, const std::string& url,
                                std::chrono::system_clock::time_point wall_now) {
  AttemptClassification attempt;
  const std::string quoted = TruncateUtf8(response.body, kMaxQuotedBodyBytes);
  attempt.code = CodeForHttpStatus(static_cast<int>(status));
  attempt.kind = status == 429 ? error_kind::kRateLimited : error_kind::kHttpError;
  attempt.message = absl::StrCat("HTTP ", status, " from ", url, quoted.empty() ? "" : ": ", quoted);
  attempt.rate_limited = status == 429;
  // A 429 closes the breaker too (a half-open probe answered by a 429 must not leave it waiting for its probe
  // forever; the rate limit is the concurrency's and Retry-After's business); a 4xx: the request was wrong.
  attempt.server_answered = status < 500;
  attempt.result = status == 429 || status >= 500 ? Result::kRetryable : Result::kFailed;
  if (attempt.result == Result::kRetryable) {
    attempt.retry_after = ParseRetryAfter(response.Header("retry-after"), wall_now);
  }
  return attempt;
}

}  // namespace

AttemptClassification ClassifyAttempt(const absl::Status& transport, long status, const HttpResponse& response,
                                      const std::string& url, bool require_json_body,
                                      std::chrono::system_clock::time_point wall_now) {
  if (!transport.ok()) return TransportFailure(transport);
  const bool success = status >= 200 && status < 300;
  if (success && require_json_body && !nlohmann::json::accept(response.body)) {
    return MalformedBody(status, response, url);
  }
  if (!success) return HttpError(status, response, url, wall_now);
  AttemptClassification attempt;
  attempt.result = Result::kSucceeded;
  attempt.server_answered = true;
  return attempt;
}

RetryDecision DecideRetry(const AttemptClassification& attempt, int attempts, int max_retries,
                          const BackoffPolicy& backoff, std::mt19937_64& random,
                          std::chrono::steady_clock::time_point now, std::chrono::steady_clock::time_point deadline) {
  RetryDecision decision;
  if (attempt.result != Result::kRetryable) {
    decision.message = attempt.message;
    return decision;
  }
  if (attempts > max_retries) {
    decision.message = absl::StrCat(attempt.message, " (", AttemptsText(attempts), ")");
    return decision;
  }
  const std::chrono::milliseconds wait =
      attempt.retry_after ? *attempt.retry_after : BackoffDelay(attempts - 1, backoff, random);
  if (now + wait >= deadline) {
    decision.message = absl::StrCat(attempt.message, " (", AttemptsText(attempts), "; waiting ", wait.count(),
                                    " ms more would pass the request's deadline)");
    return decision;
  }
  decision.retry = true;
  decision.wait = wait;
  return decision;
}

std::string AttemptsText(int n) { return absl::StrCat(n, n == 1 ? " attempt" : " attempts"); }

}  // namespace rlj
