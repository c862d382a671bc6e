// chat_template.h: how a prompt or a conversation becomes the text a model is asked to continue, for the actor,
// eval, generate and the teacher alike: none (the contents as they are), the presets chatml (Qwen2), llama3 and
// plain, or a template string holding {prompt}.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {

struct ChatMessage {
  std::string role;  // system | developer | user | assistant | tool ("developer" is rendered as "system")
  std::string content;
};

class ChatTemplate {
 public:
  ChatTemplate() = default;  // none

  // "" (none), "chatml", "llama3", "plain", or a template with exactly one {prompt}. The error names `key`, the
  // config key or flag the value came from, and quotes the value.
  static absl::StatusOr<ChatTemplate> Parse(std::string_view spec, std::string_view key = "tokenizer.chat_template");

  bool empty() const { return spec_.empty(); }
  const std::string& spec() const { return spec_; }  // as given ("chatml", or the template string)
  // One user prompt: the text with the prompt in place and the assistant's turn opened.
  std::string Render(std::string_view prompt) const;
  // A conversation, every turn in its role, then the assistant's turn opened. With no preset (none, or a
  // template string), the contents are joined with "\n" and that is the prompt.
  std::string RenderChat(const std::vector<ChatMessage>& messages) const;
  // The token that ends the assistant's turn ("<|im_end|>", "<|eot_id|>"), "" when the template has none.
  const std::string& end_of_turn() const { return end_of_turn_; }
  // The same template as Jinja for tokenizer_config.json's chat_template (Hugging Face's apply_chat_template):
  // each user message rendered as here, other roles' content verbatim.
  std::string ToJinja() const;

  // Recognises rlj's presets in a Jinja chat template of a tokenizer_config.json ("" when none fits).
  static std::string PresetOfJinja(std::string_view jinja);

 private:
  int preset_ = -1;  // which preset, -1 for none and for a template string
  std::string spec_;
  std::string before_, after_;  // around {prompt}
  std::string end_of_turn_;
};

}  // namespace rlj
