// chat_template.cc: the presets as data (how one turn is written, how the assistant's turn opens), {prompt}
// substitution, and the Jinja rendition for exported tokenizers.
#include "common/tokenizer/chat_template.h"

#include <iterator>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status.h"

namespace rlj {

namespace {

struct Preset {
  const char* name;
  const char* begin;        // once, before the first turn
  const char* turn;         // per turn, with {role} and {content}
  const char* cue;          // opens the assistant's turn
  const char* end_of_turn;  // the token that closes a turn, "" when none
  bool capitalised_roles;   // "User" rather than "user"
};

constexpr Preset kPresets[] = {
    {"chatml", "", "<|im_start|>{role}\n{content}<|im_end|>\n", "<|im_start|>assistant\n", "<|im_end|>", false},
    {"llama3", "<|begin_of_text|>", "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>",
     "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>", false},
    {"plain", "", "{role}: {content}\n", "Assistant:", "", true},
};

constexpr std::string_view kPromptSlot = "{prompt}";

std::string JinjaString(std::string_view text) { return nlohmann::json(std::string(text)).dump(); }

std::string RoleName(const std::string& role, bool capitalised) {
  std::string name = role == "developer" ? "system" : role;
  if (capitalised && !name.empty() && name[0] >= 'a' && name[0] <= 'z')
    name[0] = static_cast<char>(name[0] - 'a' + 'A');
  return name;
}

std::string JoinedContents(const std::vector<ChatMessage>& messages) {
  std::string text;
  for (size_t i = 0; i < messages.size(); ++i) absl::StrAppend(&text, i > 0 ? "\n" : "", messages[i].content);
  return text;
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view spec, std::string_view key) {
  ChatTemplate result;
  result.spec_ = std::string(spec);
  if (spec.empty()) return result;
  for (int p = 0; p < static_cast<int>(std::size(kPresets)); ++p) {
    if (spec == kPresets[p].name) {
      result.preset_ = p;
      result.end_of_turn_ = kPresets[p].end_of_turn;
      const std::string one_turn = result.RenderChat({{"user", std::string(kPromptSlot)}});
      const size_t slot = one_turn.find(kPromptSlot);
      result.before_ = one_turn.substr(0, slot);
      result.after_ = one_turn.substr(slot + kPromptSlot.size());
      return result;
    }
  }
  const size_t slot = spec.find(kPromptSlot);
  if (slot == std::string_view::npos || spec.find(kPromptSlot, slot + 1) != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        AsAbsl(key), ": '", AsAbsl(spec), "' is neither chatml, llama3 nor plain, nor a template with one {prompt}"));
  }
  result.before_ = std::string(spec.substr(0, slot));
  result.after_ = std::string(spec.substr(slot + kPromptSlot.size()));
  return result;
}

std::string ChatTemplate::Render(std::string_view prompt) const {
  if (empty()) return std::string(prompt);
  return absl::StrCat(before_, AsAbsl(prompt), after_);
}

std::string ChatTemplate::RenderChat(const std::vector<ChatMessage>& messages) const {
  if (preset_ < 0) return Render(JoinedContents(messages));
  const Preset& preset = kPresets[preset_];
  std::string text = preset.begin;
  for (const ChatMessage& m : messages) {
    absl::StrAppend(&text, absl::StrReplaceAll(preset.turn, {{"{role}", RoleName(m.role, preset.capitalised_roles)},
                                                             {"{content}", m.content}}));
  }
  return absl::StrCat(text, preset.cue);
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
