// openai_protocol.cc: request checking and response building for the teacher's OpenAI API.
#include "teacher/openai_protocol.h"

#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "teacher/token_text.h"

namespace rlj::teacher {
namespace {

using nlohmann::json;

// The API reports an impossible token's log-prob as this rather than -inf (JSON has no infinities).
constexpr double kFloorLogprob = -9999.0;

// At most this many stop sequences, as in the OpenAI API.
constexpr size_t kMaxStopSequences = 4;

double JsonLogprob(float logprob) { return std::isfinite(logprob) ? static_cast<double>(logprob) : kFloorLogprob; }

json BytesArray(const std::string& bytes) {
  json array = json::array();
  for (const char c : bytes) array.push_back(static_cast<int>(static_cast<unsigned char>(c)));
  return array;
}

ApiError Invalid(const std::string& param, const std::string& message) {
  return ApiError{400, message, "invalid_request_error", param, ""};
}

// Reads optional typed fields, remembering the first error.
class FieldReader {
 public:
  explicit FieldReader(const json& body) : body_(body) {}

  bool Has(const char* key) const { return body_.contains(key) && !body_.at(key).is_null(); }

  void String(const char* key, std::string* out, bool required) {
    if (!Has(key)) {
      if (required) Fail(key, absl::StrCat("'", key, "' is required"));
      return;
    }
    if (!body_.at(key).is_string()) return Fail(key, absl::StrCat("'", key, "' must be a string"));
    *out = body_.at(key).get<std::string>();
  }

  void Bool(const char* key, bool* out) {
    if (!Has(key)) return;
    if (!body_.at(key).is_boolean()) return Fail(key, absl::StrCat("'", key, "' must be a boolean"));
    *out = body_.at(key).get<bool>();
  }

  void Number(const char* key, double* out, double lo, double hi) {
    if (!Has(key)) return;
    const json& value = body_.at(key);
    if (!value.is_number()) return Fail(key, absl::StrCat("'", key, "' must be a number"));
    const double number = value.get<double>();
    if (!(number >= lo && number <= hi)) {
      return Fail(key, absl::StrCat("'", key, "' must be between ", lo, " and ", hi, ", got ", number));
    }
    *out = number;
  }

  // An integer (an integral number like 3.0 is accepted) in [lo, hi].
  bool Integer(const char* key, int64_t* out, int64_t lo, int64_t hi) {
    if (!Has(key)) return false;
    const json& value = body_.at(key);
    double number = 0;
    if (value.is_number_integer()) {
      number = static_cast<double>(value.get<int64_t>());
    } else if (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>()) {
      number = value.get<double>();
    } else {
      Fail(key, absl::StrCat("'", key, "' must be an integer"));
      return false;
    }
    if (!(number >= static_cast<double>(lo) && number <= static_cast<double>(hi))) {
      Fail(key, absl::StrCat("'", key, "' must be between ", lo, " and ", hi, ", got ", value.dump()));
      return false;
    }
    *out = value.is_number_integer() ? value.get<int64_t>() : static_cast<int64_t>(number);
    return true;
  }

  void Stop(std::vector<std::string>* out) {
    if (!Has("stop")) return;
    const json& value = body_.at("stop");
    if (value.is_string()) {
      if (value.get<std::string>().empty()) return Fail("stop", "'stop' must not be an empty string");
      out->push_back(value.get<std::string>());
      return;
    }
    if (!value.is_array()) return Fail("stop", "'stop' must be a string or an array of strings");
    if (value.size() > kMaxStopSequences) {
      return Fail("stop", absl::StrCat("'stop' holds at most ", kMaxStopSequences, " sequences"));
    }
    for (const json& item : value) {
      if (!item.is_string() || item.get<std::string>().empty()) {
        return Fail("stop", "'stop' must hold non-empty strings");
      }
      out->push_back(item.get<std::string>());
    }
  }

