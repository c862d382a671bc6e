// byte_tokenizer.h: ids 0..255 are the bytes of UTF-8 text; 256 <bos>, 257 <eos>, 258 <pad>.
#pragma once

#include <string>

#include "common/tokenizer/tokenizer.h"

namespace rlj {

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kBos = 256;
  static constexpr int32_t kEos = 257;
  static constexpr int32_t kPad = 258;
  static constexpr int32_t kVocabSize = 259;

  std::vector<int32_t> Encode(std::string_view text) const override;
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const override;
  // Ids below 256 are their byte; <bos> <eos> <pad> are spelled as in ByteTokenizerJson, so the byte
  // tokenizer and its Hugging Face export agree id by id.
  std::string TokenBytes(int32_t id) const override;
  bool IsSpecial(int32_t id) const override { return id >= 256 && id < kVocabSize; }
  int32_t vocab_size() const override { return kVocabSize; }
  int32_t bos_id() const override { return kBos; }
  int32_t eos_id() const override { return kEos; }
  int32_t pad_id() const override { return kPad; }
};

// The byte tokenizer as a Hugging Face tokenizer.json (byte-level BPE without merges, <bos> <eos> <pad> as
// special added tokens, <bos> prepended by the post-processor): Hugging Face's tokenizers library gives the
// same ids and text, so an exported byte-level student works with transformers.
std::string ByteTokenizerJson();
// Its tokenizer_config.json (bos/eos/pad, no chat template unless `chat_template_jinja` is given).
std::string ByteTokenizerConfigJson(const std::string& chat_template_jinja = "");

}  // namespace rlj
