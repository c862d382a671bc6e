// openai_backend.cc: the three modes of the openai judge: request bodies (chat with a rubric, chat with
// logprobs, legacy completions with echo) and the reading of answers (score, label distribution,
// completion log-likelihood) into verdicts.
#include "common/utf8.h"
#include "judge/backends/openai_backend.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
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

void ReadUsage(const json& body, int64_t* tokens_in, int64_t* tokens_out) {
  auto usage = body.find("usage");
  if (usage == body.end() || !usage->is_object()) return;
  if (auto n = usage->find("prompt_tokens"); n != usage->end() && n->is_number_integer()) *tokens_in = n->get<int64_t>();
  if (auto n = usage->find("completion_tokens"); n != usage->end() && n->is_number_integer()) {
    *tokens_out = n->get<int64_t>();
  }
}

const json* FirstChoice(const json& body) {
  auto choices = body.find("choices");
  if (choices == body.end() || !choices->is_array() || choices->empty() || !(*choices)[0].is_object()) return nullptr;
  return &(*choices)[0];
}

std::string StringField(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A chat completion's answer: content, or a refusal / content filter, or what is missing.
ChatAnswer ReadChatCompletion(const std::string& text) {
  ChatAnswer answer;
  answer.raw = text;
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    answer.code = absl::StatusCode::kInternal;
    answer.kind = error_kind::kParse;
    answer.message = "the teacher's response is not a JSON object";
    return answer;
  }
  ReadUsage(body, &answer.tokens_in, &answer.tokens_out);
  const json* choice = FirstChoice(body);
  const json* message = nullptr;
  if (choice != nullptr) {
    if (auto m = choice->find("message"); m != choice->end() && m->is_object()) message = &*m;
  }
  if (message == nullptr) {
    answer.code = absl::StatusCode::kInternal;
    answer.kind = error_kind::kParse;
    answer.message = "the teacher's response has no choices[0].message";
    return answer;
  }
  const std::string content = StringField(*message, "content");
  const std::string refusal = StringField(*message, "refusal");
  const std::string finish_reason = StringField(*choice, "finish_reason");
  if (!refusal.empty() || finish_reason == "content_filter") {
    answer.raw = !refusal.empty() ? refusal : !content.empty() ? content : text;
    answer.code = absl::StatusCode::kFailedPrecondition;
    answer.kind = error_kind::kRefusal;
    answer.message = refusal.empty() ? "the teacher's answer was withheld by its content filter"
                                     : absl::StrCat("the teacher refused: ", TruncateUtf8(refusal, 300));
    return answer;
  }
  if (content.empty()) {
    answer.code = absl::StatusCode::kInternal;
    answer.kind = error_kind::kParse;
    answer.message = "the teacher's answer (choices[0].message.content) is empty or missing";
    return answer;
  }
  answer.ok = true;
  answer.content = content;
  answer.raw = content;
  return answer;
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
  if (o.model().empty()) return absl::InvalidArgumentError(absl::StrCat(section, ".model is required with backend openai"));
  if (o.base_url().empty()) return absl::InvalidArgumentError(absl::StrCat(section, ".base_url must not be empty"));
  const std::string& mode = o.mode();
  if (mode != "rubric" && mode != "label" && mode != "likelihood") {
    return absl::InvalidArgumentError(absl::StrCat(section, ".mode '", mode, "' is unknown (rubric | label | likelihood)"));
  }
  if ((mode == "rubric" || mode == "label") && o.rubric().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(section, ".rubric is required with backend openai in ", mode, " mode"));
  }
  if (mode == "label") {
    if (o.labels().empty()) return absl::InvalidArgumentError(absl::StrCat(section, ".labels is required in label mode"));
    if (o.top_logprobs() < 1 || o.top_logprobs() > 20) {
      return absl::InvalidArgumentError(absl::StrCat(section, ".top_logprobs must be in [1, 20]"));
    }
    if (o.label_max_tokens() < 1) return absl::InvalidArgumentError(absl::StrCat(section, ".label_max_tokens must be >= 1"));
    if (!(o.label_min_mass() >= 0 && o.label_min_mass() <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(section, ".label_min_mass must be in [0, 1]"));
    }
    for (const auto& [label, reward] : o.labels()) {
      if (absl::StripAsciiWhitespace(label).empty() || !std::isfinite(reward)) {
        return absl::InvalidArgumentError(absl::StrCat(section, ".labels: every label must be non-blank with a finite reward"));
      }
    }
  }
  if (mode == "likelihood" && o.likelihood_template().find("{completion}") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(section, ".likelihood_template must contain {completion}"));
  }
  if (o.timeout_ms() <= 0) return absl::InvalidArgumentError(absl::StrCat(section, ".timeout_ms must be > 0"));
  if (o.max_retries() < 0) return absl::InvalidArgumentError(absl::StrCat(section, ".max_retries must be >= 0"));
  if (o.max_concurrency() < 1) return absl::InvalidArgumentError(absl::StrCat(section, ".max_concurrency must be >= 1"));
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
  return std::unique_ptr<OpenAIBackend>(
      new OpenAIBackend(config, deps.label.empty() ? "openai" : deps.label, std::move(teacher).value(), std::move(rubric)));
}

