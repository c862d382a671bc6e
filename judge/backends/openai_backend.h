// openai_backend.h: the `openai` judge: asks a teacher model behind an OpenAI-compatible
// POST {base_url}/chat/completions to grade each completion with a rubric, and reads a score from its answer.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "judge/backend_registry.h"
#include "judge/http_client.h"
#include "judge/judge_backend.h"
#include "judge/score_parser.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

// One sample's conversation with the teacher is: build a request (per judging mode), send it with retries
// (shared), read the answer (per mode). Only the rubric mode exists today; a label mode (the teacher picks
// a label mapped to a reward) or a likelihood mode (logprobs of the reference) adds a request builder and
// an answer reader next to the rubric ones and reuses Exchange.
class OpenAIBackend final : public JudgeBackend {
 public:
  // Exponential backoff with full jitter: a retry waits uniform(0, min(cap, base · 2^attempt)), or the
  // server's Retry-After (seconds) when it sent one.
  struct RetryPolicy {
    std::chrono::milliseconds base{250};
    std::chrono::milliseconds cap{8000};
  };

  // Uses config.openai() for the teacher and config.timeout_ms() (the actors' deadline for one Score call)
  // as every sample's overall deadline, retries included. Fails when api_key_env names a variable that is
  // unset or empty, naming it; without api_key_env no Authorization header is sent (local servers).
  static absl::StatusOr<std::unique_ptr<OpenAIBackend>> Create(const v1::JudgeConfig& config,
                                                               const JudgeBackendDeps& deps);
  ~OpenAIBackend() override;

  std::string name() const override { return "openai"; }
  std::string model() const override { return config_.model(); }

  // Samples go to the teacher concurrently, at most openai.max_concurrency at a time for this call.
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override;

 private:
  using Clock = std::chrono::steady_clock;

  // What one HTTP exchange (with its retries) ended in: a 2xx response, or a verdict error.
  struct ExchangeResult {
    std::optional<HttpResponse> response;
    absl::StatusCode code = absl::StatusCode::kOk;
    std::string kind;     // error_kind when there is no response
    std::string message;  // redacted
    int attempts = 0;
  };

  OpenAIBackend(const v1::JudgeConfig& config, std::string api_key, HttpClient* http,
                std::unique_ptr<HttpClient> owned_http, ScoreParser parser);

  Judgement ScoreOne(const v1::Sample& sample, Clock::time_point deadline) const;
  ExchangeResult Exchange(HttpRequest request, Clock::time_point deadline) const;
  std::chrono::milliseconds Backoff(int attempt) const;

  // Rubric mode.
  std::string RubricRequestBody(const v1::Sample& sample) const;
  void ReadRubricAnswer(const HttpResponse& response, Judgement* judgement) const;

  // `text` with every occurrence of the API key replaced, for anything that leaves this class.
  std::string Redact(std::string text) const;

  v1::OpenAIJudgeConfig config_;
  std::chrono::milliseconds call_timeout_;
  std::string url_;
  std::string api_key_;  // empty: no Authorization header
  std::unique_ptr<HttpClient> owned_http_;
  HttpClient* http_;
  ScoreParser parser_;
  ScoreScale scale_;
  RetryPolicy retry_;
};

}  // namespace rlj