  // Fields of the API this server does not implement: refused unless absent or at their neutral value.
  void Unsupported() {
    for (const char* key : {"presence_penalty", "frequency_penalty"}) {
      if (Has(key) && !(body_.at(key).is_number() && body_.at(key).get<double>() == 0)) {
        return Fail(key, absl::StrCat("'", key, "' is not supported by this server (only 0)"));
      }
    }
    if (Has("logit_bias") && !(body_.at("logit_bias").is_object() && body_.at("logit_bias").empty())) {
      return Fail("logit_bias", "'logit_bias' is not supported by this server");
    }
    for (const char* key : {"tools", "functions"}) {
      if (Has(key) && !(body_.at(key).is_array() && body_.at(key).empty())) {
        return Fail(key, absl::StrCat("'", key, "' (tool calling) is not supported by this server"));
      }
    }
    if (Has("response_format")) {
      const json& format = body_.at("response_format");
      if (!format.is_object() || format.value("type", "") != "text") {
        return Fail("response_format",
                    "'response_format' other than {\"type\": \"text\"} is not supported by this server");
      }
    }
  }

  void Fail(const std::string& param, const std::string& message) {
    if (!error_) error_ = Invalid(param, message);
  }

  const std::optional<ApiError>& error() const { return error_; }

 private:
  const json& body_;
  std::optional<ApiError> error_;
};

// The shared sampling fields: temperature, top_p, top_k (vLLM's; -1 or 0 is off), n, stop, seed, stream,
// stream_options.
void ReadSampling(FieldReader& fields, const json& body, GenerationParams* params, bool* stream, bool* stream_usage) {
  fields.Number("temperature", &params->temperature, 0, 2);
  fields.Number("top_p", &params->top_p, 0, 1);
  if (params->top_p == 0) {  // nothing but the most likely token
    params->top_p = 1;
    params->temperature = 0;
  }
  int64_t top_k = 0;
  if (fields.Integer("top_k", &top_k, -1, INT32_MAX)) params->top_k = static_cast<int>(std::max<int64_t>(top_k, 0));
  int64_t n = 1;
  if (fields.Integer("n", &n, 1, 128)) params->n = static_cast<int>(n);
  fields.Stop(&params->stop);
  int64_t seed = 0;
  if (fields.Integer("seed", &seed, INT64_MIN, INT64_MAX)) params->seed = static_cast<uint64_t>(seed);
  fields.Bool("stream", stream);
  if (fields.Has("stream_options")) {
    const json& options = body.at("stream_options");
    if (!options.is_object()) return fields.Fail("stream_options", "'stream_options' must be an object");
    if (options.contains("include_usage")) {
      if (!options.at("include_usage").is_boolean()) {
        return fields.Fail("stream_options", "'stream_options.include_usage' must be a boolean");
      }
      *stream_usage = options.at("include_usage").get<bool>();
    }
  }
  fields.Unsupported();
}

absl::StatusOr<std::string> MessageContent(const json& content, size_t index, std::optional<ApiError>* error) {
  const std::string param = absl::StrCat("messages[", index, "].content");
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {
    std::string text;
    for (const json& part : content) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
          !part.at("text").is_string()) {
        *error = Invalid(param, "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
        return absl::InvalidArgumentError("bad content");
      }
      text += part.at("text").get<std::string>();
    }
    return text;
  }
  *error = Invalid(param, "a message's content must be a string or an array of text parts");
  return absl::InvalidArgumentError("bad content");
}

json ChatTokenLogprobs(const PositionLogprobs& position, const TokenTexts& texts, absl::Status* status) {
  auto piece = texts.Of(position.id);
  if (!piece.ok()) {
    *status = piece.status();
    return json();
  }
  json top = json::array();
  for (const TokenLogprob& alternative : position.top) {
    auto alt = texts.Of(alternative.id);
    if (!alt.ok()) {
      *status = alt.status();
      return json();
    }
    top.push_back(
        {{"token", alt->text}, {"logprob", JsonLogprob(alternative.logprob)}, {"bytes", BytesArray(alt->bytes)}});
  }
  return json{{"token", piece->text},
              {"logprob", JsonLogprob(position.logprob)},
              {"bytes", BytesArray(piece->bytes)},
              {"top_logprobs", top}};
}

json Usage(int64_t prompt_tokens, int64_t completion_tokens) {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens}};
}

