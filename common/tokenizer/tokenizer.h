// tokenizer.h: the tokenizer interface every part uses (actors encode prompts, decode completions), and the
// factory that builds the configured one (byte, or a Hugging Face tokenizer.json) with its chat template.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/chat_template.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text → ids, without the ids a tokenizer adds around a whole sequence (<bos>): Hugging Face's
  // encode(text, add_special_tokens=False). Added and special tokens spelled in the text become their ids.
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  // Ids → text; special tokens are dropped. Ids outside the vocabulary are an error. The text is valid
  // UTF-8: byte sequences that are not (a model can emit any bytes) become U+FFFD, as Hugging Face's
  // decoders do; the ids stay exact.
  virtual absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const = 0;

  // The exact bytes `id` stands for, before Decode's UTF-8 repair (a lone 0x80 stays 0x80), so that two
  // vocabularies can be compared id by id; a special token's are its spelling ("<bos>"), which Decode drops.
  // "" for ids outside the vocabulary or in a gap of it. The default decodes the one id: exact only for
  // tokens that are valid UTF-8 and not special, so real tokenizers override it.
  virtual std::string TokenBytes(int32_t id) const {
    const int32_t ids[] = {id};
    return Decode(ids).value_or("");
  }
  // Whether Decode drops `id` (<bos>, <eos>, <pad>, added tokens marked special).
  virtual bool IsSpecial(int32_t /*id*/) const { return false; }

  virtual int32_t vocab_size() const = 0;  // one past the largest id
  virtual int32_t bos_id() const = 0;      // -1 when the tokenizer has none
  // The id that ends a completion: the chat template's end-of-turn token when it has one, else <eos>. SFT
  // appends it to references.
  virtual int32_t eos_id() const = 0;
  virtual int32_t pad_id() const = 0;

  // Every id that ends a completion, eos_id() first (Llama 3: <|eot_id|> and <|end_of_text|>).
  virtual std::vector<int32_t> stop_ids() const { return {eos_id()}; }
  // The ids put before a sequence when encoding with special tokens (the post-processor's <bos>).
  virtual std::vector<int32_t> prefix_ids() const {
    return bos_id() >= 0 ? std::vector<int32_t>{bos_id()} : std::vector<int32_t>{};
  }

  // Sets the chat template EncodePrompt applies (see ChatTemplate::Parse); a tokenizer may refuse a preset
  // whose special tokens it lacks.
  virtual absl::Status SetChatTemplate(std::string_view spec);
  const ChatTemplate& chat_template() const { return chat_template_; }

  // The ids a prompt becomes before sampling: prefix_ids() + Encode(chat template applied to the prompt),
  // without repeating a prefix the rendered text already starts with (llama3's <|begin_of_text|>).
  std::vector<int32_t> EncodePrompt(std::string_view prompt) const;

 protected:
  ChatTemplate chat_template_;
};

// The tokenizer of `config`: byte, or hf from tokenizer.path (required here), with tokenizer.chat_template.
absl::StatusOr<std::unique_ptr<Tokenizer>> MakeTokenizer(const v1::TokenizerConfig& config);
// The same, with tokenizer.path defaulting to <model.init_checkpoint>/tokenizer.json for kind hf.
absl::StatusOr<std::unique_ptr<Tokenizer>> MakeTokenizer(const v1::RunConfig& config);

// A tokenizer from files: "byte", a tokenizer.json, or a directory holding one. With tokenizer.json,
// tokenizer_config.json and generation_config.json beside it are read when present. `chat_template` as in
// the config; "auto" takes the template a checkpoint's tokenizer_config.json names (rlj_chat_template, else a
// preset recognised in its Jinja chat_template, else none).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path, std::string_view chat_template = "");

}  // namespace rlj
