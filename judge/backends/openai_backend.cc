// openai_backend.cc: the three modes of the openai judge: request bodies (chat with a rubric, chat with
// logprobs, legacy completions with echo) and the reading of answers (score, label distribution,
// completion log-likelihood) into verdicts.
#include "judge/backends/openai_backend.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/utf8.h"
#include "judge/backends/distill_start_check.h"
#include "judge/backends/openai_response.h"
#include "judge/backends/token_logprobs.h"
#include "judge/http/http_client.h"
#include "judge/rubric_template.h"
#include "judge/score_parser.h"
#include "nlohmann/json.hpp"

namespace rlj {
namespace {

// Distill mode: sequences scored by one /completions request (the prompt is a list of token-id lists).
constexpr int kDistillSequencesPerRequest = 16;

using nlohmann::json;

std::string Dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string StrippedBaseUrl(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

// Sets the common fields of a verdict from a TeacherAnswer.
void StampAnswer(const TeacherAnswer& answer, v1::Verdict* verdict) {
  verdict->set_cache_hit(answer.cache_hit);
  verdict->set_latency_ms(answer.latency_ms);
}

}  // namespace

absl::Status OpenAIBackend::Validate(const v1::JudgeConfig& config, const std::string& section) {
  const v1::OpenAIJudgeConfig& o = config.openai();
  if (o.model().empty())
    return absl::InvalidArgumentError(absl::StrCat(section, ".model is required with backend openai"));
  if (o.base_url().empty()) return absl::InvalidArgumentError(absl::StrCat(section, ".base_url must not be empty"));
  const v1::OpenAIMode::Mode mode = o.mode();
  if ((mode == v1::OpenAIMode::rubric || mode == v1::OpenAIMode::label) && o.rubric().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(section, ".rubric is required with backend openai in ", v1::OpenAIMode::Mode_Name(mode), " mode"));
  }
  if (mode == v1::OpenAIMode::label) {
    if (o.labels().empty())
      return absl::InvalidArgumentError(absl::StrCat(section, ".labels is required in label mode"));
    if (o.top_logprobs() < 1 || o.top_logprobs() > 20) {
      return absl::InvalidArgumentError(absl::StrCat(section, ".top_logprobs must be in [1, 20]"));
    }
    if (o.label_max_tokens() < 1)
      return absl::InvalidArgumentError(absl::StrCat(section, ".label_max_tokens must be >= 1"));
    if (!(o.label_min_mass() >= 0 && o.label_min_mass() <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(section, ".label_min_mass must be in [0, 1]"));
    }
    for (const auto& [label, reward] : o.labels()) {
      if (absl::StripAsciiWhitespace(label).empty() || !std::isfinite(reward)) {
        return absl::InvalidArgumentError(
            absl::StrCat(section, ".labels: every label must be non-blank with a finite reward"));
      }
    }
  }
  if (mode == v1::OpenAIMode::likelihood && o.likelihood_template().find("{completion}") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(section, ".likelihood_template must contain {completion}"));
  }
  if (o.timeout_ms() <= 0) return absl::InvalidArgumentError(absl::StrCat(section, ".timeout_ms must be > 0"));
  if (o.max_retries() < 0) return absl::InvalidArgumentError(absl::StrCat(section, ".max_retries must be >= 0"));
  if (o.max_concurrency() < 1)
    return absl::InvalidArgumentError(absl::StrCat(section, ".max_concurrency must be >= 1"));
  if (config.timeout_ms() <= 0) return absl::InvalidArgumentError("judge.timeout_ms must be > 0");

  if (o.mode() != v1::OpenAIMode::rubric) return absl::OkStatus();
  return RubricScorer::Create(section, o.rubric(), o.system_prompt(), o.score_key(), o.score_pattern(),
                              ScoreScale{o.score_min(), o.score_max(), o.reward_min(), o.reward_max()})
      .status();
}