int64_t CompletionTokens(const GenerationResult& result) {
  int64_t total = 0;
  for (const GeneratedChoice& choice : result.choices) total += choice.generated_tokens;
  return total;
}

std::string Event(const json& chunk) {
  return absl::StrCat("data: ", chunk.dump(-1, ' ', false, json::error_handler_t::replace), "\n\n");
}

}  // namespace

json ErrorBody(const ApiError& error) {
  return json{{"error",
               {{"message", error.message},
                {"type", error.type},
                {"param", error.param.empty() ? json() : json(error.param)},
                {"code", error.code.empty() ? json() : json(error.code)}}}};
}

ApiError ApiErrorFromStatus(const absl::Status& status) {
  ApiError error;
  error.message = std::string(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      error.http_status = 400;
      break;
    case absl::StatusCode::kNotFound:
      error.http_status = 404;
      break;
    case absl::StatusCode::kResourceExhausted:
      error.http_status = 429;
      error.type = "rate_limit_error";
      break;
    case absl::StatusCode::kUnavailable:
      error.http_status = 503;
      error.type = "server_error";
      break;
    default:
      error.http_status = 500;
      error.type = "server_error";
  }
  return error;
}

std::optional<ApiError> ParseChatRequest(const json& body, ChatRequest* request) {
  if (!body.is_object()) return Invalid("", "the request body must be a JSON object");
  FieldReader fields(body);
  fields.String("model", &request->model, /*required=*/true);
  if (!fields.Has("messages")) {
    fields.Fail("messages", "'messages' is required");
  } else if (!body.at("messages").is_array() || body.at("messages").empty()) {
    fields.Fail("messages", "'messages' must be a non-empty array");
  } else {
    const json& messages = body.at("messages");
    for (size_t i = 0; i < messages.size() && !fields.error(); ++i) {
      const json& message = messages[i];
      if (!message.is_object() || !message.contains("role") || !message.at("role").is_string()) {
        fields.Fail(absl::StrCat("messages[", i, "]"), "a message must be an object with a string 'role'");
        break;
      }
      const std::string role = message.at("role").get<std::string>();
      if (role != "system" && role != "developer" && role != "user" && role != "assistant" && role != "tool") {
        fields.Fail(absl::StrCat("messages[", i, "].role"),
                    absl::StrCat("unknown role '", role, "' (system, developer, user, assistant or tool)"));
        break;
      }
      std::optional<ApiError> content_error;
      auto content = MessageContent(message.contains("content") ? message.at("content") : json(), i, &content_error);
      if (!content.ok()) {
        fields.Fail(content_error->param, content_error->message);
        break;
      }
      request->messages.push_back(ChatMessage{role, *std::move(content)});
    }
  }
  GenerationParams& params = request->params;
  params.max_tokens = -1;  // the rest of the context unless given
  int64_t max_tokens = 0;
  if (fields.Integer("max_completion_tokens", &max_tokens, 1, INT32_MAX) ||
      fields.Integer("max_tokens", &max_tokens, 1, INT32_MAX)) {
    params.max_tokens = static_cast<int>(max_tokens);
  }
  ReadSampling(fields, body, &params, &request->stream, &request->stream_usage);
  fields.Bool("logprobs", &params.logprobs);
  int64_t top = 0;
  if (fields.Integer("top_logprobs", &top, 0, kMaxTopLogprobs)) {
    if (!params.logprobs) fields.Fail("top_logprobs", "'top_logprobs' requires 'logprobs': true");
    params.top_logprobs = static_cast<int>(top);
  }
  if (fields.error()) return fields.error();
  return std::nullopt;
}

