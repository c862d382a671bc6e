// openai_backend.cc: rubric requests to an OpenAI-compatible chat endpoint, retries with backoff, and the
// reading of choices[0].message.content into a verdict.
#include "judge/backends/openai_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/log.h"
#include "common/status.h"
#include "judge/rubric_template.h"
#include "nlohmann/json.hpp"

namespace rlj {
namespace {

using nlohmann::json;

// Bytes of an error response body quoted in a verdict's error message.
constexpr size_t kMaxQuotedBodyBytes = 300;

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

std::string Dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

// The gRPC code a non-retried HTTP status stands for.
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

// Retry-After in seconds (the HTTP-date form is ignored: the backoff applies then).
std::optional<std::chrono::milliseconds> RetryAfter(const HttpResponse& response) {
  const std::string value = response.Header("retry-after");
  double seconds = 0;
  if (value.empty() || !absl::SimpleAtod(absl::StripAsciiWhitespace(value), &seconds) || !(seconds >= 0) ||
      seconds > 86400) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(std::ceil(seconds * 1000)));
}

std::string StrippedBaseUrl(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

}  // namespace

absl::StatusOr<std::unique_ptr<OpenAIBackend>> OpenAIBackend::Create(const v1::JudgeConfig& config,
                                                                     const JudgeBackendDeps& deps) {
  const v1::OpenAIJudgeConfig& o = config.openai();
  if (o.model().empty()) return absl::InvalidArgumentError("judge.openai.model is required with judge.backend: openai");
  if (o.rubric().empty()) return absl::InvalidArgumentError("judge.openai.rubric is required with judge.backend: openai");
  if (o.base_url().empty()) return absl::InvalidArgumentError("judge.openai.base_url must not be empty");
  if (!(o.score_max() > o.score_min())) {
    return absl::InvalidArgumentError("judge.openai.score_max must be > judge.openai.score_min");
  }
  if (o.timeout_ms() <= 0) return absl::InvalidArgumentError("judge.openai.timeout_ms must be > 0");
  if (o.max_retries() < 0) return absl::InvalidArgumentError("judge.openai.max_retries must be >= 0");
  if (o.max_concurrency() < 1) return absl::InvalidArgumentError("judge.openai.max_concurrency must be >= 1");
  if (config.timeout_ms() <= 0) return absl::InvalidArgumentError("judge.timeout_ms must be > 0");

  std::string api_key;
  if (!o.api_key_env().empty()) {
    std::optional<std::string> value = deps.env ? deps.env(o.api_key_env()) : GetEnv(o.api_key_env());
    if (value) api_key = std::string(absl::StripAsciiWhitespace(*value));
    if (api_key.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("judge.openai.api_key_env: the environment variable ",
                                                        o.api_key_env(), " is not set or empty"));
    }
    if (api_key.find_first_of("\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("the environment variable ", o.api_key_env(), " holds a line break; not a usable API key"));
    }
  }
  auto parser = ScoreParser::Create(o.score_key(), o.score_pattern());
  if (!parser.ok()) return Annotate(parser.status(), "judge.openai");

  std::unique_ptr<HttpClient> owned_http;
  HttpClient* http = deps.http_client;
  if (http == nullptr) {
    owned_http = std::make_unique<CurlHttpClient>();
    http = owned_http.get();
  }
  return std::unique_ptr<OpenAIBackend>(
      new OpenAIBackend(config, std::move(api_key), http, std::move(owned_http), std::move(parser).value()));
}

OpenAIBackend::OpenAIBackend(const v1::JudgeConfig& config, std::string api_key, HttpClient* http,
                             std::unique_ptr<HttpClient> owned_http, ScoreParser parser)
    : config_(config.openai()),
      url_(StrippedBaseUrl(config.openai().base_url()) + "/chat/completions"),
      api_key_(std::move(api_key)),
      owned_http_(std::move(owned_http)),
      http_(http),
      parser_(std::move(parser)) {
  // Leave the actor a moment to receive the reply before its own deadline passes.
  const int64_t call_ms = config.timeout_ms();
  call_timeout_ = std::chrono::milliseconds(call_ms - std::min<int64_t>(1000, call_ms / 10));
  scale_ = ScoreScale{config_.score_min(), config_.score_max(), config_.reward_min(), config_.reward_max()};
}

OpenAIBackend::~OpenAIBackend() = default;

std::vector<Judgement> OpenAIBackend::Score(const std::vector<v1::Sample>& samples) {
  const Clock::time_point deadline = Clock::now() + call_timeout_;
  std::vector<Judgement> judgements(samples.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next.fetch_add(1); i < samples.size(); i = next.fetch_add(1)) {
      judgements[i] = ScoreOne(samples[i], deadline);
    }
  };
  const size_t workers = std::min<size_t>(samples.size(), static_cast<size_t>(config_.max_concurrency()));
  std::vector<std::thread> threads;
  for (size_t k = 1; k < workers; ++k) {
    try {
      threads.emplace_back(work);
    } catch (const std::system_error& e) {  // out of threads: the ones running (and this one) do the rest
      RLJ_EVERY(10, log::Warn("openai judge: cannot start a worker thread: {}", e.what()));
      break;
    }
  }
  work();
  for (std::thread& thread : threads) thread.join();
  return judgements;
}

