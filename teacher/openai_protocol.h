// openai_protocol.h: the OpenAI API at the teacher's edge: JSON request bodies of /v1/chat/completions and
// /v1/completions checked and turned into plain structs, results turned into the API's response objects
// (with logprobs in each endpoint's own format), and the API's error object.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/chat_template.h"
#include "nlohmann/json.hpp"
#include "teacher/generation.h"

namespace rlj::teacher {

class TokenTexts;

// An error as the API reports it: {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" → null
  std::string code;   // "" → null
};
nlohmann::json ErrorBody(const ApiError& error);

// The HTTP status for an engine error: InvalidArgument 400, NotFound 404, ResourceExhausted 429,
// Unavailable 503, anything else 500.
ApiError ApiErrorFromStatus(const absl::Status& status);

struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  GenerationParams params;  // max_tokens < 0: not given (the rest of the context)
  bool stream = false;
  bool stream_usage = false;  // stream_options.include_usage
};

struct CompletionPrompt {
  std::string text;          // when given as text
  std::vector<int32_t> ids;  // when given as token ids (used as they are)
  bool is_ids = false;
};

struct CompletionRequest {
  std::string model;
  std::vector<CompletionPrompt> prompts;
  GenerationParams params;  // logprobs / prompt_logprobs set from "logprobs" and "echo"
  bool echo = false;
  bool stream = false;
  bool stream_usage = false;
};

// Parse and check a request body into `request`; a bad field is an error naming it as `param`.
std::optional<ApiError> ParseChatRequest(const nlohmann::json& body, ChatRequest* request);
std::optional<ApiError> ParseCompletionRequest(const nlohmann::json& body, CompletionRequest* request);

// The response's common fields.
struct ResponseHeader {
  std::string id;       // chatcmpl-… / cmpl-…
  int64_t created = 0;  // unix seconds
  std::string model;
};

// "stop" or "length".
std::string FinishReasonName(FinishReason reason);

// A chat.completion object: choices[].message, choices[].logprobs.content[] when asked for, usage.
absl::StatusOr<nlohmann::json> ChatCompletionBody(const ResponseHeader& header, const GenerationResult& result,
                                                  const GenerationParams& params, int64_t prompt_tokens,
                                                  const TokenTexts& texts);

// The server-sent events of a streamed chat completion: a role chunk, one chunk per token, a finishing chunk
// per choice, the usage chunk when asked for, and "data: [DONE]".
absl::StatusOr<std::string> ChatCompletionStream(const ResponseHeader& header, const GenerationResult& result,
                                                 const GenerationParams& params, int64_t prompt_tokens,
                                                 bool include_usage, const TokenTexts& texts);

// One prompt's part of a text_completion: its prompt ids and text (for echo) and its result.
struct CompletionOutcome {
  std::vector<int32_t> prompt_ids;
  std::string prompt_text;
  GenerationResult result;
};

// A text_completion object; choice index = prompt index × n + choice. With echo the text starts with the
// prompt and logprobs cover the prompt tokens too (the first one's log-prob and alternatives are null).
absl::StatusOr<nlohmann::json> CompletionBody(const ResponseHeader& header,
                                              const std::vector<CompletionOutcome>& outcomes,
                                              const CompletionRequest& request, const TokenTexts& texts);

// The same as server-sent events: one chunk per choice, the usage chunk when asked for, "data: [DONE]".
absl::StatusOr<std::string> CompletionStream(const ResponseHeader& header,
                                             const std::vector<CompletionOutcome>& outcomes,
                                             const CompletionRequest& request, const TokenTexts& texts);

}  // namespace rlj::teacher
