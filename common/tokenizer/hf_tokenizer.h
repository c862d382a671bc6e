// hf_tokenizer.h: a Hugging Face tokenizer.json with a byte-level BPE model (GPT-2, Llama 3, Qwen2): added
// and special tokens matched in the text first (leftmost-longest, with lstrip/rstrip/single_word), then the
// normalizer (NFC), the pre-tokenizers (Split regex, ByteLevel, Digits), BPE merges by rank (ignore_merges as
// in Llama 3), and the ByteLevel decoder. Anything else in the file (a WordPiece or Unigram model, byte
// fallback, other normalizers or decoders) is refused with the field named, never approximated.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"

namespace rlj {

class SplitRegex;

class HfTokenizer final : public Tokenizer {
 public:
  // From the texts of tokenizer.json and, optionally ("" = absent), tokenizer_config.json (bos/eos/pad
  // tokens) and generation_config.json (more eos ids). `source` names the file in errors.
  static absl::StatusOr<std::unique_ptr<HfTokenizer>> FromJson(std::string_view tokenizer_json, std::string_view source,
                                                               std::string_view tokenizer_config_json = "",
                                                               std::string_view generation_config_json = "");
  // tokenizer.json at `path`, with the two optional files beside it.
  static absl::StatusOr<std::unique_ptr<HfTokenizer>> FromFile(const std::string& path);
  ~HfTokenizer() override;

  std::vector<int32_t> Encode(std::string_view text) const override;
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const override;
  // The bytes Decode joins for the token (the ByteLevel decoder's), special tokens' too.
  std::string TokenBytes(int32_t id) const override {
    return id >= 0 && id < vocab_size() ? bytes_of_id_[static_cast<size_t>(id)] : "";
  }
  bool IsSpecial(int32_t id) const override {
    return id >= 0 && id < vocab_size() && special_[static_cast<size_t>(id)];
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(token_of_id_.size()); }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return end_of_turn_id_ >= 0 ? end_of_turn_id_ : eos_id_; }
  int32_t pad_id() const override { return pad_id_ >= 0 ? pad_id_ : eos_id_; }
  std::vector<int32_t> stop_ids() const override;
  std::vector<int32_t> prefix_ids() const override { return prefix_ids_; }
  absl::Status SetChatTemplate(std::string_view spec) override;

  // The id of a token as spelled in the vocabulary or the added tokens.
  std::optional<int32_t> TokenId(std::string_view token) const;
  // The tokenizer's own <eos> (tokenizer_config.json), whatever the chat template.
  int32_t base_eos_id() const { return eos_id_; }

 private:
  struct AddedToken {
    std::string content;
    int32_t id;
    bool special, lstrip, rstrip, single_word;
  };
  enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct PreTokenizerStep {
    std::unique_ptr<SplitRegex> regex;  // Split, Digits, and ByteLevel's own regex when use_regex
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool add_prefix_space = false;  // ByteLevel
  };

  HfTokenizer();
  absl::Status Parse(std::string_view tokenizer_json, std::string_view source, std::string_view tokenizer_config_json,
                     std::string_view generation_config_json);
  void EncodeOrdinary(std::string_view text, std::vector<int32_t>& ids) const;
  void EncodeWord(std::string_view bytes, std::vector<int32_t>& ids) const;

  std::vector<std::string> token_of_id_;  // "" for ids no token has
  std::vector<std::string> bytes_of_id_;  // what the ByteLevel decoder makes of each token
  std::vector<bool> special_;
  std::unordered_map<std::string, int32_t> vocab_;  // the model's byte-level tokens
  std::unordered_map<std::string, int32_t> added_by_content_;
  std::vector<AddedToken> added_;  // longest content first
  std::array<std::vector<size_t>, 256> added_by_first_byte_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left, right) → (rank, merged id)
  std::array<int32_t, 256> id_of_byte_{};
  bool ignore_merges_ = false;
  bool nfc_ = false;
  std::vector<PreTokenizerStep> pre_tokenizers_;
  std::vector<int32_t> prefix_ids_;
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1, end_of_turn_id_ = -1;
  std::vector<int32_t> extra_stop_ids_;  // generation_config.json's eos_token_id
};

}  // namespace rlj
