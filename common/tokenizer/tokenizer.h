// tokenizer.h: the tokenizer interface every part uses (actors encode prompts, decode completions).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text → ids, without special tokens.
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  // Ids → text; special tokens are dropped. Ids outside the vocabulary are an error. The text is valid
  // UTF-8: byte sequences that are not (a model can emit any bytes) become U+FFFD, as Hugging Face's
  // decoders do; the ids stay exact.
  virtual absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual int32_t pad_id() const = 0;

  // The ids a prompt becomes before sampling: <bos> + Encode(prompt).
  std::vector<int32_t> EncodePrompt(std::string_view prompt) const {
    std::vector<int32_t> ids{bos_id()};
    const std::vector<int32_t> body = Encode(prompt);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  }
};

absl::StatusOr<std::unique_ptr<Tokenizer>> MakeTokenizer(const v1::TokenizerConfig& config);

}  // namespace rlj