std::optional<ApiError> ParseCompletionRequest(const json& body, CompletionRequest* request) {
  if (!body.is_object()) return Invalid("", "the request body must be a JSON object");
  FieldReader fields(body);
  fields.String("model", &request->model, /*required=*/true);
  auto token_ids = [](const json& array, std::vector<int32_t>* ids) {
    for (const json& id : array) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) return false;
      ids->push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    return true;
  };
  if (!fields.Has("prompt")) {
    fields.Fail("prompt", "'prompt' is required");
  } else {
    const json& prompt = body.at("prompt");
    if (prompt.is_string()) {
      request->prompts.push_back(CompletionPrompt{prompt.get<std::string>(), {}, false});
    } else if (prompt.is_array() && !prompt.empty() && prompt[0].is_number_integer()) {
      CompletionPrompt ids{"", {}, true};
      if (!token_ids(prompt, &ids.ids)) fields.Fail("prompt", "a token-id prompt must hold non-negative integers");
      request->prompts.push_back(std::move(ids));
    } else if (prompt.is_array() && !prompt.empty()) {
      for (const json& item : prompt) {
        if (item.is_string()) {
          request->prompts.push_back(CompletionPrompt{item.get<std::string>(), {}, false});
        } else if (item.is_array() && !item.empty()) {
          CompletionPrompt ids{"", {}, true};
          if (!token_ids(item, &ids.ids)) {
            fields.Fail("prompt", "a token-id prompt must hold non-negative integers");
            break;
          }
          request->prompts.push_back(std::move(ids));
        } else {
          fields.Fail("prompt", "'prompt' must be a string, an array of strings, or token ids");
          break;
        }
      }
    } else {
      fields.Fail("prompt", "'prompt' must be a string, an array of strings, or token ids");
    }
  }
  GenerationParams& params = request->params;
  params.max_tokens = 16;  // the API's default for completions
  int64_t max_tokens = 0;
  if (fields.Integer("max_tokens", &max_tokens, 0, INT32_MAX)) params.max_tokens = static_cast<int>(max_tokens);
  ReadSampling(fields, body, &params, &request->stream, &request->stream_usage);
  fields.Bool("echo", &request->echo);
  int64_t logprobs = 0;
  if (fields.Integer("logprobs", &logprobs, 0, kMaxTopLogprobs)) {
    params.logprobs = true;
    params.top_logprobs = static_cast<int>(logprobs);
    params.prompt_logprobs = request->echo;
    params.prompt_top_logprobs = static_cast<int>(logprobs);
  }
  if (fields.Has("suffix")) fields.Fail("suffix", "'suffix' is not supported by this server");
  int64_t best_of = 0;
  if (fields.Integer("best_of", &best_of, 1, 128) && best_of != params.n) {
    fields.Fail("best_of", "'best_of' other than n is not supported by this server");
  }
  if (request->echo && request->stream) fields.Fail("echo", "'echo' cannot be combined with 'stream'");
  if (fields.error()) return fields.error();
  return std::nullopt;
}

std::string FinishReasonName(FinishReason reason) { return reason == FinishReason::kLength ? "length" : "stop"; }

absl::StatusOr<json> ChatCompletionBody(const ResponseHeader& header, const GenerationResult& result,
                                        const GenerationParams& params, int64_t prompt_tokens,
                                        const TokenTexts& texts) {
  json choices = json::array();
  for (size_t i = 0; i < result.choices.size(); ++i) {
    const GeneratedChoice& choice = result.choices[i];
    json logprobs;  // null unless asked for
    if (params.logprobs) {
      json content = json::array();
      absl::Status status;
      for (const PositionLogprobs& position : choice.logprobs) {
        content.push_back(ChatTokenLogprobs(position, texts, &status));
        RLJ_RETURN_IF_ERROR(status);
      }
      logprobs = json{{"content", content}, {"refusal", nullptr}};
    }
    choices.push_back({{"index", i},
                       {"message", {{"role", "assistant"}, {"content", choice.text}, {"refusal", nullptr}}},
                       {"logprobs", logprobs},
                       {"finish_reason", FinishReasonName(choice.finish)}});
  }
  return json{{"id", header.id},
              {"object", "chat.completion"},
              {"created", header.created},
              {"model", header.model},
              {"system_fingerprint", "rlj-teacher"},
              {"choices", choices},
              {"usage", Usage(prompt_tokens, CompletionTokens(result))}};
}

