// teacher_client.cc: cache lookups, sending through the dispatcher, accounting, redaction.
#include "judge/teacher_client.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/log.h"
#include "common/status.h"
#include "judge/judge_backend.h"

namespace rlj {
namespace {

constexpr char kCacheKeyVersion[] = "rlj-judge-cache-v1";

double MillisecondsSince(SteadyTime start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

absl::StatusOr<std::string> ApiKeyFromEnv(const std::string& variable, const std::string& key_path,
                                          const std::function<std::optional<std::string>(const std::string&)>& env) {
  std::optional<std::string> value = env ? env(variable) : std::nullopt;
  std::string key = value ? std::string(absl::StripAsciiWhitespace(*value)) : std::string();
  if (key.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(key_path, ": the environment variable ", variable, " is not set or empty"));
  }
  if (key.find_first_of("\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("the environment variable ", variable, " holds a line break; not a usable API key"));
  }
  return key;
}

absl::StatusOr<std::unique_ptr<TeacherClient>> TeacherClient::Create(TeacherClientOptions options, JudgeCache* cache,
                                                                     UsageLedger* ledger) {
  std::unique_ptr<TeacherClient> client(new TeacherClient(std::move(options), cache, ledger));
  HttpDispatcherOptions dispatch = client->options_.dispatch;
  if (ledger != nullptr) dispatch.budget_exhausted = [ledger] { return ledger->BudgetExhausted(); };
  dispatch.require_json_body = true;  // every teacher API answers JSON: anything else is retried
  const std::string key = client->options_.api_key;
  dispatch.redact = [key](std::string text) {
    if (key.empty() || text.find(key) == std::string::npos) return text;
    return absl::StrReplaceAll(text, {{key, "[redacted]"}});
  };
  RLJ_ASSIGN_OR_RETURN(client->dispatcher_, HttpDispatcher::Create(std::move(dispatch)));
  return client;
}

TeacherClient::TeacherClient(TeacherClientOptions options, JudgeCache* cache, UsageLedger* ledger)
    : options_(std::move(options)), cache_(options_.use_cache ? cache : nullptr), ledger_(ledger) {}

std::vector<TeacherAnswer> TeacherClient::Ask(std::vector<TeacherAsk> asks, SteadyTime deadline) {
  const SteadyTime start = std::chrono::steady_clock::now();
  std::vector<TeacherAnswer> answers(asks.size());
  std::vector<size_t> misses;
  if (cache_ != nullptr) {
    std::vector<std::string> keys;
    keys.reserve(asks.size());
    for (size_t i = 0; i < asks.size(); ++i) {
      answers[i].cache_key =
          JudgeCache::Key({kCacheKeyVersion, options_.kind, options_.identity, asks[i].url, asks[i].body});
      keys.push_back(answers[i].cache_key);
    }
    absl::StatusOr<std::vector<std::optional<std::string>>> found = cache_->GetMany(keys);
    if (!found.ok()) {
      RLJ_EVERY(10, log::Warn("judge cache read failed (asking the teacher instead): {}",
                              std::string(found.status().message())));
    }
    for (size_t i = 0; i < asks.size(); ++i) {
      if (found.ok() && (*found)[i].has_value() && !asks[i].bypass_cache) {
        answers[i].body = std::move(*(*found)[i]);
        answers[i].cache_hit = true;
      } else {
        misses.push_back(i);
      }
    }
    const double lookup_ms = MillisecondsSince(start);
    for (TeacherAnswer& answer : answers) {
      if (answer.cache_hit) answer.latency_ms = lookup_ms;
    }
  } else {
    for (size_t i = 0; i < asks.size(); ++i) misses.push_back(i);
  }
  if (misses.empty()) return answers;

  std::vector<HttpRequest> requests;
  std::vector<double> tokens;
  requests.reserve(misses.size());
  for (size_t i : misses) {
    HttpRequest request;
    request.method = "POST";
    request.url = std::move(asks[i].url);
    request.headers = options_.headers;
    request.body = std::move(asks[i].body);
    requests.push_back(std::move(request));
    tokens.push_back(asks[i].estimated_tokens);
    answers[i].estimated_tokens = asks[i].estimated_tokens;
  }
  std::vector<HttpOutcome> outcomes = dispatcher_->SendAll(std::move(requests), deadline, tokens);
  for (size_t k = 0; k < misses.size(); ++k) {
    TeacherAnswer& answer = answers[misses[k]];
    HttpOutcome& outcome = outcomes[k];
    answer.latency_ms = outcome.latency_ms;
    if (outcome.response) {
      // A teacher (or a proxy in front of it) may quote the request's headers back: the key must not reach
      // the cache, the reward log's raw answers or a rationale.
      answer.body = Redact(std::move(outcome.response->body));
    } else {
      answer.code = outcome.code;
      answer.kind = outcome.kind;
      answer.message = std::move(outcome.message);
    }
  }
  return answers;
}

double TeacherClient::Account(const TeacherAnswer& answer, int64_t tokens_in, int64_t tokens_out, bool usable) {
  if (answer.cache_hit) {
    if (ledger_ != nullptr) ledger_->RecordCall(options_.label, options_.kind, options_.model, {0, 0, 0, true, false});
    return 0;
  }
  if (answer.kind == error_kind::kBudget) return 0;  // never sent
  const double cost = CostUsd(tokens_in, tokens_out, options_.price_input_per_1k, options_.price_output_per_1k);
  if (ledger_ != nullptr) {
    ledger_->RecordCall(options_.label, options_.kind, options_.model, {tokens_in, tokens_out, cost, false, !usable});
  }
  if (tokens_in + tokens_out > 0) {
    dispatcher_->CorrectTokens(answer.estimated_tokens, static_cast<double>(tokens_in + tokens_out));
  }
  return cost;
}

void TeacherClient::Remember(const std::vector<const TeacherAnswer*>& answers) {
  if (cache_ == nullptr) return;
  std::vector<std::pair<std::string, std::string>> entries;
  for (const TeacherAnswer* answer : answers) {
    if (answer->cache_hit || !answer->body || answer->cache_key.empty()) continue;
    entries.emplace_back(answer->cache_key, *answer->body);
  }
  if (absl::Status stored = cache_->PutMany(entries, options_.label); !stored.ok()) {
    RLJ_EVERY(10, log::Warn("judge cache write failed: {}", std::string(stored.message())));
  }
}

std::string TeacherClient::Redact(std::string text) const {
  const std::string& key = options_.api_key;
  if (key.empty() || text.find(key) == std::string::npos) return text;
  return absl::StrReplaceAll(text, {{key, "[redacted]"}});
}

void TeacherClient::CollectStatus(v1::JudgeStatus* status) const {
  const HttpDispatcherStats stats = dispatcher_->stats();
  v1::JudgeBackendStatus* entry = BackendStatusEntry(status, options_.label);
  entry->set_kind(options_.kind);
  entry->set_model(options_.model);
  entry->set_http_requests(stats.requests_sent);
  entry->set_retries(stats.retries);
  entry->set_rate_limited(stats.rate_limited);
  entry->set_concurrency_limit(stats.concurrency_limit);
  entry->set_in_flight(stats.in_flight);
  entry->set_circuit(stats.circuit);
  entry->set_circuit_opened(stats.circuit_opened);
  entry->set_retries_rate_limited(stats.retries_rate_limited);
  entry->set_retries_server_error(stats.retries_server_error);
  entry->set_retries_timeout(stats.retries_timeout);
  entry->set_retries_transport(stats.retries_transport);
  entry->set_retries_malformed(stats.retries_malformed);
  entry->set_retry_after_waits(stats.retry_after_waits);
  entry->set_retry_after_seconds(stats.retry_after_seconds);
}

}  // namespace rlj