absl::StatusOr<std::unique_ptr<OpenAIBackend>> OpenAIBackend::Create(const v1::JudgeConfig& config,
                                                                     const JudgeBackendDeps& deps) {
  const v1::OpenAIJudgeConfig& o = config.openai();
  const std::string section = deps.section.empty() ? "judge.openai" : deps.section;
  RLJ_RETURN_IF_ERROR(Validate(config, section));
  std::optional<RubricScorer> rubric;
  if (o.mode() == v1::OpenAIMode::rubric) {
    auto scorer = RubricScorer::Create(section, o.rubric(), o.system_prompt(), o.score_key(), o.score_pattern(),
                                       ScoreScale{o.score_min(), o.score_max(), o.reward_min(), o.reward_max()});
    if (!scorer.ok()) return scorer.status();
    rubric.emplace(std::move(scorer).value());
  }

  TeacherClientOptions client;
  client.label = deps.label.empty() ? "openai" : deps.label;
  client.kind = "openai";
  client.model = o.model();
  client.identity = StrippedBaseUrl(o.base_url());
  client.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  if (!o.api_key_env().empty()) {
    RLJ_ASSIGN_OR_RETURN(client.api_key, ApiKeyFromEnv(o.api_key_env(), section + ".api_key_env", deps.env));
    client.headers.emplace_back("Authorization", absl::StrCat("Bearer ", client.api_key));
  }
  client.price_input_per_1k = o.price_input_per_1k();
  client.price_output_per_1k = o.price_output_per_1k();
  client.use_cache = o.cache();
  client.dispatch = DispatcherOptionsFrom(o, client.label);
  const auto headers = client.headers;
  auto teacher = TeacherClient::Create(std::move(client), deps.cache, deps.ledger);
  if (!teacher.ok()) return Annotate(teacher.status(), section);
  std::unique_ptr<OpenAIBackend> backend(new OpenAIBackend(config, deps.label.empty() ? "openai" : deps.label,
                                                           std::move(teacher).value(), std::move(rubric)));
  backend->headers_ = headers;
  backend->section_ = section;
  return backend;
}

OpenAIBackend::OpenAIBackend(const v1::JudgeConfig& config, std::string label, std::unique_ptr<TeacherClient> client,
                             std::optional<RubricScorer> rubric)
    : config_(config.openai()),
      mode_(config.openai().mode()),
      label_(std::move(label)),
      base_url_(StrippedBaseUrl(config.openai().base_url())),
      client_(std::move(client)),
      rubric_(std::move(rubric)),
      labels_(config.openai().labels().begin(), config.openai().labels().end()) {
  // Leave the actor a moment to receive the reply before its own deadline passes.
  const int64_t call_ms = config.timeout_ms();
  call_timeout_ = std::chrono::milliseconds(call_ms - std::min<int64_t>(1000, call_ms / 10));
  chat_format_.render = [this](const ChatQuestion& question) {
    json messages = json::array();
    if (!question.system.empty()) messages.push_back({{"role", "system"}, {"content", question.system}});
    messages.push_back({{"role", "user"}, {"content", question.user}});
    json body = {{"model", config_.model()},
                 {"messages", std::move(messages)},
                 {"temperature", config_.temperature()},
                 {"max_tokens", config_.max_tokens()}};
    const double tokens = static_cast<double>(question.system.size() + question.user.size()) / 4 + config_.max_tokens();
    return TeacherAsk{base_url_ + "/chat/completions", Dump(body), tokens};
  };
  chat_format_.read = ReadChatCompletion;
}

OpenAIBackend::~OpenAIBackend() = default;

ChatReplies OpenAIBackend::AskChat(const std::vector<ChatQuestion>& questions, SteadyTime deadline) {
  return AskChatWith(*client_, chat_format_, questions, deadline);
}

std::vector<Judgement> OpenAIBackend::Score(const std::vector<v1::Sample>& samples) {
  const SteadyTime deadline = std::chrono::steady_clock::now() + call_timeout_;
  switch (mode_) {
    case v1::OpenAIMode::label:
      return ScoreLabels(samples, deadline);
    case v1::OpenAIMode::likelihood:
      return ScoreLikelihood(samples, deadline);
    case v1::OpenAIMode::distill:
      return ScoreDistill(samples, deadline);
    case v1::OpenAIMode::rubric:
      break;
  }
  return ScoreRubric(samples, deadline);
}

std::vector<Judgement> OpenAIBackend::ScoreRubric(const std::vector<v1::Sample>& samples, SteadyTime deadline) {
  std::vector<ChatQuestion> questions;
  questions.reserve(samples.size());
  for (const v1::Sample& sample : samples) questions.push_back(rubric_->Question(sample));
  const ChatReplies replies = AskChat(questions, deadline);
  std::vector<Judgement> judgements(samples.size());
  std::vector<size_t> usable;
  for (size_t i = 0; i < samples.size(); ++i) {
    judgements[i].verdict.set_sample_id(samples[i].id());
    judgements[i].verdict.set_model(config_.model());
    if (rubric_->Read(replies.answers[i], &judgements[i])) usable.push_back(i);
  }
  replies.Remember(usable);
  return judgements;
}

