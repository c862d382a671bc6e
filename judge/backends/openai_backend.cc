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
#include "judge/backends/openai_response.h"
#include "judge/rubric_template.h"
#include "judge/score_parser.h"
#include "nlohmann/json.hpp"

namespace rlj {
namespace {

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

absl::StatusOr<std::unique_ptr<OpenAIBackend>> OpenAIBackend::Create(const v1::JudgeConfig& config,
                                                                     const JudgeBackendDeps& deps) {
  const v1::OpenAIJudgeConfig& o = config.openai();
  const std::string section = deps.section.empty() ? "judge.openai" : deps.section;
  if (o.model().empty())
    return absl::InvalidArgumentError(absl::StrCat(section, ".model is required with backend openai"));
  if (o.base_url().empty()) return absl::InvalidArgumentError(absl::StrCat(section, ".base_url must not be empty"));
  const std::string& mode = o.mode();
  if (mode != "rubric" && mode != "label" && mode != "likelihood") {
    return absl::InvalidArgumentError(
        absl::StrCat(section, ".mode '", mode, "' is unknown (rubric | label | likelihood)"));
  }
  if ((mode == "rubric" || mode == "label") && o.rubric().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(section, ".rubric is required with backend openai in ", mode, " mode"));
  }
  if (mode == "label") {
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
  if (mode == "likelihood" && o.likelihood_template().find("{completion}") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(section, ".likelihood_template must contain {completion}"));
  }
  if (o.timeout_ms() <= 0) return absl::InvalidArgumentError(absl::StrCat(section, ".timeout_ms must be > 0"));
  if (o.max_retries() < 0) return absl::InvalidArgumentError(absl::StrCat(section, ".max_retries must be >= 0"));
  if (o.max_concurrency() < 1)
    return absl::InvalidArgumentError(absl::StrCat(section, ".max_concurrency must be >= 1"));
  if (config.timeout_ms() <= 0) return absl::InvalidArgumentError("judge.timeout_ms must be > 0");

  std::optional<RubricScorer> rubric;
  if (mode == "rubric") {
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
  auto teacher = TeacherClient::Create(std::move(client), deps.cache, deps.ledger);
  if (!teacher.ok()) return Annotate(teacher.status(), section);
  return std::unique_ptr<OpenAIBackend>(new OpenAIBackend(config, deps.label.empty() ? "openai" : deps.label,
                                                          std::move(teacher).value(), std::move(rubric)));
}

OpenAIBackend::OpenAIBackend(const v1::JudgeConfig& config, std::string label, std::unique_ptr<TeacherClient> client,
                             std::optional<RubricScorer> rubric)
    : config_(config.openai()),
      mode_(config.openai().mode() == "label"        ? Mode::kLabel
            : config.openai().mode() == "likelihood" ? Mode::kLikelihood
                                                     : Mode::kRubric),  // Create has checked it
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
    case Mode::kLabel:
      return ScoreLabels(samples, deadline);
    case Mode::kLikelihood:
      return ScoreLikelihood(samples, deadline);
    case Mode::kRubric:
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

}  // namespace rlj