OpenAIBackend::OpenAIBackend(const v1::JudgeConfig& config, std::string label, std::unique_ptr<TeacherClient> client,
                             std::optional<RubricScorer> rubric)
    : config_(config.openai()),
      label_(std::move(label)),
      base_url_(StrippedBaseUrl(config.openai().base_url())),
      client_(std::move(client)),
      rubric_(std::move(rubric)) {
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
  if (config_.mode() == "label") return ScoreLabels(samples, deadline);
  if (config_.mode() == "likelihood") return ScoreLikelihood(samples, deadline);
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
    if (!config_.system_prompt().empty()) messages.push_back({{"role", "system"}, {"content", config_.system_prompt()}});
    const std::string user = RenderRubric(config_.rubric(), {sample.prompt(), sample.completion(), sample.reference()});
    messages.push_back({{"role", "user"}, {"content", user}});
    json body = {{"model", config_.model()},        {"messages", std::move(messages)},
                 {"temperature", config_.temperature()}, {"max_tokens", config_.label_max_tokens()},
                 {"logprobs", true},                {"top_logprobs", config_.top_logprobs()}};
    const double tokens = static_cast<double>(config_.system_prompt().size() + user.size()) / 4 + config_.label_max_tokens();
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
      ok = ReadLabels(*answers[i].body, &judgement, &tokens_in, &tokens_out);
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

bool OpenAIBackend::ReadLabels(const std::string& text, Judgement* judgement, int64_t* tokens_in,
                               int64_t* tokens_out) const {
  v1::Verdict& verdict = judgement->verdict;
  judgement->raw_response = text;
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse, "the teacher's response is not a JSON object");
    return false;
  }
  ReadUsage(body, tokens_in, tokens_out);
  const ChatAnswer chat = ReadChatCompletion(text);
  if (!chat.ok && chat.kind == error_kind::kRefusal) {
    judgement->raw_response = chat.raw;
    verdict.set_rationale(TruncateUtf8(chat.raw, kMaxRationaleBytes));
    SetVerdictError(&verdict, chat.code, chat.kind, chat.message);
    return false;
  }
  if (chat.ok) judgement->raw_response = chat.content;
  const json* choice = FirstChoice(body);
  const json* content = nullptr;
  if (choice != nullptr) {
    if (auto logprobs = choice->find("logprobs"); logprobs != choice->end() && logprobs->is_object()) {
      if (auto c = logprobs->find("content"); c != logprobs->end() && c->is_array()) content = &*c;
    }
  }
  if (content == nullptr) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    "the teacher's response has no choices[0].logprobs.content (label mode needs a server that "
                    "returns logprobs)");
    return false;
  }
  // The first token that is more than whitespace is where the teacher commits to a label.
  const json* first = nullptr;
  for (const json& token : *content) {
    if (!token.is_object()) continue;
    const std::string text_of_token = StringField(token, "token");
    if (!absl::StripAsciiWhitespace(text_of_token).empty()) {
      first = &token;
      break;
    }
  }
  if (first == nullptr) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse, "the teacher's answer has no token");
    return false;
  }
  std::vector<std::pair<std::string, double>> alternatives;  // token, logprob
  if (auto top = first->find("top_logprobs"); top != first->end() && top->is_array()) {
    for (const json& alternative : *top) {
      if (!alternative.is_object()) continue;
      auto logprob = alternative.find("logprob");
      if (logprob == alternative.end() || !logprob->is_number()) continue;
      alternatives.emplace_back(StringField(alternative, "token"), logprob->get<double>());
    }
  }
  if (alternatives.empty()) {
    if (auto logprob = first->find("logprob"); logprob != first->end() && logprob->is_number()) {
      alternatives.emplace_back(StringField(*first, "token"), logprob->get<double>());
    }
  }
  // Probability of each label: alternatives equal to it (whitespace stripped), or the only label they begin.
  std::map<std::string, double> probability;
  for (const auto& [label, reward] : config_.labels()) probability[label] = 0;
  double mass = 0;
  for (const auto& [token, logprob] : alternatives) {
    const std::string stripped(absl::StripAsciiWhitespace(token));
    if (stripped.empty() || !std::isfinite(logprob)) continue;
    std::string match;
    if (probability.count(stripped) > 0) {
      match = stripped;
    } else {
      int prefixed = 0;
      for (const auto& [label, p] : probability) {
        if (label.compare(0, stripped.size(), stripped) == 0) {
          match = label;
          ++prefixed;
        }
      }
      if (prefixed != 1) match.clear();
    }
    if (match.empty()) continue;
    const double p = std::exp(logprob);
    probability[match] += p;
    mass += p;
  }
  std::vector<std::string> label_names;
  for (const auto& [label, p] : probability) label_names.push_back(label);
  if (mass <= 0) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    absl::StrCat("none of the teacher's top tokens is a label (labels: ", absl::StrJoin(label_names, ", "),
                                 "; first token '", StringField(*first, "token"), "')"));
    return false;
  }
  if (mass < config_.label_min_mass()) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    absl::StrFormat("only %.3f of the teacher's probability is on the labels (label_min_mass %.3f)", mass,
                                    config_.label_min_mass()));
    return false;
  }
  double reward = 0;
  std::vector<std::string> parts;
  for (const auto& [label, p] : probability) {
    const double normalized = p / mass;
    reward += normalized * config_.labels().at(label);
    (*verdict.mutable_components())[absl::StrCat("p(", label, ")")] = normalized;
    parts.push_back(absl::StrFormat("%s %.3f", label, normalized));
  }
  (*verdict.mutable_components())["label_mass"] = mass;
  verdict.set_reward(reward);
  verdict.set_rationale(TruncateUtf8(absl::StrCat("label probabilities: ", absl::StrJoin(parts, ", "),
                                                  absl::StrFormat(" (mass on labels %.3f)", mass),
                                                  chat.ok ? absl::StrCat("; answer: ", chat.content) : ""),
                                     kMaxRationaleBytes));
  return true;
}