std::vector<Judgement> OpenAIBackend::ScoreLabels(const std::vector<v1::Sample>& samples, SteadyTime deadline) {
  std::vector<TeacherAsk> asks;
  asks.reserve(samples.size());
  for (const v1::Sample& sample : samples) {
    json messages = json::array();
    if (!config_.system_prompt().empty())
      messages.push_back({{"role", "system"}, {"content", config_.system_prompt()}});
    const std::string user = RenderRubric(config_.rubric(), {sample.prompt(), sample.completion(), sample.reference()});
    messages.push_back({{"role", "user"}, {"content", user}});
    json body = {{"model", config_.model()},
                 {"messages", std::move(messages)},
                 {"temperature", config_.temperature()},
                 {"max_tokens", config_.label_max_tokens()},
                 {"logprobs", true},
                 {"top_logprobs", config_.top_logprobs()}};
    const double tokens =
        static_cast<double>(config_.system_prompt().size() + user.size()) / 4 + config_.label_max_tokens();
    asks.push_back(TeacherAsk{base_url_ + "/chat/completions", Dump(body), tokens, BypassesCache(sample)});
  }
  std::vector<TeacherAnswer> answers = client_->Ask(std::move(asks), deadline);
  std::vector<Judgement> judgements(samples.size());
  std::vector<const TeacherAnswer*> usable;
  for (size_t i = 0; i < samples.size(); ++i) {
    Judgement& judgement = judgements[i];
    v1::Verdict& verdict = judgement.verdict;
    verdict.set_sample_id(samples[i].id());
    verdict.set_model(config_.model());
    StampAnswer(answers[i], &verdict);
    int64_t tokens_in = 0, tokens_out = 0;
    bool ok = false;
    if (answers[i].body) {
      ok = ReadLabelDistribution(*answers[i].body, labels_, config_.label_min_mass(), &judgement, &tokens_in,
                                 &tokens_out);
    } else {
      SetVerdictError(&verdict, answers[i].code, answers[i].kind, answers[i].message);
    }
    verdict.set_cost_usd(client_->Account(answers[i], tokens_in, tokens_out, ok));
    if (!answers[i].cache_hit) {
      verdict.set_tokens_in(tokens_in);
      verdict.set_tokens_out(tokens_out);
    }
    verdict.set_rationale(client_->Redact(verdict.rationale()));
    if (verdict.has_error()) verdict.mutable_error()->set_message(client_->Redact(verdict.error().message()));
    judgement.raw_response = client_->Redact(std::move(judgement.raw_response));
    if (ok) usable.push_back(&answers[i]);
  }
  client_->Remember(usable);
  return judgements;
}

std::vector<Judgement> OpenAIBackend::ScoreLikelihood(const std::vector<v1::Sample>& samples, SteadyTime deadline) {
  const std::string& tmpl = config_.likelihood_template();
  const size_t at = tmpl.find("{completion}");
  const std::string before = tmpl.substr(0, at);
  const std::string after = tmpl.substr(at + std::string_view("{completion}").size());
  std::vector<Judgement> judgements(samples.size());
  std::vector<TeacherAsk> asks;
  std::vector<size_t> asked;
  std::vector<CompletionSpan> spans;
  for (size_t i = 0; i < samples.size(); ++i) {
    const v1::Sample& sample = samples[i];
    judgements[i].verdict.set_sample_id(sample.id());
    judgements[i].verdict.set_model(config_.model());
    if (sample.completion().empty()) {
      SetVerdictError(&judgements[i].verdict, absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
                      "the completion is empty: likelihood mode has no tokens to score");
      continue;
    }
    const RubricFields fields{sample.prompt(), sample.completion(), sample.reference()};
    const std::string prefix = RenderRubric(before, fields);
    const std::string suffix = RenderRubric(after, fields);
    const std::string text = absl::StrCat(prefix, sample.completion(), suffix);
    // The scored span: the completion, and with likelihood_score_after the text after it too (an end
    // marker the teacher expects once an answer is complete, so that an answer cut short scores low).
    const std::string scored =
        config_.likelihood_score_after() ? absl::StrCat(sample.completion(), suffix) : sample.completion();
    CompletionSpan span;
    span.begin_bytes = prefix.size();
    span.end_bytes = prefix.size() + scored.size();
    span.begin_chars = Utf8CodePoints(prefix);
    span.end_chars = span.begin_chars + Utf8CodePoints(scored);
    json body = {{"model", config_.model()}, {"prompt", text},  {"echo", true}, {"logprobs", 1},
                 {"max_tokens", 1},          {"temperature", 0}};
    asks.push_back(TeacherAsk{base_url_ + "/completions", Dump(body), static_cast<double>(text.size()) / 4 + 1,
                              BypassesCache(sample)});
    asked.push_back(i);
    spans.push_back(span);
  }
  std::vector<TeacherAnswer> answers = client_->Ask(std::move(asks), deadline);
  std::vector<const TeacherAnswer*> usable;
  for (size_t k = 0; k < asked.size(); ++k) {
    Judgement& judgement = judgements[asked[k]];
    v1::Verdict& verdict = judgement.verdict;
    StampAnswer(answers[k], &verdict);
    int64_t tokens_in = 0, tokens_out = 0;
    bool ok = false;
    if (answers[k].body) {
      ok = ReadCompletionLikelihood(*answers[k].body, spans[k], &judgement, &tokens_in, &tokens_out);
    } else {
      SetVerdictError(&verdict, answers[k].code, answers[k].kind, answers[k].message);
    }
    verdict.set_cost_usd(client_->Account(answers[k], tokens_in, tokens_out, ok));
    if (!answers[k].cache_hit) {
      verdict.set_tokens_in(tokens_in);
      verdict.set_tokens_out(tokens_out);
    }
    if (verdict.has_error()) verdict.mutable_error()->set_message(client_->Redact(verdict.error().message()));
    judgement.raw_response = client_->Redact(std::move(judgement.raw_response));
    if (ok) usable.push_back(&answers[k]);
  }
  client_->Remember(usable);
  return judgements;
}