Judgement OpenAIBackend::ScoreOne(const v1::Sample& sample, Clock::time_point deadline) const {
  const Clock::time_point start = Clock::now();
  Judgement judgement;
  v1::Verdict& verdict = judgement.verdict;
  verdict.set_sample_id(sample.id());
  verdict.set_model(config_.model());
  try {
    HttpRequest request;
    request.method = "POST";
    request.url = url_;
    request.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    if (!api_key_.empty()) request.headers.emplace_back("Authorization", absl::StrCat("Bearer ", api_key_));
    request.body = RubricRequestBody(sample);
    ExchangeResult result = Exchange(std::move(request), deadline);
    if (result.response) {
      ReadRubricAnswer(*result.response, &judgement);
    } else {
      SetVerdictError(&verdict, result.code, result.kind, result.message);
    }
  } catch (const std::exception& e) {  // nothing here should throw; if it does, it is this sample's error
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kBackend,
                    Redact(absl::StrCat("openai judge: ", e.what())));
  }
  verdict.set_latency_ms(MillisecondsSince(start));
  return judgement;
}

OpenAIBackend::ExchangeResult OpenAIBackend::Exchange(HttpRequest request, Clock::time_point deadline) const {
  const std::chrono::milliseconds per_request(config_.timeout_ms());
  ExchangeResult result;
  for (int attempt = 0;; ++attempt) {
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (remaining.count() <= 0) {
      result.code = absl::StatusCode::kDeadlineExceeded;
      result.kind = error_kind::kTimeout;
      result.message = attempt == 0 ? "the Score call's deadline passed before the teacher was asked"
                                    : absl::StrCat(result.message, "; then the Score call's deadline passed");
      return result;
    }
    request.timeout = std::min(per_request, remaining);
    ++result.attempts;
    absl::StatusOr<HttpResponse> response = http_->Send(request);
    std::optional<std::chrono::milliseconds> retry_after;
    bool retryable = true;
    if (!response.ok()) {
      result.code = response.status().code();
      result.kind =
          result.code == absl::StatusCode::kDeadlineExceeded ? error_kind::kTimeout : error_kind::kHttpError;
      result.message = Redact(std::string(response.status().message()));
      retryable = result.code != absl::StatusCode::kInvalidArgument;
    } else if (response->status >= 200 && response->status < 300) {
      result.response = std::move(response).value();
      return result;
    } else {
      const int status = response->status;
      result.code = CodeForHttpStatus(status);
      result.kind = status == 429 ? error_kind::kRateLimited : error_kind::kHttpError;
      const std::string quoted = TruncateUtf8(response->body, kMaxQuotedBodyBytes);
      result.message = Redact(absl::StrCat("HTTP ", status, " from ", url_, quoted.empty() ? "" : ": ", quoted));
      retryable = status == 429 || status >= 500;
      if (retryable) retry_after = RetryAfter(*response);
    }
    if (!retryable) return result;
    if (attempt >= config_.max_retries()) {
      absl::StrAppend(&result.message, " (", result.attempts, result.attempts == 1 ? " attempt)" : " attempts)");
      return result;
    }
    const std::chrono::milliseconds wait = retry_after ? *retry_after : Backoff(attempt);
    if (Clock::now() + wait >= deadline) {
      absl::StrAppend(&result.message, " (", result.attempts, result.attempts == 1 ? " attempt" : " attempts",
                      "; waiting ", wait.count(), " ms more would pass the Score call's deadline)");
      return result;
    }
    std::this_thread::sleep_for(wait);  // backoff before the next attempt
  }
}