absl::StatusOr<std::string> ChatCompletionStream(const ResponseHeader& header, const GenerationResult& result,
                                                 const GenerationParams& params, int64_t prompt_tokens,
                                                 bool include_usage, const TokenTexts& texts) {
  auto chunk = [&](json choices) {
    json body{{"id", header.id},       {"object", "chat.completion.chunk"},   {"created", header.created},
              {"model", header.model}, {"system_fingerprint", "rlj-teacher"}, {"choices", std::move(choices)}};
    if (include_usage) body["usage"] = nullptr;
    return body;
  };
  std::string events;
  for (size_t i = 0; i < result.choices.size(); ++i) {
    const GeneratedChoice& choice = result.choices[i];
    events += Event(chunk(json::array({{{"index", i},
                                        {"delta", {{"role", "assistant"}, {"content", ""}}},
                                        {"logprobs", nullptr},
                                        {"finish_reason", nullptr}}})));
    // Each token's share of the text: the text between its start and the next token's (the text may end
    // before the last token's end when a stop string cut it).
    RLJ_ASSIGN_OR_RETURN(std::vector<size_t> offsets, texts.Offsets(choice.tokens));
    offsets.push_back(choice.text.size());
    for (size_t t = 0; t < choice.tokens.size(); ++t) {
      const size_t begin = std::min(offsets[t], choice.text.size());
      const size_t end = std::min(std::max(offsets[t + 1], begin), choice.text.size());
      json logprobs;
      if (params.logprobs && t < choice.logprobs.size()) {
        absl::Status status;
        logprobs = json{{"content", json::array({ChatTokenLogprobs(choice.logprobs[t], texts, &status)})},
                        {"refusal", nullptr}};
        RLJ_RETURN_IF_ERROR(status);
      }
      events += Event(chunk(json::array({{{"index", i},
                                          {"delta", {{"content", choice.text.substr(begin, end - begin)}}},
                                          {"logprobs", logprobs},
                                          {"finish_reason", nullptr}}})));
    }
    events += Event(chunk(json::array({{{"index", i},
                                        {"delta", json::object()},
                                        {"logprobs", nullptr},
                                        {"finish_reason", FinishReasonName(choice.finish)}}})));
  }
  if (include_usage) {
    json usage_chunk = chunk(json::array());
    usage_chunk["usage"] = Usage(prompt_tokens, CompletionTokens(result));
    events += Event(usage_chunk);
  }
  events += "data: [DONE]\n\n";
  return events;
}