std::vector<Judgement> OpenAIBackend::ScoreLikelihood(const std::vector<v1::Sample>& samples, SteadyTime deadline) {
  const std::string& tmpl = config_.likelihood_template();
  const size_t at = tmpl.find("{completion}");
  const std::string before = tmpl.substr(0, at);
  const std::string after = tmpl.substr(at + std::string_view("{completion}").size());
  std::vector<Judgement> judgements(samples.size());
  std::vector<TeacherAsk> asks;
  std::vector<size_t> asked;
  std::vector<Span> spans;
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
    const std::string text = absl::StrCat(prefix, sample.completion(), RenderRubric(after, fields));
    Span span;
    span.begin_bytes = prefix.size();
    span.end_bytes = prefix.size() + sample.completion().size();
    span.begin_chars = Utf8CodePoints(prefix);
    span.end_chars = span.begin_chars + Utf8CodePoints(sample.completion());
    json body = {{"model", config_.model()}, {"prompt", text}, {"echo", true},
                 {"logprobs", 1},            {"max_tokens", 1}, {"temperature", 0}};
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
      ok = ReadLikelihood(*answers[k].body, spans[k], &judgement, &tokens_in, &tokens_out);
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

bool OpenAIBackend::ReadLikelihood(const std::string& text, const Span& span, Judgement* judgement,
                                   int64_t* tokens_in, int64_t* tokens_out) const {
  v1::Verdict& verdict = judgement->verdict;
  judgement->raw_response = TruncateUtf8(text, 4000);
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse, "the teacher's response is not a JSON object");
    return false;
  }
  ReadUsage(body, tokens_in, tokens_out);
  const json* choice = FirstChoice(body);
  const json* logprobs = nullptr;
  if (choice != nullptr) {
    if (auto l = choice->find("logprobs"); l != choice->end() && l->is_object()) logprobs = &*l;
  }
  auto array = [&](const char* key) -> const json* {
    if (logprobs == nullptr) return nullptr;
    auto it = logprobs->find(key);
    return it != logprobs->end() && it->is_array() ? &*it : nullptr;
  };
  const json* tokens = array("tokens");
  const json* token_logprobs = array("token_logprobs");
  const json* offsets = array("text_offset");
  if (tokens == nullptr || token_logprobs == nullptr || offsets == nullptr || tokens->size() != token_logprobs->size() ||
      tokens->size() != offsets->size()) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    "the teacher's response has no consistent choices[0].logprobs {tokens, token_logprobs, "
                    "text_offset} (likelihood mode needs /completions with echo and logprobs)");
    return false;
  }
  const size_t n = tokens->size();
  std::vector<std::string> token_text(n);
  std::vector<int64_t> offset(n);
  for (size_t i = 0; i < n; ++i) {
    if ((*tokens)[i].is_string()) token_text[i] = (*tokens)[i].get<std::string>();
    if (!(*offsets)[i].is_number_integer()) {
      SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse, "text_offset holds a non-integer");
      return false;
    }
    offset[i] = (*offsets)[i].get<int64_t>();
  }
  // The API counts offsets in characters; some servers count bytes. Whichever the tokens agree with.
  bool bytes_agree = true;
  for (size_t i = 0; i + 1 < n; ++i) {
    if (offset[i + 1] - offset[i] != static_cast<int64_t>(token_text[i].size())) bytes_agree = false;
  }
  bool chars_agree = true;
  for (size_t i = 0; i + 1 < n; ++i) {
    if (offset[i + 1] - offset[i] != static_cast<int64_t>(Utf8CodePoints(token_text[i]))) chars_agree = false;
  }
  const bool in_bytes = bytes_agree && !chars_agree;
  const int64_t begin = static_cast<int64_t>(in_bytes ? span.begin_bytes : span.begin_chars);
  const int64_t end = static_cast<int64_t>(in_bytes ? span.end_bytes : span.end_chars);
  double sum = 0;
  int count = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t token_begin = offset[i];
    const int64_t token_end = i + 1 < n ? offset[i + 1]
                                        : token_begin + static_cast<int64_t>(in_bytes ? token_text[i].size()
                                                                                      : Utf8CodePoints(token_text[i]));
    const bool overlaps = token_begin < end && std::max(token_end, token_begin + 1) > begin;
    if (!overlaps || !(*token_logprobs)[i].is_number()) continue;
    const double logprob = (*token_logprobs)[i].get<double>();
    if (!std::isfinite(logprob)) continue;
    sum += logprob;
    ++count;
  }
  if (count == 0) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    "none of the teacher's echoed tokens with a log-probability covers the completion");
    return false;
  }
  const double mean = sum / count;
  verdict.set_reward(mean);
  (*verdict.mutable_components())["mean_logprob"] = mean;
  (*verdict.mutable_components())["sum_logprob"] = sum;
  (*verdict.mutable_components())["completion_tokens"] = count;
  verdict.set_rationale(absl::StrFormat("mean log-probability %.4f over %d teacher tokens of the completion", mean, count));
  return true;
}

}  // namespace rlj
