// chat_template.cc: the presets, {prompt} substitution and the Jinja rendition for exported tokenizers.
#include "common/tokenizer/chat_template.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace rlj {
namespace {

constexpr std::string_view kPromptSlot = "{prompt}";

struct Preset {
  const char* name;
  const char* text;
  const char* end_of_turn;
};
constexpr Preset kPresets[] = {
    {"chatml", "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>"},
    {"llama3",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|><|start_header_id|>assistant"
     "<|end_header_id|>\n\n",
     "<|eot_id|>"},
    {"plain", "User: {prompt}\nAssistant:", ""},
};

std::string JinjaString(std::string_view text) { return nlohmann::json(std::string(text)).dump(); }

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view spec) {
  ChatTemplate result;
  if (spec.empty()) return result;
  std::string_view text = spec;
  for (const Preset& preset : kPresets) {
    if (spec == preset.name) {
      text = preset.text;
      result.end_of_turn_ = preset.end_of_turn;
    }
  }
  const size_t slot = text.find(kPromptSlot);
  if (slot == std::string_view::npos || text.find(kPromptSlot, slot + 1) != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer.chat_template: '", AsAbsl(spec), "' is neither chatml, llama3 nor plain, nor a template with one {prompt}"));
  }
  result.spec_ = std::string(spec);
  result.before_ = std::string(text.substr(0, slot));
  result.after_ = std::string(text.substr(slot + kPromptSlot.size()));
  return result;
}

std::string ChatTemplate::Render(std::string_view prompt) const {
  if (empty()) return std::string(prompt);
  return absl::StrCat(before_, AsAbsl(prompt), after_);
}

std::string ChatTemplate::ToJinja() const {
  if (spec_ == "chatml") {
    return "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
           "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
           "{% endif %}";
  }
  if (spec_ == "llama3") {
    return "{{ '<|begin_of_text|>' }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
           "'<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
           "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
  }
  // rlj renders a prompt and the generation cue as one string: the user's message goes between the two
  // halves; other messages (the answer) follow verbatim.
  return absl::StrCat("{% for message in messages %}{% if message['role'] == 'user' %}{{ ", JinjaString(before_),
                      " + message['content'] + ", JinjaString(after_),
                      " }}{% else %}{{ message['content'] }}{% endif %}{% endfor %}");
}

std::string ChatTemplate::PresetOfJinja(std::string_view jinja) {
  if (jinja.find("<|im_start|>") != std::string_view::npos) return "chatml";
  if (jinja.find("<|start_header_id|>") != std::string_view::npos) return "llama3";
  return "";
}

}  // namespace rlj
