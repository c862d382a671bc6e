// chat_template.h: how the teacher turns the messages of a chat completion request into the prompt text its
// model continues (tokenizer.chat_template's names, extended from one prompt to every turn of a chat).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj::teacher {

struct ChatMessage {
  std::string role;  // system | developer | user | assistant | tool
  std::string content;
};

// `chat_template`:
//   ""      the contents joined with "\n", no roles: a model trained on raw prompts (the byte-level teacher);
//   chatml  "<|im_start|>{role}\n{content}<|im_end|>\n" per turn, then "<|im_start|>assistant\n";
//   llama3  "<|begin_of_text|>" then "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>" per
//           turn, then the assistant header;
//   plain   "System: …\n", "User: …\n", "Assistant: …\n" per turn, then "Assistant:";
//   else    a template holding {prompt}, which gets the contents joined as for "".
// "developer" is rendered as "system". A template without {prompt} that names no known format is an error.
absl::StatusOr<std::string> RenderChat(const std::vector<ChatMessage>& messages, const std::string& chat_template);

// Checks a chat_template value without rendering anything.
absl::Status ValidateChatTemplate(const std::string& chat_template);

}  // namespace rlj::teacher
