// chat_template.h: how a prompt becomes the text a model is asked to continue: none (the raw prompt), the
// presets chatml (Qwen2), llama3 and plain, or a template string holding {prompt}.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rlj {

class ChatTemplate {
 public:
  ChatTemplate() = default;  // none

  // "" (none), "chatml", "llama3", "plain", or a template with exactly one {prompt}; errors name
  // tokenizer.chat_template.
  static absl::StatusOr<ChatTemplate> Parse(std::string_view spec);

  bool empty() const { return spec_.empty(); }
  const std::string& spec() const { return spec_; }  // as given ("chatml", or the template string)
  // The text with the prompt in place.
  std::string Render(std::string_view prompt) const;
  // The token that ends the assistant's turn ("<|im_end|>", "<|eot_id|>"), "" when the template has none.
  const std::string& end_of_turn() const { return end_of_turn_; }
  // The same template as Jinja for tokenizer_config.json's chat_template (Hugging Face's apply_chat_template):
  // each user message rendered as here, other roles' content verbatim.
  std::string ToJinja() const;

  // Recognises rlj's presets in a Jinja chat template of a tokenizer_config.json ("" when none fits).
  static std::string PresetOfJinja(std::string_view jinja);

 private:
  std::string spec_;
  std::string before_, after_;  // around {prompt}
  std::string end_of_turn_;
};

}  // namespace rlj
