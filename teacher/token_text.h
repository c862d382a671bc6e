// token_text.h: text ↔ tokens at the teacher's edge: a prompt's ids (no chat template: the server renders
// conversations itself), and what the OpenAI API shows of a token: its text, its bytes (exact even when a
// token is only part of a UTF-8 character), and where each token of a sequence starts in the sequence's text.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {
class Tokenizer;
}  // namespace rlj

namespace rlj::teacher {

struct TokenText {
  std::string text;   // valid UTF-8 (a partial character shows as U+FFFD); "" for special tokens
  std::string bytes;  // the token's own bytes
};

class TokenTexts {
 public:
  explicit TokenTexts(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  // The ids of a prompt text: the tokenizer's prefix (<bos>) unless the text already begins with it
  // (llama3's <|begin_of_text|>), then the text's ids. The tokenizer's chat template is not applied.
  std::vector<int32_t> EncodePrompt(std::string_view text) const;

  absl::StatusOr<TokenText> Of(int32_t id) const;

  // Byte offset of each token's start in the decoded text of `ids` (offset[i] = the length of the text of
  // ids[0, i), clamped to the whole text's length).
  absl::StatusOr<std::vector<size_t>> Offsets(std::span<const int32_t> ids) const;

 private:
  const Tokenizer& tokenizer_;
};

}  // namespace rlj::teacher