namespace {

// choices[] entries of a text_completion for one prompt.
absl::Status AppendCompletionChoices(const CompletionOutcome& outcome, size_t prompt_index,
                                     const CompletionRequest& request, const TokenTexts& texts, json* choices) {
  const GenerationParams& params = request.params;
  for (size_t c = 0; c < outcome.result.choices.size(); ++c) {
    const GeneratedChoice& choice = outcome.result.choices[c];
    std::string text = request.echo ? outcome.prompt_text + choice.text : choice.text;
    json logprobs;
    if (params.logprobs) {
      // The scored sequence: the prompt (with echo) and the completion; offsets index `text`.
      std::vector<int32_t> ids;
      std::vector<const PositionLogprobs*> scored;  // nullptr: no log-prob (the first prompt token)
      if (request.echo) {
        ids = outcome.prompt_ids;
        scored.push_back(nullptr);
        for (const PositionLogprobs& position : outcome.result.prompt_logprobs) scored.push_back(&position);
        scored.resize(ids.size(), nullptr);
      }
      ids.insert(ids.end(), choice.tokens.begin(), choice.tokens.end());
      for (const PositionLogprobs& position : choice.logprobs) scored.push_back(&position);
      RLJ_ASSIGN_OR_RETURN(std::vector<size_t> offsets, texts.Offsets(ids));
      json tokens = json::array();
      json token_logprobs = json::array();
      json top_logprobs = json::array();
      json text_offset = json::array();
      for (size_t t = 0; t < ids.size(); ++t) {
        RLJ_ASSIGN_OR_RETURN(TokenText piece, texts.Of(ids[t]));
        tokens.push_back(piece.text);
        text_offset.push_back(std::min(offsets[t], text.size()));
        const PositionLogprobs* position = scored[t];
        if (position == nullptr) {
          token_logprobs.push_back(nullptr);
          top_logprobs.push_back(nullptr);
          continue;
        }
        token_logprobs.push_back(JsonLogprob(position->logprob));
        // The alternatives and always the token itself (so up to logprobs + 1 entries, as in the API).
        json top = json::object();
        for (const TokenLogprob& alternative : position->top) {
          RLJ_ASSIGN_OR_RETURN(TokenText alt, texts.Of(alternative.id));
          if (!top.contains(alt.text)) top[alt.text] = JsonLogprob(alternative.logprob);
        }
        if (!top.contains(piece.text)) top[piece.text] = JsonLogprob(position->logprob);
        top_logprobs.push_back(std::move(top));
      }
      logprobs = json{{"tokens", tokens},
                      {"token_logprobs", token_logprobs},
                      {"top_logprobs", top_logprobs},
                      {"text_offset", text_offset}};
    }
    choices->push_back({{"text", std::move(text)},
                        {"index", prompt_index * outcome.result.choices.size() + c},
                        {"logprobs", logprobs},
                        {"finish_reason", FinishReasonName(choice.finish)}});
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<json> CompletionBody(const ResponseHeader& header, const std::vector<CompletionOutcome>& outcomes,
                                    const CompletionRequest& request, const TokenTexts& texts) {
  json choices = json::array();
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  for (size_t p = 0; p < outcomes.size(); ++p) {
    RLJ_RETURN_IF_ERROR(AppendCompletionChoices(outcomes[p], p, request, texts, &choices));
    prompt_tokens += static_cast<int64_t>(outcomes[p].prompt_ids.size());
    completion_tokens += CompletionTokens(outcomes[p].result);
  }
  return json{{"id", header.id},
              {"object", "text_completion"},
              {"created", header.created},
              {"model", header.model},
              {"system_fingerprint", "rlj-teacher"},
              {"choices", choices},
              {"usage", Usage(prompt_tokens, completion_tokens)}};
}

absl::StatusOr<std::string> CompletionStream(const ResponseHeader& header,
                                             const std::vector<CompletionOutcome>& outcomes,
                                             const CompletionRequest& request, const TokenTexts& texts) {
  std::string events;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  for (size_t p = 0; p < outcomes.size(); ++p) {
    json choices = json::array();
    RLJ_RETURN_IF_ERROR(AppendCompletionChoices(outcomes[p], p, request, texts, &choices));
    for (json& choice : choices) {
      json chunk{{"id", header.id},       {"object", "text_completion"},         {"created", header.created},
                 {"model", header.model}, {"system_fingerprint", "rlj-teacher"}, {"choices", json::array({choice})}};
      if (request.stream_usage) chunk["usage"] = nullptr;
      events += Event(chunk);
    }
    prompt_tokens += static_cast<int64_t>(outcomes[p].prompt_ids.size());
    completion_tokens += CompletionTokens(outcomes[p].result);
  }
  if (request.stream_usage) {
    events += Event(json{{"id", header.id},
                         {"object", "text_completion"},
                         {"created", header.created},
                         {"model", header.model},
                         {"choices", json::array()},
                         {"usage", Usage(prompt_tokens, completion_tokens)}});
  }
  events += "data: [DONE]\n\n";
  return events;
}

}  // namespace rlj::teacher