std::chrono::milliseconds OpenAIBackend::Backoff(int attempt) const {
  thread_local std::mt19937_64 random(std::random_device{}());
  const int64_t base = retry_.base.count();
  const int64_t cap = retry_.cap.count();
  const int64_t ceiling = attempt >= 30 ? cap : std::min<int64_t>(cap, base << attempt);
  std::uniform_int_distribution<int64_t> uniform(0, std::max<int64_t>(0, ceiling));
  return std::chrono::milliseconds(uniform(random));
}

std::string OpenAIBackend::RubricRequestBody(const v1::Sample& sample) const {
  json messages = json::array();
  if (!config_.system_prompt().empty()) {
    messages.push_back({{"role", "system"}, {"content", config_.system_prompt()}});
  }
  messages.push_back(
      {{"role", "user"},
       {"content", RenderRubric(config_.rubric(), {sample.prompt(), sample.completion(), sample.reference()})}});
  json body = {
      {"model", config_.model()},
      {"messages", std::move(messages)},
      {"temperature", config_.temperature()},
      {"max_tokens", config_.max_tokens()},
  };
  return Dump(body);
}

void OpenAIBackend::ReadRubricAnswer(const HttpResponse& response, Judgement* judgement) const {
  v1::Verdict& verdict = judgement->verdict;
  judgement->raw_response = Redact(response.body);
  const json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    "the teacher's response is not a JSON object");
    return;
  }
  if (auto usage = body.find("usage"); usage != body.end() && usage->is_object()) {
    if (auto n = usage->find("prompt_tokens"); n != usage->end() && n->is_number_integer()) {
      verdict.set_tokens_in(n->get<int64_t>());
    }
    if (auto n = usage->find("completion_tokens"); n != usage->end() && n->is_number_integer()) {
      verdict.set_tokens_out(n->get<int64_t>());
    }
  }
  const json* choice = nullptr;
  if (auto choices = body.find("choices"); choices != body.end() && choices->is_array() && !choices->empty() &&
                                           (*choices)[0].is_object()) {
    choice = &(*choices)[0];
  }
  const json* message = nullptr;
  if (choice != nullptr) {
    if (auto m = choice->find("message"); m != choice->end() && m->is_object()) message = &*m;
  }
  if (message == nullptr) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    "the teacher's response has no choices[0].message");
    return;
  }
  std::string content;
  if (auto c = message->find("content"); c != message->end() && c->is_string()) content = c->get<std::string>();
  std::string refusal;
  if (auto r = message->find("refusal"); r != message->end() && r->is_string()) refusal = r->get<std::string>();
  std::string finish_reason;
  if (auto f = choice->find("finish_reason"); f != choice->end() && f->is_string()) {
    finish_reason = f->get<std::string>();
  }
  if (!refusal.empty() || finish_reason == "content_filter") {
    judgement->raw_response = Redact(!content.empty() ? content : !refusal.empty() ? refusal : response.body);
    verdict.set_rationale(Redact(TruncateUtf8(refusal.empty() ? content : refusal, kMaxRationaleBytes)));
    SetVerdictError(&verdict, absl::StatusCode::kFailedPrecondition, error_kind::kRefusal,
                    refusal.empty() ? "the teacher's answer was withheld by its content filter"
                                    : Redact(absl::StrCat("the teacher refused: ", TruncateUtf8(refusal, 300))));
    return;
  }
  if (content.empty()) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    "the teacher's answer (choices[0].message.content) is empty or missing");
    return;
  }
  judgement->raw_response = Redact(content);
  const ParsedScore parsed = parser_.Parse(content);
  verdict.set_rationale(Redact(parsed.rationale));
  if (!parsed.score) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    absl::StrCat("no score in the teacher's answer (looked for ", parser_.Describe(), ")"));
    return;
  }
  absl::StatusOr<double> reward = ScaleScore(*parsed.score, scale_);
  if (!reward.ok()) {
    SetVerdictError(&verdict, absl::StatusCode::kOutOfRange, error_kind::kOutOfRange,
                    std::string(reward.status().message()));
    return;
  }
  verdict.set_reward(*reward);
  (*verdict.mutable_components())["score"] = *parsed.score;
}

std::string OpenAIBackend::Redact(std::string text) const {
  if (api_key_.empty() || text.find(api_key_) == std::string::npos) return text;
  return absl::StrReplaceAll(text, {{api_key_, "[redacted]"}});
}

}  // namespace rlj
