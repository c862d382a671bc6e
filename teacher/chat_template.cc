// chat_template.cc: chat messages → prompt text for the teacher's model.
#include "teacher/chat_template.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace rlj::teacher {
namespace {

std::string RoleName(const std::string& role) { return role == "developer" ? "system" : role; }

std::string JoinedContents(const std::vector<ChatMessage>& messages) {
  std::string text;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i > 0) text += "\n";
    text += messages[i].content;
  }
  return text;
}

std::string Capitalised(std::string word) {
  if (!word.empty() && word[0] >= 'a' && word[0] <= 'z') word[0] = static_cast<char>(word[0] - 'a' + 'A');
  return word;
}

}  // namespace

absl::Status ValidateChatTemplate(const std::string& chat_template) {
  if (chat_template.empty() || chat_template == "chatml" || chat_template == "llama3" || chat_template == "plain" ||
      chat_template.find("{prompt}") != std::string::npos) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("chat template '", chat_template,
                                                 "': use \"\", chatml, llama3, plain or a template holding {prompt}"));
}

absl::StatusOr<std::string> RenderChat(const std::vector<ChatMessage>& messages, const std::string& chat_template) {
  if (absl::Status status = ValidateChatTemplate(chat_template); !status.ok()) return status;
  if (chat_template.empty()) return JoinedContents(messages);
  std::string text;
  if (chat_template == "chatml") {
    for (const ChatMessage& m : messages) absl::StrAppend(&text, "<|im_start|>", RoleName(m.role), "\n", m.content, "<|im_end|>\n");
    absl::StrAppend(&text, "<|im_start|>assistant\n");
    return text;
  }
  if (chat_template == "llama3") {
    text = "<|begin_of_text|>";
    for (const ChatMessage& m : messages) {
      absl::StrAppend(&text, "<|start_header_id|>", RoleName(m.role), "<|end_header_id|>\n\n", m.content, "<|eot_id|>");
    }
    absl::StrAppend(&text, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return text;
  }
  if (chat_template == "plain") {
    for (const ChatMessage& m : messages) absl::StrAppend(&text, Capitalised(RoleName(m.role)), ": ", m.content, "\n");
    absl::StrAppend(&text, "Assistant:");
    return text;
  }
  return absl::StrReplaceAll(chat_template, {{"{prompt}", JoinedContents(messages)}});
}

}  // namespace rlj::teacher
