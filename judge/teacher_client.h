// teacher_client.h: what every HTTP teacher backend (openai, anthropic) shares around its HttpDispatcher:
// the judge cache in front of the teacher (hits skip it), headers with the API key, redaction of that key
// from everything that leaves, usage and cost accounting into the UsageLedger, the budget check, and the
// backend's live state for Judge.Status. A backend renders request bodies and reads answers; this sends.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "judge/http/http_dispatcher.h"
#include "judge/judge_cache.h"
#include "judge/usage_ledger.h"
#include "rlj/v1/judge.pb.h"

namespace rlj {

struct TeacherClientOptions {
  std::string label;  // the backend's name in Judge.Status ("openai", an ensemble component's name, …)
  std::string kind;   // "openai" | "anthropic"
  std::string model;
  // Whatever besides the body decides the answer or how it is read (mode, parse settings); part of the
  // cache key together with the URL and the body.
  std::string identity;
  std::string api_key;                                       // redacted from every message; may be empty
  std::vector<std::pair<std::string, std::string>> headers;  // sent with every request (may hold the key)
  double price_input_per_1k = 0;
  double price_output_per_1k = 0;
  bool use_cache = true;  // and a cache was given
  HttpDispatcherOptions dispatch;
};

// One question for the teacher.
struct TeacherAsk {
  std::string url;
  std::string body;
  double estimated_tokens = 0;  // for the TPM bucket
  bool bypass_cache = false;    // a second opinion: ask the teacher even when the cache has an answer
};

// What came back: a 2xx body (from the teacher or the cache), or an error.
struct TeacherAnswer {
  std::optional<std::string> body;
  bool cache_hit = false;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string kind;     // error_kind when there is no body
  std::string message;  // redacted
  double latency_ms = 0;
  double estimated_tokens = 0;
  std::string cache_key;  // empty when the cache is off
};

class TeacherClient {
 public:
  // `cache` and `ledger` may be null (no caching, no accounting); not owned.
  static absl::StatusOr<std::unique_ptr<TeacherClient>> Create(TeacherClientOptions options, JudgeCache* cache,
                                                               UsageLedger* ledger);

  // Answers each ask from the cache, or sends it (all concurrently, under the backend's limits) and waits.
  std::vector<TeacherAnswer> Ask(std::vector<TeacherAsk> asks, SteadyTime deadline);

  // Books one answer once read: its tokens and cost (returned) into the ledger, the real token count into the
  // TPM bucket. `usable`: the answer gave a verdict (else it counts as a failure). A cache hit costs nothing.
  double Account(const TeacherAnswer& answer, int64_t tokens_in, int64_t tokens_out, bool usable);

  // Stores answers that were read successfully, so the same request is not asked again.
  void Remember(const std::vector<const TeacherAnswer*>& answers);

  // `text` with the API key replaced by "[redacted]".
  std::string Redact(std::string text) const;

  // The dispatcher's live state (limit, in flight, circuit, retries) into this backend's status entry.
  void CollectStatus(v1::JudgeStatus* status) const;

  const TeacherClientOptions& options() const { return options_; }

 private:
  TeacherClient(TeacherClientOptions options, JudgeCache* cache, UsageLedger* ledger);
  TeacherClientOptions options_;
  JudgeCache* cache_;
  UsageLedger* ledger_;
  std::unique_ptr<HttpDispatcher> dispatcher_;
};

// Reads an API key from the environment variable `variable` (config key `key_path` for messages): unset or
// empty is FailedPrecondition naming the variable; a line break in it is InvalidArgument.
absl::StatusOr<std::string> ApiKeyFromEnv(const std::string& variable, const std::string& key_path,
                                          const std::function<std::optional<std::string>(const std::string&)>& env);

// HttpDispatcherOptions from a config section with the shared machinery keys (OpenAIJudgeConfig,
// AnthropicJudgeConfig).
template <typename Section>
HttpDispatcherOptions DispatcherOptionsFrom(const Section& section, std::string name) {
  HttpDispatcherOptions options;
  options.name = std::move(name);
  options.max_concurrency = section.max_concurrency();
  options.min_concurrency = std::min(section.min_concurrency(), section.max_concurrency());
  options.adaptive = section.adaptive_concurrency();
  options.latency_factor = section.latency_backoff_factor();
  options.requests_per_minute = section.requests_per_minute();
  options.tokens_per_minute = section.tokens_per_minute();
  options.max_retries = section.max_retries();
  options.backoff.base = std::chrono::milliseconds(section.retry_base_ms());
  options.backoff.cap = std::chrono::milliseconds(section.retry_cap_ms());
  options.request_timeout = std::chrono::milliseconds(section.timeout_ms());
  options.breaker_failures = section.breaker_failures();
  options.breaker_cooldown = std::chrono::milliseconds(section.breaker_cooldown_ms());
  return options;
}

}  // namespace rlj
