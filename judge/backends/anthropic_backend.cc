// anthropic_backend.cc: Messages API requests and the reading of their answers.
#include "judge/backends/anthropic_backend.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "judge/score_parser.h"
#include "nlohmann/json.hpp"

namespace rlj {
namespace {

using nlohmann::json;

std::string Dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

ChatAnswer ReadAnthropicMessage(const std::string& text) {
  ChatAnswer answer;
  answer.raw = text;
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    return answer.Failed(absl::StatusCode::kInternal, error_kind::kParse,
                         "the teacher's response is not a JSON object");
  }
  if (auto usage = body.find("usage"); usage != body.end() && usage->is_object()) {
    if (auto n = usage->find("input_tokens"); n != usage->end() && n->is_number_integer())
      answer.tokens_in = n->get<int64_t>();
    if (auto n = usage->find("output_tokens"); n != usage->end() && n->is_number_integer()) {
      answer.tokens_out = n->get<int64_t>();
    }
  }
  std::string content;
  bool has_content = false;
  if (auto blocks = body.find("content"); blocks != body.end() && blocks->is_array()) {
    has_content = true;
    for (const json& block : *blocks) {
      if (!block.is_object()) continue;
      auto type = block.find("type");
      auto part = block.find("text");
      if (type != block.end() && *type == "text" && part != block.end() && part->is_string()) {
        content += part->get<std::string>();
      }
    }
  }
  std::string stop_reason;
  if (auto s = body.find("stop_reason"); s != body.end() && s->is_string()) stop_reason = s->get<std::string>();
  if (stop_reason == "refusal") {
    answer.raw = content.empty() ? text : content;
    return answer.Failed(absl::StatusCode::kFailedPrecondition, error_kind::kRefusal,
                         content.empty() ? "the teacher refused (stop_reason refusal)"
                                         : absl::StrCat("the teacher refused: ", TruncateUtf8(content, 300)));
  }
  if (!has_content) {
    return answer.Failed(absl::StatusCode::kInternal, error_kind::kParse,
                         "the teacher's response has no content blocks");
  }
  if (content.empty()) {
    return answer.Failed(absl::StatusCode::kInternal, error_kind::kParse, "the teacher's answer has no text");
  }
  return answer.Answered(content);
}

absl::Status AnthropicBackend::Validate(const v1::JudgeConfig& config, const std::string& section) {
  const v1::AnthropicJudgeConfig& a = config.anthropic();
  if (a.model().empty())
    return absl::InvalidArgumentError(absl::StrCat(section, ".model is required with backend anthropic"));
  if (a.base_url().empty()) return absl::InvalidArgumentError(absl::StrCat(section, ".base_url must not be empty"));
  if (a.api_key_env().empty())
    return absl::InvalidArgumentError(absl::StrCat(section, ".api_key_env must name a variable"));
  if (a.max_tokens() < 1) return absl::InvalidArgumentError(absl::StrCat(section, ".max_tokens must be >= 1"));
  if (a.timeout_ms() <= 0) return absl::InvalidArgumentError(absl::StrCat(section, ".timeout_ms must be > 0"));
  if (a.max_retries() < 0) return absl::InvalidArgumentError(absl::StrCat(section, ".max_retries must be >= 0"));
  if (a.max_concurrency() < 1)
    return absl::InvalidArgumentError(absl::StrCat(section, ".max_concurrency must be >= 1"));
  if (config.timeout_ms() <= 0) return absl::InvalidArgumentError("judge.timeout_ms must be > 0");
  return RubricScorer::Create(section, a.rubric(), a.system_prompt(), a.score_key(), a.score_pattern(),
                              ScoreScale{a.score_min(), a.score_max(), a.reward_min(), a.reward_max()})
      .status();
}

absl::StatusOr<std::unique_ptr<AnthropicBackend>> AnthropicBackend::Create(const v1::JudgeConfig& config,
                                                                           const JudgeBackendDeps& deps) {
  const v1::AnthropicJudgeConfig& a = config.anthropic();
  const std::string section = deps.section.empty() ? "judge.anthropic" : deps.section;
  RLJ_RETURN_IF_ERROR(Validate(config, section));
  auto rubric = RubricScorer::Create(section, a.rubric(), a.system_prompt(), a.score_key(), a.score_pattern(),
                                     ScoreScale{a.score_min(), a.score_max(), a.reward_min(), a.reward_max()});
  if (!rubric.ok()) return rubric.status();

  TeacherClientOptions client;
  client.label = deps.label.empty() ? "anthropic" : deps.label;
  client.kind = "anthropic";
  client.model = a.model();
  std::string base = a.base_url();
  while (!base.empty() && base.back() == '/') base.pop_back();
  client.identity = base;
  RLJ_ASSIGN_OR_RETURN(client.api_key, ApiKeyFromEnv(a.api_key_env(), section + ".api_key_env", deps.env));
  client.headers = {{"Content-Type", "application/json"},
                    {"Accept", "application/json"},
                    {"x-api-key", client.api_key},
                    {"anthropic-version", a.anthropic_version()}};
  client.price_input_per_1k = a.price_input_per_1k();
  client.price_output_per_1k = a.price_output_per_1k();
  client.use_cache = a.cache();
  client.dispatch = DispatcherOptionsFrom(a, client.label);
  const std::string label = client.label;
  auto teacher = TeacherClient::Create(std::move(client), deps.cache, deps.ledger);
  if (!teacher.ok()) return Annotate(teacher.status(), section);
  return std::unique_ptr<AnthropicBackend>(
      new AnthropicBackend(config, label, std::move(teacher).value(), std::move(rubric).value()));
}

AnthropicBackend::AnthropicBackend(const v1::JudgeConfig& config, std::string label,
                                   std::unique_ptr<TeacherClient> client, RubricScorer rubric)
    : config_(config.anthropic()), label_(std::move(label)), client_(std::move(client)), rubric_(std::move(rubric)) {
  std::string base = config_.base_url();
  while (!base.empty() && base.back() == '/') base.pop_back();
  url_ = base + "/messages";
  const int64_t call_ms = config.timeout_ms();
  call_timeout_ = std::chrono::milliseconds(call_ms - std::min<int64_t>(1000, call_ms / 10));
  chat_format_.render = [this](const ChatQuestion& question) {
    json body = {{"model", config_.model()},
                 {"max_tokens", config_.max_tokens()},
                 {"temperature", config_.temperature()},
                 {"messages", json::array({{{"role", "user"}, {"content", question.user}}})}};
    if (!question.system.empty()) body["system"] = question.system;
    const double tokens = static_cast<double>(question.system.size() + question.user.size()) / 4 + config_.max_tokens();
    return TeacherAsk{url_, Dump(body), tokens};
  };
  chat_format_.read = ReadAnthropicMessage;
}

AnthropicBackend::~AnthropicBackend() = default;

ChatReplies AnthropicBackend::AskChat(const std::vector<ChatQuestion>& questions, SteadyTime deadline) {
  return AskChatWith(*client_, chat_format_, questions, deadline);
}

std::vector<Judgement> AnthropicBackend::Score(const std::vector<v1::Sample>& samples) {
  const SteadyTime deadline = std::chrono::steady_clock::now() + call_timeout_;
  std::vector<ChatQuestion> questions;
  questions.reserve(samples.size());
  for (const v1::Sample& sample : samples) questions.push_back(rubric_.Question(sample));
  const ChatReplies replies = AskChat(questions, deadline);
  std::vector<Judgement> judgements(samples.size());
  std::vector<size_t> usable;
  for (size_t i = 0; i < samples.size(); ++i) {
    judgements[i].verdict.set_sample_id(samples[i].id());
    judgements[i].verdict.set_model(config_.model());
    if (rubric_.Read(replies.answers[i], &judgements[i])) usable.push_back(i);
  }
  replies.Remember(usable);
  return judgements;
}

}  // namespace rlj
