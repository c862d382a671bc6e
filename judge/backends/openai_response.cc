// openai_response.cc: OpenAI-compatible response bodies → answers and verdicts (chat completions, label
// distributions, echoed completion log-probabilities), every field checked before use.
#include "judge/backends/openai_response.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/utf8.h"
#include "judge/score_parser.h"
#include "nlohmann/json.hpp"

namespace rlj {
namespace {

using nlohmann::json;

// Servers round: a log-probability a hair above 0 is read as 0; anything larger (or +inf) is not a
// log-probability, and exp() of it would be a "probability" above 1 or infinite (a NaN reward after
// normalising).
constexpr double kLogprobRoundingSlack = 1e-6;
bool IsLogprob(double value) { return !std::isnan(value) && value <= kLogprobRoundingSlack; }

// text_offset values beyond this are not offsets into a scored text (and would overflow when subtracted).
constexpr int64_t kMaxTextOffset = int64_t{1} << 40;

void ReadUsage(const json& body, int64_t* tokens_in, int64_t* tokens_out) {
  auto usage = body.find("usage");
  if (usage == body.end() || !usage->is_object()) return;
  if (auto n = usage->find("prompt_tokens"); n != usage->end() && n->is_number_integer())
    *tokens_in = n->get<int64_t>();
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

}  // namespace

ChatAnswer ReadChatCompletion(const std::string& text) {
  ChatAnswer answer;
  answer.raw = text;
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    return answer.Failed(absl::StatusCode::kInternal, error_kind::kParse,
                         "the teacher's response is not a JSON object");
  }
  ReadUsage(body, &answer.tokens_in, &answer.tokens_out);
  const json* choice = FirstChoice(body);
  const json* message = nullptr;
  if (choice != nullptr) {
    if (auto m = choice->find("message"); m != choice->end() && m->is_object()) message = &*m;
  }
  if (message == nullptr) {
    return answer.Failed(absl::StatusCode::kInternal, error_kind::kParse,
                         "the teacher's response has no choices[0].message");
  }
  const std::string content = StringField(*message, "content");
  const std::string refusal = StringField(*message, "refusal");
  const std::string finish_reason = StringField(*choice, "finish_reason");
  if (!refusal.empty() || finish_reason == "content_filter") {
    answer.raw = !refusal.empty() ? refusal : !content.empty() ? content : text;
    return answer.Failed(absl::StatusCode::kFailedPrecondition, error_kind::kRefusal,
                         refusal.empty() ? "the teacher's answer was withheld by its content filter"
                                         : absl::StrCat("the teacher refused: ", TruncateUtf8(refusal, 300)));
  }
  if (content.empty()) {
    return answer.Failed(absl::StatusCode::kInternal, error_kind::kParse,
                         "the teacher's answer (choices[0].message.content) is empty or missing");
  }
  return answer.Answered(content);
}

bool ReadLabelDistribution(const std::string& text, const std::map<std::string, double>& labels, double label_min_mass,
                           Judgement* judgement, int64_t* tokens_in, int64_t* tokens_out) {
  v1::Verdict& verdict = judgement->verdict;
  judgement->raw_response = text;
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    "the teacher's response is not a JSON object");
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
  for (const auto& [label, reward] : labels) probability[label] = 0;
  double mass = 0;
  for (const auto& [token, logprob] : alternatives) {
    if (!IsLogprob(logprob)) {
      SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                      absl::StrCat("the teacher's log-probability ", logprob, " for token '", TruncateUtf8(token, 100),
                                   "' is above 0: not a log-probability"));
      return false;
    }
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
    const double p = std::exp(std::min(logprob, 0.0));
    probability[match] += p;
    mass += p;
  }
  std::vector<std::string> label_names;
  for (const auto& [label, p] : probability) label_names.push_back(label);
  if (mass <= 0) {
    SetVerdictError(
        &verdict, absl::StatusCode::kInternal, error_kind::kParse,
        absl::StrCat("none of the teacher's top tokens is a label (labels: ", absl::StrJoin(label_names, ", "),
                     "; first token '", StringField(*first, "token"), "')"));
    return false;
  }
  if (mass < label_min_mass) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    absl::StrFormat("only %.3f of the teacher's probability is on the labels (label_min_mass %.3f)",
                                    mass, label_min_mass));
    return false;
  }
  double reward = 0;
  std::vector<std::string> parts;
  for (const auto& [label, p] : probability) {
    const double normalized = p / mass;
    reward += normalized * labels.at(label);
    (*verdict.mutable_components())[absl::StrCat("p(", label, ")")] = normalized;
    parts.push_back(absl::StrFormat("%s %.3f", label, normalized));
  }
  (*verdict.mutable_components())["label_mass"] = mass;
  verdict.set_reward(reward);
  verdict.set_rationale(TruncateUtf8(
      absl::StrCat("label probabilities: ", absl::StrJoin(parts, ", "), absl::StrFormat(" (mass on labels %.3f)", mass),
                   chat.ok ? absl::StrCat("; answer: ", chat.content) : ""),
      kMaxRationaleBytes));
  return true;
}

bool ReadCompletionLikelihood(const std::string& text, const CompletionSpan& span, Judgement* judgement,
                              int64_t* tokens_in, int64_t* tokens_out) {
  v1::Verdict& verdict = judgement->verdict;
  judgement->raw_response = TruncateUtf8(text, 4000);
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    "the teacher's response is not a JSON object");
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
  if (tokens == nullptr || token_logprobs == nullptr || offsets == nullptr ||
      tokens->size() != token_logprobs->size() || tokens->size() != offsets->size()) {
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
    const json& value = (*offsets)[i];
    if (value.is_number_unsigned() ? value.get<uint64_t>() > static_cast<uint64_t>(kMaxTextOffset)
                                   : (value.get<int64_t>() < 0 || value.get<int64_t>() > kMaxTextOffset)) {
      SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                      absl::StrCat("text_offset holds ", value.dump(), ", outside 0..", kMaxTextOffset));
      return false;
    }
    offset[i] = value.get<int64_t>();
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
    const int64_t token_end =
        i + 1 < n ? offset[i + 1]
                  : token_begin + static_cast<int64_t>(in_bytes ? token_text[i].size() : Utf8CodePoints(token_text[i]));
    const bool overlaps = token_begin < end && std::max(token_end, token_begin + 1) > begin;
    if (!overlaps || !(*token_logprobs)[i].is_number()) continue;
    const double logprob = (*token_logprobs)[i].get<double>();
    if (!IsLogprob(logprob)) {
      SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                      absl::StrCat("the teacher's log-probability ", logprob, " for echoed token ", i,
                                   " is above 0: not a log-probability"));
      return false;
    }
    if (!std::isfinite(logprob)) continue;
    sum += std::min(logprob, 0.0);
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
  verdict.set_rationale(
      absl::StrFormat("mean log-probability %.4f over %d teacher tokens of the completion", mean, count));
  return true;
}

}  // namespace rlj
