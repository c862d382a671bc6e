// byte_tokenizer.cc: the byte-level tokenizer and the tokenizer factory.
#include "common/tokenizer/byte_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace rlj {

std::vector<int32_t> ByteTokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) ids.push_back(static_cast<int32_t>(c));
  return ids;
}

absl::StatusOr<std::string> ByteTokenizer::Decode(std::span<const int32_t> ids) const {
  std::string text;
  text.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= kVocabSize) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " at position ", i, " is outside the vocabulary (0..", kVocabSize - 1, ")"));
    }
    if (id < 256) text.push_back(static_cast<char>(id));
  }
  return ToValidUtf8(text);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> MakeTokenizer(const v1::TokenizerConfig& config) {
  if (config.kind() == "byte") return std::make_unique<ByteTokenizer>();
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.kind: unknown tokenizer '", config.kind(), "'"));
}

}  // namespace rlj