absl::Status OpenAIBackend::CheckAtStart(const JudgeStartContext& context) {
  if (mode_ != v1::OpenAIMode::distill) return absl::OkStatus();
  CurlHttpClient http;
  return CheckDistillTeacher(DistillTeacher{&config_, section_, base_url_, headers_}, context, http);
}

std::vector<Judgement> OpenAIBackend::ScoreDistill(const std::vector<v1::Sample>& samples, SteadyTime deadline) {
  std::vector<Judgement> judgements(samples.size());
  std::vector<std::vector<size_t>> requests(1);  // the samples of each request
  std::vector<TeacherAsk> asks;
  for (size_t i = 0; i < samples.size(); ++i) {
    judgements[i].verdict.set_sample_id(samples[i].id());
    judgements[i].verdict.set_model(config_.model());
    if (const std::string problem = DistillSampleProblem(samples[i]); !problem.empty()) {
      SetVerdictError(&judgements[i].verdict, absl::StatusCode::kInvalidArgument, error_kind::kInvalid, problem);
      continue;
    }
    if (static_cast<int>(requests.back().size()) == kDistillSequencesPerRequest) requests.emplace_back();
    requests.back().push_back(i);
  }
  if (requests.back().empty()) requests.pop_back();
  for (const std::vector<size_t>& request : requests) {
    std::vector<const v1::Sample*> batch;
    double tokens = 0;
    bool bypass = false;
    for (size_t i : request) {
      batch.push_back(&samples[i]);
      tokens += samples[i].prompt_token_ids_size() + samples[i].completion_token_ids_size() + 1;
      bypass = bypass || BypassesCache(samples[i]);
    }
    asks.push_back(TeacherAsk{base_url_ + "/completions", DistillRequestBody(config_.model(), batch), tokens, bypass});
  }
  std::vector<TeacherAnswer> answers = client_->Ask(std::move(asks), deadline);
  std::vector<const TeacherAnswer*> usable;
  for (size_t k = 0; k < requests.size(); ++k) {
    if (ReadDistillAnswer(answers[k], samples, requests[k], &judgements)) usable.push_back(&answers[k]);
  }
  client_->Remember(usable);
  return judgements;
}

bool OpenAIBackend::ReadDistillAnswer(const TeacherAnswer& answer, const std::vector<v1::Sample>& samples,
                                      const std::vector<size_t>& asked, std::vector<Judgement>* judgements) {
  std::vector<const v1::Sample*> batch;
  for (size_t i : asked) batch.push_back(&samples[i]);
  int64_t tokens_in = 0, tokens_out = 0;
  absl::StatusOr<std::vector<std::vector<float>>> logprobs =
      answer.body ? ReadEchoedTokenLogprobs(*answer.body, batch, &tokens_in, &tokens_out)
                  : absl::Status(answer.code, answer.message);
  const bool ok = logprobs.ok();
  // The request's cost and tokens are shared equally by its samples.
  const double share = 1.0 / static_cast<double>(asked.size());
  const double cost = client_->Account(answer, tokens_in, tokens_out, ok);
  for (size_t k = 0; k < asked.size(); ++k) {
    Judgement& judgement = (*judgements)[asked[k]];
    v1::Verdict& verdict = judgement.verdict;
    StampAnswer(answer, &verdict);
    verdict.set_cost_usd(cost * share);
    if (!answer.cache_hit) {
      verdict.set_tokens_in(static_cast<int64_t>(std::llround(static_cast<double>(tokens_in) * share)));
      verdict.set_tokens_out(static_cast<int64_t>(std::llround(static_cast<double>(tokens_out) * share)));
    }
    if (!answer.body) {
      SetVerdictError(&verdict, answer.code, answer.kind, client_->Redact(answer.message));
    } else if (!ok) {
      SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                      client_->Redact(std::string(logprobs.status().message())));
      judgement.raw_response = client_->Redact(TruncateUtf8(*answer.body, 4000));
    } else {
      FillDistillVerdict(samples[asked[k]], std::move((*logprobs)[k]), &verdict);
    }
  }
  return ok;
}

}  // namespace rlj
