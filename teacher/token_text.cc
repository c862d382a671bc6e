// token_text.cc: token text, bytes and offsets for logprobs in the OpenAI format.
#include "teacher/token_text.h"

#include <algorithm>

#include "common/status.h"
#include "common/tokenizer/byte_tokenizer.h"
#include "common/tokenizer/tokenizer.h"

namespace rlj::teacher {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

}  // namespace

std::vector<int32_t> TokenTexts::EncodePrompt(std::string_view text) const {
  const std::vector<int32_t> body = tokenizer_.Encode(text);
  std::vector<int32_t> ids = tokenizer_.prefix_ids();
  if (!ids.empty() && body.size() >= ids.size() && std::equal(ids.begin(), ids.end(), body.begin())) ids.clear();
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

absl::StatusOr<TokenText> TokenTexts::Of(int32_t id) const {
  TokenText piece;
  const int32_t ids[] = {id};
  RLJ_ASSIGN_OR_RETURN(piece.text, tokenizer_.Decode(ids));
  piece.bytes = piece.text;
  // A byte token that is only part of a character decodes to U+FFFD; its bytes are the byte itself.
  if (dynamic_cast<const ByteTokenizer*>(&tokenizer_) != nullptr && id >= 0 && id < 256) {
    piece.bytes = std::string(1, static_cast<char>(id));
  }
  return piece;
}

absl::StatusOr<std::vector<size_t>> TokenTexts::Offsets(std::span<const int32_t> ids) const {
  RLJ_ASSIGN_OR_RETURN(const std::string whole, tokenizer_.Decode(ids));
  std::vector<size_t> offsets;
  offsets.reserve(ids.size());
  size_t offset = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    offsets.push_back(std::min(offset, whole.size()));
    RLJ_ASSIGN_OR_RETURN(const std::string piece, tokenizer_.Decode(ids.subspan(i, 1)));
    if (piece.find(kReplacementCharacter) == std::string::npos) {
      offset += piece.size();
    } else {
      // Part of a character: the prefix's own decoding says where the next token starts.
      RLJ_ASSIGN_OR_RETURN(const std::string prefix, tokenizer_.Decode(ids.first(i + 1)));
      offset = prefix.size();
      // A prefix that ends inside a character decodes with a U+FFFD the whole text does not have there.
      if (prefix.size() >= kReplacementCharacter.size() &&
          prefix.compare(prefix.size() - kReplacementCharacter.size(), kReplacementCharacter.size(),
                         kReplacementCharacter) == 0 &&
          whole.compare(0, prefix.size(), prefix) != 0) {
        offset = prefix.size() - kReplacementCharacter.size();
      }
    }
  }
  return offsets;
}

}  // namespace rlj::teacher
